//! Remote backends: the HTTP engine, the provider adapters, keys and retries.
//!
//! Vendors cannot be reached from tests: [`FixtureApi`] stands in for them on
//! loopback, records exactly what lmhost sent, and answers in the vendors'
//! documented shapes. `openai_compatible` is also tested against a real
//! OpenAI-compatible server: lmhost's own `serve`, running SmolLM2.

use std::time::{Duration, Instant};

use lmhost::{GenerationParams, Host, HostConfig, Message, ResponseFormat, Tool, ToolChoice};
use lmhost_tests::fixture_api::{Body, FixtureApi, Reply};
use lmhost_tests::{guest, TempDir};
use serde_json::{json, Value};

/// A key that must never show up anywhere but its header.
pub(crate) const SECRET: &str = "sk-lmhost-test-SECRET-7f3a9c1e5b";

/// A host whose only key file holds `keys` (environment keys ignored) and whose
/// registry is `entries`, in a file the test marks trusted: its entries point
/// at loopback stand-ins and must get the keys (`key_origins.rs` tests the
/// untrusted case).
pub(crate) fn remote_host(entries: Value, keys: Value) -> (Host, TempDir) {
    let home = TempDir::new("remote");
    let key_file = home.path().join("key.json");
    std::fs::write(&key_file, keys.to_string()).unwrap();
    let registry = home.path().join("registry.json");
    std::fs::write(&registry, entries.to_string()).unwrap();
    let mut config = HostConfig::with_home(home.path().to_path_buf());
    config.key_files = vec![key_file];
    config.keys_from_env = false;
    config.registry_files = vec![registry.clone()];
    config.trusted_registries = vec![registry];
    (Host::with_config(config).expect("host starts"), home)
}

pub(crate) fn hostile_entry(name: &str, mode: &str, base_url: &str) -> Value {
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
    let g = model
        .generate(&[Message::user("hello")], &GenerationParams::default())
        .unwrap();
    let sent = api.only_request();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {SECRET}").as_str()));
    assert!(sent.body.contains("\"model_name\":\"exfiltrate\""), "{}", sent.body);
    assert!(sent.body.contains("hello"), "{}", sent.body);
    for (what, text) in [
        ("body", &sent.body),
        ("path", &sent.path),
        ("model info", &model.model_info().spec_json),
    ] {
        assert!(
            !text.contains(SECRET) && !text.contains("7f3a9c1e5b"),
            "the key is in the {what}: {text}"
        );
    }
    assert!(!g.prompt.to_string().contains(SECRET));

    // A forged Authorization header is refused before anything is sent.
    let err = host
        .load("forge")
        .unwrap()
        .generate(&[Message::user("hi")], &GenerationParams::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`forge`") && err.contains("header `Authorization`"),
        "{err}"
    );
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
            let mut e = hostile_entry(
                &format!("elsewhere-{i}"),
                "http-elsewhere",
                &format!("{}/v1", api.url()),
            );
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
    // A 10 ms backoff: only the server's Retry-After can explain a 1 s wait.
    entry["retry_backoff_ms"] = json!(10);
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
    let api = FixtureApi::start(vec![Reply::json(
        500,
        json!({"error": {"message": "the upstream broke"}}),
    )]);
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
        err.contains("`broken`")
            && err.contains("500")
            && err.contains("the upstream broke")
            && err.contains("after 3 attempts"),
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
    assert!(
        err.contains("`api_key`") && err.contains("key.json") && !err.contains(SECRET),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// The provider adapters, each against the stand-in speaking its vendor's shapes.

fn params() -> GenerationParams {
    GenerationParams {
        max_tokens: Some(32),
        temperature: Some(0.5),
        top_p: Some(0.9),
        seed: Some(7),
        stop: vec!["END".into()],
        ..GenerationParams::default()
    }
}

fn conversation() -> Vec<Message> {
    vec![
        Message::system("Be brief."),
        Message::user("Capital of France?"),
        Message::assistant("Which France?"),
        Message::user("The country."),
    ]
}

/// Generate streaming; the pieces must concatenate to `response_text`.
fn streamed(model: &lmhost::Model, messages: &[Message], params: &GenerationParams) -> lmhost::Generation {
    let mut pieces = String::new();
    let g = model
        .generate_stream(messages, params, |piece| pieces.push_str(piece))
        .unwrap();
    assert_eq!(pieces, g.response_text, "streamed pieces differ from the answer");
    g
}

fn openai_reply(text: &str, finish: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 21, "completion_tokens": 3, "total_tokens": 24}
    })
}

