//! `anthropic-messages`: the adapter for the Anthropic Messages API (backend
//! `anthropic`).
//!
//! Request: `POST /messages` with the header `anthropic-version: 2023-06-01` and
//! a JSON body. The system messages are joined with a blank line into the
//! top-level `system`; the other messages go as `{role, content: [{type: "text",
//! text}]}`, consecutive messages of the same role merged into one message with
//! several text blocks, since the API wants the roles to alternate. The model is
//! the entry's `model_id`. `max_tokens` is required by the API: the call's limit,
//! or 4096. Sent only when set: `temperature`, `top_p`, `top_k`, and `stop` as
//! `stop_sequences` (when not empty); the seed and the penalties have no field
//! in this API and are not sent. With `thinking_mode: true` in the entry the body
//! asks for extended thinking, `thinking: {type: "enabled", budget_tokens: B}`
//! with B the entry's `thinking_budget` (default 16000), `max_tokens` becomes
//! B plus the answer limit, and `temperature`, `top_p` and `top_k` are left out
//! (the API wants its defaults with thinking). A streamed call sets
//! `stream: true`. The entry's `extra_body` is merged into the body last; its
//! keys win. No credentials: the host adds them.
//!
//! Response: the `text` of the content blocks of type `text`, joined (thinking
//! blocks are skipped), `stop_reason` (`end_turn` and `stop_sequence` become
//! `stop`, `max_tokens` becomes `length`) and `usage.input_tokens` /
//! `output_tokens`. Streamed: `message_start` gives the input tokens,
//! `content_block_delta` events of type `text_delta` the text, `message_delta`
//! the stop reason and output tokens; thinking and signature deltas, `ping` and
//! the block start and stop events are ignored. An `error` reply or event is an
//! `upstream` error with its message. The answer text is stripped of leading and
//! trailing whitespace.

wit_bindgen::generate!({
    world: "adapter",
    path: "../../../wit",
});

use exports::lmhost::adapter::model_adapter::{
    AdapterError, Completion, Guest, GuestResponseStream, Message, ModelInfo, Params, Request,
};
use lmhost::adapter::types::HttpRequest;
use remote_kit::{
    describe_error, final_text, parse_reply, str_at, u32_at, upstream, Body, KitResult, Reply, Role, Spec, StreamState,
};
use serde_json::{json, Value};

const API_VERSION: &str = "2023-06-01";
/// The answer limit when the call sets none (the API requires one).
const DEFAULT_MAX_TOKENS: u32 = 4096;
/// The thinking budget when `thinking_mode` is on and the entry sets none.
const DEFAULT_THINKING_BUDGET: u64 = 16000;

struct AnthropicMessages;

impl Guest for AnthropicMessages {
    type ResponseStream = Stream;

    fn shape_request(model: ModelInfo, messages: Vec<Message>, params: Params) -> Result<Request, AdapterError> {
        Ok(Request::Http(shape(&model, &messages, &params)?))
    }

    fn parse_response(model: ModelInfo, raw: String) -> Result<Completion, AdapterError> {
        Ok(completion(parse_whole(&model.name, &raw)?))
    }
}

fn shape(model: &ModelInfo, messages: &[Message], params: &Params) -> KitResult<HttpRequest> {
    let name = model.name.as_str();
    let spec = Spec::parse(name, &model.spec_json)?;
    let model_id = spec.first_str(&["model_id"])?;
    let turns = remote_kit::turns(name, messages.iter().map(|m| (m.role.as_str(), m.content.as_str())))?;
    let dialogue = remote_kit::dialogue(name, &turns)?;
    let messages: Vec<Value> = dialogue
        .turns
        .iter()
        .map(|(role, texts)| {
            let role = if *role == Role::Assistant { "assistant" } else { "user" };
            let content: Vec<Value> = texts.iter().map(|t| json!({ "type": "text", "text": t })).collect();
            json!({ "role": role, "content": content })
        })
        .collect();

    let mut body = Body::new();
    body.set("model", model_id)
        .set("messages", messages)
        .opt("system", dialogue.system);
    let answer_limit = params.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    if spec.flag("thinking_mode")? {
        let budget = spec.positive_int("thinking_budget")?.unwrap_or(DEFAULT_THINKING_BUDGET);
        body.set("thinking", json!({ "type": "enabled", "budget_tokens": budget }))
            .set("max_tokens", budget + u64::from(answer_limit));
    } else {
        body.set("max_tokens", answer_limit)
            .float(name, "temperature", params.temperature)?
            .float(name, "top_p", params.top_p)?
            .opt("top_k", params.top_k);
    }
    body.stop("stop_sequences", &params.stop);
    if params.stream {
        body.set("stream", true);
    }
    let body = body.finish(&spec)?;
    Ok(HttpRequest {
        method: "POST".to_string(),
        path: "/messages".to_string(),
        headers: remote_kit::json_headers(&[("anthropic-version", API_VERSION)]),
        body: Value::Object(body).to_string(),
    })
}

/// An error reply or event: `{"type": "error", "error": {...}}`.
fn check_error(name: &str, v: &Value) -> KitResult<()> {
    let error = v.get("error").filter(|e| !e.is_null());
    if str_at(v, "/type") == Some("error") || error.is_some() {
        let what = error.map(describe_error).unwrap_or_else(|| v.to_string());
        return Err(upstream(name, format!("the provider answered with an error: {what}")));
    }
    Ok(())
}

fn parse_whole(name: &str, raw: &str) -> KitResult<Reply> {
    let v = parse_reply(name, raw)?;
    check_error(name, &v)?;
    let blocks = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| upstream(name, "the provider's reply has no `content` list"))?;
    let text: String = blocks
        .iter()
        .filter(|b| str_at(b, "/type") == Some("text"))
        .filter_map(|b| str_at(b, "/text"))
        .collect();
    Ok(Reply {
        text: final_text(&text),
        prompt_tokens: u32_at(&v, "/usage/input_tokens"),
        completion_tokens: u32_at(&v, "/usage/output_tokens"),
        finish_reason: str_at(&v, "/stop_reason").map(remote_kit::finish_reason),
    })
}

fn stream_event(name: &str, state: &mut StreamState, data: &str) -> KitResult<String> {
    let v = parse_reply(name, data)?;
    check_error(name, &v)?;
    match str_at(&v, "/type") {
        Some("message_start") => {
            state.set_usage(
                u32_at(&v, "/message/usage/input_tokens"),
                u32_at(&v, "/message/usage/output_tokens"),
            );
        }
        Some("content_block_delta") if str_at(&v, "/delta/type") == Some("text_delta") => {
            return Ok(state.text.push(str_at(&v, "/delta/text").unwrap_or_default()));
        }
        Some("message_delta") => {
            if let Some(reason) = str_at(&v, "/delta/stop_reason") {
                state.set_finish_reason(reason);
            }
            state.set_usage(u32_at(&v, "/usage/input_tokens"), u32_at(&v, "/usage/output_tokens"));
        }
        // `ping`, `message_stop`, block start/stop, thinking and signature
        // deltas, and event types added later carry nothing for the answer.
        _ => {}
    }
    Ok(String::new())
}

remote_kit::adapter_glue!(stream_event);

export!(AnthropicMessages);
