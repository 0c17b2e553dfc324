//! Hostile text on the host's own parsers, through the entry points a user has:
//! a registry template of any deep-structure family (`lmhost_template::hostile`)
//! and JSON nested 100,000 deep, through `lmhost registry check`, `lmhost run`
//! and `lmhost serve`. Each gets a clear error naming the limit, never a signal,
//! in bounded time and memory; the server keeps serving its other models.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use lmhost_template::hostile::{chain, FAMILIES};
use lmhost_tests::TempDir;
use serde_json::{json, Value};

use crate::lmhost_command;

/// Terms per hostile template: 10–30× past the shape bound, and past where
/// the parser overflowed an 8 MiB main-thread stack before the bound.
const TERMS: usize = 30_000;

/// Peak RSS any one lmhost process of these tests may reach.
const MAX_RSS_KIB: i64 = 1 << 20;

/// Run lmhost; its own peak memory must stay under [`MAX_RSS_KIB`].
fn lmhost(home: &Path, args: &[&str]) -> Output {
    let (out, peak) = lmhost_tests::output_and_peak_rss(
        lmhost_command()
            .args(args)
            .env("LMHOST_HOME", home)
            .env_remove("LMHOST_MODELS_DIR"),
    );
    assert!(peak < MAX_RSS_KIB, "lmhost {args:.80?} peaked at {peak} KiB");
    out
}

/// A registry file: one mock model per hostile family (`deep-<family>`), and
/// a normal one (`normal`).
fn hostile_registry(dir: &Path) -> PathBuf {
    let mut entries: Vec<Value> = FAMILIES
        .iter()
        .map(|family| {
            json!({
                "model_name": format!("deep-{family}"),
                "backend": "mock",
                "custom_chat_template": chain(family, TERMS).unwrap(),
            })
        })
        .collect();
    entries.push(json!({"model_name": "normal", "backend": "mock", "reply": "fine"}));
    let file = dir.join("hostile.json");
    std::fs::write(&file, serde_json::to_vec(&entries).unwrap()).unwrap();
    file
}

fn assert_exited_with_error(out: &Output, what: &str) {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), None, "{what} died of a signal: {:?}", out.status);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn registry_check_reports_every_deep_template_family_as_an_error() {
    let tmp = TempDir::new("untrusted-check");
    let file = hostile_registry(tmp.path());
    let started = Instant::now();
    let out = lmhost(tmp.path(), &["registry", "check", file.to_str().unwrap()]);
    let took = started.elapsed();
    assert_exited_with_error(&out, "registry check");
    let report = String::from_utf8_lossy(&out.stdout);
    for family in FAMILIES {
        let line = report
            .lines()
            .find(|l| l.starts_with("error: ") && l.contains(&format!("`deep-{family}`")))
            .unwrap_or_else(|| panic!("no error for deep-{family}:\n{report:.2000}"));
        assert!(
            line.contains("custom_chat_template") && line.contains("limit"),
            "{line:.400}"
        );
        assert!(line.contains("line 1"), "{line:.400}");
    }
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[test]
fn run_refuses_a_deep_template_with_a_clear_error() {
    let tmp = TempDir::new("untrusted-run");
    let file = hostile_registry(tmp.path());
    let registry = file.to_str().unwrap();
    for family in ["plus", "attr", "filter", "not", "elif", "ternary_else"] {
        let model = format!("deep-{family}");
        let started = Instant::now();
        let out = lmhost(tmp.path(), &["--registry", registry, "run", "-m", &model, "hi"]);
        assert!(started.elapsed() < Duration::from_secs(30), "{family}");
        assert_exited_with_error(&out, &model);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&model) && err.contains("limit"), "{err:.400}");
    }
    // The same template as an ad-hoc JSON query.
    let query = json!({"model_name": "adhoc", "backend": "mock", "custom_chat_template": chain("neg", TERMS).unwrap()});
    let out = lmhost(tmp.path(), &["run", "-m", &query.to_string(), "hi"]);
    assert_exited_with_error(&out, "ad-hoc query");
    let ok = lmhost(tmp.path(), &["--registry", registry, "run", "-m", "normal", "hi"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}

#[test]
fn json_nested_100k_deep_is_an_error_not_an_overflow() {
    let tmp = TempDir::new("untrusted-json");
    let file = tmp.path().join("deep.json");
    std::fs::write(&file, format!("{}{}", "[".repeat(100_000), "]".repeat(100_000))).unwrap();
    let out = lmhost(tmp.path(), &["registry", "check", file.to_str().unwrap()]);
    assert_exited_with_error(&out, "registry check of deep JSON");
    let out = lmhost(tmp.path(), &["--registry", file.to_str().unwrap(), "models"]);
    assert_exited_with_error(&out, "--registry with deep JSON");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("recursion limit"), "{err:.400}");
}

