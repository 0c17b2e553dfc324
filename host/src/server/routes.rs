//! The router and its handlers: parse and check a request, find the model,
//! wait for a generation slot, generate (whole or streamed), answer in
//! OpenAI's shapes; a middleware counts every request for `/metrics`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{FutureExt, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::error::{ApiError, ErrorKind};
use super::openai::{finish_reason, ChatRequest, CompletionRequest, Envelope, Kind};
use super::AppState;
use crate::{GenerationParams, Message, StreamEvent};

/// Marks a streamed response: its latency is observed, and its access-log
/// line written, when the stream ends.
#[derive(Debug, Clone, Copy)]
struct Streamed;

/// What the access log says of a generation request: the model asked for and,
/// once known, the tokens.
#[derive(Debug, Clone, Default)]
struct Access {
    model: String,
    tokens: Option<(u32, u32)>,
}

/// A model name as the client sent it, fit for one log line: control
/// characters escaped (no forged lines), at most 200 characters kept.
fn loggable(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if i == 200 {
            out.push_str(&format!("…({} bytes)", name.len()));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// One line per request at `-v` (info), target `lmhost::access`: method,
/// path, status, model, prompt and completion tokens, milliseconds. A
/// streamed request's line is written when its stream ends.
fn log_access(method: &str, path: &str, status: u16, access: Option<&Access>, elapsed: std::time::Duration) {
    let model = access.map_or_else(|| "-".to_string(), |a| loggable(&a.model));
    let (prompt_tokens, completion_tokens) = access.and_then(|a| a.tokens).unwrap_or_default();
    tracing::info!(
        target: "lmhost::access",
        method = %method,
        path = %path,
        status,
        model = %model,
        prompt_tokens,
        completion_tokens,
        ms = elapsed.as_millis() as u64,
        "request"
    );
}

pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), authorize))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), track))
        .with_state(state)
}

/// The `endpoint` label: known paths as they are, anything else as `other`.
fn endpoint_label(path: &str) -> &'static str {
    match path {
        "/v1/chat/completions" => "/v1/chat/completions",
        "/v1/completions" => "/v1/completions",
        "/v1/models" => "/v1/models",
        "/health" => "/health",
        "/metrics" => "/metrics",
        _ => "other",
    }
}

async fn track(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let endpoint = endpoint_label(request.uri().path());
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    if response.extensions().get::<Streamed>().is_none() {
        log_access(
            method.as_str(),
            endpoint,
            response.status().as_u16(),
            response.extensions().get::<Access>(),
            started.elapsed(),
        );
    }
    let metrics = &state.metrics;
    metrics.record_request(endpoint, response.status().as_u16());
    if let Some(ErrorKind(kind)) = response.extensions().get::<ErrorKind>() {
        metrics.record_error(endpoint, kind);
    }
    if response.extensions().get::<Streamed>().is_none() {
        metrics.observe_latency(endpoint, started.elapsed());
    }
    response
}

/// With an API key set, every path but `/health` needs `Authorization: Bearer
/// <key>`; the key is compared in constant time.
async fn authorize(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    use subtle::ConstantTimeEq;
    let Some(key) = state.config.api_key.as_deref() else {
        return next.run(request).await;
    };
    if request.uri().path() == "/health" {
        return next.run(request).await;
    }
    let sent = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(sent.as_bytes().ct_eq(key.as_bytes())) {
        next.run(request).await
    } else {
        ApiError::unauthorized().into_response()
    }
}

async fn no_route(request: Request) -> ApiError {
    ApiError::no_route(request.uri().path())
}

async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    let mut loaded: Vec<String> = state
        .models
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .keys()
        .cloned()
        .collect();
    loaded.sort();
    Json(json!({"status": "ok", "models_loaded": loaded}))
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
        .into_response()
}

