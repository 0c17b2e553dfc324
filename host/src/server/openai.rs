//! OpenAI's request and response bodies, and their translation to lmhost's
//! [`Message`]s and [`GenerationParams`].
//!
//! Unknown fields are ignored (clients send many), but fields whose meaning
//! lmhost cannot honour (`n` > 1, `logprobs`, `functions`, `logit_bias`,
//! `best_of` > 1, `echo`, `suffix`) are refused with a 400 rather than silently
//! dropped. A JSON `response_format` and a required or named `tool_choice` are
//! enforced while decoding by engines that can (a model whose engine cannot
//! refuses them with a 400). Tool calls and reasoning come back as OpenAI's
//! `tool_calls` and the `reasoning_content` field its compatible servers use.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::ApiError;
use crate::adapters::ledger::{MAX_STOP_BYTES, MAX_STOP_STRINGS};
use crate::{Generation, GenerationParams, Message, ToolCall, Usage};

mod tools;
use tools::{check_tool_choice, response_format, tool, tool_call_body, tool_calls, tool_choice};

/// `stop`: one string or a list.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Stop {
    /// One stop string.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct StreamOptions {
    /// Send a last chunk with `usage` (and no choices) before `[DONE]`.
    #[serde(default)]
    pub include_usage: bool,
}

/// The sampling fields both endpoints share.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Sampling {
    /// Most tokens to generate (older name).
    pub max_tokens: Option<u32>,
    /// Most tokens to generate (newer name; wins over `max_tokens`).
    pub max_completion_tokens: Option<u32>,
    /// 0 is greedy.
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Top-k sampling.
    pub top_k: Option<u32>,
    /// Min-p sampling.
    pub min_p: Option<f32>,
    /// Sampling seed.
    pub seed: Option<u64>,
    /// Stop strings.
    pub stop: Option<Stop>,
    /// Frequency penalty.
    pub frequency_penalty: Option<f32>,
    /// Presence penalty.
    pub presence_penalty: Option<f32>,
    /// Repetition penalty (not OpenAI's, but common).
    pub repetition_penalty: Option<f32>,
    /// Number of choices: only 1.
    pub n: Option<u32>,
    /// Stream the answer as server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options.
    pub stream_options: Option<StreamOptions>,
    /// Log probabilities: not supported (`true` is refused).
    pub logprobs: Option<Value>,
    /// Not supported.
    pub top_logprobs: Option<Value>,
    /// Not supported (non-empty is refused).
    pub logit_bias: Option<Value>,
    /// lmhost's own: answer with `lmhost.prompt` (exactly what the engine was
    /// given: the rendered prompt, or the HTTP body) and `lmhost.response`
    /// (exactly what it returned), clembench's `prompt` and `response`.
    #[serde(default)]
    pub return_prompt: bool,
}

