//! Adapters in any language: the conformance suite on the Rust, Python and
//! JavaScript chat-template adapters (same checks, same outputs), the HTTP suite
//! on the built-in remote adapters and on broken HTTP requests, adapters found
//! by name, scaffolded projects that build and pass the suite, and the Python and
//! JavaScript adapters generating with the real model exactly as the Rust one does.
//!
//! The Python and JS components (`make adapters`, into guests/out/) are large:
//! each is loaded once per test binary (OnceLock) through the user's component
//! cache, so only the first run ever compiles them. A missing component or
//! toolchain skips its test with a message, and fails it when `CI` is set.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use lmhost::adapters::{wit, Adapter, AdapterLimits, AdapterRuntime, REPO_ADAPTER_DIR};
use lmhost::tools::conformance::{self, fixed_model_info, Kind, Report, Status};
use lmhost::tools::scaffold::{self, Lang};
use lmhost::{GenerationParams, HostConfig, Message};
use lmhost_tests::{guest, repo_root, smollm, TempDir};

/// The user's component cache: compiled Python/JS components survive test runs.
fn component_cache() -> PathBuf {
    HostConfig::from_env().home.join("cache").join("components")
}

fn runtime() -> &'static AdapterRuntime {
    static RUNTIME: OnceLock<AdapterRuntime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        AdapterRuntime::with_adapter_dirs(Some(component_cache()), vec![PathBuf::from(REPO_ADAPTER_DIR)]).unwrap()
    })
}

/// Skip (or, under CI, fail) because something is missing.
fn missing(what: &str) -> bool {
    if std::env::var_os("CI").is_some() {
        panic!("{what} is missing; CI must run `make adapters` first");
    }
    eprintln!("skipped: {what} is missing (run `make adapters`)");
    false
}

fn built(name: &str) -> Option<PathBuf> {
    let path = Path::new(REPO_ADAPTER_DIR).join(format!("{name}.wasm"));
    if path.is_file() {
        Some(path)
    } else {
        missing(&path.display().to_string());
        None
    }
}

fn load(name: &str) -> Option<Adapter> {
    built(name)?;
    Some(runtime().load(name, None, AdapterLimits::default()).unwrap())
}

pub(crate) fn rust() -> &'static Adapter {
    static A: OnceLock<Adapter> = OnceLock::new();
    A.get_or_init(|| runtime().load("chat-template", None, AdapterLimits::default()).unwrap())
}

pub(crate) fn python() -> Option<&'static Adapter> {
    static A: OnceLock<Option<Adapter>> = OnceLock::new();
    A.get_or_init(|| load("chat-template-py")).as_ref()
}

pub(crate) fn js() -> Option<&'static Adapter> {
    static A: OnceLock<Option<Adapter>> = OnceLock::new();
    A.get_or_init(|| load("chat-template-js")).as_ref()
}

fn report(adapter: &Adapter) -> &'static Report {
    static REPORTS: OnceLock<std::sync::Mutex<Vec<(String, &'static Report)>>> = OnceLock::new();
    let reports = REPORTS.get_or_init(Default::default);
    let mut reports = reports.lock().unwrap();
    if let Some((_, r)) = reports.iter().find(|(n, _)| n == adapter.name()) {
        return r;
    }
    let r: &'static Report = Box::leak(Box::new(conformance::run(adapter, &fixed_model_info())));
    reports.push((adapter.name().into(), r));
    r
}

fn assert_conforms(adapter: &Adapter) {
    let r = report(adapter);
    eprintln!("{}", r.table());
    assert!(r.passed(), "{} failed: {:#?}", adapter.name(), r.failures());
    // Every chat-template adapter is on contract 0.2: the tool-call checks run
    // (and pass), they are not skipped.
    assert_eq!(adapter.contract_version(), "0.2.0", "{}", adapter.name());
    let tools: Vec<_> = r.checks.iter().filter(|c| c.name.starts_with("tools:")).collect();
    assert_eq!(tools.len(), 4, "{tools:?}");
    assert!(
        tools.iter().all(|c| c.status == Status::Pass),
        "{}: {tools:?}",
        adapter.name()
    );
}

#[test]
fn rust_chat_template_conforms() {
    assert_conforms(rust());
}

#[test]
fn python_chat_template_conforms() {
    if let Some(a) = python() {
        assert_conforms(a);
    }
}

#[test]
fn js_chat_template_conforms() {
    if let Some(a) = js() {
        assert_conforms(a);
    }
}