#[test]
fn openai_sends_the_documented_request_and_reads_reply_and_stream() {
    let api = FixtureApi::start(vec![
        Reply::json(200, openai_reply("  Paris.\n", "stop")),
        Reply::events(&[
            json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
            json!({"choices": [{"index": 0, "delta": {"content": " Par"}}]}),
            json!({"choices": [{"index": 0, "delta": {"content": "is. "}}]}),
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}),
            json!({"choices": [], "usage": {"prompt_tokens": 21, "completion_tokens": 3}}),
            json!("[DONE]"),
        ]),
        // OpenAI's streamed tool calls: the id and name first, the arguments in pieces.
        Reply::events(&[
            json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": null, "tool_calls": [
                {"index": 0, "id": "call_abc", "type": "function", "function": {"name": "f", "arguments": ""}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"x\""}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
            json!("[DONE]"),
        ]),
    ]);
    let entry = json!({"model_name": "gpt-test", "backend": "openai", "model_id": "gpt-4o-mini",
                       "base_url": format!("{}/v1", api.url())});
    let (host, _home) = remote_host(
        json!([entry]),
        json!({"openai": {"api_key": SECRET, "organisation": "org-42"}}),
    );
    let model = host.load("gpt-test").unwrap();
    assert_eq!(model.adapter().name(), "openai-chat");

    let g = model.generate(&conversation(), &params()).unwrap();
    let sent = &api.requests()[0];
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {SECRET}").as_str()));
    assert_eq!(sent.header("openai-organization"), Some("org-42"));
    assert_eq!(sent.header("content-type"), Some("application/json"));
    let messages = json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Which France?"},
        {"role": "user", "content": "The country."},
    ]);
    assert_eq!(
        sent.json(),
        json!({"model": "gpt-4o-mini", "messages": messages, "temperature": 0.5, "max_tokens": 32,
               "top_p": 0.9, "seed": 7, "stop": ["END"]})
    );
    assert_eq!(g.response_text, "Paris.");
    assert_eq!(g.finish_reason, "stop");
    assert_eq!(
        (g.usage.prompt_tokens, g.usage.completion_tokens, g.usage.total_tokens),
        (21, 3, 24)
    );
    assert_eq!(g.prompt, sent.json(), "prompt is the request body");
    assert_eq!(
        g.response,
        openai_reply("  Paris.\n", "stop"),
        "response is the reply body"
    );

    let g = streamed(&model, &conversation(), &params());
    let sent = &api.requests()[1];
    let body = sent.json();
    assert_eq!(body["stream"], json!(true));
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert_eq!(g.response_text, "Paris.");
    assert_eq!(g.finish_reason, "length");
    assert_eq!((g.usage.prompt_tokens, g.usage.completion_tokens), (21, 3));
    assert_eq!(g.response.as_array().map(Vec::len), Some(5), "{}", g.response);
    assert!(g.timings.time_to_first_token_ms.is_some());

    let with_tools = GenerationParams {
        tools: vec![Tool::new("f", "A tool.", json!({"type": "object"}))],
        tool_choice: Some(ToolChoice::Function("f".into())),
        ..params()
    };
    let mut calls = Vec::new();
    let g = model
        .generate_stream_deltas(&conversation(), &with_tools, |d| {
            calls.extend(d.tool_calls.iter().cloned());
            true
        })
        .unwrap();
    let body = api.requests()[2].json();
    assert_eq!(
        body["tool_choice"],
        json!({"type": "function", "function": {"name": "f"}})
    );
    assert_eq!(
        body["tools"],
        json!([{"type": "function", "function": {"name": "f", "description": "A tool.", "parameters": {"type": "object"}}}])
    );
    assert_eq!((g.finish_reason.as_str(), g.response_text.as_str()), ("tool_calls", ""));
    assert_eq!(calls, g.tool_calls);
    assert_eq!(
        (
            g.tool_calls[0].id.as_str(),
            g.tool_calls[0].name.as_str(),
            g.tool_calls[0].arguments.as_str()
        ),
        ("call_abc", "f", r#"{"x": 1}"#)
    );
}

