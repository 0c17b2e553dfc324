//! Remote backends: the HTTP engine, the provider adapters, keys and retries.
//!
//! Vendors cannot be reached from tests: [`FixtureApi`] stands in for them on
//! loopback, records exactly what lmhost sent, and answers in the vendors'
//! documented shapes. `openai_compatible` is also tested against a real
//! OpenAI-compatible server: lmhost's own `serve`, running SmolLM2.

use std::time::{Duration, Instant};

use lmhost::{GenerationParams, Host, HostConfig, Message};
use lmhost_tests::fixture_api::{Body, FixtureApi, Reply};
use lmhost_tests::{guest, TempDir};
use serde_json::{json, Value};

/// A key that must never show up anywhere but its header.
const SECRET: &str = "sk-lmhost-test-SECRET-7f3a9c1e5b";

/// A host whose only key file holds `keys` (environment keys ignored) and whose
/// registry is `entries`.
fn remote_host(entries: Value, keys: Value) -> (Host, TempDir) {
    let home = TempDir::new("remote");
    let key_file = home.path().join("key.json");
    std::fs::write(&key_file, keys.to_string()).unwrap();
    let registry = home.path().join("registry.json");
    std::fs::write(&registry, entries.to_string()).unwrap();
    let mut config = HostConfig::with_home(home.path().to_path_buf());
    config.key_files = vec![key_file];
    config.keys_from_env = false;
    config.registry_files = vec![registry];
    (Host::with_config(config).expect("host starts"), home)
}

fn hostile_entry(name: &str, mode: &str, base_url: &str) -> Value {
    json!({
        "model_name": name,
        "backend": "openai_compatible",
        "model_id": "m",
        "base_url": base_url,
        "adapter": guest("hostile"),
        "hostile": mode,
        "max_retries": 0,
    })
}

#[test]
fn an_adapter_never_sees_the_key_and_cannot_forge_credentials() {
    let api = FixtureApi::start(vec![Reply::json(200, json!({"ok": true}))]);
    let entries = json!([
        hostile_entry("exfiltrate", "http-exfiltrate", &format!("{}/v1", api.url())),
        hostile_entry("forge", "http-auth", &format!("{}/v1", api.url())),
    ]);
    let (host, _home) = remote_host(entries, json!({"openai_compatible": {"api_key": SECRET}}));

    // Everything the adapter can see goes into the body: the key is not in it,
    // only in the header the host adds.
    let model = host.load("exfiltrate").unwrap();
    let g = model.generate(&[Message::user("hello")], &GenerationParams::default()).unwrap();
    let sent = api.only_request();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {SECRET}").as_str()));
    assert!(sent.body.contains("\"model_name\":\"exfiltrate\""), "{}", sent.body);
    assert!(sent.body.contains("hello"), "{}", sent.body);
    for (what, text) in [("body", &sent.body), ("path", &sent.path), ("model info", &model.model_info().spec_json)] {
        assert!(!text.contains(SECRET) && !text.contains("7f3a9c1e5b"), "the key is in the {what}: {text}");
    }
    assert!(!g.prompt.to_string().contains(SECRET));

    // A forged Authorization header is refused before anything is sent.
    let err = host
        .load("forge")
        .unwrap()
        .generate(&[Message::user("hi")], &GenerationParams::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("`forge`") && err.contains("header `Authorization`"), "{err}");
    assert_eq!(api.requests().len(), 1, "the forged request went out");
}

#[test]
fn an_adapter_cannot_send_to_another_host() {
    let api = FixtureApi::start(vec![Reply::json(200, json!({"ok": true}))]);
    let elsewhere = FixtureApi::start(vec![Reply::json(200, json!({"stolen": true}))]);
    let targets = [
        format!("{}/steal", elsewhere.url()),
        format!("//{}/steal", elsewhere.url().trim_start_matches("http://")),
        "/../../steal".to_string(),
        "/%2e%2e/steal".to_string(),
        "steal".to_string(),
    ];
    let entries: Vec<Value> = targets
        .iter()
        .enumerate()
        .map(|(i, target)| {
            let mut e = hostile_entry(&format!("elsewhere-{i}"), "http-elsewhere", &format!("{}/v1", api.url()));
            e["target"] = json!(target);
            e
        })
        .collect();
    let (host, _home) = remote_host(Value::Array(entries), json!({"openai_compatible": {"api_key": SECRET}}));
    for (i, target) in targets.iter().enumerate() {
        let name = format!("elsewhere-{i}");
        let err = host
            .load(name.as_str())
            .unwrap()
            .generate(&[Message::user("hi")], &GenerationParams::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("`{name}`")) && err.contains("refuses"),
            "{target}: {err}"
        );
    }
    assert!(elsewhere.requests().is_empty(), "{:?}", elsewhere.requests());
    assert!(api.requests().is_empty(), "{:?}", api.requests());
}