/// `lmhost serve` on a free port, and the address it printed.
struct Serving {
    child: Child,
    address: String,
}

impl Serving {
    fn start(home: &Path, registry: &Path) -> Self {
        let mut child = lmhost_command()
            .args(["--registry", registry.to_str().unwrap(), "serve", "--port", "0"])
            .env("LMHOST_HOME", home)
            .env_remove("LMHOST_MODELS_DIR")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("lmhost serve starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let address = loop {
            let line = lines.next().expect("lmhost serve prints its address").unwrap();
            if let Some(url) = line.strip_prefix("lmhost: serving on http://") {
                break url.to_string();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, address }
    }

    /// POST `body` to `path`: the status and the body.
    fn post(&self, path: &str, body: &[u8]) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.address).expect("the server accepts");
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.address,
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("the server answers");
        let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, answer)
    }

    fn chat(&self, model: &str) -> (u16, String) {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
        self.post("/v1/chat/completions", body.to_string().as_bytes())
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Peak RSS of the server so far, in KiB.
    fn peak_rss_kib(&self) -> i64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_refuses_deep_templates_per_model_and_keeps_serving() {
    let tmp = TempDir::new("untrusted-serve");
    let registry = hostile_registry(tmp.path());
    let mut server = Serving::start(tmp.path(), &registry);
    for family in FAMILIES {
        let model = format!("deep-{family}");
        let started = Instant::now();
        let (status, answer) = server.chat(&model);
        assert!(started.elapsed() < Duration::from_secs(30), "{model}");
        assert!((400..600).contains(&status), "{model}: {answer:.400}");
        assert!(answer.contains("limit"), "{model}: {answer:.400}");
        assert!(server.alive(), "the server died on {model}");
        let (status, answer) = server.chat("normal");
        assert_eq!(status, 200, "after {model}: {answer:.400}");
        assert!(answer.contains("fine"), "{answer:.400}");
    }
    // JSON nested 100,000 deep in the fields the server reads as free-form
    // JSON (`content`, `tools`, `prompt`): a 400, and the server goes on.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for (path, body) in [
        (
            "/v1/chat/completions",
            format!(r#"{{"model": "normal", "messages": [{{"role": "user", "content": {deep}}}]}}"#),
        ),
        (
            "/v1/chat/completions",
            format!(r#"{{"model": "normal", "messages": [], "tools": {deep}}}"#),
        ),
        ("/v1/completions", format!(r#"{{"model": "normal", "prompt": {deep}}}"#)),
        ("/v1/completions", deep.clone()),
    ] {
        let (status, answer) = server.post(path, body.as_bytes());
        assert_eq!(status, 400, "{answer:.400}");
        assert!(server.alive());
    }
    let (status, answer) = server.post(
        "/v1/completions",
        format!(r#"{{"model": "normal", "prompt": {deep}}}"#).as_bytes(),
    );
    assert!(answer.contains("recursion limit"), "{status} {answer:.400}");
    let (status, _) = server.chat("normal");
    assert_eq!(status, 200);
    assert!(server.alive());
    assert!(server.peak_rss_kib() < MAX_RSS_KIB, "{} KiB", server.peak_rss_kib());
}

/// Every chat template the project knows (the packaged registry, the clemcore
/// registry when present) parses, with its shape far under the bound: 4× room
/// in tokens per tag and in block depth.
#[test]
fn real_templates_are_far_under_the_shape_bound() {
    fn templates(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    match v {
                        Value::String(s) if key == "custom_chat_template" => out.push(s.clone()),
                        _ => templates(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| templates(v, out)),
            _ => {}
        }
    }
    let mut files = vec![lmhost_tests::repo_root().join("registry/model_registry.json")];
    files.extend(lmhost_tests::compat_registry());
    let mut found = Vec::new();
    for file in &files {
        templates(
            &serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap(),
            &mut found,
        );
    }
    assert!(!found.is_empty());
    for template in &found {
        lmhost_template::check(template).unwrap_or_else(|e| panic!("{e}: {template:.200}"));
        let shape = lmhost_template::measure_shape(template);
        assert!(shape.max_tag_tokens * 4 <= lmhost_template::MAX_TAG_TOKENS, "{shape:?}");
        assert!(
            shape.max_block_depth * 4 <= lmhost_template::MAX_BLOCK_DEPTH,
            "{shape:?}"
        );
    }
}
