//! Bounded property testing in every test run (`proptest`): generated and
//! mutated inputs against the parsers and the pure logic, checking properties,
//! not just "no panic". Each target runs a fixed number of cases (a few seconds
//! in all); a failure is shrunk to a small input and saved under
//! `proptest-regressions/`, which later runs replay first. Each run prints its
//! `LMHOST_FUZZ_SEED`; `LMHOST_FUZZ_SEED=…` replays a run and
//! `LMHOST_FUZZ_CASES=…` makes it longer. Coverage-guided targets for the same
//! entry points live in `fuzz/` (see SECURITY.md).

use lmhost::adapters::{wit, AdapterLimits, AdapterRuntime, TemplateLimits};
use lmhost::registry::{check_registry_text, unify, Registry, SpecSource, PACKAGED_REGISTRY};
use lmhost::{GenerationParams, Message};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{Config, RngSeed, TestCaseResult, TestRunner};
use serde_json::{json, Value};

/// Run `test` on `cases` values of `strategy` (or `LMHOST_FUZZ_CASES`), from
/// `LMHOST_FUZZ_SEED` or a fresh seed that is printed; panics with the shrunk
/// failing input.
fn check<S: Strategy>(target: &str, cases: u32, strategy: S, test: impl Fn(S::Value) -> TestCaseResult)
where
    S::Value: std::fmt::Debug,
{
    let env = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    let seed = env("LMHOST_FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    eprintln!("fuzz {target}: LMHOST_FUZZ_SEED={seed}");
    let config = Config {
        cases: env("LMHOST_FUZZ_CASES").map_or(cases, |n| n as u32),
        rng_seed: RngSeed::Fixed(seed),
        source_file: Some(file!()),
        ..Config::default()
    };
    if let Err(e) = TestRunner::new(config).run(&strategy, test) {
        panic!("fuzz {target} (LMHOST_FUZZ_SEED={seed}): {e}");
    }
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

/// One edit of a text: delete, insert a piece, copy a slice, or insert a character.
#[derive(Debug, Clone)]
struct Edit {
    kind: u8,
    at: Index,
    piece: Index,
    from: Index,
    len: usize,
    ch: u32,
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = (
        0..4u8,
        any::<Index>(),
        any::<Index>(),
        any::<Index>(),
        0..32usize,
        1..0x300u32,
    )
        .prop_map(|(kind, at, piece, from, len, ch)| Edit {
            kind,
            at,
            piece,
            from,
            len,
            ch,
        });
    vec(edit, 1..=4)
}

/// Flip, insert, delete or splice, keeping the text valid UTF-8.
fn mutate(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for edit in edits {
        let at = edit.at.index(chars.len() + 1);
        match edit.kind {
            0 if !chars.is_empty() => {
                chars.remove(at.min(chars.len() - 1));
            }
            1 => {
                for (i, c) in edit.piece.get(PIECES).chars().enumerate() {
                    chars.insert(at + i, c);
                }
            }
            2 if !chars.is_empty() => {
                let from = edit.from.index(chars.len());
                let len = edit.len.min(chars.len() - from);
                let slice: Vec<char> = chars[from..from + len].to_vec();
                for (i, c) in slice.into_iter().enumerate() {
                    chars.insert(at + i, c);
                }
            }
            _ => chars.insert(at, char::from_u32(edit.ch).unwrap_or('x')),
        }
    }
    chars.into_iter().collect()
}

/// One of `seeds`, mutated.
fn mutated(seeds: Vec<String>) -> impl Strategy<Value = String> {
    (select(seeds), edits()).prop_map(|(seed, edits)| mutate(&seed, &edits))
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
    let mut seeds = vec![PACKAGED_REGISTRY.to_string()];
    seeds.extend(compat_text());
    check("registry", 3000, mutated(seeds), |text| {
        let problems = check_registry_text("fuzz.json", &text);
        let mut registry = Registry::new();
        let loaded = registry.add_json("fuzz.json", &text, |index| SpecSource::Packaged { index });
        if loaded.is_ok() {
            for spec in registry.entries().iter().take(20) {
                let found = registry
                    .resolve(&spec.model_name().into())
                    .expect("a loaded name resolves");
                prop_assert_eq!(found.model_name(), spec.model_name());
            }
        }
        for p in &problems {
            prop_assert!(!p.message.is_empty());
        }
        if let Err(e) = loaded.map_err(|e| e.to_string()) {
            prop_assert!(e.starts_with("registry `fuzz.json`"), "{}", e);
        }
        Ok(())
    });
}

/// JSON values up to `depth` levels of arrays and objects, from a few leaves
/// that unification treats differently (`1` and `1.0`, `""`, `null`).
fn value(depth: u32) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        select(vec![json!(1), json!(1.0), json!(-1), json!(0), json!(2.5)]),
        select(vec!["a", "b", "", "1"]).prop_map(|s| json!(s)),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    let inner = value(depth - 1);
    prop_oneof![
        4 => leaf,
        1 => vec(inner.clone(), 0..3).prop_map(Value::Array),
        1 => vec((select(vec!["x", "y", "z"]), inner), 0..4)
            .prop_map(|pairs| Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
    ]
    .boxed()
}

#[test]
fn unification_is_symmetric_idempotent_and_absorbing() {
    check("unify", 20_000, (value(3), value(3)), |(a, b)| {
        let ab = unify(&a, &b);
        prop_assert_eq!(ab.is_some(), unify(&b, &a).is_some(), "symmetry: {} ~ {}", a, b);
        prop_assert!(unify(&a, &a).is_some(), "a unifies with itself: {}", a);
        if let Some(c) = ab {
            // The result carries both sides: unifying it with either changes nothing.
            prop_assert_eq!(unify(&a, &c), Some(c.clone()), "{} ~ {} = {}", a, b, c);
            prop_assert!(unify(&c, &b).is_some(), "{} ~ {} = {}", a, b, c);
        }
        Ok(())
    });
}

#[test]
fn templates_render_or_fail_cleanly_in_the_sandbox() {
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
    check("templates", 400, mutated(seeds), |template| {
        let started = std::time::Instant::now();
        let result = runtime.render_template(&template, &context, &limits);
        prop_assert!(
            started.elapsed() < limits.deadline + std::time::Duration::from_secs(2),
            "{:?}",
            template
        );
        if let Err(e) = result {
            prop_assert!(!e.is_empty());
        }
        Ok(())
    });
}

#[test]
fn streamed_answers_always_equal_the_final_answer() {
    // The chat-template adapter's streaming must never emit text the final
    // post-processing would not produce, whatever the output and its chunking.
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
    let outputs = (
        select(culls.to_vec()),
        prop::bool::weighted(0.25),
        vec(select(tokens.to_vec()), 0..12),
        vec(any::<Index>(), 1..32),
    );
    check("stream", 300, outputs, |(cull, split, pieces, cuts)| {
        let mut spec = json!({"model_name": "fuzz", "backend": "mock"});
        if !cull.is_empty() {
            spec["eos_to_cull"] = json!(cull);
        }
        if split {
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
        let raw: String = pieces.concat();
        let whole = adapter
            .parse_response(&info, &wit::Params::plain(), &wit::Request::empty_prompt(), &raw)
            .unwrap()
            .text;
        let mut stream = adapter
            .stream(&info, &wit::Params::plain(), &wit::Request::empty_prompt())
            .unwrap();
        let mut streamed = String::new();
        let mut rest = raw.as_str();
        for cut in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let mut cut = cut.index(rest.len()) + 1;
            while !rest.is_char_boundary(cut) {
                cut += 1;
            }
            streamed.push_str(&stream.push(&rest[..cut]).unwrap().text);
            rest = &rest[cut..];
        }
        let (finished, tail) = stream
            .finish()
            .unwrap_or_else(|e| panic!("{e}: raw {raw:?}, spec {spec}"));
        streamed.push_str(&tail.text);
        prop_assert_eq!(&finished.text, &whole, "raw {:?}, spec {}", raw, spec);
        prop_assert_eq!(&streamed, &whole, "raw {:?}, spec {}", raw, spec);
        Ok(())
    });
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
    // A well-formed stream: events with 1..3 data lines, other fields and comments mixed in.
    let event = (
        select(ENDINGS.to_vec()),
        prop::bool::weighted(1.0 / 3.0),
        prop::option::of(0..9u8),
        vec((select(DATA.to_vec()), any::<bool>()), 1..=3),
    );
    let streams = (vec(event, 0..6), vec(1..=8usize, 1..32));
    check("sse", 2000, streams, |(events, chunks)| {
        let mut stream = String::new();
        let mut want = Vec::new();
        for (end, comment, name, lines) in &events {
            if *comment {
                stream.push_str(&format!(": keep-alive{end}"));
            }
            if let Some(n) = name {
                stream.push_str(&format!("event: e{n}{end}"));
            }
            for (line, spaced) in lines {
                // A data value starting with a space keeps it after "data:" only.
                let sep = if *spaced || line.starts_with(' ') { ": " } else { ":" };
                stream.push_str(&format!("data{sep}{line}{end}"));
            }
            stream.push_str(end);
            want.push(lines.iter().map(|(line, _)| *line).collect::<Vec<_>>().join("\n"));
        }
        let bytes = stream.as_bytes();
        let mut parser = SseParser::new();
        let mut got = Vec::new();
        let mut at = 0;
        for size in chunks.iter().cycle() {
            if at >= bytes.len() {
                break;
            }
            let next = (at + size).min(bytes.len());
            got.extend(parser.feed(&bytes[at..next]).unwrap());
            at = next;
        }
        got.extend(parser.finish().unwrap());
        // "\r" then "\n" from two different endings is one line end only when adjacent:
        // streams here never put "\n" right after a "\r" ending, except as "\r\n".
        prop_assert_eq!(&got, &want, "stream {:?}", stream);
        Ok(())
    });
    // Arbitrary bytes: events or a clean error, never a panic.
    let junk = vec(select(b"data: \r\n\xff\xc3\xa9x:{}".to_vec()), 0..200);
    check("sse bytes", 2000, junk, |bytes| {
        let mut parser = SseParser::new();
        let _ = parser.feed(&bytes).map(|_| parser.finish());
        Ok(())
    });
}

#[test]
fn adapter_paths_never_leave_the_base_url() {
    use lmhost::engines::http::{join, Url};
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
        // Encodings a gateway may decode or normalise: double and triple
        // encoding, mixed case, overlong UTF-8, `%u` escapes, fullwidth and
        // other look-alikes, path parameters.
        "%252e",
        "%252f",
        "%25",
        "%2E%2e",
        "%2F",
        "%5C",
        "%3b",
        "..;",
        "%c0%ae",
        "%c0%af",
        "%e0%80%ae",
        "%u002e",
        "%2",
        "%ef%bc%8e",
        "\u{ff0e}",
        "\u{ff0f}",
        "\u{2215}",
        "%0a",
    ];
    let bases = [
        "https://api.example.com/v1",
        "http://127.0.0.1:8080",
        "https://h.example:8443/a/b/",
    ];
    let paths = (select(bases.to_vec()), vec(select(PARTS.to_vec()), 1..=6));
    check("paths", 20_000, paths, |(base, parts)| {
        let base = Url::parse(base).unwrap();
        let path: String = parts.concat();
        if let Ok(url) = join(&base, &path) {
            prop_assert_eq!(
                (url.scheme(), url.host_str(), url.port_or_known_default()),
                (base.scheme(), base.host_str(), base.port_or_known_default()),
                "{:?} left {}",
                path,
                base
            );
            prop_assert!(
                url.path().starts_with(base.path().trim_end_matches('/')),
                "{:?} -> {}",
                path,
                url
            );
            prop_assert!(
                url.username().is_empty() && url.password().is_none(),
                "{:?} -> {}",
                path,
                url
            );
            // What a gateway that decodes the path (any number of times) would
            // route: still under the base path, with no dot segment, `\`, `;`
            // or look-alike in it.
            let mut seen = url.path().to_string();
            for _ in 0..4 {
                let next = percent_encoding::percent_decode_str(&seen)
                    .decode_utf8_lossy()
                    .into_owned();
                prop_assert!(next.is_ascii(), "{:?} -> {} decodes to {:?}", path, url, next);
                prop_assert!(
                    next.starts_with(base.path().trim_end_matches('/'))
                        && !next.contains('\\')
                        && !next.contains(';')
                        && !next.split('/').any(|s| s == "." || s == ".."),
                    "{:?} -> {} decodes to {:?}",
                    path,
                    url,
                    next
                );
                seen = next;
            }
        }
        Ok(())
    });
}