/// One message of a chat request; `content` is a string or a list of text parts.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ChatMessage {
    /// `system`, `developer` (treated as `system`), `user`, `assistant`, …
    pub role: String,
    /// The text, or a list of `{"type": "text", "text": …}` parts.
    #[serde(default)]
    pub content: Value,
    /// An assistant turn's tool calls.
    #[serde(default)]
    pub tool_calls: Option<Value>,
    /// A `tool` turn: the call it answers.
    #[serde(default)]
    pub tool_call_id: Option<String>,
    /// A `tool` turn: the tool's name.
    #[serde(default)]
    pub name: Option<String>,
    /// An assistant turn's reasoning, as this server returned it.
    #[serde(default)]
    pub reasoning_content: Option<String>,
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ChatRequest {
    /// A registry name.
    pub model: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Sampling and streaming fields.
    #[serde(flatten)]
    pub sampling: Sampling,
    /// Function tools the model may call.
    pub tools: Option<Value>,
    /// `auto`, `none`, `required` or `{"type": "function", "function": {"name": …}}`.
    pub tool_choice: Option<Value>,
    /// Several calls in one turn.
    pub parallel_tool_calls: Option<bool>,
    /// The deprecated predecessor of `tools`: refused, with a pointer to `tools`.
    pub functions: Option<Value>,
    /// `text`, `json_object` or `json_schema` (enforced while decoding).
    pub response_format: Option<Value>,
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct CompletionRequest {
    /// A registry name.
    pub model: String,
    /// One string (or a list holding one string).
    pub prompt: Value,
    /// Sampling and streaming fields.
    #[serde(flatten)]
    pub sampling: Sampling,
    /// Not supported (`true` is refused).
    pub echo: Option<bool>,
    /// Not supported (`> 1` is refused).
    pub best_of: Option<u32>,
    /// Not supported (non-empty is refused).
    pub suffix: Option<String>,
}

fn present(v: &Option<Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

impl Sampling {
    /// Check the fields and build the generation parameters.
    pub fn params(&self) -> Result<GenerationParams, ApiError> {
        match self.n {
            None | Some(1) => {}
            Some(n) => {
                return Err(ApiError::invalid_request(
                    format!("`n` = {n} is not supported; lmhost returns one choice"),
                    Some("n"),
                ))
            }
        }
        if present(&self.logprobs) && !matches!(self.logprobs, Some(Value::Number(_))) {
            return Err(ApiError::invalid_request(
                "`logprobs` is not supported",
                Some("logprobs"),
            ));
        }
        if let Some(Value::Number(n)) = &self.logprobs {
            if n.as_u64() != Some(0) {
                return Err(ApiError::invalid_request(
                    "`logprobs` is not supported",
                    Some("logprobs"),
                ));
            }
        }
        if present(&self.top_logprobs) && self.top_logprobs != Some(json!(0)) {
            return Err(ApiError::invalid_request(
                "`top_logprobs` is not supported",
                Some("top_logprobs"),
            ));
        }
        if present(&self.logit_bias) {
            return Err(ApiError::invalid_request(
                "`logit_bias` is not supported",
                Some("logit_bias"),
            ));
        }
        // Stop strings are matched against every generated token: the same
        // caps as for an adapter's.
        let stops: &[String] = match &self.stop {
            None => &[],
            Some(Stop::One(s)) => std::slice::from_ref(s),
            Some(Stop::Many(list)) => list,
        };
        if stops.len() > MAX_STOP_STRINGS || stops.iter().any(|s| s.len() > MAX_STOP_BYTES) {
            return Err(ApiError::invalid_request(
                format!("`stop` takes at most {MAX_STOP_STRINGS} strings of at most {MAX_STOP_BYTES} bytes each"),
                Some("stop"),
            ));
        }
        let max_tokens = self.max_completion_tokens.or(self.max_tokens);
        if max_tokens == Some(0) {
            let param = if self.max_completion_tokens.is_some() {
                "max_completion_tokens"
            } else {
                "max_tokens"
            };
            return Err(ApiError::invalid_request(
                format!("`{param}` must be at least 1"),
                Some(param),
            ));
        }
        let check = |value: Option<f32>, name: &str, ok: fn(f32) -> bool, range: &str| match value {
            Some(v) if !v.is_finite() || !ok(v) => Err(ApiError::invalid_request(
                format!("`{name}` must be {range}, got {v}"),
                Some(name),
            )),
            _ => Ok(()),
        };
        check(self.temperature, "temperature", |v| v >= 0.0, "at least 0")?;
        check(self.top_p, "top_p", |v| v > 0.0 && v <= 1.0, "in (0, 1]")?;
        check(self.min_p, "min_p", |v| (0.0..=1.0).contains(&v), "in [0, 1]")?;
        check(
            self.frequency_penalty,
            "frequency_penalty",
            |v| (-2.0..=2.0).contains(&v),
            "in [-2, 2]",
        )?;
        check(
            self.presence_penalty,
            "presence_penalty",
            |v| (-2.0..=2.0).contains(&v),
            "in [-2, 2]",
        )?;
        check(self.repetition_penalty, "repetition_penalty", |v| v > 0.0, "above 0")?;
        Ok(GenerationParams {
            max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            min_p: self.min_p,
            seed: self.seed,
            stop: match &self.stop {
                None => Vec::new(),
                Some(Stop::One(s)) => vec![s.clone()],
                Some(Stop::Many(list)) => list.clone(),
            },
            repetition_penalty: self.repetition_penalty,
            frequency_penalty: self.frequency_penalty,
            presence_penalty: self.presence_penalty,
            ..GenerationParams::default()
        })
    }

    /// Whether a stream ends with a usage chunk.
    pub fn include_usage(&self) -> bool {
        self.stream_options.as_ref().is_some_and(|o| o.include_usage)
    }
}

impl ChatRequest {
    /// Check the request and translate it.
    pub fn to_call(&self) -> Result<(Vec<Message>, GenerationParams), ApiError> {
        if present(&self.functions) {
            return Err(ApiError::invalid_request(
                "`functions` is not supported; use `tools`",
                Some("functions"),
            ));
        }
        let tools = match &self.tools {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, t)| tool(t, i))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(ApiError::invalid_request("`tools` must be a list", Some("tools"))),
        };
        let tool_choice = match &self.tool_choice {
            None | Some(Value::Null) => None,
            Some(choice) => Some(tool_choice(choice)?),
        };
        check_tool_choice(&tools, tool_choice.as_ref())?;
        let response_format = match &self.response_format {
            None => None,
            Some(format) => response_format(format)?,
        };
        if self.messages.is_empty() {
            return Err(ApiError::invalid_request(
                "`messages` must not be empty",
                Some("messages"),
            ));
        }
        let messages = self
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let role = if m.role == "developer" {
                    "system"
                } else {
                    m.role.as_str()
                };
                Ok(Message {
                    tool_calls: match &m.tool_calls {
                        None | Some(Value::Null) => Vec::new(),
                        Some(calls) => tool_calls(calls, i)?,
                    },
                    tool_call_id: m.tool_call_id.clone(),
                    name: m.name.clone(),
                    reasoning: m.reasoning_content.clone(),
                    ..Message::new(role, content_text(&m.content, i)?)
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let params = GenerationParams {
            response_format,
            tools,
            tool_choice,
            parallel_tool_calls: self.parallel_tool_calls,
            ..self.sampling.params()?
        };
        Ok((messages, params))
    }
}

fn content_text(content: &Value, index: usize) -> Result<String, ApiError> {
    let param = format!("messages[{index}].content");
    let bad = |what: &str| ApiError::invalid_request(format!("`{param}` {what}"), Some(param.as_str()));
    match content {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut text = String::new();
            for part in parts {
                match (part.get("type").and_then(Value::as_str), part.get("text")) {
                    (Some("text"), Some(Value::String(t))) => text.push_str(t),
                    (Some(kind), _) if kind != "text" => {
                        return Err(bad(&format!(
                            "has a {} part; only text parts are supported",
                            crate::adapters::ledger::quote(kind)
                        )))
                    }
                    _ => return Err(bad("has a part that is not {\"type\": \"text\", \"text\": string}")),
                }
            }
            Ok(text)
        }
        _ => Err(bad("must be a string or a list of text parts")),
    }
}

impl CompletionRequest {
    /// Check the request and translate it: the prompt becomes one user message,
    /// shaped by the model's adapter like any chat turn.
    pub fn to_call(&self) -> Result<(Vec<Message>, GenerationParams), ApiError> {
        if self.echo == Some(true) {
            return Err(ApiError::invalid_request("`echo` is not supported", Some("echo")));
        }
        if self.best_of.is_some_and(|b| b > 1) {
            return Err(ApiError::invalid_request(
                "`best_of` > 1 is not supported",
                Some("best_of"),
            ));
        }
        if self.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::invalid_request("`suffix` is not supported", Some("suffix")));
        }
        let prompt =
            match &self.prompt {
                Value::String(s) => s.clone(),
                Value::Array(items) if items.len() == 1 && items[0].is_string() => {
                    items[0].as_str().unwrap_or_default().into()
                }
                _ => return Err(ApiError::invalid_request(
                    "`prompt` must be a string (or a list of one string); token arrays and batches are not supported",
                    Some("prompt"),
                )),
            };
        Ok((vec![Message::user(prompt)], self.sampling.params()?))
    }
}