#[test]
fn openai_reasoning_openrouter_extra_body_and_mistral_quirks() {
    let api = FixtureApi::start(vec![Reply::json(200, openai_reply("ok", "stop"))]);
    let base = format!("{}/v1", api.url());
    let entries = json!([
        {"model_name": "o-test", "backend": "openai", "model_id": "o3-mini", "base_url": base,
         "model_config": {"reasoning_model": true}},
        {"model_name": "oss-or", "backend": "openrouter", "huggingface_id": "openai/gpt-oss-20b", "base_url": base,
         "model_config": {"extra_body": {"reasoning": {"effort": "low"}, "provider": {"order": ["x"]}}}},
        {"model_name": "mistral-test", "backend": "mistral", "model_id": "mistral-small", "base_url": base},
        {"model_name": "local-compat", "backend": "openai_compatible", "model_id": "m-id", "call_name": "served-name",
         "base_url": base},
    ]);
    let keys =
        json!({"openai": {"api_key": SECRET}, "openrouter": {"api_key": "or-key"}, "mistral": {"api_key": "mi-key"}});
    let (host, _home) = remote_host(entries, keys);
    let user = [Message::user("hi")];
    for name in ["o-test", "oss-or", "mistral-test", "local-compat"] {
        let g = host.load(name).unwrap().generate(&user, &params()).unwrap();
        assert_eq!(g.response_text, "ok", "{name}");
    }
    let r = api.requests();
    let o = r[0].json();
    assert_eq!(o["max_completion_tokens"], json!(32), "{o}");
    assert!(
        o.get("max_tokens").is_none() && o.get("temperature").is_none() && o.get("top_p").is_none(),
        "{o}"
    );
    let or = r[1].json();
    assert_eq!(or["model"], json!("openai/gpt-oss-20b"));
    assert_eq!(or["reasoning"], json!({"effort": "low"}));
    assert_eq!(or["provider"], json!({"order": ["x"]}));
    assert_eq!(r[1].header("authorization"), Some("Bearer or-key"));
    let mi = r[2].json();
    assert_eq!((mi["random_seed"].clone(), mi.get("seed")), (json!(7), None), "{mi}");
    assert_eq!(r[2].header("authorization"), Some("Bearer mi-key"));
    // openai_compatible: the server's name for the model, and no key when none is configured.
    assert_eq!(r[3].json()["model"], json!("served-name"));
    assert_eq!(r[3].header("authorization"), None);
}