#[test]
fn languages_give_identical_prompts_and_answers() {
    let expected = report(rust());
    assert!(expected.outputs.len() >= 4 + 4 + 5 + 5, "{:?}", expected.outputs);
    for adapter in [python(), js()].into_iter().flatten() {
        let got = report(adapter);
        assert_eq!(
            got.outputs,
            expected.outputs,
            "{} differs from chat-template",
            adapter.name()
        );
    }
}

#[test]
fn eos_to_cull_as_text_or_regex_means_the_same_in_every_language() {
    // Plain text with escaped punctuation is matched as text (no regex compiled);
    // anything else is a regex in the adapter's own dialect (the common subset here).
    let cases = [
        ("<\\|im_end\\|>", " Hi<|im_end|> there<|im_end|>\n", "Hi there"),
        ("\\[EOS\\]", "[EOS]a[EOS]", "a"),
        ("\\.", "a.b.c", "abc"),
        ("<\\|eot_id\\|>|</s>", "x</s>y<|eot_id|>", "xy"),
        ("\\s*</s>", "Done. </s>  </s>", "Done."),
        ("<end_of_turn>\\n*<eos>", "ok<end_of_turn>\n\n<eos>", "ok"),
        ("a.c", "abcXa.c", "X"),
    ];
    let adapters: Vec<&Adapter> = [Some(rust()), python(), js()].into_iter().flatten().collect();
    for (pattern, raw, want) in cases {
        let mut info = fixed_model_info();
        info.spec_json =
            serde_json::json!({"model_name": "conformance", "backend": "mock", "eos_to_cull": pattern}).to_string();
        for adapter in &adapters {
            let got = adapter
                .parse_response(
                    &info,
                    &lmhost::adapters::wit::Params::plain(),
                    &lmhost::adapters::wit::Request::empty_prompt(),
                    raw,
                )
                .unwrap()
                .text;
            assert_eq!(got, want, "{}: eos_to_cull {pattern:?} on {raw:?}", adapter.name());
        }
    }
}

#[test]
fn the_suite_catches_a_broken_adapter() {
    // The hostile test adapter breaks the contract in several ways.
    let runtime = AdapterRuntime::new(None).unwrap();
    let limits = AdapterLimits {
        deadline: std::time::Duration::from_millis(300),
        ..AdapterLimits::default()
    };
    let adapter = runtime.load(guest("hostile").to_str().unwrap(), None, limits).unwrap();
    let r = conformance::run(&adapter, &fixed_model_info());
    assert!(!r.passed(), "{}", r.table());
}

#[test]
fn remote_adapters_pass_the_http_suite_on_their_own_backend() {
    let runtime = AdapterRuntime::new(None).unwrap();
    for (name, backend) in [
        ("openai-chat", "openai"),
        ("anthropic-messages", "anthropic"),
        ("google-gemini", "google"),
        ("cohere-chat", "cohere"),
    ] {
        let adapter = runtime.load(name, None, AdapterLimits::default()).unwrap();
        let model = conformance::model_for(&adapter);
        let r = conformance::run(&adapter, &model);
        eprintln!("{}", r.table());
        assert!(r.passed(), "{name} failed: {:#?}", r.failures());
        assert_eq!(r.backend, backend, "{name}");
        assert_eq!(r.kind, Kind::Http, "{name}");
        for check in [
            "request is HTTP",
            "streaming changes the request",
            "stop strings reach the request",
            "bad replies are error values",
            "stream: bad events are error values",
            "bad spec-json is an error value",
        ] {
            let row = r.checks.iter().find(|c| c.name == check);
            assert_eq!(row.map(|c| c.status), Some(Status::Pass), "{name}: {check}");
        }
        assert!(!r.checks.iter().any(|c| c.name.starts_with("prompt:")), "{name}");
        let request = r.output("request:roles").unwrap();
        assert!(request.starts_with("POST /"), "{name}: {request}");
        assert!(request.contains("What is 2+2?"), "{name}: {request}");
        assert_eq!(r.rendered_prompt.as_deref(), Some(request));
        let boom = r.output("reply:4").unwrap();
        assert!(boom.contains("upstream") && boom.contains("boom"), "{name}: {boom}");
    }
}

#[test]
fn the_chat_template_adapter_still_gets_the_mock_model() {
    let model = conformance::model_for(rust());
    assert_eq!(model.backend, "mock");
    let r = conformance::run(rust(), &model);
    assert!(r.passed(), "{:#?}", r.failures());
    assert_eq!(r.kind, Kind::Prompt);
    assert_eq!(r.backend, "mock");
    assert_eq!(r.outputs, report(rust()).outputs);
}

