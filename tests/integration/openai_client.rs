//! `lmhost serve` as a user starts it, driven by the official `openai` Python
//! client (tests/python/test_openai_client.py) with SmolLM2; then SIGTERM must
//! stop it cleanly.
//!
//! Skipped with a message when `import openai` fails or the model is missing,
//! but failing when `CI` is set (`make setup` installs the client).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use lmhost_tests::{repo_root, smollm, TempDir};

use crate::lmhost_command;

fn skip(why: &str) {
    assert!(std::env::var_os("CI").is_none(), "CI must run this test: {why}");
    eprintln!("skipped: {why}");
}

#[test]
fn openai_python_client_against_lmhost_serve() {
    let root = repo_root();
    if smollm().is_none() {
        return;
    }
    let importable = Command::new("python3")
        .args(["-c", "import openai"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !importable {
        return skip("the `openai` Python package is missing (run `make setup`)");
    }
    let home = TempDir::new("openai-client");
    let mut server = lmhost_command()
        .args(["serve", "-v", "--port", "0", "-m", "SmolLM2-135M-Instruct"])
        .env("LMHOST_HOME", home.path())
        .env_remove("LMHOST_MODELS_DIR")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lmhost serve starts");
    let mut stderr = BufReader::new(server.stderr.take().unwrap());
    let mut seen = String::new();
    let base = loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            let _ = server.kill();
            panic!("lmhost serve exited before listening: {seen}");
        }
        seen.push_str(&line);
        if let Some(url) = line.trim().strip_prefix("lmhost: serving on ") {
            break format!("{url}/v1");
        }
    };
    let client = Command::new("python3")
        .arg(root.join("tests/python/test_openai_client.py"))
        .arg(&base)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&client.stdout);
    println!("{stdout}");
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let status = server.wait().unwrap();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    drop(home);
    assert!(
        client.status.success(),
        "the openai client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&client.stderr)
    );
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
    assert!(status.success(), "SIGTERM stops the server cleanly: {status:?}\n{rest}");
    assert!(rest.contains("lmhost: stopped"), "{rest}");
    // `-v`: one access-log line per request, streamed ones included.
    let access: Vec<&str> = rest.lines().filter(|l| l.contains("lmhost::access")).collect();
    let whole = "method=POST path=/v1/chat/completions status=200 model=SmolLM2-135M-Instruct prompt_tokens=";
    assert!(access.iter().filter(|l| l.contains(whole)).count() >= 3, "{access:#?}");
    assert!(
        access.iter().any(|l| l.contains("path=/v1/models status=200 model=-")),
        "{access:#?}"
    );
    assert!(
        access.iter().any(|l| l.contains("status=404 model=no-such-model")),
        "{access:#?}"
    );
    assert!(access.iter().all(|l| l.contains(" ms=")), "{access:#?}");
}
