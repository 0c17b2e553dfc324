//! The hostile corpus, part two: an adapter that returns too much (stop strings,
//! headers, paths, error values, finish reasons), logs to forge or flood, or
//! spends a request's time in many small calls. Each case asserts the error
//! kind, that the host serves a normal request right after, and bounded time;
//! the cases run through the `lmhost` binary also bound its peak memory.

use std::path::Path;
use std::time::{Duration, Instant};

use lmhost::adapters::ledger::{MAX_ERROR_BYTES, MAX_LOG_BYTES_PER_REQUEST};
use lmhost::adapters::AdapterError;
use lmhost::{Error, GenerationParams, Message};
use lmhost_tests::{guest, TempDir};

use crate::adapters::{assert_still_serving, hostile, hostile_host, hostile_model};
use crate::lmhost_command;

/// An adapter error whose checks ran on the host: well under a second of work
/// each, so a generous bound still catches anything quadratic.
const QUICK: Duration = Duration::from_secs(10);

fn output_limit(err: &Error) -> (&'static str, usize, usize) {
    match err {
        Error::Adapter(AdapterError::OutputLimit { what, size, limit, .. }) => (what, *size, *limit),
        other => panic!("expected OutputLimit, got {other:?}"),
    }
}

#[test]
fn stop_strings_are_counted_and_bounded_in_size() {
    let (host, _home) = hostile_host();
    let model = hostile_model(&host, "many-stops");
    let started = Instant::now();
    let err = model.run("hi").unwrap_err();
    assert!(started.elapsed() < QUICK, "{:?}", started.elapsed());
    assert_eq!(output_limit(&err), ("stop strings", 100_000, 64), "{err}");
    let err = hostile(&host, "long-stop").unwrap_err();
    assert_eq!(output_limit(&err), ("bytes in one stop string", 2 << 20, 1024), "{err}");
    assert_still_serving(&host);
}

#[test]
fn headers_and_paths_are_counted_before_the_http_engine_sees_them() {
    let (host, _home) = hostile_host();
    let model = hostile_model(&host, "many-headers");
    let started = Instant::now();
    let err = model.run("hi").unwrap_err();
    assert_eq!(output_limit(&err), ("HTTP headers", 30_000, 64), "{err}");
    let err = hostile(&host, "long-path").unwrap_err();
    let (what, size, _) = output_limit(&err);
    assert_eq!((what, size), ("bytes of HTTP path", (64 << 20) + 1), "{err}");
    assert!(err.to_string().len() < 300, "the error does not quote the path: {err}");
    assert!(started.elapsed() < QUICK, "{:?}", started.elapsed());
    assert_still_serving(&host);
}