/// The HTTP suite on the hostile adapter, shaping for an `openai` entry in `mode`.
fn hostile_http(mode: &str) -> Report {
    let runtime = AdapterRuntime::new(None).unwrap();
    let adapter = runtime
        .load(guest("hostile").to_str().unwrap(), None, AdapterLimits::default())
        .unwrap();
    // Without a mode it makes prompts, so the mock model is picked.
    assert_eq!(conformance::model_for(&adapter).backend, "mock");
    let model = wit::ModelInfo {
        spec_json: serde_json::json!({
            "model_name": "conformance",
            "backend": "openai",
            "model_id": "conformance-model",
            "hostile": mode,
        })
        .to_string(),
        ..conformance::remote_model_info("openai")
    };
    let r = conformance::run(&adapter, &model);
    eprintln!("{}", r.table());
    assert_eq!(r.kind, Kind::Http);
    assert!(!r.passed());
    r
}

fn failure<'a>(r: &'a Report, check: &str) -> &'a str {
    let row = r.checks.iter().find(|c| c.name == check).unwrap();
    assert_eq!(row.status, Status::Fail, "{check}: {}", row.detail);
    &row.detail
}

#[test]
fn the_http_suite_catches_requests_the_host_refuses() {
    let r = hostile_http("http-elsewhere");
    let detail = failure(&r, "request is HTTP");
    assert!(detail.contains("http://127.0.0.1:9/steal"), "{detail}");
    assert!(detail.contains("absolute URLs are refused"), "{detail}");
    assert!(detail.contains("the body is not JSON"), "{detail}");

    let r = hostile_http("http-auth");
    let detail = failure(&r, "request is HTTP");
    assert!(
        detail.contains("header `Authorization`: credentials and connection headers are set by the host"),
        "{detail}"
    );
    assert!(detail.contains("looks like a credential"), "{detail}");
    assert!(
        detail.contains("the body lacks the user message \"What is 2+2?\""),
        "{detail}"
    );
    // The same body whether streamed or not, and no stop strings in it.
    failure(&r, "streaming changes the request");
    failure(&r, "stop strings reach the request");
    // The provider's error object is read as an answer.
    let detail = failure(&r, "bad replies are error values");
    assert!(detail.contains("boom"), "{detail}");
}

#[test]
fn named_adapters_come_from_the_adapter_folders() {
    let dir = TempDir::new("adapter-dir");
    std::fs::copy(guest("chat_template"), dir.path().join("my-adapter.wasm")).unwrap();
    let runtime = AdapterRuntime::with_adapter_dirs(None, vec![dir.path().to_path_buf()]).unwrap();
    let a = runtime.load("my-adapter", None, AdapterLimits::default()).unwrap();
    assert!(conformance::run(&a, &fixed_model_info()).passed());

    let err = runtime
        .load("chat-template-py", None, AdapterLimits::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("chat-template-py"), "{err}");
    assert!(err.contains("make adapters"), "{err}");
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
    let err = runtime
        .load("mine", None, AdapterLimits::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("lmhost adapter build"), "{err}");
}

/// Scaffold `lang`, build it, and run the suite on it.
fn scaffold_builds_and_conforms(lang: Lang, tool: &str) {
    let name = format!("scaffolded-{lang:?}").to_lowercase();
    let parent = std::env::temp_dir().join("lmhost-scaffold-test");
    let project = parent.join(&name);
    let _ = std::fs::remove_dir_all(&project);
    std::fs::create_dir_all(&parent).unwrap();
    scaffold::new_project(lang, &name, &parent).unwrap();
    // A target folder kept between runs: the dependencies build once.
    let target = parent.join("rust-target");
    let wasm = match scaffold::build_with(&project, Some(target)) {
        Ok(wasm) => wasm,
        Err(e) if format!("{e:#}").contains("not found") => {
            missing(&format!("{tool} ({e:#})"));
            return;
        }
        Err(e) => panic!("building the {lang:?} scaffold failed: {e:#}"),
    };
    assert_eq!(
        wasm,
        std::fs::canonicalize(&project).unwrap().join(format!("{name}.wasm"))
    );
    let adapter = runtime()
        .load(wasm.to_str().unwrap(), None, AdapterLimits::default())
        .unwrap();
    let r = conformance::run(&adapter, &fixed_model_info());
    eprintln!("{}", r.table());
    assert!(r.passed(), "{:#?}", r.failures());
    assert_eq!(r.outputs, report(rust()).outputs);
    // The same answers as its reference, refusals included; error messages are
    // compared with the reference in the same language when that one is built.
    let reference = match lang {
        Lang::Rust => Some(rust()),
        Lang::Python => python(),
        Lang::Js => js(),
    };
    let got = edge_cases(&adapter);
    if let Some(reference) = reference {
        assert_eq!(
            got,
            edge_cases(reference),
            "the {lang:?} scaffold and {}",
            reference.name()
        );
    }
    let kinds =
        |cases: &[String]| -> Vec<String> { cases.iter().map(|c| c.split(':').next().unwrap().to_string()).collect() };
    assert_eq!(
        kinds(&got),
        kinds(&edge_cases(rust())),
        "the {lang:?} scaffold and chat-template"
    );
}

