//! The OpenAI-compatible server, in process, on a free loopback port, driven by
//! an HTTP client: every endpoint and status code, streaming, metrics, the
//! capacity limit, graceful shutdown, and a bounded load test
//! (`cargo test --release -p lmhost-tests --test integration server::load -- --nocapture`).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use lmhost::server::{Server, ServerConfig};
use lmhost::Host;
use lmhost_tests::{smollm, TempDir};
use serde_json::{json, Value};

const REGISTRY: &str = r#"[
  {"model_name": "echo", "backend": "mock", "reply": "you said: {prompt}"},
  {"model_name": "story", "backend": "mock", "reply": "Once upon a time there was a fox."},
  {"model_name": "slow", "backend": "mock", "reply": "a b c d e f g h i j", "delay_ms": 100},
  {"model_name": "tortoise", "backend": "mock", "reply": "a b c d e f g h i j", "delay_ms": 20},
  {"model_name": "caller", "backend": "mock", "cot_start_tag": "<think>", "cot_end_tag": "</think>",
   "reply": "<think>Weather needs a tool.</think>Checking. <tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}</tool_call><tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>"}
]"#;

/// One host for every test: the test registry, then the packaged one.
fn host() -> Arc<Host> {
    static HOST: OnceLock<(Arc<Host>, TempDir)> = OnceLock::new();
    let (host, _home) = HOST.get_or_init(|| {
        let (host, home) = lmhost_tests::host(Some(REGISTRY));
        (Arc::new(host), home)
    });
    Arc::clone(host)
}

/// A running server; dropping the handle's sender shuts it down.
struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<lmhost::Result<()>>,
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