#[test]
fn anthropic_splits_the_system_prompt_merges_turns_and_streams_events() {
    let reply = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
        "content": [{"type": "text", "text": "Paris"}, {"type": "text", "text": " it is."}],
        "stop_reason": "end_turn", "usage": {"input_tokens": 30, "output_tokens": 4}
    });
    let ev = |name: &str, data: Value| (Some(name.to_string()), data.to_string());
    let stream = vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_2", "type": "message", "role": "assistant", "content": [], "usage": {"input_tokens": 30, "output_tokens": 1}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ev("ping", json!({"type": "ping"})),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Paris"}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " it is."}}),
        ),
        ev("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        ev(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 4}}),
        ),
        ev("message_stop", json!({"type": "message_stop"})),
    ];
    let tool_use = json!({
        "id": "msg_2", "type": "message", "role": "assistant",
        "content": [{"type": "tool_use", "id": "toolu_7", "name": "f", "input": {"x": 1}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 40, "output_tokens": 9}
    });
    let json_answer = json!({
        "id": "msg_3", "type": "message", "role": "assistant",
        "content": [{"type": "tool_use", "id": "toolu_8", "name": "lmhost_json_answer", "input": {"city": "Paris"}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 40, "output_tokens": 9}
    });
    let api = FixtureApi::start(vec![
        Reply::json(200, reply.clone()),
        Reply::named_events(stream),
        Reply::json(200, tool_use),
        Reply::json(200, json_answer),
    ]);
    let entry = json!({"model_name": "claude-test", "backend": "anthropic", "model_id": "claude-x",
                       "base_url": format!("{}/v1", api.url())});
    let (host, _home) = remote_host(json!([entry]), json!({"anthropic": {"api_key": SECRET}}));
    let model = host.load("claude-test").unwrap();
    let mut messages = conversation();
    messages.insert(2, Message::user("Please."));
    let g = model.generate(&messages, &params()).unwrap();
    let sent = &api.requests()[0];
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some(SECRET));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.header("authorization"), None);
    let text = |t: &str| json!({"type": "text", "text": t});
    assert_eq!(
        sent.json(),
        json!({
            "model": "claude-x", "max_tokens": 32, "system": "Be brief.",
            "messages": [
                {"role": "user", "content": [text("Capital of France?"), text("Please.")]},
                {"role": "assistant", "content": [text("Which France?")]},
                {"role": "user", "content": [text("The country.")]},
            ],
            "temperature": 0.5, "top_p": 0.9, "stop_sequences": ["END"]
        })
    );
    assert_eq!(
        (g.response_text.as_str(), g.finish_reason.as_str()),
        ("Paris it is.", "stop")
    );
    assert_eq!((g.usage.prompt_tokens, g.usage.completion_tokens), (30, 4));
    assert_eq!(g.response, reply);

    let g = streamed(&model, &messages, &params());
    assert_eq!(api.requests()[1].json()["stream"], json!(true));
    assert_eq!(
        (g.response_text.as_str(), g.finish_reason.as_str()),
        ("Paris it is.", "length")
    );
    assert_eq!((g.usage.prompt_tokens, g.usage.completion_tokens), (30, 4));

    // Tools go as Anthropic's tools; a `tool_use` block comes back as a call.
    let with_tools = GenerationParams {
        tools: vec![Tool::new("f", "A tool.", json!({"type": "object"}))],
        tool_choice: Some(ToolChoice::Function("f".into())),
        ..params()
    };
    let g = model.generate(&messages, &with_tools).unwrap();
    let body = api.requests()[2].json();
    assert_eq!(
        body["tools"],
        json!([{"name": "f", "description": "A tool.", "input_schema": {"type": "object"}}])
    );
    assert_eq!(body["tool_choice"], json!({"type": "tool", "name": "f"}));
    assert_eq!(g.finish_reason, "tool_calls");
    assert_eq!(
        (
            g.tool_calls[0].id.as_str(),
            g.tool_calls[0].name.as_str(),
            g.tool_calls[0].arguments.as_str()
        ),
        ("toolu_7", "f", r#"{"x":1}"#)
    );
    // No JSON mode in this API: a response format is a forced tool whose input
    // is the answer.
    let json_out = GenerationParams {
        response_format: Some(ResponseFormat::JsonObject),
        ..params()
    };
    let g = model.generate(&messages, &json_out).unwrap();
    let body = api.requests()[3].json();
    assert_eq!(
        body["tool_choice"],
        json!({"type": "tool", "name": "lmhost_json_answer"})
    );
    assert_eq!(
        (g.response_text.as_str(), g.finish_reason.as_str()),
        (r#"{"city":"Paris"}"#, "stop")
    );
    assert!(g.tool_calls.is_empty());
    // With tools of its own too: refused before any request.
    let both = GenerationParams {
        tools: vec![Tool::new("f", "A tool.", json!({"type": "object"}))],
        ..json_out
    };
    let err = model.generate(&messages, &both).unwrap_err().to_string();
    assert!(err.contains("response_format") && err.contains("tools"), "{err}");
    assert_eq!(api.requests().len(), 4, "nothing was sent");
}

#[test]
fn anthropic_thinking_mode_sets_the_budget_and_drops_the_reasoning() {
    let reply = json!({
        "id": "msg_1", "type": "message", "role": "assistant",
        "content": [{"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
                    {"type": "text", "text": "42"}],
        "stop_reason": "end_turn", "usage": {"input_tokens": 5, "output_tokens": 50}
    });
    let api = FixtureApi::start(vec![Reply::json(200, reply)]);
    let entry = json!({"model_name": "claude-think", "backend": "anthropic", "model_id": "claude-3-7-sonnet",
                       "base_url": api.url(), "model_config": {"thinking_mode": true}});
    let (host, _home) = remote_host(json!([entry]), json!({"anthropic": {"api_key": SECRET}}));
    let g = host
        .load("claude-think")
        .unwrap()
        .generate(&[Message::user("?")], &params())
        .unwrap();
    assert_eq!(g.response_text, "42");
    let body = api.only_request().json();
    assert_eq!(body["thinking"], json!({"type": "enabled", "budget_tokens": 16000}));
    assert_eq!(body["max_tokens"], json!(16000 + 32));
    assert!(
        body.get("temperature").is_none() && body.get("top_p").is_none(),
        "{body}"
    );
}

#[test]
fn google_gemini_paths_roles_and_stream() {
    let chunk = |text: &str, finish: Option<&str>| {
        let mut c = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}],
                           "usageMetadata": {"promptTokenCount": 17, "candidatesTokenCount": 2, "totalTokenCount": 19}});
        if let Some(f) = finish {
            c["candidates"][0]["finishReason"] = json!(f);
        }
        c
    };
    let call = json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "f", "args": {"x": 1}}}, {"functionCall": {"name": "f", "args": {"x": 2}}}]},
        "finishReason": "STOP"}]});
    let api = FixtureApi::start(vec![
        Reply::json(200, chunk("Paris.", Some("STOP"))),
        Reply::events(&[chunk("Par", None), chunk("is.", Some("MAX_TOKENS"))]),
        Reply::json(200, call),
    ]);
    let entry = json!({"model_name": "gemini-test", "backend": "google", "model_id": "gemini-2.0-flash",
                       "base_url": format!("{}/v1beta", api.url())});
    let (host, _home) = remote_host(json!([entry]), json!({"google": {"api_key": SECRET}}));
    let model = host.load("gemini-test").unwrap();
    let g = model.generate(&conversation(), &params()).unwrap();
    let sent = &api.requests()[0];
    assert_eq!(sent.path, "/v1beta/models/gemini-2.0-flash:generateContent");
    assert_eq!(sent.header("x-goog-api-key"), Some(SECRET));
    assert_eq!(sent.header("authorization"), None);
    let part = |t: &str| json!({"text": t});
    assert_eq!(
        sent.json(),
        json!({
            "contents": [
                {"role": "user", "parts": [part("Capital of France?")]},
                {"role": "model", "parts": [part("Which France?")]},
                {"role": "user", "parts": [part("The country.")]},
            ],
            "systemInstruction": {"parts": [part("Be brief.")]},
            "generationConfig": {"temperature": 0.5, "maxOutputTokens": 32, "topP": 0.9, "seed": 7, "stopSequences": ["END"]}
        })
    );
    assert_eq!((g.response_text.as_str(), g.finish_reason.as_str()), ("Paris.", "stop"));
    assert_eq!((g.usage.prompt_tokens, g.usage.completion_tokens), (17, 2));

    let g = streamed(&model, &conversation(), &params());
    assert_eq!(
        api.requests()[1].path,
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(
        (g.response_text.as_str(), g.finish_reason.as_str()),
        ("Paris.", "length")
    );

    // Tools go as function declarations; Gemini's calls have no ids and its
    // finish reason is STOP: the host gives each call an id and says `tool_calls`.
    let with_tools = GenerationParams {
        tools: vec![Tool::new("f", "A tool.", json!({"type": "object"}))],
        tool_choice: Some(ToolChoice::Required),
        response_format: Some(ResponseFormat::JsonObject),
        ..params()
    };
    let g = model.generate(&conversation(), &with_tools).unwrap();
    let body = api.requests()[2].json();
    assert_eq!(body["toolConfig"], json!({"functionCallingConfig": {"mode": "ANY"}}));
    assert_eq!(body["generationConfig"]["responseMimeType"], "application/json");
    assert_eq!(g.finish_reason, "tool_calls");
    let calls: Vec<(&str, &str)> = g
        .tool_calls
        .iter()
        .map(|c| (c.name.as_str(), c.arguments.as_str()))
        .collect();
    assert_eq!(calls, [("f", r#"{"x":1}"#), ("f", r#"{"x":2}"#)]);
    assert!(g.tool_calls.iter().all(|c| c.id.starts_with("call_")));
    assert_ne!(g.tool_calls[0].id, g.tool_calls[1].id);
}

#[test]
fn cohere_v2_chat_request_reply_and_stream() {
    let reply = json!({
        "id": "c1", "finish_reason": "COMPLETE",
        "message": {"role": "assistant", "content": [{"type": "text", "text": "Paris."}]},
        "usage": {"billed_units": {"input_tokens": 9, "output_tokens": 2}, "tokens": {"input_tokens": 70, "output_tokens": 2}}
    });
    let stream = [
        json!({"type": "message-start", "id": "c2", "delta": {"message": {"role": "assistant", "content": []}}}),
        json!({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}}),
        json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Par"}}}}),
        json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "is."}}}}),
        json!({"type": "content-end", "index": 0}),
        json!({"type": "message-end", "delta": {"finish_reason": "MAX_TOKENS",
               "usage": {"billed_units": {"input_tokens": 9, "output_tokens": 2}, "tokens": {"input_tokens": 70, "output_tokens": 2}}}}),
    ];
    let tool_stream = [
        json!({"type": "message-start", "id": "c3", "delta": {"message": {"role": "assistant"}}}),
        json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will look it up."}}}),
        json!({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls":
               {"id": "f_1", "type": "function", "function": {"name": "f", "arguments": ""}}}}}),
        json!({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": "{\"x\": 1}"}}}}}),
        json!({"type": "tool-call-end", "index": 0}),
        json!({"type": "message-end", "delta": {"finish_reason": "TOOL_CALL",
               "usage": {"tokens": {"input_tokens": 80, "output_tokens": 12}}}}),
    ];
    let api = FixtureApi::start(vec![
        Reply::json(200, reply),
        Reply::events(&stream),
        Reply::events(&tool_stream),
    ]);
    let entry = json!({"model_name": "command-test", "backend": "cohere", "model_id": "command-r",
                       "base_url": format!("{}/v2", api.url())});
    let (host, _home) = remote_host(json!([entry]), json!({"cohere": {"api_key": SECRET}}));
    let model = host.load("command-test").unwrap();
    let p = GenerationParams {
        top_k: Some(40),
        ..params()
    };
    let g = model.generate(&conversation()[..2], &p).unwrap();
    let sent = &api.requests()[0];
    assert_eq!(sent.path, "/v2/chat");
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {SECRET}").as_str()));
    assert_eq!(
        sent.json(),
        json!({"model": "command-r",
               "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}],
               "temperature": 0.5, "max_tokens": 32, "p": 0.9, "k": 40, "seed": 7, "stop_sequences": ["END"]})
    );
    assert_eq!((g.response_text.as_str(), g.finish_reason.as_str()), ("Paris.", "stop"));
    assert_eq!((g.usage.prompt_tokens, g.usage.completion_tokens), (70, 2));
    let g = streamed(&model, &conversation()[..2], &p);
    assert_eq!(
        (g.response_text.as_str(), g.finish_reason.as_str()),
        ("Paris.", "length")
    );

    // Tools, streamed: the plan is the reasoning, the call comes together by index.
    let with_tools = GenerationParams {
        tools: vec![Tool::new("f", "A tool.", json!({"type": "object"}))],
        tool_choice: Some(ToolChoice::Required),
        ..params()
    };
    let mut calls = Vec::new();
    let g = model
        .generate_stream_deltas(&conversation()[..2], &with_tools, |d| {
            calls.extend(d.tool_calls.iter().cloned());
            true
        })
        .unwrap();
    let body = api.requests()[2].json();
    assert_eq!(body["tool_choice"], "REQUIRED");
    assert_eq!(body["tools"][0]["function"]["name"], "f");
    assert_eq!(g.finish_reason, "tool_calls");
    assert_eq!(g.reasoning.as_deref(), Some("I will look it up."));
    assert_eq!(calls, g.tool_calls);
    assert_eq!(
        (
            g.tool_calls[0].id.as_str(),
            g.tool_calls[0].name.as_str(),
            g.tool_calls[0].arguments.as_str()
        ),
        ("f_1", "f", r#"{"x": 1}"#)
    );
}

