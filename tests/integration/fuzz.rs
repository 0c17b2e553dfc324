//! Bounded fuzzing in every test run: seeded random mutation and generation
//! against the parsers and the pure logic, checking properties, not just "no
//! panic". Each target runs for a fixed number of cases (a few seconds in all);
//! `LMHOST_FUZZ_SEED` replays a run and `LMHOST_FUZZ_CASES` makes it longer.
//! Coverage-guided targets for the same entry points live in `fuzz/` (see
//! SECURITY.md).

use std::panic::{catch_unwind, AssertUnwindSafe};

use lmhost::adapters::{AdapterLimits, AdapterRuntime, TemplateLimits};
use lmhost::registry::{check_registry_text, unify, Registry, SpecSource, PACKAGED_REGISTRY};
use lmhost::{GenerationParams, Message};
use serde_json::{json, Value};

/// xorshift64*: small, fast, reproducible.
struct Rng(u64);

impl Rng {
    fn seeded(target: &str) -> Self {
        let seed = std::env::var("LMHOST_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("fuzz {target}: LMHOST_FUZZ_SEED={seed}");
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn cases(default: usize) -> usize {
    std::env::var("LMHOST_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

const PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "null",
    "true",
    "1",
    "-0",
    "1e999",
    "\"model_name\"",
    "\"backend\"",
    "\"model_config\"",
    "\"llamacpp\"",
    "{%",
    "%}",
    "{{",
    "}}",
    "\u{0}",
    "é",
    "𝄞",
    "\n",
    " ",
];

/// Flip, insert, delete or splice, keeping the text valid UTF-8.
fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..=rng.below(4) {
        let at = rng.below(chars.len() + 1);
        match rng.below(4) {
            0 if !chars.is_empty() => {
                chars.remove(at.min(chars.len() - 1));
            }
            1 => {
                for (i, c) in rng.pick(PIECES).chars().enumerate() {
                    chars.insert(at + i, c);
                }
            }
            2 if !chars.is_empty() => {
                let from = rng.below(chars.len());
                let len = rng.below(32).min(chars.len() - from);
                let slice: Vec<char> = chars[from..from + len].to_vec();
                for (i, c) in slice.into_iter().enumerate() {
                    chars.insert(at + i, c);
                }
            }
            _ => chars.insert(at, char::from_u32(rng.below(0x2FF) as u32 + 1).unwrap_or('x')),
        }
    }
    chars.into_iter().collect()
}

fn compat_text() -> Option<String> {
    let dir = lmhost_tests::repo_root().parent()?.join("shared").join("compat");
    let file = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "json"))?;
    std::fs::read_to_string(file.path()).ok()
}

#[test]
fn registry_parsing_and_lookup_never_panic() {
    let mut rng = Rng::seeded("registry");
    let mut seeds = vec![PACKAGED_REGISTRY.to_string()];
    seeds.extend(compat_text());
    for _ in 0..cases(3000) {
        let seed = rng.pick(&seeds).clone();
        let text = mutate(&mut rng, &seed);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let problems = check_registry_text("fuzz.json", &text);
            let mut registry = Registry::new();
            let loaded = registry.add_json("fuzz.json", &text, |index| SpecSource::Packaged { index });
            if loaded.is_ok() {
                for spec in registry.entries().iter().take(20) {
                    let found = registry
                        .resolve(&spec.model_name().into())
                        .expect("a loaded name resolves");
                    assert_eq!(found.model_name(), spec.model_name());
                }
            }
            (problems, loaded.map_err(|e| e.to_string()))
        }));
        let (problems, loaded) = outcome.unwrap_or_else(|_| panic!("panicked on input: {text:?}"));
        for p in &problems {
            assert!(!p.message.is_empty());
        }
        if let Err(e) = loaded {
            assert!(e.starts_with("registry `fuzz.json`"), "{e}");
        }
    }
}

fn random_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth == 0 { 4 } else { 6 }) {
        0 => Value::Null,
        1 => json!(rng.below(3) == 0),
        2 => rng
            .pick(&[json!(1), json!(1.0), json!(-1), json!(0), json!(2.5)])
            .clone(),
        3 => json!(*rng.pick(&["a", "b", "", "1"])),
        4 => Value::Array((0..rng.below(3)).map(|_| random_value(rng, depth - 1)).collect()),
        _ => {
            let mut m = serde_json::Map::new();
            for _ in 0..rng.below(4) {
                m.insert((*rng.pick(&["x", "y", "z"])).into(), random_value(rng, depth - 1));
            }
            Value::Object(m)
        }
    }
}