async fn start(config: ServerConfig) -> Running {
    let server = Server::bind(host(), config).await.expect("server binds");
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

async fn post(client: &reqwest::Client, url: &str, body: Value) -> (u16, Value) {
    let response = client.post(url).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn post_raw(client: &reqwest::Client, url: &str, body: &'static str) -> (u16, Value) {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The `data:` payloads of a server-sent-events body.
fn sse_data(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
        .map(str::to_string)
        .collect()
}

fn assert_openai_error(body: &Value, kind: &str) {
    let error = &body["error"];
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert_eq!(error["type"], kind, "{body}");
    assert!(error.get("param").is_some() && error.get("code").is_some(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_completion_whole_answer() {
    let server = start(ServerConfig::ephemeral()).await;
    let client = reqwest::Client::new();
    let (status, body) = post(
        &client,
        &server.url("/v1/chat/completions"),
        json!({"model": "echo", "messages": [{"role": "user", "content": "Hi"}], "temperature": 0, "unknown_field": {"x": 1}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"), "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(body["model"], "echo");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "you said: <|user|>Hi\n<|assistant|>"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
    // Text parts, developer role, max_completion_tokens (finish_reason length).
    let (status, body) = post(
        &client,
        &server.url("/v1/chat/completions"),
        json!({"model": "story", "max_completion_tokens": 2, "stop": ["never"], "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Tell "}, {"type": "text", "text": "me"}]}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "Once upon");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["completion_tokens"], 2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_completion_streamed() {
    let server = start(ServerConfig::ephemeral()).await;
    let client = reqwest::Client::new();
    let response = client
        .post(server.url("/v1/chat/completions"))
        .json(
            &json!({"model": "story", "stream": true, "stream_options": {"include_usage": true},
                      "messages": [{"role": "user", "content": "Tell me a story."}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let data = sse_data(&response.text().await.unwrap());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let id = chunks[0]["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-"));
    assert!(chunks.iter().all(|c| c["id"] == id && c["model"] == "story"));
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Once upon a time there was a fox.");
    assert!(chunks.len() > 4, "streamed in pieces: {chunks:?}");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 8);
    // Without include_usage: no usage chunk, no usage field.
    let response = client
        .post(server.url("/v1/chat/completions"))
        .json(&json!({"model": "story", "stream": true, "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    let data = sse_data(&response.text().await.unwrap());
    let last: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert!(last.get("usage").is_none());
    server.shutdown().await;
}

/// `api_key`: a bearer key on every path but `/health`; 401 in OpenAI's shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_guards_every_path_but_health() {
    let server = start(ServerConfig {
        api_key: Some("sk-server-key".into()),
        ..ServerConfig::ephemeral()
    })
    .await;
    let client = reqwest::Client::new();
    let chat = json!({"model": "story", "messages": [{"role": "user", "content": "Hi"}]});
    for auth in [
        None,
        Some("Bearer sk-wrong"),
        Some("Bearer sk-server-keyX"),
        Some("sk-server-key"),
    ] {
        let mut request = client.post(server.url("/v1/chat/completions")).json(&chat);
        if let Some(value) = auth {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "{auth:?}");
        let body: Value = response.json().await.unwrap();
        assert_openai_error(&body, "invalid_request_error");
        assert_eq!(body["error"]["code"], "invalid_api_key");
    }
    let response = client
        .post(server.url("/v1/chat/completions"))
        .bearer_auth("sk-server-key")
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let models = client.get(server.url("/v1/models")).send().await.unwrap();
    assert_eq!(models.status().as_u16(), 401);
    let health = client.get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    server.shutdown().await;
}

/// Tools, tool calls, reasoning: whole and streamed, in OpenAI's shapes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_and_reasoning_whole_and_streamed() {
    let server = start(ServerConfig::ephemeral()).await;
    let client = reqwest::Client::new();
    let tool = |name: &str| json!({"type": "function", "function": {"name": name, "parameters": {"type": "object"}}});
    let request = json!({"model": "caller", "tools": [tool("get_weather"), tool("get_time")],
        "messages": [{"role": "user", "content": "Weather and time in Oslo?"}]});
    let (status, body) = post(&client, &server.url("/v1/chat/completions"), request.clone()).await;
    assert_eq!(status, 200, "{body}");
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{body}");
    let message = &choice["message"];
    assert_eq!(message["content"], "Checking.");
    assert_eq!(message["reasoning_content"], "Weather needs a tool.");
    let calls = message["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{body}");
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(calls[0]["function"]["arguments"], r#"{"city":"Oslo"}"#);
    assert_eq!(calls[1]["function"]["arguments"], "{}");
    assert!(calls[0]["id"].as_str().unwrap().starts_with("call_") && calls[0]["id"] != calls[1]["id"]);
    assert!(
        body["usage"]["completion_tokens_details"]["reasoning_tokens"]
            .as_u64()
            .unwrap()
            > 0,
        "{body}"
    );

    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let response = client
        .post(server.url("/v1/chat/completions"))
        .json(&streamed)
        .send()
        .await
        .unwrap();
    let data = sse_data(&response.text().await.unwrap());
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let deltas: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["delta"]).collect();
    let joined = |key: &str| deltas.iter().filter_map(|d| d[key].as_str()).collect::<String>();
    assert_eq!(joined("content"), "Checking.");
    assert_eq!(joined("reasoning_content"), "Weather needs a tool.");
    let streamed_calls: Vec<&Value> = deltas
        .iter()
        .filter_map(|d| d["tool_calls"].as_array())
        .flatten()
        .collect();
    assert_eq!(streamed_calls.len(), 2, "{chunks:?}");
    for (index, call) in streamed_calls.iter().enumerate() {
        assert_eq!(call["index"], index, "{call}");
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], calls[index]["function"]["name"]);
        assert_eq!(call["function"]["arguments"], calls[index]["function"]["arguments"]);
    }
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "tool_calls");

    // A bad tool request is a 400 naming its parameter.
    let mut bad = request;
    bad["tool_choice"] = json!({"type": "function", "function": {"name": "nope"}});
    let (status, body) = post(&client, &server.url("/v1/chat/completions"), bad).await;
    assert_eq!(status, 400, "{body}");
    assert_openai_error(&body, "invalid_request_error");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_whole_and_streamed() {
    let server = start(ServerConfig::ephemeral()).await;
    let client = reqwest::Client::new();
    let (status, body) = post(
        &client,
        &server.url("/v1/completions"),
        json!({"model": "echo", "prompt": "2+2=", "max_tokens": 16}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(body["object"], "text_completion");
    // The prompt runs as one user message through the adapter.
    assert_eq!(body["choices"][0]["text"], "you said: <|user|>2+2=\n<|assistant|>");
    let response = client
        .post(server.url("/v1/completions"))
        .json(&json!({"model": "story", "prompt": ["Once"], "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let data = sse_data(&response.text().await.unwrap());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let text: String = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .map(|c| c["choices"][0]["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(text, "Once upon a time there was a fox.");
    let (status, body) = post(
        &client,
        &server.url("/v1/completions"),
        json!({"model": "echo", "prompt": [1, 2, 3]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "prompt");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_health_and_unknown_paths() {
    let server = start(ServerConfig::ephemeral()).await;
    let client = reqwest::Client::new();
    let models: Value = client
        .get(server.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    let data = models["data"].as_array().unwrap();
    let find = |id: &str| data.iter().find(|m| m["id"] == id).cloned();
    assert_eq!(find("echo").unwrap()["owned_by"], "mock");
    assert_eq!(find("echo").unwrap()["object"], "model");
    assert_eq!(find("SmolLM2-135M-Instruct").unwrap()["owned_by"], "llamacpp");
    assert!(find("human").is_none(), "the human backend is not served");
    let ids: Vec<&str> = data.iter().map(|m| m["id"].as_str().unwrap()).collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids.len(), unique.len());

    let health = client.get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "ok");

    let missing = client.get(server.url("/v1/nothing")).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    assert_openai_error(&missing.json().await.unwrap(), "invalid_request_error");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_4xx_in_openai_shape() {
    let server = start(ServerConfig {
        max_body_bytes: 4096,
        ..ServerConfig::ephemeral()
    })
    .await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/chat/completions");

    let (status, body) = post_raw(&client, &url, r#"{"model": "echo", "messages": ["#).await;
    assert_eq!(status, 400, "{body}");
    assert_openai_error(&body, "invalid_request_error");
    assert_eq!(body["error"]["code"], "invalid_json");

    for wrong in [
        json!({"model": "echo", "messages": "Hi"}),
        json!({"model": "echo", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": "ten"}),
        json!({"model": 7, "messages": [{"role": "user", "content": "Hi"}]}),
        json!({"messages": [{"role": "user", "content": "Hi"}]}),
        json!({"model": "echo", "messages": [{"role": "user", "content": "Hi"}], "stop": 3}),
        // Stop strings are matched at every token: counted and sized as an adapter's.
        json!({"model": "echo", "messages": [{"role": "user", "content": "Hi"}],
               "stop": (0..100).map(|i| format!("s{i}")).collect::<Vec<_>>()}),
        json!({"model": "echo", "messages": [{"role": "user", "content": "Hi"}], "stop": "x".repeat(2000)}),
    ] {
        let (status, body) = post(&client, &url, wrong.clone()).await;
        assert_eq!(status, 400, "{wrong} -> {body}");
        assert_openai_error(&body, "invalid_request_error");
    }

    let (status, body) = post(
        &client,
        &url,
        json!({"model": "SmolLM2-135M-instruct-x", "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_openai_error(&body, "not_found_error");
    assert_eq!(body["error"]["code"], "model_not_found");
    assert_eq!(body["error"]["param"], "model");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("did you mean `SmolLM2-135M-Instruct`"));

    let (status, body) = post(&client, &url, json!({"model": "echo", "messages": []})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "messages");

    let hi = json!([{"role": "user", "content": "Hi"}]);
    for (field, value) in [
        ("n", json!(2)),
        ("logprobs", json!(true)),
        ("functions", json!([{"name": "f"}])),
        ("tool_choice", json!("required")),
        ("response_format", json!({"type": "json_object"})),
        ("temperature", json!(-1)),
        ("max_tokens", json!(0)),
    ] {
        let mut request = json!({"model": "echo", "messages": hi});
        request[field] = value;
        let (status, body) = post(&client, &url, request).await;
        assert_eq!(status, 400, "{field}: {body}");
        assert_eq!(body["error"]["param"], field, "{body}");
    }
    // n = 1 and logprobs = false are fine.
    let (status, _) = post(
        &client,
        &url,
        json!({"model": "echo", "messages": hi, "n": 1, "logprobs": false}),
    )
    .await;
    assert_eq!(status, 200);

    // Not servable: the human backend (the server's terminal) and JSON queries.
    for model in ["human", r#"{"model_name": "x", "backend": "mock"}"#] {
        let (status, body) = post(&client, &url, json!({"model": model, "messages": hi})).await;
        assert_eq!(status, 400, "{model}: {body}");
    }

    let big = format!(
        r#"{{"model": "echo", "messages": [{{"role": "user", "content": "{}"}}]}}"#,
        "x".repeat(8000)
    );
    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    assert_openai_error(&response.json().await.unwrap(), "invalid_request_error");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_tokens_and_latency() {
    let server = start(ServerConfig::ephemeral()).await;
    let client = reqwest::Client::new();
    let scrape = || async {
        let response = client.get(server.url("/metrics")).send().await.unwrap();
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        response.text().await.unwrap()
    };
    let value = |text: &str, series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .map(|v| v.parse().unwrap())
            .unwrap_or(0.0)
    };
    let ok = r#"lmhost_requests_total{endpoint="/v1/chat/completions",status="200"}"#;
    let not_found = r#"lmhost_requests_total{endpoint="/v1/chat/completions",status="404"}"#;
    let errors = r#"lmhost_request_errors_total{endpoint="/v1/chat/completions",type="not_found_error"}"#;
    let tokens = r#"lmhost_completion_tokens_total{model="story"}"#;
    let latency = r#"lmhost_request_duration_seconds_count{endpoint="/v1/chat/completions"}"#;
    let before = scrape().await;
    assert!(before.contains("# TYPE lmhost_request_duration_seconds histogram"));
    assert!(before.contains("lmhost_queue_depth 0\n"));
    assert!(before.contains("lmhost_requests_in_flight 0\n"));
    let hi = json!([{"role": "user", "content": "Hi"}]);
    let url = server.url("/v1/chat/completions");
    post(&client, &url, json!({"model": "story", "messages": hi})).await;
    let streamed = client
        .post(&url)
        .json(&json!({"model": "story", "messages": hi, "stream": true}))
        .send()
        .await
        .unwrap();
    streamed.text().await.unwrap();
    post(&client, &url, json!({"model": "nope-nope", "messages": hi})).await;
    let after = scrape().await;
    assert_eq!(value(&after, ok) - value(&before, ok), 2.0, "{after}");
    assert_eq!(value(&after, not_found) - value(&before, not_found), 1.0, "{after}");
    assert_eq!(value(&after, errors) - value(&before, errors), 1.0, "{after}");
    assert_eq!(value(&after, tokens) - value(&before, tokens), 16.0, "{after}");
    assert_eq!(value(&after, latency) - value(&before, latency), 3.0, "{after}");
    assert!(after.contains(r#"lmhost_requests_total{endpoint="/metrics",status="200"}"#));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_capacity_is_429_with_retry_after() {
    let server = start(ServerConfig {
        max_concurrency: 1,
        max_queue: 1,
        preload: vec!["slow".into()],
        ..ServerConfig::ephemeral()
    })
    .await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/chat/completions");
    // Each answer takes 10 × 100 ms: one runs, one waits, two are turned away.
    let requests = (0..4).map(|_| {
        let client = client.clone();
        let url = url.clone();
        tokio::spawn(async move {
            let response = client
                .post(&url)
                .json(&json!({"model": "slow", "messages": [{"role": "user", "content": "Hi"}]}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let retry = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            (status, retry, response.json::<Value>().await.unwrap())
        })
    });
    let mut statuses = Vec::new();
    for r in futures::future::join_all(requests).await {
        let (status, retry, body) = r.unwrap();
        if status == 429 {
            assert_eq!(retry.as_deref(), Some("1"));
            assert_openai_error(&body, "rate_limit_error");
        } else {
            assert_eq!(body["choices"][0]["message"]["content"], "a b c d e f g h i j");
        }
        statuses.push(status);
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 429, 429]);
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"lmhost_requests_total{endpoint="/v1/chat/completions",status="429"} 2"#),
        "{metrics}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_running_requests() {
    let server = start(ServerConfig {
        preload: vec!["slow".into()],
        ..ServerConfig::ephemeral()
    })
    .await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/chat/completions");
    let addr = server.addr;
    let whole = tokio::spawn({
        let (client, url) = (client.clone(), url.clone());
        async move {
            let r = client
                .post(&url)
                .json(&json!({"model": "slow", "messages": [{"role": "user", "content": "Hi"}]}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    });
    let streamed = tokio::spawn({
        let (client, url) = (client.clone(), url.clone());
        async move {
            let r = client
                .post(&url)
                .json(&json!({"model": "slow", "stream": true, "messages": [{"role": "user", "content": "Hi"}]}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    server.shutdown().await;
    assert!(
        started.elapsed() > Duration::from_millis(300),
        "waited for the requests"
    );
    let (status, body) = whole.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["choices"][0]["message"]["content"], "a b c d e f g h i j");
    let (status, text) = streamed.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(sse_data(&text).last().unwrap(), "[DONE]");
    // Gone: new connections are refused.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smollm_answers_streams_and_reports_context_overflow() {
    if smollm().is_none() {
        return;
    }
    let server = start(ServerConfig {
        preload: vec!["SmolLM2-135M-Instruct".into()],
        ..ServerConfig::ephemeral()
    })
    .await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/chat/completions");
    let question = json!([{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]);
    let (status, body) = post(
        &client,
        &url,
        json!({"model": "SmolLM2-135M-Instruct", "messages": question, "max_tokens": 40, "temperature": 0}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let whole = body["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    assert!(whole.contains("Paris"), "{whole}");
    assert!(!whole.contains("<|im_end|>"), "{whole}");
    assert_eq!(body["model"], "SmolLM2-135M-Instruct");

    let response = client
        .post(&url)
        .json(&json!({"model": "SmolLM2-135M-Instruct", "messages": question, "max_tokens": 40, "temperature": 0, "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let data = sse_data(&response.text().await.unwrap());
    let streamed: String = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect();
    assert_eq!(streamed, whole);

    for stream in [false, true] {
        let (status, body) = post(
            &client,
            &url,
            json!({"model": "SmolLM2-135M-Instruct", "messages": question, "max_tokens": 1_000_000, "stream": stream}),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_openai_error(&body, "invalid_request_error");
        assert_eq!(body["error"]["code"], "context_length_exceeded");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("exceeds the context"));
    }
    server.shutdown().await;
}

/// Bounded load: 200 requests at concurrency 16 on the mock backend, then an
/// overload burst that must be answered with 429s, never with failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_200_requests_at_concurrency_16() {
    let server = start(ServerConfig {
        max_concurrency: 16,
        max_queue: 64,
        preload: vec!["story".into()],
        ..ServerConfig::ephemeral()
    })
    .await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/chat/completions");
    let total = 200;
    let concurrency = 16;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let (client, url, next) = (client.clone(), url.clone(), Arc::clone(&next));
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < total {
                let response = client
                    .post(&url)
                    .json(&json!({"model": "story", "messages": [{"role": "user", "content": "Hi"}]}))
                    .send()
                    .await
                    .expect("no transport errors");
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap();
                assert_eq!(
                    body["choices"][0]["message"]["content"],
                    "Once upon a time there was a fox."
                );
                statuses.push(status);
            }
            statuses
        })
    });
    let statuses: Vec<u16> = futures::future::join_all(workers)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap())
        .collect();
    let elapsed = started.elapsed();
    assert_eq!(statuses.len(), total);
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    println!(
        "server load (mock backend): {total} requests at concurrency {concurrency} in {:.2} s = {:.0} requests/s",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    server.shutdown().await;

    // Overload: 2 slots, 2 waiting, 48 requests at concurrency 16, 200 ms each.
    let server = start(ServerConfig {
        max_concurrency: 2,
        max_queue: 2,
        preload: vec!["tortoise".into()],
        ..ServerConfig::ephemeral()
    })
    .await;
    let url = server.url("/v1/chat/completions");
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers = (0..16).map(|_| {
        let (client, url, next) = (client.clone(), url.clone(), Arc::clone(&next));
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 48 {
                let response = client
                    .post(&url)
                    .json(&json!({"model": "tortoise", "messages": [{"role": "user", "content": "Hi"}]}))
                    .send()
                    .await
                    .expect("no transport errors under overload");
                statuses.push(response.status().as_u16());
                response.bytes().await.unwrap();
            }
            statuses
        })
    });
    let statuses: Vec<u16> = futures::future::join_all(workers)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap())
        .collect();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let rejected = statuses.iter().filter(|s| **s == 429 || **s == 503).count();
    println!(
        "server overload (2 slots, 2 queued, 200 ms answers): {ok} answered, {rejected} turned away with 429 in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(ok + rejected, 48, "only 200 or 429/503: {statuses:?}");
    assert!(ok >= 4 && rejected >= 1, "{statuses:?}");
    server.shutdown().await;
}

/// Fuzzing the request bodies: seeded mutations of valid requests (and random
/// junk) must never get a 5xx or break the server. `LMHOST_FUZZ_SEED` replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_request_bodies_never_get_a_5xx() {
    let server = start(ServerConfig::ephemeral()).await;
    let client = reqwest::Client::new();
    let mut seed: u64 = std::env::var("LMHOST_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
        | 1;
    eprintln!("fuzz server bodies: LMHOST_FUZZ_SEED={seed}");
    let mut next = move || {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let valid = [
        json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}).to_string(),
        json!({"model": "mock", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "é"}],
               "stream": true, "stop": ["x"], "temperature": 0.5, "seed": 3})
        .to_string(),
        json!({"model": "mock", "prompt": "hi", "max_tokens": 2}).to_string(),
    ];
    let pieces = [
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"",
        "null",
        "-1",
        "1e400",
        "true",
        "\"model\"",
        "\"messages\"",
        "\u{0}",
        "𝄞",
    ];
    for i in 0..300 {
        let base = &valid[(next() % valid.len() as u64) as usize];
        let mut text: Vec<char> = base.chars().collect();
        for _ in 0..=(next() % 4) {
            let at = (next() % (text.len() as u64 + 1)) as usize;
            match next() % 3 {
                0 if !text.is_empty() => {
                    text.remove(at.min(text.len() - 1));
                }
                1 => {
                    let piece = pieces[(next() % pieces.len() as u64) as usize];
                    for (k, c) in piece.chars().enumerate() {
                        text.insert(at + k, c);
                    }
                }
                _ => text.insert(at, char::from_u32((next() % 0x7f) as u32 + 1).unwrap_or('x')),
            }
        }
        let body: String = text.into_iter().collect();
        let path = if i % 3 == 2 {
            "/v1/completions"
        } else {
            "/v1/chat/completions"
        };
        let response = client
            .post(server.url(path))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("server broke on {body:?}: {e}"));
        let status = response.status().as_u16();
        assert!(status < 500, "{status} for {body:?}: {:?}", response.text().await);
    }
    // Still serving.
    let (status, _) = post(
        &client,
        &server.url("/v1/chat/completions"),
        json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 200);
    server.shutdown().await;
}