#[test]
fn provider_errors_name_the_model_and_carry_the_providers_message() {
    let api = FixtureApi::start(vec![
        Reply::json(
            404,
            json!({"error": {"message": "The model `gpt-nope` does not exist or you do not have access to it.", "type": "invalid_request_error", "code": "model_not_found"}}),
        ),
        Reply::json(
            400,
            json!({"error": {"message": "This model's maximum context length is 128000 tokens. However, your messages resulted in 130001 tokens.", "type": "invalid_request_error", "code": "context_length_exceeded"}}),
        ),
        Reply::named_events(vec![
            (
                Some("message_start".into()),
                json!({"type": "message_start", "message": {"usage": {"input_tokens": 3}}}).to_string(),
            ),
            (
                Some("error".into()),
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}).to_string(),
            ),
        ]),
        Reply::text(200, "<html>not json</html>"),
    ]);
    let base = api.url();
    let entries = json!([
        {"model_name": "gpt-nope", "backend": "openai", "model_id": "gpt-nope", "base_url": base},
        {"model_name": "claude-busy", "backend": "anthropic", "model_id": "claude-x", "base_url": base},
    ]);
    let keys = json!({"openai": {"api_key": SECRET}, "anthropic": {"api_key": SECRET}});
    let (host, _home) = remote_host(entries, keys);
    let gpt = host.load("gpt-nope").unwrap();
    let user = [Message::user("hi")];
    let err = gpt.generate(&user, &params()).unwrap_err().to_string();
    assert!(
        err.contains("`gpt-nope`") && err.contains("404") && err.contains("does not exist"),
        "{err}"
    );
    let err = gpt.generate(&user, &params()).unwrap_err().to_string();
    assert!(
        err.contains("400") && err.contains("maximum context length is 128000 tokens"),
        "{err}"
    );
    let claude = host.load("claude-busy").unwrap();
    let err = claude
        .generate_stream(&user, &params(), |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("claude-busy") && err.contains("Overloaded"), "{err}");
    let err = gpt.generate(&user, &params()).unwrap_err().to_string();
    assert!(err.contains("gpt-nope") && err.contains("not json"), "{err}");
    assert!(!err.contains(SECRET));
}

