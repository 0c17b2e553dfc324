//! `openai-chat`: the adapter for OpenAI-style chat completions, used by the
//! backends `openai`, `openai_compatible`, `openrouter` and `mistral`.
//!
//! Request: `POST /chat/completions` with a JSON body `{model, messages, ...}`.
//! The messages go as `{role, content}`. The model is the entry's `model_id`;
//! `openai_compatible` prefers `call_name`, and `openrouter` falls back to
//! `huggingface_id`. Parameters are sent only when set: `temperature`,
//! `max_tokens`, `top_p`, `seed`, `stop` (when not empty), `frequency_penalty`,
//! `presence_penalty`. `top_k`, `min_p` and `repetition_penalty` have no field
//! in this API and are not sent (an entry's `extra_body` can add them for
//! servers that take them). With `reasoning_model: true` in the entry the limit
//! goes as `max_completion_tokens` and `temperature` and `top_p` are left out.
//! `mistral` takes the seed as `random_seed`. A streamed call sets
//! `stream: true` and, except for `mistral`, asks for the usage in the last event
//! (`stream_options.include_usage`). The entry's `extra_body` is merged into the
//! body last; its keys win. No credentials: the host adds them.
//!
//! Response: `choices[0].message.content` (a `null` content is an empty answer),
//! `choices[0].finish_reason` and `usage.prompt_tokens` / `completion_tokens`.
//! Streamed, each event's `choices[0].delta.content` is appended, and the finish
//! reason and usage are taken from the events that carry them. An `error`
//! object, whole or in an event, is an `upstream` error with its message. The
//! answer text is stripped of leading and trailing whitespace.

wit_bindgen::generate!({
    world: "adapter",
    path: "../../../wit",
});

use exports::lmhost::adapter::model_adapter::{
    AdapterError, Completion, Guest, GuestResponseStream, Message, ModelInfo, Params, Request,
};
use lmhost::adapter::types::HttpRequest;
use remote_kit::{
    describe_error, final_text, parse_reply, str_at, u32_at, unsupported, upstream, Body, KitResult, Reply, Spec,
    StreamState,
};
use serde_json::{json, Value};

/// The flavour of the OpenAI-style API a backend speaks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    OpenAi,
    Compatible,
    OpenRouter,
    Mistral,
}

impl Flavor {
    fn of(model: &ModelInfo) -> KitResult<Self> {
        match model.backend.as_str() {
            "openai" => Ok(Flavor::OpenAi),
            "openai_compatible" => Ok(Flavor::Compatible),
            "openrouter" => Ok(Flavor::OpenRouter),
            "mistral" => Ok(Flavor::Mistral),
            other => Err(unsupported(
                &model.name,
                format!(
                    "backend `{other}` is not one this adapter speaks (openai, openai_compatible, openrouter, mistral)"
                ),
            )),
        }
    }

    /// Registry keys that name the model at the provider, in order of preference.
    fn model_keys(self) -> &'static [&'static str] {
        match self {
            Flavor::Compatible => &["call_name", "model_id"],
            Flavor::OpenRouter => &["model_id", "huggingface_id"],
            Flavor::OpenAi | Flavor::Mistral => &["model_id"],
        }
    }
}

struct OpenAiChat;

impl Guest for OpenAiChat {
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
    let flavor = Flavor::of(model)?;
    let spec = Spec::parse(name, &model.spec_json)?;
    let model_id = spec.first_str(flavor.model_keys())?;
    let reasoning = spec.flag("reasoning_model")?;
    let turns = remote_kit::turns(name, messages.iter().map(|m| (m.role.as_str(), m.content.as_str())))?;
    let messages: Vec<Value> = turns
        .iter()
        .map(|(role, content)| json!({ "role": role.as_str(), "content": content }))
        .collect();

    let mut body = Body::new();
    body.set("model", model_id).set("messages", messages);
    if reasoning {
        body.opt("max_completion_tokens", params.max_tokens);
    } else {
        body.float(name, "temperature", params.temperature)?
            .float(name, "top_p", params.top_p)?
            .opt("max_tokens", params.max_tokens);
    }
    let seed_key = if flavor == Flavor::Mistral {
        "random_seed"
    } else {
        "seed"
    };
    body.opt(seed_key, params.seed)
        .stop("stop", &params.stop)
        .float(name, "frequency_penalty", params.frequency_penalty)?
        .float(name, "presence_penalty", params.presence_penalty)?;
    if params.stream {
        body.set("stream", true);
        if flavor != Flavor::Mistral {
            body.set("stream_options", json!({ "include_usage": true }));
        }
    }
    let body = body.finish(&spec)?;
    Ok(HttpRequest {
        method: "POST".to_string(),
        path: "/chat/completions".to_string(),
        headers: remote_kit::json_headers(&[]),
        body: Value::Object(body).to_string(),
    })
}

/// An `error` object in a reply or event.
fn check_error(name: &str, v: &Value) -> KitResult<()> {
    match v.get("error") {
        None | Some(Value::Null) => Ok(()),
        Some(error) => Err(upstream(
            name,
            format!("the provider answered with an error: {}", describe_error(error)),
        )),
    }
}

/// Message or delta `content`: a string, `null`, or a list of text parts.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.as_str().or_else(|| p.get("text").and_then(Value::as_str)))
            .collect(),
        _ => String::new(),
    }
}

fn parse_whole(name: &str, raw: &str) -> KitResult<Reply> {
    let v = parse_reply(name, raw)?;
    check_error(name, &v)?;
    let choice = v
        .pointer("/choices/0")
        .ok_or_else(|| upstream(name, "the provider's reply has no choices"))?;
    Ok(Reply {
        text: final_text(&content_text(choice.pointer("/message/content"))),
        prompt_tokens: u32_at(&v, "/usage/prompt_tokens"),
        completion_tokens: u32_at(&v, "/usage/completion_tokens"),
        finish_reason: str_at(choice, "/finish_reason").map(remote_kit::finish_reason),
    })
}

fn stream_event(name: &str, state: &mut StreamState, data: &str) -> KitResult<String> {
    let v = parse_reply(name, data)?;
    check_error(name, &v)?;
    let mut out = String::new();
    if let Some(choice) = v.pointer("/choices/0") {
        out = state.text.push(&content_text(choice.pointer("/delta/content")));
        if let Some(reason) = str_at(choice, "/finish_reason") {
            state.set_finish_reason(reason);
        }
    }
    state.set_usage(
        u32_at(&v, "/usage/prompt_tokens"),
        u32_at(&v, "/usage/completion_tokens"),
    );
    Ok(out)
}

remote_kit::adapter_glue!(stream_event);

export!(OpenAiChat);