#[test]
fn a_429_with_retry_after_is_retried_once_after_the_wait() {
    let api = FixtureApi::start(vec![
        Reply::json(429, json!({"error": {"message": "slow down"}})).with_header("Retry-After", "1"),
        Reply::json(200, json!({"ok": true})),
    ]);
    let mut entry = hostile_entry("retry", "http-exfiltrate", &api.url());
    entry["max_retries"] = json!(3);
    let (host, _home) = remote_host(json!([entry]), json!({}));
    let started = Instant::now();
    let g = host
        .load("retry")
        .unwrap()
        .generate(&[Message::user("hi")], &GenerationParams::default())
        .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(g.response, json!({"ok": true}));
    let requests = api.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let gap = requests[1].at - requests[0].at;
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    assert!(gap < Duration::from_secs(10), "retried after {gap:?}");
}

#[test]
fn server_errors_end_in_a_clear_error_after_the_configured_attempts() {
    let api = FixtureApi::start(vec![Reply::json(500, json!({"error": {"message": "the upstream broke"}}))]);
    let mut entry = hostile_entry("broken", "http-exfiltrate", &api.url());
    entry["max_retries"] = json!(2);
    entry["retry_backoff_ms"] = json!(20);
    let (host, _home) = remote_host(json!([entry]), json!({}));
    let err = host
        .load("broken")
        .unwrap()
        .generate(&[Message::user("hi")], &GenerationParams::default())
        .unwrap_err()
        .to_string();
    assert_eq!(api.requests().len(), 3);
    assert!(
        err.contains("`broken`") && err.contains("500") && err.contains("the upstream broke") && err.contains("after 3 attempts"),
        "{err}"
    );
    // Backoff doubles: 20 ms, then 40 ms.
    let r = api.requests();
    assert!(r[1].at - r[0].at >= Duration::from_millis(20));
    assert!(r[2].at - r[1].at >= Duration::from_millis(40));
}

#[test]
fn client_errors_are_not_retried_and_name_the_model_and_the_key_source() {
    let api = FixtureApi::start(vec![Reply::json(
        401,
        json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}),
    )]);
    let (host, home) = remote_host(
        json!([hostile_entry("unauthorised", "http-exfiltrate", &api.url())]),
        json!({"openai_compatible": {"api_key": SECRET}}),
    );
    let err = host
        .load("unauthorised")
        .unwrap()
        .generate(&[Message::user("hi")], &GenerationParams::default())
        .unwrap_err()
        .to_string();
    assert_eq!(api.requests().len(), 1);
    let key_file = home.path().join("key.json");
    assert!(
        err.contains("`unauthorised`")
            && err.contains("401")
            && err.contains("Incorrect API key provided")
            && err.contains(key_file.to_str().unwrap()),
        "{err}"
    );
    assert!(!err.contains(SECRET), "{err}");
}

#[test]
fn timeouts_and_unreachable_servers_are_clear_errors() {
    let api = FixtureApi::start(vec![Reply {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: Body::Stall(Duration::from_secs(5)),
    }]);
    let mut stalled = hostile_entry("stalled", "http-exfiltrate", &api.url());
    stalled["chunk_timeout_s"] = json!(0.3);
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = hostile_entry("unreachable", "http-exfiltrate", &closed_url);
    let (host, _home) = remote_host(json!([stalled, unreachable]), json!({}));
    let started = Instant::now();
    let err = host
        .load("stalled")
        .unwrap()
        .generate(&[Message::user("hi")], &GenerationParams::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("`stalled`") && err.contains("chunk_timeout_s"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    let err = host
        .load("unreachable")
        .unwrap()
        .generate(&[Message::user("hi")], &GenerationParams::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("`unreachable`") && err.contains(&closed_url), "{err}");
}

#[test]
fn a_remote_backend_without_a_key_says_where_to_put_one() {
    let (host, _home) = remote_host(
        json!([{"model_name": "keyless", "backend": "anthropic", "model_id": "claude-x"}]),
        json!({}),
    );
    let err = host.load("keyless").unwrap_err().to_string();
    assert!(
        err.contains("`keyless`") && err.contains("ANTHROPIC_API_KEY") && err.contains("\"anthropic\""),
        "{err}"
    );
    // And a key in a registry entry is refused: adapters see every key.
    let (host, _home) = remote_host(
        json!([{"model_name": "leaky", "backend": "openai", "model_id": "gpt", "api_key": SECRET}]),
        json!({"openai": {"api_key": SECRET}}),
    );
    let err = host.load("leaky").unwrap_err().to_string();
    assert!(err.contains("`api_key`") && err.contains("key.json") && !err.contains(SECRET), "{err}");
}
