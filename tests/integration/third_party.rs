//! `openai_compatible` against a real third-party server: llama.cpp's own
//! `llama-server`, built by `bench/llama-bench.sh` (about 15 minutes, so not
//! part of `make test`'s set-up). The test is `#[ignore]`d: without the build it
//! shows as ignored, never as passed; `make test` runs it with `--ignored` when
//! the binary is there (`LMHOST_LLAMA_SERVER` names another one).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lmhost::{GenerationParams, Message};
use serde_json::json;

use crate::remote::remote_host;

/// Where `bench/llama-bench.sh avx2` puts llama-server.
fn llama_server() -> Option<PathBuf> {
    lmhost_tests::script_build("LMHOST_LLAMA_SERVER", "llama.cpp/build-avx2/bin/llama-server")
}

/// A running llama-server, killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(binary: &Path, model: &Path, context: u32) -> Server {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(binary)
        .args([
            "-m",
            &model.to_string_lossy(),
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .args(["-c", &context.to_string(), "-t", "2", "-np", "1", "--jinja"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("llama-server starts");
    let server = Server { child, port };
    let started = Instant::now();
    loop {
        let health = std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .and_then(|mut s| {
                use std::io::{Read, Write};
                s.write_all(b"GET /health HTTP/1.0\r\n\r\n").ok()?;
                let mut reply = String::new();
                s.read_to_string(&mut reply).ok()?;
                Some(reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200"))
            });
        if health == Some(true) {
            return server;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "llama-server did not become healthy"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs llama.cpp's llama-server: bench/llama-bench.sh builds it (make test runs this test when it is there)"]
fn openai_compatible_against_llama_server() {
    let binary = llama_server().expect("llama-server not built: run bench/llama-bench.sh avx2");
    let model = lmhost_tests::smollm().expect("SmolLM2 (make model)");
    let server = start(&binary, &model, 512);
    let entry = json!({"model_name": "llama-server", "backend": "openai_compatible",
                       "model_id": "SmolLM2", "base_url": format!("http://127.0.0.1:{}/v1", server.port),
                       "max_retries": 0});
    let (host, _home) = remote_host(json!([entry]), json!({}));
    let remote = host.load("llama-server").unwrap();
    let (local_host, _local_home) = lmhost_tests::host(None);
    let local = local_host.load("SmolLM2-135M-Instruct").unwrap();
    let messages = [
        Message::system("You are a helpful assistant."),
        Message::user("What is the capital of France?"),
    ];

    // Whole: an answer, the server's usage, and the same prompt as lmhost's own
    // rendering of the model's template (llama-server renders it itself).
    let greedy = GenerationParams::greedy(24);
    let whole = remote.generate(&messages, &greedy).unwrap();
    let mine = local.generate(&messages, &greedy).unwrap();
    assert!(!whole.response_text.is_empty(), "{whole:?}");
    assert_eq!(whole.usage.prompt_tokens, mine.usage.prompt_tokens, "{whole:?}");
    assert!(whole.usage.completion_tokens > 0 && whole.usage.completion_tokens <= 24);
    assert!(["stop", "length"].contains(&whole.finish_reason.as_str()), "{whole:?}");

    // Streamed: the same greedy text, usage on the stream.
    let mut pieces = String::new();
    let streamed = remote
        .generate_stream_deltas(&messages, &greedy, |d| {
            pieces.push_str(&d.text);
            true
        })
        .unwrap();
    assert_eq!(streamed.response_text, whole.response_text);
    assert_eq!(pieces.trim(), whole.response_text.trim());
    assert_eq!(streamed.usage.completion_tokens, whole.usage.completion_tokens);

    // Stop strings end the answer before them.
    let first_word = whole
        .response_text
        .split_whitespace()
        .nth(1)
        .expect("two words")
        .to_string();
    let stopped = remote
        .generate(
            &messages,
            &GenerationParams {
                stop: vec![first_word.clone()],
                ..GenerationParams::greedy(24)
            },
        )
        .unwrap();
    assert_eq!(stopped.finish_reason, "stop", "{stopped:?}");
    assert!(!stopped.response_text.contains(&first_word), "{stopped:?}");

    // Over the server's context (512): the server's error, naming the model.
    let long = Message::user("word ".repeat(800));
    let err = remote.generate(&[long], &greedy).unwrap_err().to_string();
    assert!(err.contains("`llama-server`") && err.contains("400"), "{err}");
    assert!(err.contains("context"), "{err}");
}