#[test]
fn unification_is_symmetric_idempotent_and_absorbing() {
    let mut rng = Rng::seeded("unify");
    for _ in 0..cases(20_000) {
        let a = random_value(&mut rng, 3);
        let b = random_value(&mut rng, 3);
        let ab = unify(&a, &b);
        assert_eq!(ab.is_some(), unify(&b, &a).is_some(), "symmetry: {a} ~ {b}");
        assert!(unify(&a, &a).is_some(), "a unifies with itself: {a}");
        if let Some(c) = ab {
            // The result carries both sides: unifying it with either changes nothing.
            assert_eq!(unify(&a, &c).as_ref(), Some(&c), "{a} ~ {b} = {c}");
            assert_eq!(unify(&c, &b).as_ref().map(|_| true), Some(true), "{a} ~ {b} = {c}");
        }
    }
}

#[test]
fn templates_render_or_fail_cleanly_in_the_sandbox() {
    let mut rng = Rng::seeded("templates");
    let runtime = AdapterRuntime::new(None).unwrap();
    let limits = TemplateLimits {
        fuel: 200_000,
        max_output_bytes: 1 << 20,
        ..TemplateLimits::default()
    };
    let mut seeds: Vec<String> = vec![
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}".into(),
        "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}[INST] {{ m.content | trim }} [/INST]{% else %}{{ m.content }}{{ eos_token }}{% endif %}{% endfor %}".into(),
    ];
    if let Some(text) = compat_text() {
        let entries: Vec<Value> = serde_json::from_str(&text).unwrap();
        seeds.extend(
            entries
                .iter()
                .filter_map(|e| e["model_config"]["custom_chat_template"].as_str().map(String::from)),
        );
    }
    let context = json!({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U é"}],
                         "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>"})
    .to_string();
    for _ in 0..cases(400) {
        let seed = rng.pick(&seeds).clone();
        let template = mutate(&mut rng, &seed);
        let started = std::time::Instant::now();
        let result = runtime.render_template(&template, &context, &limits);
        assert!(
            started.elapsed() < limits.deadline + std::time::Duration::from_secs(2),
            "{template:?}"
        );
        if let Err(e) = result {
            assert!(!e.is_empty());
        }
    }
}

#[test]
fn streamed_answers_always_equal_the_final_answer() {
    // The chat-template adapter's streaming must never emit text the final
    // post-processing would not produce, whatever the output and its chunking.
    let mut rng = Rng::seeded("stream");
    let runtime = AdapterRuntime::new(None).unwrap();
    let adapter = runtime.load("chat-template", None, AdapterLimits::default()).unwrap();
    let culls = [
        "<\\|im_end\\|>",
        "</s>",
        "<end_of_turn>\\n*<eos>",
        "<\\|eot_id\\|>",
        "\\[EOS\\]",
        "",
    ];
    let tokens = [
        "Hello",
        " world",
        "<|im_end|>",
        "</s>",
        "<end_of_turn>",
        "\n",
        "<eos>",
        " ",
        "é",
        "[EOS]",
        "<",
        "|",
        ">",
        "assistant\n",
    ];
    for _ in 0..cases(300) {
        let mut spec = json!({"model_name": "fuzz", "backend": "mock"});
        let cull = *rng.pick(&culls);
        if !cull.is_empty() {
            spec["eos_to_cull"] = json!(cull);
        }
        if rng.below(4) == 0 {
            spec["output_split_prefix"] = json!("assistant\n");
        }
        let info = lmhost::adapters::wit::ModelInfo {
            name: "fuzz".into(),
            backend: "mock".into(),
            spec_json: spec.to_string(),
            builtin_template: None,
            bos_token: None,
            eos_token: None,
            add_bos: false,
            context_length: None,
        };
        let raw: String = (0..rng.below(12)).map(|_| *rng.pick(&tokens)).collect();
        let whole = adapter.parse_response(&info, &raw).unwrap().text;
        let mut stream = adapter.stream(&info).unwrap();
        let mut streamed = String::new();
        let mut rest = raw.as_str();
        while !rest.is_empty() {
            let mut cut = rng.below(rest.len()) + 1;
            while !rest.is_char_boundary(cut) {
                cut += 1;
            }
            streamed.push_str(&stream.push(&rest[..cut]).unwrap());
            rest = &rest[cut..];
        }
        let (finished, tail) = stream
            .finish()
            .unwrap_or_else(|e| panic!("{e}: raw {raw:?}, spec {spec}"));
        streamed.push_str(&tail);
        assert_eq!(finished.text, whole, "raw {raw:?}, spec {spec}");
        assert_eq!(streamed, whole, "raw {raw:?}, spec {spec}");
    }
}