/// What a chat-template adapter makes of entries where scaffolds and reference
/// adapters have differed: `ok: <prompt or answer>` or `<error kind>: <message>`.
fn edge_cases(adapter: &Adapter) -> Vec<String> {
    use serde_json::json;
    let entry = |extra: serde_json::Value| {
        let mut spec = json!({"model_name": "conformance", "backend": "mock"});
        spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        wit::ModelInfo {
            spec_json: spec.to_string(),
            ..fixed_model_info()
        }
    };
    let messages = [wit::Message::new("user", "What is 2+2?")];
    let params = wit::Params {
        max_tokens: Some(8),
        ..wit::Params::plain()
    };
    let custom = "CUSTOM {{ messages[0].content }}";
    let show = |result: Result<String, lmhost::adapters::AdapterError>| match result {
        Ok(text) => format!("ok: {text}"),
        Err(lmhost::adapters::AdapterError::Refused { kind, message, .. }) => format!("{kind}: {message}"),
        Err(other) => panic!("{}: {other}", adapter.name()),
    };
    let mut out = Vec::new();
    for spec in [
        json!({"premade_chat_template": "no", "custom_chat_template": custom}),
        json!({"premade_chat_template": 0, "custom_chat_template": custom}),
        json!({"premade_chat_template": [], "custom_chat_template": custom}),
        json!({"premade_chat_template": false, "custom_chat_template": custom}),
        json!({"premade_chat_template": null, "custom_chat_template": custom}),
        json!({"premade_chat_template": true, "custom_chat_template": custom}),
        json!({"custom_chat_template": 5}),
    ] {
        let shaped = adapter
            .shape_request(&entry(spec), &messages, &params)
            .map(|r| match r {
                wit::Request::Prompt(p) => p.text,
                wit::Request::Http(h) => panic!("{} made an HTTP request: {}", adapter.name(), h.path),
            });
        out.push(show(shaped));
    }
    for (spec, raw) in [
        (
            json!({"output_split_prefix": "A:", "cot_end_tag": "</think>"}),
            " x A: hm</think>  4 ",
        ),
        (json!({"eos_to_cull": "<\\|im_end\\|>"}), "4<|im_end|>"),
        (json!({"eos_to_cull": 3}), "4"),
        (json!({"cot_end_tag": false}), "4"),
    ] {
        let parsed = adapter
            .parse_response(
                &entry(spec),
                &lmhost::adapters::wit::Params::plain(),
                &lmhost::adapters::wit::Request::empty_prompt(),
                raw,
            )
            .map(|c| c.text);
        out.push(show(parsed));
    }
    out
}

