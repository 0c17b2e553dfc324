//! The adapter sandbox, through the whole stack on the `mock` engine (no model
//! needed): the built-in chat-template adapter, and a hostile adapter that must
//! fail cleanly without hurting the host or the next request.

use std::time::{Duration, Instant};

use lmhost::adapters::{AdapterError, AdapterLimits, AdapterRuntime, EPOCH_TICK};
use lmhost::{Error, GenerationParams, Message};
use lmhost_tests::{guest, host, TempDir};

fn mock_registry(hostile_adapter: &str) -> String {
    serde_json::json!([
        {
            "model_name": "echo",
            "backend": "mock",
            "reply": "  Hello there, how are you today?<|end|>",
            "model_config": {
                "premade_chat_template": false,
                "custom_chat_template": "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}[assistant]",
                "eos_to_cull": "<\\|end\\|>"
            }
        },
        {
            "model_name": "split",
            "backend": "mock",
            "reply": "assistant\nignored\nassistant\nThe answer.</s>",
            "premade_chat_template": false,
            "custom_chat_template": "{{ messages[0].content }}",
            "output_split_prefix": "assistant\n",
            "eos_to_cull": "</s>"
        },
        {"model_name": "hostile", "backend": "mock", "adapter": hostile_adapter, "reply": "fine"}
    ])
    .to_string()
}

fn hostile_host() -> (lmhost::Host, TempDir) {
    host(Some(&mock_registry(guest("hostile").to_str().unwrap())))
}

#[test]
fn chat_template_renders_prompt_and_culls_eos() {
    let (host, _home) = hostile_host();
    let model = host.load("echo").unwrap();
    let g = model
        .generate(
            &[Message::system("Be brief."), Message::user("Hi")],
            &GenerationParams::default(),
        )
        .unwrap();
    assert_eq!(
        g.prompt,
        serde_json::json!("[system] Be brief.\n[user] Hi\n[assistant]")
    );
    assert_eq!(
        g.response,
        serde_json::json!("  Hello there, how are you today?<|end|>")
    );
    assert_eq!(g.response_text, "Hello there, how are you today?");
}