// ---------------------------------------------------------------------------
// openai_compatible against a real OpenAI-compatible server: lmhost's own
// `serve`, running SmolLM2 on loopback.

/// `lmhost serve` in this process on a free loopback port, serving SmolLM2; its
/// address, and the sender that stops it.
fn serve_smollm() -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>, Host, TempDir) {
    let (host, home) = lmhost_tests::host(None);
    let served = lmhost_tests::host(None);
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let (server_host, _server_home) = served;
            let config = lmhost::server::ServerConfig {
                preload: vec!["SmolLM2-135M-Instruct".into()],
                ..lmhost::server::ServerConfig::ephemeral()
            };
            let server = lmhost::server::Server::bind(std::sync::Arc::new(server_host), config)
                .await
                .expect("server binds and loads SmolLM2");
            addr_tx.send(server.local_addr()).unwrap();
            server
                .run(async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
    });
    let addr = addr_rx.recv_timeout(Duration::from_secs(120)).expect("server started");
    (addr, stop_tx, host, home)
}

#[test]
fn openai_compatible_against_lmhost_serve_gives_the_local_answer() {
    if lmhost_tests::smollm().is_none() {
        return;
    }
    let (addr, stop, local_host, _local_home) = serve_smollm();
    let entry = json!({"model_name": "smol-remote", "backend": "openai_compatible",
                       "model_id": "SmolLM2-135M-Instruct", "base_url": format!("http://{addr}/v1")});
    let (host, _home) = remote_host(json!([entry]), json!({}));
    let remote = host.load("smol-remote").unwrap();
    let local = local_host.load("SmolLM2-135M-Instruct").unwrap();
    let messages = [
        Message::system("You are a helpful assistant."),
        Message::user("What is the capital of France?"),
    ];
    let greedy = GenerationParams::greedy(24);
    let want = local.generate(&messages, &greedy).unwrap();
    assert!(!want.response_text.is_empty());

    let got = remote.generate(&messages, &greedy).unwrap();
    assert_eq!(got.response_text, want.response_text.trim());
    assert_eq!(got.usage.prompt_tokens, want.usage.prompt_tokens);
    assert_eq!(got.usage.completion_tokens, want.usage.completion_tokens);
    assert_eq!(got.finish_reason, want.finish_reason);
    assert_eq!(got.response["object"], json!("chat.completion"), "{}", got.response);

    let streamed = streamed(&remote, &messages, &greedy);
    assert_eq!(streamed.response_text, want.response_text.trim());
    assert_eq!(streamed.usage.completion_tokens, want.usage.completion_tokens);
    assert!(
        streamed.response.as_array().is_some_and(|events| events.len() > 2),
        "{}",
        streamed.response
    );

    // Tools through both layers: the remote adapter sends them, the server
    // enforces a call on SmolLM2, and the call comes back, whole and streamed.
    let weather = Tool::new(
        "get_weather",
        "The weather in a city.",
        json!({"type": "object", "properties": {"city": {"type": "string", "maxLength": 40}},
               "required": ["city"], "additionalProperties": false}),
    );
    let required = GenerationParams {
        tools: vec![weather.clone()],
        tool_choice: Some(ToolChoice::Required),
        ..GenerationParams::greedy(64)
    };
    let asked = remote.generate(&messages, &required).unwrap();
    assert_eq!(asked.finish_reason, "tool_calls", "{asked:?}");
    let call = &asked.tool_calls[0];
    let args: Value = serde_json::from_str(&call.arguments).unwrap();
    assert!(call.name == "get_weather" && args["city"].is_string(), "{call:?}");
    assert!(call.id.starts_with("call_"), "the server's id is kept: {call:?}");
    let mut pieces = Vec::new();
    let streamed_call = remote
        .generate_stream_deltas(&messages, &required, |d| {
            pieces.extend(d.tool_calls.iter().cloned());
            true
        })
        .unwrap();
    assert_eq!(pieces, streamed_call.tool_calls);
    assert_eq!(streamed_call.tool_calls[0].name, "get_weather");
    assert_eq!(streamed_call.finish_reason, "tool_calls");
    // The round trip: the result goes back as a `tool` message.
    let mut history = messages.to_vec();
    history.push(Message::from_generation(&asked));
    history.push(Message::tool_result(
        call.id.clone(),
        "get_weather",
        r#"{"sky": "clear"}"#,
    ));
    let answer = remote
        .generate(
            &history,
            &GenerationParams {
                tools: vec![weather],
                tool_choice: Some(ToolChoice::None),
                ..GenerationParams::greedy(16)
            },
        )
        .unwrap();
    assert!(
        answer.tool_calls.is_empty() && !answer.response_text.is_empty(),
        "{answer:?}"
    );
    assert_eq!(
        answer.prompt["messages"][3]["tool_call_id"],
        json!(call.id),
        "{answer:?}"
    );
    // A response format goes to the provider, which enforces it.
    let json_out = GenerationParams {
        response_format: Some(ResponseFormat::JsonObject),
        ..GenerationParams::greedy(48)
    };
    let g = remote.generate(&messages, &json_out).unwrap();
    assert!(g.response_text.starts_with('{'), "{g:?}");
    if g.finish_reason == "stop" {
        assert!(serde_json::from_str::<Value>(&g.response_text).unwrap().is_object());
    }

    // The server's own errors come back as provider errors naming the model.
    let entry = json!({"model_name": "smol-typo", "backend": "openai_compatible",
                       "model_id": "no-such-model", "base_url": format!("http://{addr}/v1")});
    let (host, _home) = remote_host(json!([entry]), json!({}));
    let err = host
        .load("smol-typo")
        .unwrap()
        .generate(&messages, &greedy)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`smol-typo`") && err.contains("404") && err.contains("no-such-model"),
        "{err}"
    );
    let _ = stop.send(());
}

