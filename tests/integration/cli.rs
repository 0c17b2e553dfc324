//! The `lmhost` binary, run as a user runs it.

use std::path::Path;
use std::process::Output;

use lmhost_tests::{guest, repo_root, smollm, TempDir};

use crate::lmhost_command;

/// Run lmhost from the repository root with a private home.
fn lmhost(home: &Path, args: &[&str]) -> Output {
    lmhost_command()
        .args(args)
        .env("LMHOST_HOME", home)
        .env_remove("LMHOST_MODELS_DIR")
        .output()
        .expect("lmhost runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn run_answers_with_the_default_model() {
    if smollm().is_none() {
        return;
    }
    let tmp = TempDir::new("cli-run");
    let home = tmp.path();
    let out = lmhost(
        home,
        &[
            "run",
            "-m",
            "SmolLM2-135M-Instruct",
            "-l",
            "40",
            "What is the capital of France? Answer in one sentence.",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let answer = text(&out.stdout);
    assert!(answer.contains("Paris"), "{answer}");
    assert!(!answer.contains("<|im_end|>"), "{answer}");
}

#[test]
fn run_json_prints_the_whole_generation() {
    if smollm().is_none() {
        return;
    }
    let tmp = TempDir::new("cli-json");
    let home = tmp.path();
    let out = lmhost(home, &["run", "--json", "-l", "8", "--system", "Be brief.", "Hi"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let g: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(g["model"], "SmolLM2-135M-Instruct");
    assert!(g["prompt"]
        .as_str()
        .unwrap()
        .starts_with("<|im_start|>system\nBe brief.<|im_end|>"));
    assert!(g["usage"]["completion_tokens"].as_u64().unwrap() <= 8);
    assert!(g["timings"]["total_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn run_reads_the_prompt_from_stdin_on_the_mock_backend() {
    use std::io::Write;
    let tmp = TempDir::new("cli-stdin");
    let home = tmp.path();
    let mut child = lmhost_command()
        .args(["run", "-m", r#"{"model_name": "mock", "reply": "you said: {prompt}"}"#])
        .env("LMHOST_HOME", home)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"ping\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "you said: <|user|>ping\n<|assistant|>\n");
}

#[test]
fn unknown_model_fails_with_close_names() {
    let tmp = TempDir::new("cli-unknown");
    let home = tmp.path();
    let out = lmhost(home, &["run", "-m", "SmolLM2-135M-instruct-x", "hi"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        "error: no registry entry matches `SmolLM2-135M-instruct-x`; did you mean `SmolLM2-135M-Instruct`, `SmolLM2-135M-Instruct-py`, `SmolLM2-135M-Instruct-js`?"
    );
}

#[test]
fn models_lists_layers_in_lookup_order() {
    let tmp = TempDir::new("cli-models");
    let home = tmp.path();
    std::fs::write(
        home.join("model_registry.json"),
        r#"[{"model_name": "mine", "backend": "mock"}]"#,
    )
    .unwrap();
    let out = lmhost(home, &["models", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["model_name"], "mine");
    assert!(list[0]["source"]
        .as_str()
        .unwrap()
        .ends_with("model_registry.json (entry 0)"));
    assert!(list.iter().any(|m| m["model_name"] == "SmolLM2-135M-Instruct"));
}

#[test]
fn malformed_registry_flag_is_a_clear_error() {
    let tmp = TempDir::new("cli-badflag");
    let home = tmp.path();
    let file = home.join("broken.json");
    std::fs::write(&file, "[{\"model_name\": \"a\",}]").unwrap();
    let out = lmhost(home, &["--registry", file.to_str().unwrap(), "models"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("registry `{}` is not valid JSON", file.display())),
        "{err}"
    );
    assert!(err.contains("line 1, column 21"), "{err}");
}

#[test]
fn registry_check_reports_every_problem_and_exits_nonzero() {
    let tmp = TempDir::new("cli-check");
    let home = tmp.path();
    let bad = repo_root().join("tests/fixtures/registry/invalid/missing-mandatory-keys.json");
    let out = lmhost(home, &["registry", "check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stdout);
    assert_eq!(
        report.lines().filter(|l| l.starts_with("error: ")).count(),
        4,
        "{report}"
    );
    assert!(
        report.ends_with("4 errors, 1 warnings in 5 entries of 1 files\n"),
        "{report}"
    );
    let good = lmhost(home, &["registry", "check"]);
    assert!(good.status.success(), "{}", text(&good.stdout));
    assert!(text(&good.stdout).starts_with("0 errors, 0 warnings"));
}

#[test]
fn register_model_writes_the_user_registry_and_the_model_runs() {
    let tmp = TempDir::new("cli-register");
    let home = tmp.path();
    let out = lmhost(
        home,
        &[
            "register",
            "model",
            "-n",
            "greeter",
            "-v",
            "backend=mock,reply=Hi from the registry!",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("added `greeter`"));
    let out = lmhost(home, &["register", "model", "-n", "other", "-v", "backend=mock"]);
    assert!(out.status.success());
    let out = lmhost(
        home,
        &[
            "register",
            "model",
            "-n",
            "greeter",
            "-v",
            "backend=mock",
            "-v",
            "reply=Updated.",
        ],
    );
    assert!(
        text(&out.stdout).starts_with("replaced entry 0"),
        "{}",
        text(&out.stdout)
    );
    let saved: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(home.join("model_registry.json")).unwrap()).unwrap();
    assert_eq!(saved.len(), 2);
    // The user registry is layered in: the model resolves and runs.
    let out = lmhost(home, &["run", "-m", "greeter", "hello"]);
    assert_eq!(text(&out.stdout), "Updated.\n", "{}", text(&out.stderr));
    // --cwd writes ./model_registry.json instead.
    let work = home.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let out = lmhost_command()
        .args(["register", "model", "-n", "local", "-v", "backend=mock", "--cwd"])
        .current_dir(&work)
        .env("LMHOST_HOME", home)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let local: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(work.join("model_registry.json")).unwrap()).unwrap();
    assert_eq!(local[0]["model_name"], "local");
    // Invalid entries are refused with the reason.
    let out = lmhost(home, &["register", "model", "-n", "bad", "-v", "backend=llamacpp"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("backend `llamacpp` needs `model_path`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn list_keys_masks_keys_and_names_their_source() {
    let tmp = TempDir::new("cli-keys");
    let home = tmp.path();
    std::fs::write(
        home.join("key.json"),
        r#"{"anthropic": {"api_key": "ant-0123456789abcdef"}}"#,
    )
    .unwrap();
    let out = lmhost_command()
        .args(["list", "keys", "--json"])
        .current_dir(home)
        .env("LMHOST_HOME", home)
        .env("HOME", home)
        .env("OPENAI_API_KEY", "short")
        .env_remove("ANTHROPIC_API_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("0123456789"), "{stdout}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let row = |b: &str| rows.iter().find(|r| r["backend"] == b).unwrap().clone();
    assert_eq!(row("anthropic")["api_key"], "ant-...cdef");
    assert_eq!(row("openai")["api_key"], "****rt");
    assert_eq!(row("openai")["source"], "env:OPENAI_API_KEY");
    assert_eq!(row("cohere")["api_key"], "[MISSING]");
}

#[test]
fn human_backend_reads_the_reply_from_stdin() {
    use std::io::Write;
    let tmp = TempDir::new("cli-human");
    let home = tmp.path();
    let mut child = lmhost_command()
        .args(["run", "-m", "human", "--system", "Play along.", "What is your move?"])
        .env("LMHOST_HOME", home)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"I move north.\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "I move north.\n");
    assert!(
        text(&out.stderr).contains("[system] Play along.\n[user] What is your move?\n> "),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn list_backends_and_unsupported_backend_errors() {
    let tmp = TempDir::new("cli-backends");
    let home = tmp.path();
    let out = lmhost(home, &["list", "backends", "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["backend"].as_str().unwrap()).collect();
    for b in [
        "llamacpp",
        "huggingface_local",
        "openai",
        "openai_compatible",
        "openrouter",
        "mistral",
        "anthropic",
        "google",
        "cohere",
        "mock",
        "human",
    ] {
        assert!(names.contains(&b), "{b}");
    }
    let out = lmhost(
        home,
        &["run", "-m", r#"{"model_name": "room", "backend": "slurk"}"#, "hi"],
    );
    assert_eq!(
        text(&out.stderr).trim(),
        "error: backend `slurk` of `room` is not supported; lmhost runs: llamacpp, huggingface_local, openai, \
         openai_compatible, openrouter, mistral, anthropic, google, cohere, mock, programmatic, human, terminal"
    );
    let runnable = |b: &str| rows.iter().find(|r| r["backend"] == b).unwrap()["runnable"].clone();
    assert_eq!(runnable("anthropic"), serde_json::json!(true));
    assert_eq!(runnable("huggingface_local"), serde_json::json!(true));
}

#[test]
fn registry_layers_flag_then_cwd_then_home_then_packaged() {
    let tmp = TempDir::new("cli-layers");
    let home = tmp.path();
    let work = home.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let entry = |reply: &str| format!(r#"[{{"model_name": "layered", "backend": "mock", "reply": "{reply}"}}]"#);
    std::fs::write(home.join("model_registry.json"), entry("from home")).unwrap();
    let run = |args: &[&str]| {
        let out = lmhost_command()
            .args(args)
            .current_dir(&work)
            .env("LMHOST_HOME", home)
            .output()
            .unwrap();
        text(&out.stdout)
    };
    assert_eq!(run(&["run", "-m", "layered", "x"]), "from home\n");
    std::fs::write(work.join("model_registry.json"), entry("from cwd")).unwrap();
    assert_eq!(run(&["run", "-m", "layered", "x"]), "from cwd\n");
    let flag = home.join("flag.json");
    std::fs::write(&flag, entry("from flag")).unwrap();
    assert_eq!(
        run(&["--registry", flag.to_str().unwrap(), "run", "-m", "layered", "x"]),
        "from flag\n"
    );
    // The packaged entries are still there, last.
    assert!(run(&["models"]).contains("SmolLM2-135M-Instruct"));
}

/// `lmhost chat` with piped input: one turn per line, answers on stdout.
fn chat(home: &Path, model: &str, extra: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = lmhost_command()
        .args(["chat", "-m", model])
        .args(extra)
        .env("LMHOST_HOME", home)
        .env_remove("LMHOST_MODELS_DIR")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn chat_keeps_history_and_obeys_commands_on_the_mock_backend() {
    let tmp = TempDir::new("cli-chat-mock");
    let home = tmp.path();
    // The reply echoes the whole prompt, so each answer shows what was sent.
    let echo = r#"{"model_name": "echo", "backend": "mock", "reply": "[{prompt}]"}"#;
    let out = chat(
        home,
        echo,
        &[],
        "first\nsecond\n/reset\n\n/system Be brief.\nthird\n/nonsense\n/exit\nnever sent\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let first = "[<|user|>first\n<|assistant|>]";
    let second = format!("[<|user|>first\n<|assistant|>{first}\n<|user|>second\n<|assistant|>]");
    let third = "[<|system|>Be brief.\n<|user|>third\n<|assistant|>]";
    assert_eq!(text(&out.stdout), format!("{first}\n{second}\n{third}\n"));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("(history cleared)"), "{stderr}");
    assert!(stderr.contains("unknown command `/nonsense`"), "{stderr}");
    // Plain `mock`: one answer per line, exit at end of input.
    let out = chat(home, "mock", &["--system", "S"], "a\nb\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "mock reply\nmock reply\n");
}

#[test]
fn chat_with_smollm_streams_answers_turn_by_turn() {
    if smollm().is_none() {
        return;
    }
    let tmp = TempDir::new("cli-chat-smollm");
    let home = tmp.path();
    let q1 = "What is the capital of France? Answer in one sentence.";
    let q2 = "And what is its most famous tower called?";
    let opts = ["-l", "40", "-t", "0"];
    let with_history = chat(home, "SmolLM2-135M-Instruct", &opts, &format!("{q1}\n{q2}\n"));
    assert!(with_history.status.success(), "{}", text(&with_history.stderr));
    let with_history = text(&with_history.stdout);
    let after_reset = chat(home, "SmolLM2-135M-Instruct", &opts, &format!("{q1}\n/reset\n{q2}\n"));
    let after_reset = text(&after_reset.stdout);
    // Greedy answers to each question alone, as `run` gives them.
    let alone = |q: &str| text(&lmhost(home, &["run", "-m", "SmolLM2-135M-Instruct", "-l", "40", "-t", "0", q]).stdout);
    let (a1, a2) = (alone(q1), alone(q2));
    assert!(a1.contains("Paris"), "{a1}");
    assert!(!with_history.contains("<|im_end|>"), "{with_history}");
    // After /reset the second turn is the question alone; without it, the
    // second prompt carries the first turn, so the greedy answer differs.
    assert_eq!(after_reset, format!("{a1}{a2}"));
    assert!(with_history.starts_with(&a1), "{with_history}");
    assert_ne!(with_history, after_reset, "the second turn must see the first");
}

#[test]
fn chat_fails_clearly_for_an_unknown_model() {
    let tmp = TempDir::new("cli-chat-unknown");
    let home = tmp.path();
    let out = chat(home, "no-such-model-here", &[], "hi\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("error: no registry entry matches `no-such-model-here`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn adapter_check_passes_the_builtin_and_fails_a_broken_adapter() {
    let tmp = TempDir::new("cli-adapter-check");
    let home = tmp.path();
    let out = lmhost(home, &["adapter", "check", "chat-template", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["adapter"], "chat-template");
    assert!(report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["status"] == "pass"));

    let hostile = guest("hostile");
    let out = lmhost(home, &["adapter", "check", hostile.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("FAIL"), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("failed"), "{}", text(&out.stderr));
}

#[test]
fn adapter_check_and_info_take_remote_adapters() {
    let tmp = TempDir::new("cli-adapter-check-remote");
    let home = tmp.path();
    let out = lmhost(home, &["adapter", "check", "openai-chat"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.contains("(backend openai)"), "{table}");
    assert!(table.contains("request is HTTP"), "{table}");
    assert!(table.contains("0 failed"), "{table}");

    let out = lmhost(
        home,
        &[
            "adapter",
            "info",
            "anthropic-messages",
            "-n",
            "20",
            "--no-cold",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let overhead = &info[0]["overhead"];
    assert_eq!(overhead["backend"], "anthropic");
    assert!(overhead["shape_request"]["p50_us"].as_f64().unwrap() > 0.0);
    assert!(overhead["request"]["p50_us"].as_f64().unwrap() > 0.0);
}

#[test]
fn adapter_info_reports_size_exports_and_cost() {
    let tmp = TempDir::new("cli-adapter-info");
    let home = tmp.path();
    let out = lmhost(
        home,
        &["adapter", "info", "chat-template", "-n", "50", "--no-cold", "--json"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let info = &info[0];
    assert!(info["size_bytes"].as_u64().unwrap() > 1000);
    assert_eq!(info["sha256"].as_str().unwrap().len(), 64);
    assert!(info["exports"][0]
        .as_str()
        .unwrap()
        .starts_with("lmhost:adapter/model-adapter@0.2.0"));
    assert_eq!(info["limits"]["deadline_ms"], 2000);
    assert!(info["overhead"]["request"]["p50_us"].as_f64().unwrap() > 0.0);
}

#[test]
fn missing_named_adapter_says_how_to_build_it() {
    let tmp = TempDir::new("cli-adapter-missing");
    let home = tmp.path();
    let out = lmhost(home, &["adapter", "check", "no-such-adapter"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("no-such-adapter.wasm") && err.contains("lmhost adapter build"),
        "{err}"
    );
}

#[test]
fn threads_on_the_command_line_win_over_the_registry() {
    let Some(model) = smollm() else { return };
    let tmp = TempDir::new("cli-threads");
    let registry = tmp.path().join("threads.json");
    let entry = serde_json::json!([{"model_name": "smol-threads", "backend": "llamacpp",
        "model_path": model, "threads": 2, "n_ctx": 512}]);
    std::fs::write(&registry, entry.to_string()).unwrap();
    let registry = registry.to_string_lossy().into_owned();
    let loaded = |extra: &[&str]| {
        let mut args = vec![
            "--registry",
            registry.as_str(),
            "-vv",
            "run",
            "-m",
            "smol-threads",
            "-l",
            "2",
        ];
        args.extend_from_slice(extra);
        args.push("Hi");
        let out = lmhost(tmp.path(), &args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let log = text(&out.stderr);
        log.lines()
            .find(|l| l.contains("loaded GGUF"))
            .unwrap_or_else(|| panic!("no load line in {log}"))
            .to_string()
    };
    let line = loaded(&[]);
    assert!(line.contains("threads=2 threads_batch=2"), "{line}");
    let line = loaded(&["--threads", "1"]);
    assert!(line.contains("threads=1 threads_batch=1"), "{line}");
}

/// `lmhost list devices --json` without `LD_LIBRARY_PATH`: the binary finds
/// llama.cpp's libraries and CPU modules beside itself.
fn devices(home: &Path, cpu: Option<&str>) -> (Output, serde_json::Value) {
    let mut command = lmhost_command();
    command
        .args(["list", "devices", "--json"])
        .env("LMHOST_HOME", home)
        .env_remove("LD_LIBRARY_PATH");
    match cpu {
        Some(v) => command.env("LMHOST_LLAMA_CPU", v),
        None => command.env_remove("LMHOST_LLAMA_CPU"),
    };
    let out = command.output().expect("lmhost runs");
    let rows = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out, rows)
}

#[test]
fn list_devices_names_the_cpu_variant_chosen_for_this_cpu() {
    let tmp = TempDir::new("cli-devices");
    let (out, rows) = devices(tmp.path(), None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cpu = rows
        .as_array()
        .and_then(|r| r.iter().find(|d| d["kind"] == "cpu"))
        .unwrap_or_else(|| panic!("no cpu device in {rows}"));
    let variant = cpu["variant"].as_str().unwrap_or_else(|| panic!("no variant in {cpu}"));
    assert_eq!(cpu["variant_reason"], "best");
    // The module sits beside the binary that loaded it.
    let module = Path::new(cpu["module"].as_str().unwrap());
    assert_eq!(
        module.file_name().unwrap(),
        format!("libggml-cpu-{variant}.so").as_str()
    );
    let exe = Path::new(env!("CARGO_BIN_EXE_lmhost-under-test"));
    assert_eq!(module.parent(), exe.parent(), "{}", module.display());
    // Every variant the build made is listed, most capable first; the one
    // chosen is usable, and none ranked above it is.
    let variants = cpu["variants"].as_array().unwrap();
    assert!(variants.len() >= 10, "{variants:?}");
    let at = variants.iter().position(|v| v["variant"] == variant).unwrap();
    assert_eq!(variants[at]["usable"], true);
    for v in &variants[..at] {
        assert_eq!(v["usable"], false, "{v} ranks above {variant} and is usable");
        assert!(!v["missing"].as_array().unwrap().is_empty(), "{v}");
    }
    assert!(variants.iter().any(|v| v["variant"] == "x64" && v["usable"] == true));
    // AMX counts only when the OS grants it; without it in /proc/cpuinfo (where
    // Linux lists it only when enabled) the AMX variant is never chosen.
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if !cpuinfo.contains(" amx_int8") {
        assert_ne!(variant, "sapphirerapids");
    }
    // The text listing says the same.
    let out = lmhost_command()
        .args(["list", "devices"])
        .env("LMHOST_HOME", tmp.path())
        .env_remove("LMHOST_LLAMA_CPU")
        .output()
        .unwrap();
    let listing = text(&out.stdout);
    assert!(
        listing.contains(&format!(
            "llama.cpp CPU variant: {variant} (the most capable usable here)"
        )),
        "{listing}"
    );
}

#[test]
fn lmhost_llama_cpu_picks_another_variant_that_still_answers() {
    let tmp = TempDir::new("cli-cpu-variant");
    let (out, rows) = devices(tmp.path(), Some("x64"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cpu = rows.as_array().unwrap().iter().find(|d| d["kind"] == "cpu").unwrap();
    assert_eq!(
        (cpu["variant"].as_str(), cpu["variant_reason"].as_str()),
        (Some("x64"), Some("LMHOST_LLAMA_CPU"))
    );
    // A variant that does not exist: no variant is named, and a model load names the variable.
    let (out, rows) = devices(tmp.path(), Some("pentium-pro"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        rows.as_array().unwrap().iter().all(|d| d.get("variant").is_none()),
        "{rows}"
    );
    if smollm().is_none() {
        return;
    }
    let run = |variant: &str| {
        lmhost_command()
            .args(["run", "-m", "SmolLM2-135M-Instruct", "-l", "12"])
            .arg("What is the capital of France? Answer in one sentence.")
            .env("LMHOST_HOME", tmp.path())
            .env("LMHOST_LLAMA_CPU", variant)
            .env_remove("LD_LIBRARY_PATH")
            .output()
            .unwrap()
    };
    let out = run("pentium-pro");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("LMHOST_LLAMA_CPU is `pentium-pro`") && err.contains("haswell"),
        "{err}"
    );
    // The plainest variant (no SIMD beyond x86-64's SSE2) computes the same answer.
    let out = run("x64");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Paris"), "{}", text(&out.stdout));
}

/// After a quiet spell following a request, the llama.cpp scheduler hands the
/// heap's free memory back (`malloc_trim`), which `-vv` logs with resident
/// memory before and after; the chat goes on answering afterwards.
#[test]
fn an_idle_llama_model_gives_free_heap_back() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::time::Duration;
    if smollm().is_none() {
        return;
    }
    let tmp = TempDir::new("cli-trim");
    let mut child = lmhost_command()
        .args(["-vv", "chat", "-m", "SmolLM2-135M-Instruct", "-l", "8"])
        .env("LMHOST_HOME", tmp.path())
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let (answers, answered) = std::sync::mpsc::channel();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let printed = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in stdout.lines().map_while(Result::ok) {
            let _ = answers.send(());
            all.push(line);
        }
        all
    });
    stdin.write_all(b"Hi\n").unwrap();
    stdin.flush().unwrap();
    answered
        .recv_timeout(Duration::from_secs(120))
        .expect("no answer to the first turn");
    // Quiet: the scheduler trims 200 ms after its last work.
    std::thread::sleep(Duration::from_secs(1));
    stdin.write_all(b"Name a colour.\n").unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
    assert!(printed.join().unwrap().len() >= 2, "the second turn got no answer");
    let log = log.join().unwrap();
    let line = log
        .lines()
        .rfind(|l| l.contains("heap trimmed"))
        .unwrap_or_else(|| panic!("no trim in {log}"));
    let kib = |key: &str| -> u64 {
        let at = line.find(key).unwrap_or_else(|| panic!("no {key} in {line}")) + key.len() + 1;
        line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (before, after) = (kib("rss_before_kib"), kib("rss_after_kib"));
    assert!(before > 50_000 && after > 0, "{line}");
    // Trimming never grows the process (other threads may allocate meanwhile: 8 MiB of slack).
    assert!(after <= before + 8 * 1024, "{line}");
}