#[test]
fn scaffolds_are_their_reference_adapters() {
    // Each scaffolded source is its reference's, but for the header comment that
    // names the project (and the Rust `wit` path): no second copy to drift.
    fn body(text: &str) -> String {
        let text = text.trim_start();
        let rest = if let Some(doc) = text.strip_prefix("\"\"\"") {
            doc.split_once("\"\"\"").map_or("", |(_, rest)| rest)
        } else {
            let header = text
                .lines()
                .take_while(|l| l.starts_with("//") || l.is_empty())
                .map(|l| l.len() + 1)
                .sum::<usize>();
            &text[header.min(text.len())..]
        };
        rest.replace("path: \"../../../wit/0.2\",", "path: \"wit\",")
            .replace("path: \"../../../wit\",", "path: \"wit\",")
    }
    fn dependencies(manifest: &str) -> Vec<String> {
        let section = manifest.split("[dependencies]").nth(1).unwrap();
        let section = section.split("\n[").next().unwrap();
        let mut names: Vec<String> = section
            .lines()
            .filter_map(|l| l.split(['=', '.']).next())
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty() && !n.starts_with('#'))
            .collect();
        names.sort();
        names
    }
    let dir = TempDir::new("scaffold-reference");
    for lang in [Lang::Rust, Lang::Python, Lang::Js] {
        let name = format!("from-{lang:?}").to_lowercase();
        let project = scaffold::new_project(lang, &name, dir.path()).unwrap();
        let files = scaffold::reference_files(lang);
        assert!(files.len() >= 2, "{lang:?}: {files:?}");
        for (file, reference) in files {
            let got = std::fs::read_to_string(project.join(file)).unwrap();
            let want = std::fs::read_to_string(repo_root().join(reference)).unwrap();
            if file == "Cargo.toml" {
                assert_eq!(dependencies(&got), dependencies(&want), "{file}");
                assert!(got.contains(&format!("name = \"{name}\"")), "{got}");
            } else if file == "package.json" {
                assert_eq!(
                    got.split("\"dependencies\"").nth(1),
                    want.split("\"dependencies\"").nth(1),
                    "{file}"
                );
                assert!(got.contains(&format!("\"name\": \"{name}\"")), "{got}");
            } else {
                assert_eq!(body(&got), body(&want), "{lang:?} {file} differs from {reference}");
                assert!(
                    !got.contains("chat-template`:"),
                    "{file} still names the reference: {got}"
                );
            }
        }
    }
}

#[test]
fn rust_scaffold_builds_and_conforms() {
    scaffold_builds_and_conforms(Lang::Rust, "cargo");
}

#[test]
fn python_scaffold_builds_and_conforms() {
    scaffold_builds_and_conforms(Lang::Python, "componentize-py");
}

#[test]
fn js_scaffold_builds_and_conforms() {
    scaffold_builds_and_conforms(Lang::Js, "componentize-js");
}

#[test]
fn scaffold_refuses_bad_names_and_full_folders() {
    let dir = TempDir::new("scaffold");
    assert!(scaffold::new_project(Lang::Rust, "../evil", dir.path()).is_err());
    scaffold::new_project(Lang::Python, "mine", dir.path()).unwrap();
    let err = scaffold::new_project(Lang::Python, "mine", dir.path()).unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
    assert!(dir.path().join("mine/wit/adapter.wit").is_file());
    let err = scaffold::build(dir.path()).unwrap_err();
    assert!(err.to_string().contains("not an adapter project"), "{err}");
}

#[test]
fn smollm_answers_the_same_through_python_and_js_adapters() {
    if smollm().is_none() || built("chat-template-py").is_none() || built("chat-template-js").is_none() {
        return;
    }
    let home = TempDir::new("home-pyjs");
    // Share the user's compiled components: no cold compile of the big ones here.
    std::fs::create_dir_all(home.path().join("cache")).unwrap();
    std::os::unix::fs::symlink(component_cache(), home.path().join("cache/components")).unwrap();
    std::fs::create_dir_all(component_cache()).unwrap();
    let mut config = HostConfig::with_home(home.path().to_path_buf());
    config.model_dirs = vec![repo_root().join("models")];
    config.adapter_dirs = vec![PathBuf::from(REPO_ADAPTER_DIR)];
    let host = lmhost::Host::with_config(config).unwrap();
    let messages = [
        Message::system("Answer in one short sentence."),
        Message::user("What is the capital of France?"),
    ];
    let params = GenerationParams::greedy(24);
    let reference = host.load("SmolLM2-135M-Instruct").unwrap();
    let want = reference.generate(&messages, &params).unwrap();
    assert!(!want.response_text.is_empty());
    for name in ["SmolLM2-135M-Instruct-py", "SmolLM2-135M-Instruct-js"] {
        let model = host.load(name).unwrap();
        assert!(model.adapter().name().starts_with("chat-template-"));
        let got = model.generate(&messages, &params).unwrap();
        assert_eq!(got.prompt, want.prompt, "{name}");
        assert_eq!(got.response, want.response, "{name}");
        assert_eq!(got.response_text, want.response_text, "{name}");
        let mut streamed = String::new();
        let g = model
            .generate_stream(&messages, &params, |piece| streamed.push_str(piece))
            .unwrap();
        assert_eq!(g.response_text, want.response_text, "{name}");
        assert_eq!(streamed, want.response_text, "{name}");
    }
}