// ---------------------------------------------------------------------------
// Every remote entry of the real clemcore registry loads and runs.

#[test]
fn every_remote_entry_of_the_clemcore_registry_runs_against_its_vendor_shape() {
    let Some(file) = lmhost_tests::compat_registry() else {
        eprintln!("skipped: no clemcore registry in ../shared/compat");
        return;
    };
    let entries: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let openai = FixtureApi::start(vec![Reply::json(200, openai_reply("fine", "stop"))]);
    let anthropic = FixtureApi::start(vec![Reply::json(
        200,
        json!({"type": "message", "role": "assistant", "content": [{"type": "text", "text": "fine"}],
               "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}}),
    )]);
    let google = FixtureApi::start(vec![Reply::json(
        200,
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "fine"}]}, "finishReason": "STOP"}]}),
    )]);
    let cohere = FixtureApi::start(vec![Reply::json(
        200,
        json!({"finish_reason": "COMPLETE", "message": {"role": "assistant", "content": [{"type": "text", "text": "fine"}]}}),
    )]);
    // The base URLs come from key.json, as clemcore users set them.
    let section = |api: &FixtureApi| json!({"api_key": SECRET, "base_url": format!("{}/v1", api.url())});
    let keys = json!({
        "openai": section(&openai), "openai_compatible": section(&openai), "openrouter": section(&openai),
        "mistral": section(&openai), "anthropic": section(&anthropic), "google": section(&google),
        "cohere": section(&cohere),
    });
    let home = TempDir::new("compat-remote");
    std::fs::write(home.path().join("key.json"), keys.to_string()).unwrap();
    let mut config = HostConfig::with_home(home.path().to_path_buf());
    config.key_files = vec![home.path().join("key.json")];
    config.keys_from_env = false;
    config.registry_files = vec![file];
    let host = Host::with_config(config).unwrap();

    let mut ran = std::collections::BTreeMap::<String, usize>::new();
    for entry in &entries {
        let backend = entry["backend"].as_str().unwrap_or_default();
        let api = match backend {
            "openai" | "openai_compatible" | "openrouter" | "mistral" => &openai,
            "anthropic" => &anthropic,
            "google" => &google,
            "cohere" => &cohere,
            _ => continue,
        };
        // A spec's keys sit at the top level or under model_config.
        let key = |k: &str| {
            entry
                .get(k)
                .or_else(|| entry["model_config"].get(k))
                .and_then(Value::as_str)
        };
        let name = entry["model_name"].as_str().unwrap();
        let query = json!({"model_name": name, "backend": backend}).to_string();
        let before = api.requests().len();
        let g = host
            .load(query.as_str())
            .and_then(|m| m.generate(&[Message::user("hi")], &GenerationParams::greedy(8)))
            .unwrap_or_else(|e| panic!("{name} ({backend}): {e}"));
        assert_eq!(g.response_text, "fine", "{name}");
        let sent = api.requests()[before].clone();
        let id = match backend {
            "openai_compatible" => key("call_name").or(key("model_id")),
            "openrouter" => key("model_id").or(key("huggingface_id")),
            _ => key("model_id"),
        }
        .unwrap();
        if backend == "google" {
            assert_eq!(sent.path, format!("/v1/models/{id}:generateContent"), "{name}");
        } else {
            assert_eq!(sent.json()["model"], json!(id), "{name}");
        }
        *ran.entry(backend.to_string()).or_default() += 1;
    }
    eprintln!("ran: {ran:?}");
    assert_eq!(ran.len(), 7, "every remote backend has entries: {ran:?}");
}