async fn models(State(state): State<Arc<AppState>>) -> Json<Value> {
    let runnable = crate::backends::runnable_backend_names();
    let mut seen = std::collections::HashSet::new();
    let data: Vec<Value> = state
        .host
        .registry()
        .entries()
        .iter()
        .filter(|s| {
            runnable.contains(&s.backend()) && crate::backends::find_backend(s.backend()).is_some_and(|b| b.servable)
        })
        // A name resolves to its first entry: list that one.
        .filter(|s| seen.insert(s.model_name().to_string()))
        .map(|s| {
            json!({
                "id": s.model_name(),
                "object": "model",
                "created": state.started,
                "owned_by": s.backend(),
            })
        })
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// The body as `T`, or a 400 (malformed JSON, wrong types) or 413 (too large).
fn parse<T: DeserializeOwned>(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(state.config.max_body_bytes)
        } else {
            ApiError::invalid_request(rejection.body_text(), None)
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::invalid_request(format!("the body is not valid JSON: {e}"), None).with_code("invalid_json")
            }
            Category::Data => {
                ApiError::invalid_request(format!("invalid request body: {e}"), None).with_code("invalid_request_body")
            }
        }
    })
}

async fn chat_completions(State(state): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Response {
    let request: ChatRequest = match parse(&state, body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let call = request.to_call();
    respond(state, Kind::Chat, request.model, request.sampling, call).await
}

async fn completions(State(state): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Response {
    let request: CompletionRequest = match parse(&state, body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let call = request.to_call();
    respond(state, Kind::Completion, request.model, request.sampling, call).await
}

async fn respond(
    state: Arc<AppState>,
    kind: Kind,
    model_name: String,
    sampling: super::openai::Sampling,
    call: Result<(Vec<Message>, GenerationParams), ApiError>,
) -> Response {
    let name = model_name.clone();
    let result = async {
        let (messages, params) = call?;
        let options = Options {
            stream: sampling.stream,
            include_usage: sampling.include_usage(),
            return_prompt: sampling.return_prompt,
        };
        generate(state, kind, model_name, messages, params, options).await
    };
    // A panic on the async side of one request (a bug, perhaps on untrusted
    // input) answers that request with a 500 naming the model; without this the
    // connection would just drop. Nothing shared is left half-updated: the
    // model cache and metrics are behind mutexes that tolerate poisoning.
    let mut response = match std::panic::AssertUnwindSafe(result).catch_unwind().await {
        Ok(result) => result.unwrap_or_else(IntoResponse::into_response),
        Err(payload) => ApiError::internal(format!(
            "the request for `{name}` failed: {}",
            crate::error::panic_message(payload)
        ))
        .into_response(),
    };
    if response.extensions().get::<Access>().is_none() {
        response.extensions_mut().insert(Access {
            model: name,
            tokens: None,
        });
    }
    response
}

/// How a generation request wants its answer.
#[derive(Debug, Clone, Copy)]
struct Options {
    stream: bool,
    include_usage: bool,
    return_prompt: bool,
}

async fn generate(
    state: Arc<AppState>,
    kind: Kind,
    model_name: String,
    messages: Vec<Message>,
    params: GenerationParams,
    options: Options,
) -> Result<Response, ApiError> {
    let Options {
        stream,
        include_usage,
        return_prompt,
    } = options;
    let model = state.model(&model_name).await?;
    let slot = state.admission.enter().await?;
    let envelope = Envelope::new(kind, &model_name);
    if !stream {
        // The slot stays taken until the generation itself ends.
        let generation = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            model.generate(&messages, &params)
        })
        .await
        .map_err(|e| {
            ApiError::internal(format!(
                "the generation of `{model_name}` failed: {}",
                super::join_failure(e)
            ))
        })??;
        state.metrics.record_tokens(
            &model_name,
            generation.usage.prompt_tokens,
            generation.usage.completion_tokens,
        );
        let mut response = Json(envelope.response(&generation, return_prompt)).into_response();
        response.extensions_mut().insert(Access {
            model: model_name,
            tokens: Some((generation.usage.prompt_tokens, generation.usage.completion_tokens)),
        });
        return Ok(response);
    }

    let started = Instant::now();
    let mut events = model.stream_events(messages, params);
    // Wait for the first event so that errors found before any text (context
    // overflow, adapter refusals) still get their own HTTP status.
    let first = match events.next().await {
        Some(Ok(event)) => event,
        Some(Err(e)) => return Err(e.into()),
        None => return Err(ApiError::internal("the generation ended without a result")),
    };
    let metrics = Arc::clone(&state.metrics);
    let head = match kind {
        Kind::Chat => vec![envelope.chunk(Some(""), true, None, include_usage)],
        Kind::Completion => Vec::new(),
    };
    let head = futures::stream::iter(head.into_iter().map(|v| Event::default().data(v.to_string())));
    let mut slot = Some(slot);
    let mut calls = 0;
    let body = futures::stream::once(futures::future::ready(Ok(first)))
        .chain(events)
        .flat_map(move |event| {
            let data = |v: Value| Event::default().data(v.to_string());
            let mut out = Vec::new();
            match event {
                Ok(StreamEvent::Text(text)) => out.push(data(envelope.chunk(Some(&text), false, None, include_usage))),
                Ok(StreamEvent::Reasoning(text)) => {
                    if envelope.kind == Kind::Chat {
                        out.push(data(envelope.reasoning_chunk(&text, include_usage)));
                    }
                }
                Ok(StreamEvent::ToolCall(call)) => {
                    if envelope.kind == Kind::Chat {
                        out.push(data(envelope.tool_call_chunk(&call, calls, include_usage)));
                    }
                    calls += 1;
                }
                Ok(StreamEvent::Done(g)) => {
                    slot.take();
                    metrics.record_tokens(&envelope.model, g.usage.prompt_tokens, g.usage.completion_tokens);
                    let finish = finish_reason(&g);
                    let last_text = match envelope.kind {
                        Kind::Chat => None,
                        Kind::Completion => Some(""),
                    };
                    let last = envelope.chunk(last_text, false, Some(finish), include_usage);
                    out.push(data(Envelope::with_extras(last, &g, return_prompt)));
                    if include_usage {
                        out.push(data(envelope.usage_chunk(g.usage)));
                    }
                    out.push(Event::default().data("[DONE]"));
                    metrics.observe_latency(endpoint_path(envelope.kind), started.elapsed());
                    let access = Access {
                        model: envelope.model.clone(),
                        tokens: Some((g.usage.prompt_tokens, g.usage.completion_tokens)),
                    };
                    log_access(
                        "POST",
                        endpoint_path(envelope.kind),
                        200,
                        Some(&access),
                        started.elapsed(),
                    );
                }
                Err(e) => {
                    slot.take();
                    let error = ApiError::from_error(e);
                    tracing::warn!("stream of `{}` failed: {}", envelope.model, error.message);
                    metrics.record_error(endpoint_path(envelope.kind), error.kind);
                    out.push(data(error.body()));
                    metrics.observe_latency(endpoint_path(envelope.kind), started.elapsed());
                    let access = Access {
                        model: envelope.model.clone(),
                        tokens: None,
                    };
                    let status = error.status.as_u16();
                    log_access(
                        "POST",
                        endpoint_path(envelope.kind),
                        status,
                        Some(&access),
                        started.elapsed(),
                    );
                }
            }
            futures::stream::iter(out)
        });
    let sse = Sse::new(head.chain(body).map(Ok::<Event, Infallible>));
    let mut response = sse.into_response();
    response.extensions_mut().insert(Streamed);
    Ok(response)
}

fn endpoint_path(kind: Kind) -> &'static str {
    match kind {
        Kind::Chat => "/v1/chat/completions",
        Kind::Completion => "/v1/completions",
    }
}

#[cfg(test)]
mod tests {
    use super::loggable;

    #[test]
    fn a_client_model_name_stays_one_short_log_line() {
        assert_eq!(loggable("SmolLM2-135M-Instruct"), "SmolLM2-135M-Instruct");
        assert_eq!(loggable("a\nINFO forged\r"), "a\\nINFO forged\\r");
        let huge = "m".repeat(1 << 20);
        let line = loggable(&huge);
        assert!(line.len() < 260 && line.ends_with("…(1048576 bytes)"), "{}", line.len());
    }
}
