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

pub(crate) fn hostile_host() -> (lmhost::Host, TempDir) {
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
fn one_instance_serves_a_request_and_the_next_request_gets_a_fresh_one() {
    let (host, _home) = hostile_host();
    let model = host
        .load(r#"{"model_name": "hostile", "hostile": "remember"}"#)
        .unwrap();
    let once = "shape-request ran 1 time(s) in this instance";
    for _ in 0..3 {
        // parse-response sees what shape-request left: the same instance. And
        // it never sees an earlier request's count: a fresh one per request.
        assert_eq!(model.run("hi").unwrap().response_text, once);
        let mut streamed = String::new();
        let g = model
            .generate_stream(&[Message::user("hi")], &GenerationParams::default(), |t| {
                streamed.push_str(t)
            })
            .unwrap();
        assert_eq!((g.response_text.as_str(), streamed.as_str()), (once, once));
    }
    // The one-call methods take a fresh instance each.
    let runtime = AdapterRuntime::new(None).unwrap();
    let adapter = runtime
        .load(guest("hostile").to_str().unwrap(), None, AdapterLimits::default())
        .unwrap();
    let info = lmhost::tools::conformance::model_for(&adapter);
    let info = lmhost::adapters::wit::ModelInfo {
        spec_json: r#"{"hostile": "remember"}"#.into(),
        ..info
    };
    assert_eq!(
        adapter
            .parse_response(
                &info,
                &lmhost::adapters::wit::Params::plain(),
                &lmhost::adapters::wit::Request::empty_prompt(),
                "x"
            )
            .unwrap()
            .text,
        "shape-request ran 0 time(s) in this instance"
    );
    let mut session = adapter.session();
    let params = lmhost::adapters::wit::Params::from(&GenerationParams::default());
    let hi = [lmhost::adapters::wit::Message::new("user", "hi")];
    session.shape_request(&info, &hi, &params).unwrap();
    session.shape_request(&info, &hi, &params).unwrap();
    assert_eq!(
        session
            .parse_response(
                &info,
                &lmhost::adapters::wit::Params::plain(),
                &lmhost::adapters::wit::Request::empty_prompt(),
                "x"
            )
            .unwrap()
            .text,
        "shape-request ran 2 time(s) in this instance"
    );
}

#[test]
fn a_trap_ends_the_sessions_instance_and_the_next_call_starts_clean() {
    let runtime = AdapterRuntime::new(None).unwrap();
    let adapter = runtime
        .load(guest("hostile").to_str().unwrap(), None, AdapterLimits::default())
        .unwrap();
    let base = lmhost::tools::conformance::model_for(&adapter);
    let with = |mode: &str| lmhost::adapters::wit::ModelInfo {
        spec_json: serde_json::json!({ "hostile": mode }).to_string(),
        ..base.clone()
    };
    let params = lmhost::adapters::wit::Params::from(&GenerationParams::default());
    let hi = [lmhost::adapters::wit::Message::new("user", "hi")];
    let mut session = adapter.session();
    session.shape_request(&with("remember"), &hi, &params).unwrap();
    let err = session.shape_request(&with("panic"), &hi, &params).unwrap_err();
    assert!(matches!(err, AdapterError::Crashed { .. }), "{err}");
    // The crashed instance is gone: the count starts again from a fresh one.
    assert_eq!(
        session
            .parse_response(
                &with("remember"),
                &lmhost::adapters::wit::Params::plain(),
                &lmhost::adapters::wit::Request::empty_prompt(),
                "x"
            )
            .unwrap()
            .text,
        "shape-request ran 0 time(s) in this instance"
    );
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

/// The hostile entry in `mode`, loaded (its component compiled): tests time
/// only the call, never the compilation, which a busy machine slows most.
pub(crate) fn hostile_model(host: &lmhost::Host, mode: &str) -> lmhost::Model {
    let query = format!(r#"{{"model_name": "hostile", "hostile": "{mode}"}}"#);
    host.load(query.as_str()).unwrap()
}

pub(crate) fn hostile(host: &lmhost::Host, mode: &str) -> Result<lmhost::Generation, Error> {
    hostile_model(host, mode).run("hi")
}

pub(crate) fn assert_still_serving(host: &lmhost::Host) {
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
    let model = hostile_model(&host, "loop");
    let started = Instant::now();
    let err = model.run("hi").unwrap_err();
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
    let model = hostile_model(&host, "template-bomb");
    let started = Instant::now();
    let err = model.run("hi").unwrap_err().to_string();
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
    let model = hostile_model(&host, "sleep");
    let started = Instant::now();
    let err = model.run("hi").unwrap_err();
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
        let model = hostile_model(&host, mode);
        let started = Instant::now();
        let err = model.run("hi").unwrap_err().to_string();
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

#[test]
fn limits_are_configurable_per_entry_and_bounded() {
    let (host, _home) = hostile_host();
    // A tighter deadline: the endless loop is stopped sooner.
    let q = r#"{"model_name": "hostile", "hostile": "loop", "adapter_limits": {"deadline_ms": 200}}"#;
    let model = host.load(q).unwrap();
    assert_eq!(model.adapter().limits().deadline, Duration::from_millis(200));
    let started = Instant::now();
    let err = model.run("hi").unwrap_err();
    assert!(matches!(err, Error::Adapter(AdapterError::Timeout { .. })), "{err:?}");
    assert!(
        started.elapsed() < AdapterLimits::default().deadline,
        "{:?}",
        started.elapsed()
    );
    // A smaller memory cap is named in the error.
    let q = r#"{"model_name": "hostile", "hostile": "oom", "adapter_limits": {"memory_mb": 16}}"#;
    let err = host.load(q).unwrap().run("hi").unwrap_err();
    assert!(
        matches!(err, Error::Adapter(AdapterError::MemoryLimit { limit, .. }) if limit == 16 << 20),
        "{err:?}"
    );
    // Over the maxima, or unknown keys: refused at load, not clamped.
    let err = host
        .load(r#"{"model_name": "hostile", "adapter_limits": {"memory_mb": 4096}}"#)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("`adapter_limits.memory_mb` is 4096, over the maximum of 1024 MiB"),
        "{err}"
    );
    let err = host
        .load(r#"{"model_name": "hostile", "adapter_limits": {"fuel": 1}}"#)
        .unwrap_err();
    assert!(err.to_string().contains("unknown key `adapter_limits.fuel`"), "{err}");
    assert_still_serving(&host);
}

/// CPU time of this thread (the template sandbox runs on the calling thread).
fn thread_cpu() -> Option<Duration> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the pointer we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

#[test]
fn known_template_payloads_end_with_a_clear_error_within_50ms_cpu() {
    let runtime = AdapterRuntime::new(None).unwrap();
    let limits = lmhost::adapters::TemplateLimits::default();
    let ctx = r#"{"messages": [{"role": "user", "content": "hi"}]}"#;
    runtime.render_template("warm {{ 1 }}", ctx, &limits).unwrap();
    let nested = |n: usize| format!("{}x{}", "{% if true %}".repeat(n), "{% endif %}".repeat(n));
    let payloads: Vec<(&str, String)> = vec![
        // Server-side template injection through a model file's chat template: walk
        // Python's object model to os.popen. There is no Python object model here.
        (
            "object-model walk",
            "{{ ''.__class__.__mro__[1].__subclasses__() }}".into(),
        ),
        (
            "popen through subclasses",
            "{% for x in ().__class__.__base__.__subclasses__() %}{% if 'warning' in x.__name__ %}\
             {{ x()._module.__builtins__['__import__']('os').popen('touch /tmp/lmhost-pwned').read() }}\
             {% endif %}{% endfor %}"
                .into(),
        ),
        (
            "globals of a builtin",
            "{{ cycler.__init__.__globals__.os.popen('id').read() }}".into(),
        ),
        ("50k nested if", nested(50_000)),
        ("20k nested if", nested(20_000)),
        ("range(10**9)", "{% for i in range(10**9) %}{{ i }}{% endfor %}".into()),
        (
            "recursive macro",
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}".into(),
        ),
        ("string times 10**9", "{{ 'x' * 10**9 }}".into()),
    ];
    for (name, payload) in payloads {
        let Some(before) = thread_cpu() else {
            eprintln!("skipped: no per-thread CPU clock");
            return;
        };
        let result = runtime.render_template(&payload, ctx, &limits);
        let cpu = thread_cpu().unwrap() - before;
        eprintln!("{name}: {cpu:?} -> {:?}", result.as_ref().map(|s| s.len()));
        match result {
            Ok(out) => assert!(out.trim().is_empty(), "{name} rendered something: {out:?}"),
            Err(e) => assert!(!e.is_empty()),
        }
        assert!(
            !std::path::Path::new("/tmp/lmhost-pwned").exists(),
            "{name} executed code"
        );
        assert!(cpu <= Duration::from_millis(50), "{name} took {cpu:?} of CPU");
    }
    // A flood cannot be refused before it has written the output cap (16 MiB by
    // default), so its cost grows with the cap: it must end with the limit error,
    // in time proportional to the cap, not to what the template asked for (100 MB).
    let flood = "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}";
    let before = thread_cpu().unwrap();
    let err = runtime.render_template(flood, ctx, &limits).unwrap_err();
    let cpu = thread_cpu().unwrap() - before;
    eprintln!("output flood: {cpu:?} -> {err}");
    assert!(err.contains("over the limit of 16777216 bytes"), "{err}");
    assert!(cpu <= Duration::from_secs(1), "output flood took {cpu:?} of CPU");
}

#[test]
fn a_hostile_python_adapter_is_contained_too() {
    let wasm = std::path::Path::new(lmhost::adapters::REPO_ADAPTER_DIR).join("hostile-py.wasm");
    if !wasm.is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} is missing; CI must run `make adapters`",
            wasm.display()
        );
        eprintln!("skipped: {} is missing (run `make adapters`)", wasm.display());
        return;
    }
    let registry =
        serde_json::json!([{"model_name": "py-hostile", "backend": "mock", "adapter": wasm, "reply": "fine"}]);
    let (host, _home) = host(Some(&registry.to_string()));
    let load = |mode: &str| {
        let q = format!(r#"{{"model_name": "py-hostile", "hostile": "{mode}"}}"#);
        host.load(q.as_str()).unwrap()
    };
    let run = |mode: &str| load(mode).run("hi");
    // Compiled first: only the call is timed.
    let looping = load("loop");
    let started = Instant::now();
    let err = looping.run("hi").unwrap_err();
    assert!(matches!(err, Error::Adapter(AdapterError::Timeout { .. })), "{err:?}");
    assert!(
        started.elapsed() < AdapterLimits::default().deadline + Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let err = run("oom").unwrap_err();
    assert!(
        matches!(err, Error::Adapter(AdapterError::MemoryLimit { .. })),
        "{err:?}"
    );
    let err = run("raise").unwrap_err();
    assert!(matches!(err, Error::Adapter(AdapterError::Crashed { .. })), "{err:?}");
    let err = run("file").unwrap_err().to_string();
    assert!(err.contains("read-file denied"), "{err}");
    assert_eq!(run("none").unwrap().response_text, "fine");
}
