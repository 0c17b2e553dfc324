//! What an adapter's request may carry out of the host: paths that a gateway
//! could decode or normalise out of the base path, routing-override headers and
//! absurd header counts are refused before anything is sent, the error quotes
//! the value truncated, and the next normal request still goes through.

use std::time::{Duration, Instant};

use lmhost::{GenerationParams, Host, Message};
use lmhost_tests::fixture_api::{FixtureApi, Reply};
use serde_json::{json, Value};

use crate::remote::{hostile_entry, remote_host, SECRET};

fn hi(host: &Host, name: &str) -> lmhost::Result<lmhost::Generation> {
    host.load(name)?
        .generate(&[Message::user("hi")], &GenerationParams::default())
}

#[test]
fn encoded_dot_segments_slashes_and_path_parameters_are_refused() {
    let api = FixtureApi::start(vec![Reply::json(200, json!({"ok": true}))]);
    let base = format!("{}/v1", api.url());
    let targets = [
        "/%2e%2e%2f%2e%2e%2fx",  // encoded dots and slashes
        "/..%2fx",               // raw dots, encoded slash
        "/%2F..%2Fx",            // upper case
        "/..;/x",                // a path parameter after `..`
        "/chat;jsessionid=1",    // any path parameter
        "/%3b/x",                // an encoded `;`
        "/%5c..%5cx",            // encoded backslashes
        "/%252e%252e/x",         // double encoding
        "/%25252e%25252e/x",     // triple encoding
        "/%c0%ae%c0%ae/x",       // overlong UTF-8 dots
        "/%u002e%u002e/x",       // %u escapes
        "/%ef%bc%8e%ef%bc%8e/x", // fullwidth dots, encoded
        "/\u{ff0e}\u{ff0e}/x",   // fullwidth dots, raw
        "/%2e%2E/x",             // mixed case
        "/%00/../x",             // a NUL before the dots
        "/...",                  // only dots
    ];
    let mut entries: Vec<Value> = targets
        .iter()
        .enumerate()
        .map(|(i, target)| {
            let mut e = hostile_entry(&format!("path-{i}"), "http-elsewhere", &base);
            e["target"] = json!(target);
            e
        })
        .collect();
    entries.push(hostile_entry("normal", "http-exfiltrate", &base));
    let (host, _home) = remote_host(Value::Array(entries), json!({"openai_compatible": {"api_key": SECRET}}));
    // Refusals first, each followed by a normal request that must work.
    for (i, target) in targets.iter().enumerate() {
        let name = format!("path-{i}");
        let err = hi(&host, &name).unwrap_err().to_string();
        assert!(
            err.contains(&format!("`{name}`")) && err.contains("refuses"),
            "{target}: {err}"
        );
        let before = api.requests().len();
        hi(&host, "normal").unwrap_or_else(|e| panic!("after {target}: {e}"));
        let after = api.requests();
        assert_eq!(after.len(), before + 1, "{target}: {after:#?}");
        assert_eq!(after[before].path, "/v1/chat/completions", "{target}");
    }
}

#[test]
fn routing_override_headers_are_refused() {
    let api = FixtureApi::start(vec![Reply::json(200, json!({"ok": true}))]);
    let base = format!("{}/v1", api.url());
    let headers = [
        "X-Original-URL",
        "X-Rewrite-URL",
        "X-Forwarded-Host",
        "X-Forwarded-Prefix",
        "X-Forwarded-For",
        "Forwarded",
        "X-HTTP-Method-Override",
        "X-HTTP-Method",
        "X-Method-Override",
        "X-Host",
        "x-envoy-original-path",
        "X-Real-IP",
    ];
    let mut entries: Vec<Value> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let mut e = hostile_entry(&format!("header-{i}"), "http-headers", &base);
            e["send_headers"] = json!([[h, "/admin"]]);
            e
        })
        .collect();
    let mut normal = hostile_entry("normal", "http-headers", &base);
    normal["send_headers"] = json!([["X-Request-Id", "abc"]]);
    entries.push(normal);
    let (host, _home) = remote_host(Value::Array(entries), json!({}));
    for (i, h) in headers.iter().enumerate() {
        let name = format!("header-{i}");
        let err = hi(&host, &name).unwrap_err().to_string();
        assert!(
            err.contains(&format!("`{name}`")) && err.contains(&format!("header `{h}`")),
            "{h}: {err}"
        );
        assert!(api.requests().is_empty(), "{h}: {:#?}", api.requests());
    }
    hi(&host, "normal").unwrap();
    assert_eq!(api.only_request().header("x-request-id"), Some("abc"));
}

#[test]
fn huge_paths_and_header_counts_end_in_short_errors_not_panics() {
    let api = FixtureApi::start(vec![Reply::json(200, json!({"ok": true}))]);
    let base = format!("{}/v1", api.url());
    // 8 MiB of path, refused for its `\`: the error quotes 200 characters of it.
    let mut long_path = hostile_entry("long-path", "http-elsewhere", &base);
    long_path["target"] = json!(format!("/{}\\", "a".repeat(8 << 20)));
    // Past what an HTTP header map holds without panicking (~32k entries).
    let mut many = hostile_entry("many-headers", "http-headers", &base);
    many["send_headers"] = json!((0..40_000)
        .map(|i| [format!("x-h{i}"), "v".to_string()])
        .collect::<Vec<_>>());
    let mut entries = vec![long_path, many, hostile_entry("normal", "http-exfiltrate", &base)];
    for e in &mut entries {
        e["adapter_limits"] = json!({"deadline_ms": 20_000});
    }
    let (host, _home) = remote_host(Value::Array(entries), json!({}));
    for name in ["long-path", "many-headers"] {
        let model = host.load(name).unwrap();
        let started = Instant::now();
        let err = model
            .generate(&[Message::user("hi")], &GenerationParams::default())
            .unwrap_err()
            .to_string();
        let took = started.elapsed();
        eprintln!(
            "{name}: refused in {took:?}, error of {} bytes: {}",
            err.len(),
            &err[..err.len().min(300)]
        );
        // The adapter layer's caps (`adapters::ledger`) stop both before the
        // HTTP engine, whose own checks (unit tests of `url.rs`) stay as a
        // second line: either names what was refused.
        assert!(
            err.contains(&format!("`{name}`")) || err.contains("over the limit of"),
            "{name}: {}",
            &err[..err.len().min(500)]
        );
        assert!(err.len() < 2000, "{name}: an error of {} bytes", err.len());
        assert!(took < Duration::from_secs(20), "{name}: {took:?}");
    }
    assert!(api.requests().is_empty());
    hi(&host, "normal").unwrap();
    assert_eq!(api.requests().len(), 1);
}