#[test]
fn generation_params_reject_what_they_do_not_support() {
    // Beam search and other unknown parameters are errors, not silently ignored.
    let err = serde_json::from_str::<GenerationParams>(r#"{"num_beams": 4}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `num_beams`"), "{err}");
    let ok: GenerationParams = serde_json::from_str(r#"{"max_tokens": 8, "stop": ["\n"]}"#).unwrap();
    assert_eq!(ok.max_tokens, Some(8));
    let _ = Message::user("x");
}

#[test]
fn event_streams_frame_the_same_however_the_bytes_are_cut() {
    use lmhost::engines::sse::SseParser;
    let mut rng = Rng::seeded("sse");
    const DATA: &[&str] = &[
        "{\"a\":1}",
        "x",
        "",
        "日本",
        "é",
        " spaced ",
        "[DONE]",
        ":",
        "data: inner",
    ];
    const ENDINGS: &[&str] = &["\n", "\r\n", "\r"];
    for _ in 0..cases(2000) {
        // A well-formed stream: events with 1..3 data lines, other fields and comments mixed in.
        let mut stream = String::new();
        let mut want = Vec::new();
        for _ in 0..rng.below(6) {
            let end = *rng.pick(ENDINGS);
            if rng.below(3) == 0 {
                stream.push_str(&format!(": keep-alive{end}"));
            }
            if rng.below(2) == 0 {
                stream.push_str(&format!("event: e{}{end}", rng.below(9)));
            }
            let lines: Vec<&str> = (0..1 + rng.below(3)).map(|_| *rng.pick(DATA)).collect();
            for line in &lines {
                let sep = if rng.below(2) == 0 { ": " } else { ":" };
                // A data value starting with a space keeps it after "data:" only.
                let sep = if line.starts_with(' ') { ": " } else { sep };
                stream.push_str(&format!("data{sep}{line}{end}"));
            }
            stream.push_str(end);
            want.push(lines.join("\n"));
        }
        let bytes = stream.as_bytes();
        let mut parser = SseParser::new();
        let mut got = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let next = (at + 1 + rng.below(8)).min(bytes.len());
            got.extend(parser.feed(&bytes[at..next]).unwrap());
            at = next;
        }
        got.extend(parser.finish().unwrap());
        // "\r" then "\n" from two different endings is one line end only when adjacent:
        // streams here never put "\n" right after a "\r" ending, except as "\r\n".
        assert_eq!(got, want, "stream {stream:?}");
    }
    // Arbitrary bytes: events or a clean error, never a panic.
    for _ in 0..cases(2000) {
        let bytes: Vec<u8> = (0..rng.below(200))
            .map(|_| *rng.pick(b"data: \r\n\xff\xc3\xa9x:{}"))
            .collect();
        let mut parser = SseParser::new();
        let _ = parser.feed(&bytes).map(|_| parser.finish());
    }
}

#[test]
fn adapter_paths_never_leave_the_base_url() {
    use lmhost::engines::http::{join, Url};
    let mut rng = Rng::seeded("paths");
    const PARTS: &[&str] = &[
        "/",
        "//",
        "..",
        ".",
        "%2e",
        "%2E",
        "%2f",
        "%5c",
        "@",
        "evil.example",
        "http:",
        "https://evil.example",
        ":8080",
        "?",
        "#",
        "\\",
        " ",
        "v1",
        "chat",
        "%00",
        "\t",
        "~",
        ";",
        "127.0.0.1",
        "[::1]",
    ];
    let bases = [
        "https://api.example.com/v1",
        "http://127.0.0.1:8080",
        "https://h.example:8443/a/b/",
    ];
    for _ in 0..cases(20_000) {
        let base = Url::parse(bases[rng.below(bases.len())]).unwrap();
        let path: String = (0..1 + rng.below(6)).map(|_| *rng.pick(PARTS)).collect();
        if let Ok(url) = join(&base, &path) {
            assert_eq!(
                (url.scheme(), url.host_str(), url.port_or_known_default()),
                (base.scheme(), base.host_str(), base.port_or_known_default()),
                "{path:?} left {base}"
            );
            assert!(
                url.path().starts_with(base.path().trim_end_matches('/')),
                "{path:?} -> {url}"
            );
            assert!(
                url.username().is_empty() && url.password().is_none(),
                "{path:?} -> {url}"
            );
        }
    }
}