/// OpenAI's `finish_reason` for lmhost's.
pub fn finish_reason(g: &Generation) -> &'static str {
    match g.finish_reason.as_str() {
        "length" => "length",
        "tool_calls" => "tool_calls",
        _ => "stop",
    }
}

/// The `usage` object.
#[derive(Debug, Clone, Serialize)]
pub struct UsageBody {
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Generated tokens.
    pub completion_tokens: u32,
    /// Their sum.
    pub total_tokens: u32,
    /// `{"reasoning_tokens": …}`: generated tokens spent reasoning.
    pub completion_tokens_details: CompletionTokensDetails,
}

/// `usage.completion_tokens_details`.
#[derive(Debug, Clone, Serialize)]
pub struct CompletionTokensDetails {
    /// Generated tokens spent reasoning.
    pub reasoning_tokens: u32,
}

impl From<Usage> for UsageBody {
    fn from(u: Usage) -> Self {
        Self {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total_tokens,
            completion_tokens_details: CompletionTokensDetails {
                reasoning_tokens: u.reasoning_tokens,
            },
        }
    }
}

/// Which endpoint's shapes to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Completion,
}

/// Identity of one response: the same `id`, `created` and `model` in every chunk.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// `chatcmpl-…` or `cmpl-…`.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// The model name the client asked for.
    pub model: String,
    /// Which endpoint.
    pub kind: Kind,
}

impl Envelope {
    /// A fresh id for `model`.
    pub fn new(kind: Kind, model: &str) -> Self {
        let prefix = match kind {
            Kind::Chat => "chatcmpl",
            Kind::Completion => "cmpl",
        };
        Self {
            id: format!("{prefix}-{}", fresh_id()),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default(),
            model: model.to_string(),
            kind,
        }
    }