#[test]
fn builtin_template_wins_unless_premade_is_false() {
    let (host, _home) = hostile_host();
    let premade = host
        .load(r#"{"model_name": "echo", "premade_chat_template": false}"#)
        .unwrap();
    assert_eq!(
        premade.run("x").unwrap().prompt,
        serde_json::json!("[user] x\n[assistant]")
    );
    // Without the flag, the engine's own template (the mock's) is used.
    let builtin = host
        .load(r#"{"model_name": "m", "backend": "mock", "custom_chat_template": "ignored"}"#)
        .unwrap();
    assert_eq!(
        builtin.run("x").unwrap().prompt,
        serde_json::json!("<|user|>x\n<|assistant|>")
    );
}

#[test]
fn output_split_prefix_keeps_text_after_last_occurrence() {
    let (host, _home) = hostile_host();
    let g = host.load("split").unwrap().run("q").unwrap();
    assert_eq!(g.response_text, "The answer.");
}

#[test]
fn streamed_pieces_concatenate_to_response_text() {
    let (host, _home) = hostile_host();
    for name in ["echo", "split"] {
        let model = host.load(name).unwrap();
        let mut pieces = Vec::new();
        let g = model
            .generate_stream(&[Message::user("Hi")], &GenerationParams::default(), |p| {
                pieces.push(p.to_string())
            })
            .unwrap();
        assert_eq!(pieces.concat(), g.response_text, "{name}");
        let whole = model
            .generate(&[Message::user("Hi")], &GenerationParams::default())
            .unwrap();
        assert_eq!(g.response_text, whole.response_text, "{name}");
    }
    // echo's eos regex is bounded: text streams before the end, in several pieces.
    let mut pieces = Vec::new();
    host.load("echo")
        .unwrap()
        .generate_stream(&[Message::user("Hi")], &GenerationParams::default(), |p| {
            pieces.push(p.to_string())
        })
        .unwrap();
    assert!(pieces.len() >= 2, "{pieces:?}");
}

fn hostile(host: &lmhost::Host, mode: &str) -> Result<lmhost::Generation, Error> {
    let query = format!(r#"{{"model_name": "hostile", "hostile": "{mode}"}}"#);
    host.load(query.as_str()).unwrap().run("hi")
}

fn assert_still_serving(host: &lmhost::Host) {
    let g = hostile(host, "none").expect("a normal request right after succeeds");
    assert_eq!(g.response_text, "fine");
}

#[test]
fn trapping_adapter_is_a_clear_error_and_the_next_request_works() {
    let (host, _home) = hostile_host();
    let err = hostile(&host, "panic").unwrap_err();
    match &err {
        Error::Adapter(AdapterError::Crashed { adapter, .. }) => assert!(adapter.ends_with("hostile.wasm")),
        other => panic!("expected Crashed, got {other:?}"),
    }
    assert!(err.to_string().contains("crashed"), "{err}");
    assert_still_serving(&host);
}

#[test]
fn endless_loop_times_out_near_the_deadline() {
    let (host, _home) = hostile_host();
    let deadline = AdapterLimits::default().deadline;
    let started = Instant::now();
    let err = hostile(&host, "loop").unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, Error::Adapter(AdapterError::Timeout { .. })), "{err:?}");
    // Loose bound: two ticks plus slack for a noisy shared machine.
    assert!(took >= deadline, "{took:?}");
    assert!(took <= deadline + 2 * EPOCH_TICK + Duration::from_secs(2), "{took:?}");
    assert_still_serving(&host);
}

#[test]
fn unbounded_allocation_hits_the_memory_limit() {
    let (host, _home) = hostile_host();
    let err = hostile(&host, "oom").unwrap_err();
    assert!(
        matches!(err, Error::Adapter(AdapterError::MemoryLimit { .. })),
        "{err:?}"
    );
    assert_still_serving(&host);
}

#[test]
fn huge_output_hits_the_output_limit() {
    let (host, _home) = hostile_host();
    let err = hostile(&host, "huge-output").unwrap_err();
    assert!(
        matches!(err, Error::Adapter(AdapterError::OutputLimit { .. })),
        "{err:?}"
    );
    assert_still_serving(&host);
}

#[test]
fn adapter_sees_no_files_and_no_environment() {
    std::env::set_var("LMHOST_TEST_SECRET", "sk-test-do-not-leak");
    let (host, _home) = hostile_host();
    let err = hostile(&host, "read-file").unwrap_err().to_string();
    assert!(err.contains("read-file denied"), "{err}");
    let g = hostile(&host, "read-env").unwrap();
    assert_eq!(g.prompt, serde_json::json!(""), "the adapter's environment is empty");
}

#[test]
fn template_errors_and_bombs_come_back_as_errors() {
    let (host, _home) = hostile_host();
    let err = hostile(&host, "bad-template").unwrap_err().to_string();
    assert!(err.contains("syntax error"), "{err}");
    let started = Instant::now();
    let err = hostile(&host, "template-bomb").unwrap_err().to_string();
    assert!(err.contains("fuel") || err.contains("range"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_still_serving(&host);
}

#[test]
fn concurrent_requests_survive_a_crashing_neighbour() {
    let (host, _home) = hostile_host();
    std::thread::scope(|s| {
        let crashers: Vec<_> = (0..4).map(|_| s.spawn(|| hostile(&host, "panic").is_err())).collect();
        let normal: Vec<_> = (0..8)
            .map(|_| s.spawn(|| hostile(&host, "none").map(|g| g.response_text)))
            .collect();
        for c in crashers {
            assert!(c.join().unwrap());
        }
        for n in normal {
            assert_eq!(n.join().unwrap().unwrap(), "fine");
        }
    });
}

#[test]
fn unknown_adapter_and_non_component_fail_at_load() {
    let (host, home) = hostile_host();
    let err = host
        .load(r#"{"model_name": "x", "backend": "mock", "adapter": "no-such"}"#)
        .unwrap_err();
    assert!(err.to_string().contains("adapter `no-such` cannot be loaded"), "{err}");
    let junk = home.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    let q = serde_json::json!({"model_name": "x", "backend": "mock", "adapter": junk}).to_string();
    let err = host.load(q.as_str()).unwrap_err().to_string();
    assert!(err.contains("not a usable component"), "{err}");
}

#[test]
fn precompiled_components_are_cached_on_disk() {
    let home = TempDir::new("cache");
    let dir = home.path().join("components");
    let bytes = std::fs::read(guest("hostile")).unwrap();
    let first = AdapterRuntime::new(Some(dir.clone())).unwrap();
    assert!(!first.is_cached(&bytes));
    first.load_bytes("hostile", &bytes, AdapterLimits::default()).unwrap();
    assert!(first.is_cached(&bytes));
    // A new runtime (a new process, in effect) loads from the cache, faster.
    let second = AdapterRuntime::new(Some(dir)).unwrap();
    let started = Instant::now();
    second.load_bytes("hostile", &bytes, AdapterLimits::default()).unwrap();
    let cached = started.elapsed();
    let uncached_runtime = AdapterRuntime::new(None).unwrap();
    let started = Instant::now();
    uncached_runtime
        .load_bytes("hostile", &bytes, AdapterLimits::default())
        .unwrap();
    let compiled = started.elapsed();
    eprintln!("load from cache {cached:?}, compile {compiled:?}");
    assert!(cached < compiled, "cache {cached:?} vs compile {compiled:?}");
}

#[test]
fn deep_recursion_is_stopped_by_the_stack_limit() {
    let (host, _home) = hostile_host();
    let err = hostile(&host, "recursion").unwrap_err();
    assert!(matches!(err, Error::Adapter(AdapterError::Crashed { .. })), "{err:?}");
    // Either the wasm call stack runs out, or (Rust guests) the shadow stack in
    // linear memory does first and the next frame is out of bounds.
    let text = err.to_string();
    assert!(
        text.contains("call stack exhausted") || text.contains("out of bounds memory access"),
        "{text}"
    );
    assert_still_serving(&host);
}

#[test]
fn invalid_utf8_is_refused() {
    let (host, _home) = hostile_host();
    let err = hostile(&host, "bad-utf8").unwrap_err();
    assert!(matches!(err, Error::Adapter(AdapterError::Crashed { .. })), "{err:?}");
    assert!(err.to_string().to_lowercase().contains("utf-8"), "{err}");
    assert_still_serving(&host);
}

#[test]
fn sockets_are_denied() {
    let (host, _home) = hostile_host();
    let err = hostile(&host, "socket").unwrap_err().to_string();
    assert!(err.contains("socket denied"), "{err}");
}

#[test]
fn blocking_sleep_is_denied_at_once() {
    // A sleep blocks inside the host, where no deadline can reach: it is refused.
    let (host, _home) = hostile_host();
    let started = Instant::now();
    let err = hostile(&host, "sleep").unwrap_err();
    assert!(matches!(err, Error::Adapter(AdapterError::Denied { .. })), "{err:?}");
    assert!(err.to_string().contains("tried to block"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_still_serving(&host);
}

#[test]
fn render_template_in_a_loop_times_out() {
    let (host, _home) = hostile_host();
    let err = hostile(&host, "render-loop").unwrap_err();
    assert!(matches!(err, Error::Adapter(AdapterError::Timeout { .. })), "{err:?}");
    assert_still_serving(&host);
}

#[test]
fn template_memory_and_cpu_bombs_stop_in_the_template_sandbox() {
    let (host, _home) = hostile_host();
    for mode in ["template-memory-bomb", "template-concat-bomb"] {
        let started = Instant::now();
        let err = hostile(&host, mode).unwrap_err().to_string();
        assert!(
            err.contains("memory limit") || err.contains("over the limit") || err.contains("too large"),
            "{mode}: {err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{mode}: {:?}",
            started.elapsed()
        );
    }
    assert_still_serving(&host);
}

#[test]
fn nothing_an_adapter_sees_holds_a_secret() {
    let home = TempDir::new("secrets");
    let secret = "sk-lmhost-test-secret-0123456789";
    std::fs::write(
        home.path().join("key.json"),
        format!(r#"{{"openai": {{"api_key": "{secret}"}}}}"#),
    )
    .unwrap();
    std::env::set_var("OPENAI_API_KEY", secret);
    std::env::set_var("HF_TOKEN", secret);
    let mut config = lmhost::HostConfig::with_home(home.path().to_path_buf());
    let registry = home.path().join("r.json");
    std::fs::write(&registry, mock_registry(guest("hostile").to_str().unwrap())).unwrap();
    config.registry_files.push(registry);
    let host = lmhost::Host::with_config(config).unwrap();
    let g = host
        .load(r#"{"model_name": "hostile", "hostile": "dump"}"#)
        .unwrap()
        .run("hello")
        .unwrap();
    let seen = g.prompt.as_str().unwrap();
    assert!(seen.contains("\"hostile\":\"dump\""), "the dump is real: {seen}");
    assert!(
        seen.contains("env=[]") && seen.contains("args=[]") && seen.contains("files=0"),
        "{seen}"
    );
    assert!(!seen.contains(secret), "{seen}");
}
