//! The `lmhost` binary, run as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn temp_home(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lmhost-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Run lmhost from the repository root with a private home.
fn lmhost(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lmhost"))
        .args(args)
        .current_dir(repo_root())
        .env("LMHOST_HOME", home)
        .env_remove("LMHOST_MODELS_DIR")
        .output()
        .expect("lmhost runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn have_model() -> bool {
    let present = repo_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf").is_file();
    if !present {
        assert!(std::env::var_os("CI").is_none(), "CI must run `make model` first");
        eprintln!("skipped: the model is missing (run `make model`)");
    }
    present
}

#[test]
fn run_answers_with_the_default_model() {
    if !have_model() {
        return;
    }
    let home = temp_home("run");
    let out = lmhost(
        &home,
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
    if !have_model() {
        return;
    }
    let home = temp_home("json");
    let out = lmhost(&home, &["run", "--json", "-l", "8", "--system", "Be brief.", "Hi"]);
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
    let home = temp_home("stdin");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lmhost"))
        .args(["run", "-m", r#"{"model_name": "mock", "reply": "you said: {prompt}"}"#])
        .current_dir(repo_root())
        .env("LMHOST_HOME", &home)
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
    let home = temp_home("unknown");
    let out = lmhost(&home, &["run", "-m", "SmolLM2-135M-instruct-x", "hi"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        "error: no registry entry matches `SmolLM2-135M-instruct-x`; did you mean `SmolLM2-135M-Instruct`?"
    );
}

#[test]
fn models_lists_layers_in_lookup_order() {
    let home = temp_home("models");
    std::fs::write(
        home.join("model_registry.json"),
        r#"[{"model_name": "mine", "backend": "mock"}]"#,
    )
    .unwrap();
    let out = lmhost(&home, &["models", "--json"]);
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
    let home = temp_home("badflag");
    let file = home.join("broken.json");
    std::fs::write(&file, "[{\"model_name\": \"a\",}]").unwrap();
    let out = lmhost(&home, &["--registry", file.to_str().unwrap(), "models"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("registry `{}` is not valid JSON", file.display())),
        "{err}"
    );
    assert!(err.contains("line 1, column 21"), "{err}");
}