#[test]
fn an_error_value_is_quoted_cut_and_on_one_line() {
    let (host, _home) = hostile_host();
    let err = hostile(&host, "huge-error").unwrap_err();
    match &err {
        Error::Adapter(AdapterError::Refused { kind, message, .. }) => {
            assert_eq!(*kind, "invalid input");
            assert!(message.len() <= MAX_ERROR_BYTES + 40, "{}", message.len());
            assert!(message.ends_with(&format!("({} bytes in all)", 64 << 20)), "{message}");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    let err = hostile(&host, "long-finish-reason").unwrap_err();
    assert_eq!(output_limit(&err), ("bytes of finish reason", 1 << 20, 64), "{err}");
    assert_still_serving(&host);
}

#[test]
fn the_request_budget_ends_many_calls_each_within_its_deadline() {
    // Each push takes 250 ms, under the 400 ms deadline; twelve of them would
    // take 3 s, over the 1 s budget of the request.
    let registry = serde_json::json!([
        {"model_name": "slow", "backend": "mock", "adapter": guest("hostile"), "hostile": "slow-stream",
         "reply": "a b c d e f g h i j k l",
         "adapter_limits": {"deadline_ms": 400, "request_budget_ms": 1000}},
        {"model_name": "hostile", "backend": "mock", "adapter": guest("hostile"), "reply": "fine"}
    ]);
    let (host, _home) = lmhost_tests::host(Some(&registry.to_string()));
    let model = host.load("slow").unwrap();
    let started = Instant::now();
    let err = model
        .generate_stream(&[Message::user("hi")], &GenerationParams::default(), |_| ())
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(&err, Error::Adapter(AdapterError::RequestBudget { budget, .. }) if *budget == Duration::from_secs(1)),
        "{err:?}"
    );
    assert!(took >= Duration::from_millis(900), "{took:?}");
    // Slack for a busy machine (without the budget, the twelve pushes would
    // all pass: the error kind above is what proves the budget).
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_still_serving(&host);
}

#[test]
fn request_budget_is_a_registry_limit_with_a_maximum() {
    let (host, _home) = hostile_host();
    let err = host
        .load(r#"{"model_name": "hostile", "adapter_limits": {"request_budget_ms": 600001}}"#)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`adapter_limits.request_budget_ms` is 600001, over the maximum of 600000 ms"),
        "{err}"
    );
}

/// `lmhost run` with one hostile entry: its stderr, exit status, wall time and
/// peak resident memory (KiB).
fn run_hostile(home: &Path, mode: &str) -> (String, bool, Duration, i64) {
    let registry = home.join("hostile.json");
    let entry = serde_json::json!([{
        "model_name": "hostile", "backend": "mock", "reply": "fine",
        "adapter": guest("hostile"), "hostile": mode
    }]);
    std::fs::write(&registry, entry.to_string()).unwrap();
    let started = Instant::now();
    let (out, peak) = lmhost_tests::output_and_peak_rss(
        lmhost_command()
            .args(["--registry", registry.to_str().unwrap(), "run", "-m", "hostile", "hi"])
            .env("LMHOST_HOME", home)
            .env_remove("RUST_LOG"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (stderr, out.status.success(), started.elapsed(), peak)
}

#[test]
fn adapter_logs_cannot_forge_host_lines_or_flood_stderr() {
    let tmp = TempDir::new("hostile-logs");
    let (stderr, ok, _, _) = run_hostile(tmp.path(), "log-forge");
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(r"fine\n2026-12-01T00:00:00.000000Z ERROR lmhost: forged by the adapter\r"),
        "{stderr}"
    );
    assert!(
        !stderr.lines().any(|l| l.starts_with("2026-12-01T00:00:00")),
        "a forged line of its own: {stderr}"
    );

    let (stderr, ok, took, _) = run_hostile(tmp.path(), "log-flood");
    assert!(ok, "{}", &stderr[stderr.len().saturating_sub(2000)..]);
    // 100 MiB asked for; the budget plus one line of prefix per record and the note.
    assert!(
        stderr.len() < 2 * MAX_LOG_BYTES_PER_REQUEST,
        "{} bytes of stderr",
        stderr.len()
    );
    assert!(
        stderr.contains("log records dropped: over the log limit of 65536 bytes per request"),
        "{}",
        &stderr[stderr.len().saturating_sub(2000)..]
    );
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[test]
fn oversized_returns_stay_bounded_in_memory_and_time() {
    let tmp = TempDir::new("hostile-rss");
    // A baseline: the same binary, same entry, a plain request.
    let (_, ok, _, baseline) = run_hostile(tmp.path(), "none");
    assert!(ok);
    for mode in ["long-path", "huge-error", "many-stops", "many-headers"] {
        let (stderr, ok, took, rss) = run_hostile(tmp.path(), mode);
        assert!(!ok, "{mode} must fail");
        // The error is one short line, not the value.
        assert!(stderr.len() < 4096, "{mode}: {} bytes of stderr", stderr.len());
        assert!(took < Duration::from_secs(30), "{mode}: {took:?}");
        // 64 MiB returned is copied out of the instance once: no multiple of it.
        let extra_mib = (rss - baseline) / 1024;
        assert!(extra_mib < 200, "{mode}: {extra_mib} MiB over the baseline");
    }
}

/// A component implementing the adapter world (every function traps) that
/// also instantiates `extra` core modules, each with a memory of `mib` MiB: a
/// cap per memory would let it hold `extra` times the cap.
fn many_memories_adapter(extra: u32, mib: u64) -> Vec<u8> {
    use wasm_encoder::{
        CodeSection, Component, ExportKind, ExportSection, Function, FunctionSection, InstanceSection, Instruction,
        MemorySection, MemoryType, Module, ModuleArg, ModuleSection, TypeSection, ValType,
    };
    use wit_parser::abi::WasmType;
    use wit_parser::{LiftLowerAbi, ManglingAndAbi, Resolve, WasmExport, WasmExportKind, WorldItem};

    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_path(lmhost_tests::repo_root().join("wit")).unwrap();
    let world = resolve.select_world(&[package], Some("adapter")).unwrap();
    let mangling = ManglingAndAbi::Legacy(LiftLowerAbi::Sync);
    let val = |t: &WasmType| match t {
        WasmType::I32 | WasmType::Pointer | WasmType::Length => ValType::I32,
        WasmType::I64 | WasmType::PointerOrI64 => ValType::I64,
        WasmType::F32 => ValType::F32,
        WasmType::F64 => ValType::F64,
    };
    // (export name, params, results) of every function the world exports, and realloc.
    let mut exported = Vec::new();
    for (key, item) in &resolve.worlds[world].exports {
        let WorldItem::Interface { id, .. } = item else {
            continue;
        };
        for func in resolve.interfaces[*id].functions.values() {
            let sig = resolve.wasm_signature(mangling.export_variant(), func);
            let name = resolve.wasm_export_name(
                mangling,
                WasmExport::Func {
                    interface: Some(key),
                    func,
                    kind: WasmExportKind::Normal,
                },
            );
            exported.push((
                name,
                sig.params.iter().map(val).collect::<Vec<_>>(),
                sig.results.iter().map(val).collect::<Vec<_>>(),
            ));
        }
    }
    exported.push((
        resolve.wasm_export_name(mangling, WasmExport::Realloc),
        vec![ValType::I32; 4],
        vec![ValType::I32],
    ));

    let mut types = TypeSection::new();
    let mut functions = FunctionSection::new();
    let mut exports = ExportSection::new();
    let mut code = CodeSection::new();
    for (index, (name, params, results)) in exported.iter().enumerate() {
        let index = index as u32;
        types.ty().function(params.iter().copied(), results.iter().copied());
        functions.function(index);
        exports.export(name, ExportKind::Func, index);
        let mut body = Function::new([]);
        body.instruction(&Instruction::Unreachable)
            .instruction(&Instruction::End);
        code.function(&body);
    }
    let memory = |pages: u64| {
        let mut memories = MemorySection::new();
        memories.memory(MemoryType {
            minimum: pages,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        memories
    };
    exports.export(
        &resolve.wasm_export_name(mangling, WasmExport::Memory),
        ExportKind::Memory,
        0,
    );
    let mut main = Module::new();
    main.section(&types)
        .section(&functions)
        .section(&memory(1))
        .section(&exports)
        .section(&code);
    let mut main = main.finish();
    wit_component::embed_component_metadata(&mut main, &resolve, world, wit_component::StringEncoding::UTF8).unwrap();
    let inner = wit_component::ComponentEncoder::default()
        .module(&main)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap();

    // Then, appended to the adapter: a module that only has a memory, and
    // `extra` core instances of it (sections may come in any order).
    let mut hoard = Module::new();
    let mut hoard_exports = ExportSection::new();
    hoard_exports.export("memory", ExportKind::Memory, 0);
    hoard.section(&memory(mib * 16)).section(&hoard_exports);
    let modules = wasmparser::Parser::new(0)
        .parse_all(&inner)
        .filter(|p| matches!(p, Ok(wasmparser::Payload::ModuleSection { .. })))
        .count() as u32;
    let mut tail = Component::new();
    tail.section(&ModuleSection(&hoard));
    let mut instances = InstanceSection::new();
    for _ in 0..extra {
        instances.instantiate(modules, Vec::<(&str, ModuleArg)>::new());
    }
    tail.section(&instances);
    let tail = tail.finish();
    let mut component = inner;
    // Everything after the 8-byte preamble.
    component.extend_from_slice(&tail[8..]);
    component
}

#[test]
fn the_memory_cap_is_per_instance_not_per_memory() {
    use lmhost::adapters::{wit, AdapterLimits, AdapterRuntime};
    let runtime = AdapterRuntime::new(None).unwrap();
    let limits = AdapterLimits::default();
    let shape = |bytes: &[u8]| {
        let adapter = runtime.load_bytes("many-memories", bytes, limits).unwrap();
        let info = lmhost::tools::conformance::model_for(&adapter);
        let params = wit::Params::from(&GenerationParams::default());
        let started = Instant::now();
        let result = adapter.shape_request(&info, &[], &params);
        (result, started.elapsed(), adapter.peak_memory_bytes())
    };
    // Seven memories of 30 MiB fit under the 256 MiB cap: the component is
    // sound, and its functions trap as written.
    let (result, _, peak) = shape(&many_memories_adapter(7, 30));
    assert!(matches!(result, Err(AdapterError::Crashed { .. })), "{result:?}");
    assert!(peak >= (7 * 30) << 20, "all memories are counted: {peak}");
    // Seven of 255 MiB (1.8 GiB under a per-memory cap) stop at the second.
    let (result, took, peak) = shape(&many_memories_adapter(7, 255));
    assert!(
        matches!(result, Err(AdapterError::MemoryLimit { limit, .. }) if limit == 256 << 20),
        "{result:?}"
    );
    assert!(peak <= 256 << 20, "{peak}");
    assert!(took < QUICK, "{took:?}");
}

/// `lmhost serve` with a registry of hostile entries beside a plain one: each
/// hostile model gets an error answer for itself, never a dropped connection,
/// and the plain model answers right after every one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_survives_every_hostile_entry() {
    use lmhost::server::{Server, ServerConfig};
    let modes = [
        "panic",
        "oom",
        "recursion",
        "huge-output",
        "bad-utf8",
        "many-stops",
        "long-stop",
        "many-headers",
        "long-path",
        "huge-error",
        "log-flood",
        "long-finish-reason",
        "template-bomb",
        "template-memory-bomb",
    ];
    let mut entries: Vec<serde_json::Value> = modes
        .iter()
        .map(|mode| {
            serde_json::json!({"model_name": format!("hostile-{mode}"), "backend": "mock", "reply": "fine",
                               "adapter": guest("hostile"), "hostile": mode})
        })
        .collect();
    entries.push(serde_json::json!({"model_name": "plain", "backend": "mock", "reply": "fine"}));
    let (host, _home) = lmhost_tests::host(Some(&serde_json::Value::Array(entries).to_string()));
    let server = Server::bind(std::sync::Arc::new(host), ServerConfig::ephemeral())
        .await
        .unwrap();
    let url = format!("http://{}/v1/chat/completions", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let ask = |model: String, stream: bool| {
        let body =
            serde_json::json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
        let request = client.post(&url).json(&body).send();
        async move {
            let response = request.await.expect("the server answers");
            let status = response.status().as_u16();
            (status, response.text().await.expect("a whole body"))
        }
    };
    for mode in modes {
        for stream in [false, true] {
            let started = Instant::now();
            let (status, body) = ask(format!("hostile-{mode}"), stream).await;
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{mode}: {:?}",
                started.elapsed()
            );
            // An error for that model: a status, or an error event in a stream
            // that had started. A log flood is no error (its logs are dropped),
            // nor is a stream of the adapter that sends its long finish reason
            // from `parse-response` only.
            let failed = status >= 400 || body.contains("\"error\"");
            let harmless = mode == "log-flood" || (mode == "long-finish-reason" && stream);
            assert_eq!(failed, !harmless, "{mode} (stream: {stream}): {status} {body:.2000}");
            assert!(body.len() < 8192, "{mode}: {} bytes of answer", body.len());
            let (status, body) = ask("plain".into(), stream).await;
            assert_eq!(status, 200, "after {mode}: {body}");
            assert!(body.contains("fine"), "after {mode}: {body}");
        }
    }
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