    /// The whole (non-streamed) response, with lmhost's extra fields
    /// ([`with_extras`](Self::with_extras)).
    pub fn response(&self, g: &Generation, return_prompt: bool) -> Value {
        let usage = UsageBody::from(g.usage);
        let body = match self.kind {
            Kind::Chat => json!({
                "id": self.id,
                "object": "chat.completion",
                "created": self.created,
                "model": self.model,
                "choices": [{
                    "index": 0,
                    "message": chat_message(g),
                    "logprobs": null,
                    "finish_reason": finish_reason(g),
                }],
                "usage": usage,
            }),
            Kind::Completion => json!({
                "id": self.id,
                "object": "text_completion",
                "created": self.created,
                "model": self.model,
                "choices": [{
                    "index": 0,
                    "text": g.response_text,
                    "logprobs": null,
                    "finish_reason": finish_reason(g),
                }],
                "usage": usage,
            }),
        };
        Self::with_extras(body, g, return_prompt)
    }

    /// lmhost's fields beside OpenAI's (clients ignore fields they do not
    /// know): `timings` (milliseconds: `prompt_ms`, `generation_ms`,
    /// `adapter_ms`, `time_to_first_token_ms`, `total_ms`) always, and with
    /// `return_prompt` an `lmhost` object with clembench's `prompt` (exactly
    /// what the engine was given) and `response` (exactly what it returned).
    /// On a whole response and on the last chunk of a stream.
    pub fn with_extras(mut body: Value, g: &Generation, return_prompt: bool) -> Value {
        body["timings"] = serde_json::to_value(g.timings).unwrap_or(Value::Null);
        if return_prompt {
            body["lmhost"] = json!({"prompt": g.prompt, "response": g.response});
        }
        body
    }

    /// A streamed chunk: the first one (`role`), a piece of text, or the last one (`finish_reason`).
    pub fn chunk(&self, text: Option<&str>, first: bool, finish: Option<&str>, with_usage_field: bool) -> Value {
        let piece = text.map(|t| ("content", Value::from(t)));
        self.chunk_with(piece, first, finish, with_usage_field)
    }

    /// A chat chunk with reasoning text (`reasoning_content`).
    pub fn reasoning_chunk(&self, reasoning: &str, with_usage_field: bool) -> Value {
        self.chunk_with(
            Some(("reasoning_content", reasoning.into())),
            false,
            None,
            with_usage_field,
        )
    }

    /// A chat chunk with one whole tool call, the `index`th of the answer.
    pub fn tool_call_chunk(&self, call: &ToolCall, index: usize, with_usage_field: bool) -> Value {
        let calls = Value::Array(vec![tool_call_body(call, Some(index))]);
        self.chunk_with(Some(("tool_calls", calls)), false, None, with_usage_field)
    }

    fn chunk_with(
        &self,
        piece: Option<(&str, Value)>,
        first: bool,
        finish: Option<&str>,
        with_usage_field: bool,
    ) -> Value {
        let mut chunk = match self.kind {
            Kind::Chat => {
                let mut delta = serde_json::Map::new();
                if first {
                    delta.insert("role".into(), "assistant".into());
                }
                if let Some((key, value)) = piece {
                    delta.insert(key.into(), value);
                }
                json!({
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
                })
            }
            Kind::Completion => json!({
                "id": self.id,
                "object": "text_completion",
                "created": self.created,
                "model": self.model,
                "choices": [{
                    "index": 0,
                    "text": piece.as_ref().and_then(|(_, v)| v.as_str()).unwrap_or_default(),
                    "logprobs": null,
                    "finish_reason": finish,
                }],
            }),
        };
        if with_usage_field {
            chunk["usage"] = Value::Null;
        }
        chunk
    }

    /// The usage chunk sent last when `stream_options.include_usage` is set.
    pub fn usage_chunk(&self, usage: Usage) -> Value {
        let object = match self.kind {
            Kind::Chat => "chat.completion.chunk",
            Kind::Completion => "text_completion",
        };
        json!({
            "id": self.id,
            "object": object,
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": UsageBody::from(usage),
        })
    }
}

/// The assistant message of a whole chat response: `content` (null when the
/// answer is only tool calls, as OpenAI writes it), `tool_calls` and
/// `reasoning_content` when there are any.
fn chat_message(g: &Generation) -> Value {
    let mut message = json!({"role": "assistant", "content": g.response_text});
    if !g.tool_calls.is_empty() {
        if g.response_text.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = g.tool_calls.iter().map(|c| tool_call_body(c, None)).collect();
    }
    if let Some(reasoning) = &g.reasoning {
        message["reasoning_content"] = reasoning.as_str().into();
    }
    message
}

fn fresh_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut hasher = sha2::Sha256::default();
    sha2::Digest::update(&mut hasher, format!("{nanos}:{n}:{}", std::process::id()).as_bytes());
    let digest = sha2::Digest::finalize(hasher);
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}
