//! `remote-kit`: what the remote-API adapters share.
//!
//! The adapters (`openai-chat`, `anthropic-messages`, `google-gemini`,
//! `cohere-chat`) differ in wire format only. The rules they must agree on live
//! here, once:
//!
//! - the registry entry: typed lookups with errors that name the model and key
//!   ([`Spec`]);
//! - the request body: parameters are sent only when set, and the entry's
//!   `extra_body` is merged into the top level last ([`Body`]);
//! - the answer text: leading and trailing whitespace stripped ([`final_text`]),
//!   and while streaming only the part of it no later event can change
//!   ([`StreamText`], [`StreamState`]);
//! - finish reasons in OpenAI spelling ([`finish_reason`]);
//! - reading provider JSON ([`parse_reply`], [`u32_at`], [`str_at`]).
//!
//! - tool calls and reasoning: a reply's calls ([`Call`]), calls streamed in
//!   fragments and put together by index ([`StreamState::call_fragment`]),
//!   reasoning streamed apart from the text; an adapter that does not map tools
//!   or response formats refuses them ([`RemoteAdapter::TOOLS`]).
//!
//! It also owns the bindings of the `adapter` world ([`bindings`]) and the glue
//! to them: an adapter implements [`RemoteAdapter`] (its wire format: the
//! request, a whole reply, one stream event) and calls [`export_adapter!`];
//! [`Remote`] turns that into the WIT exports, [`KitError`] into
//! `adapter-error` and [`Reply`] into `completion`.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;

use serde_json::{Map, Value};

/// The bindings of the `adapter` world (`wit/0.2/adapter.wit`), shared by the remote
/// adapters; [`export_adapter!`] exports an adapter through them.
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "adapter",
        path: "../../../wit/0.2",
        pub_export_macro: true,
        export_macro_name: "export_adapter_world",
        default_bindings_module: "remote_kit::bindings",
    });
}

pub use bindings::exports::lmhost::adapter::model_adapter::{
    AdapterError, Completion, Delta, Guest, GuestResponseStream, Message, ModelInfo, Params, Request,
};
pub use bindings::lmhost::adapter::types::{HttpRequest, JsonSchemaFormat, ResponseFormat, Tool, ToolCall, ToolChoice};

/// An adapter error before it becomes the WIT `adapter-error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KitError {
    /// The messages, parameters or registry entry cannot be used.
    InvalidInput(String),
    /// The adapter does not support what was asked.
    Unsupported(String),
    /// The provider's reply is an error or cannot be understood.
    Upstream(String),
}

impl fmt::Display for KitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KitError::InvalidInput(m) => write!(f, "invalid input: {m}"),
            KitError::Unsupported(m) => write!(f, "unsupported: {m}"),
            KitError::Upstream(m) => write!(f, "upstream: {m}"),
        }
    }
}

pub type KitResult<T> = Result<T, KitError>;

/// An `invalid-input` error about model `name`.
pub fn invalid(name: &str, what: impl fmt::Display) -> KitError {
    KitError::InvalidInput(format!("`{name}`: {what}"))
}

/// An `unsupported` error about model `name`.
pub fn unsupported(name: &str, what: impl fmt::Display) -> KitError {
    KitError::Unsupported(format!("`{name}`: {what}"))
}

/// An `upstream` error about model `name`.
pub fn upstream(name: &str, what: impl fmt::Display) -> KitError {
    KitError::Upstream(format!("`{name}`: {what}"))
}

// ---------------------------------------------------------------------------
// Registry entry
// ---------------------------------------------------------------------------

/// The registry entry of one model (`model-info.spec-json`), read with errors
/// that name the model and the key.
#[derive(Debug, Clone)]
pub struct Spec {
    name: String,
    map: Map<String, Value>,
}

impl Spec {
    /// Parses `spec_json`, which must be a JSON object, for model `name`.
    pub fn parse(name: &str, spec_json: &str) -> KitResult<Self> {
        match serde_json::from_str::<Value>(spec_json) {
            Ok(Value::Object(map)) => Ok(Spec {
                name: name.to_string(),
                map,
            }),
            _ => Err(invalid(name, "the registry entry is not a JSON object")),
        }
    }

    /// The model's registry name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw value of `key`; a JSON `null` counts as absent.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A string key; absent, `null` and `""` are `None`, other types an error.
    pub fn str(&self, key: &str) -> KitResult<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(invalid(&self.name, format!("`{key}` must be a string, found {other}"))),
        }
    }

    /// The first of `keys` that is set, or an error naming all of them.
    pub fn first_str(&self, keys: &[&str]) -> KitResult<&str> {
        for key in keys {
            if let Some(s) = self.str(key)? {
                return Ok(s);
            }
        }
        let names: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
        Err(invalid(
            &self.name,
            format!("the registry entry sets no {}", names.join(" or ")),
        ))
    }

    /// A boolean key; absent or `null` is `false`, other types an error.
    pub fn flag(&self, key: &str) -> KitResult<bool> {
        match self.get(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(invalid(
                &self.name,
                format!("`{key}` must be true or false, found {other}"),
            )),
        }
    }

    /// A positive integer key; absent or `null` is `None`.
    pub fn positive_int(&self, key: &str) -> KitResult<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 => Ok(Some(n)),
                _ => Err(invalid(
                    &self.name,
                    format!("`{key}` must be a positive integer, found {v}"),
                )),
            },
        }
    }

    /// `extra_body`: a JSON object merged into the request body, if set.
    pub fn extra_body(&self) -> KitResult<Option<&Map<String, Value>>> {
        match self.get("extra_body") {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(other) => Err(invalid(
                &self.name,
                format!("`extra_body` must be a JSON object, found {other}"),
            )),
        }
    }
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/// A chat role the remote APIs know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    /// Reads `role` (`system`, `user` or `assistant`) of a message to model `name`.
    pub fn parse(name: &str, role: &str) -> KitResult<Self> {
        match role {
            "system" => Ok(Role::System),
            "user" => Ok(Role::User),
            "assistant" => Ok(Role::Assistant),
            other => Err(invalid(
                name,
                format!("unknown message role `{other}` (expected system, user or assistant)"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// Messages checked for model `name`: every role known, at least one message.
pub fn turns<'a>(
    name: &str,
    messages: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> KitResult<Vec<(Role, &'a str)>> {
    let turns = messages
        .into_iter()
        .map(|(role, content)| Ok((Role::parse(name, role)?, content)))
        .collect::<KitResult<Vec<_>>>()?;
    if turns.is_empty() {
        return Err(invalid(name, "no messages to send"));
    }
    Ok(turns)
}

/// The shape APIs with a separate system prompt and alternating roles want.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialogue<'a> {
    /// The system messages, joined with a blank line; `None` when there are none.
    pub system: Option<String>,
    /// The other messages, consecutive ones of the same role grouped together.
    pub turns: Vec<(Role, Vec<&'a str>)>,
}

/// Splits `turns` into a system prompt and grouped user/assistant turns; an
/// error when nothing but system messages is left.
pub fn dialogue<'a>(name: &str, turns: &[(Role, &'a str)]) -> KitResult<Dialogue<'a>> {
    let system: Vec<&str> = turns
        .iter()
        .filter(|(role, _)| *role == Role::System)
        .map(|(_, content)| *content)
        .collect();
    let mut grouped: Vec<(Role, Vec<&'a str>)> = Vec::new();
    for (role, content) in turns.iter().filter(|(role, _)| *role != Role::System) {
        match grouped.last_mut() {
            Some((last, texts)) if last == role => texts.push(content),
            _ => grouped.push((*role, vec![content])),
        }
    }
    if grouped.is_empty() {
        return Err(invalid(name, "no user or assistant message to send"));
    }
    Ok(Dialogue {
        system: (!system.is_empty()).then(|| system.join("\n\n")),
        turns: grouped,
    })
}

// ---------------------------------------------------------------------------
// Request body
// ---------------------------------------------------------------------------

/// A JSON request body that takes parameters only when they are set.
#[derive(Debug, Clone, Default)]
pub struct Body {
    map: Map<String, Value>,
}

impl Body {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` unconditionally.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.map.insert(key.to_string(), value.into());
        self
    }

    /// Sets `key` when `value` is `Some`.
    pub fn opt<T: Into<Value>>(&mut self, key: &str, value: Option<T>) -> &mut Self {
        if let Some(v) = value {
            self.set(key, v);
        }
        self
    }

    /// Sets `key` to a float parameter when it is `Some`. The number is written
    /// as it reads in decimal (`0.7`, not `0.699999988079071`).
    pub fn float(&mut self, name: &str, key: &str, value: Option<f32>) -> KitResult<&mut Self> {
        if let Some(v) = value {
            self.set(key, float_json(name, key, v)?);
        }
        Ok(self)
    }

    /// Sets `key` to the stop strings when there are any.
    pub fn stop(&mut self, key: &str, stop: &[String]) -> &mut Self {
        if !stop.is_empty() {
            self.set(key, stop.to_vec());
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Merges the entry's `extra_body` into the top level (its keys win) and
    /// returns the finished object.
    pub fn finish(mut self, spec: &Spec) -> KitResult<Map<String, Value>> {
        if let Some(extra) = spec.extra_body()? {
            merge_extra(&mut self.map, extra);
        }
        Ok(self.map)
    }

    /// The object as it is, without `extra_body` (for nested objects).
    pub fn into_map(self) -> Map<String, Value> {
        self.map
    }
}

/// Copies every key of `extra` into `body`, replacing what was there.
pub fn merge_extra(body: &mut Map<String, Value>, extra: &Map<String, Value>) {
    for (key, value) in extra {
        body.insert(key.clone(), value.clone());
    }
}

/// A float parameter as a JSON number, by its shortest decimal spelling.
pub fn float_json(name: &str, key: &str, value: f32) -> KitResult<Value> {
    if !value.is_finite() {
        return Err(invalid(name, format!("parameter `{key}` is not a finite number")));
    }
    let decimal: f64 = value.to_string().parse().unwrap_or(f64::from(value));
    Ok(Value::from(decimal))
}

/// The JSON headers every adapter sends, plus `extra` provider headers.
pub fn json_headers(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    headers
}

// ---------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------

/// The adapter's reading of a provider reply (the WIT `completion`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    pub text: String,
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
    pub finish_reason: Option<String>,
    /// The provider's reasoning text, when it returns one.
    pub reasoning: Option<String>,
    pub tool_calls: Vec<Call>,
    pub reasoning_tokens: Option<u32>,
}

/// A tool call in a provider's reply: its id (empty: the host gives one), the
/// tool's name and the arguments as JSON text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Call {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// The answer text as the adapters report it: whitespace stripped at both ends.
pub fn final_text(raw: &str) -> String {
    raw.trim().to_string()
}

/// Parses a provider's JSON reply (a whole body or one event's data).
pub fn parse_reply(name: &str, raw: &str) -> KitResult<Value> {
    serde_json::from_str(raw).map_err(|e| {
        let shown: String = raw.chars().take(200).collect();
        upstream(name, format!("the provider's reply is not JSON ({e}): {shown}"))
    })
}

/// The value at JSON pointer `pointer` as a token count, if it is one.
pub fn u32_at(value: &Value, pointer: &str) -> Option<u32> {
    value.pointer(pointer)?.as_u64()?.try_into().ok()
}

/// The string at JSON pointer `pointer`, if it is one.
pub fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer)?.as_str()
}

/// A provider error object's description: its `message`, with `type`, `code`
/// or `status` in front when present, or the whole object.
pub fn describe_error(error: &Value) -> String {
    let message = match error {
        Value::String(s) => return s.clone(),
        _ => error.get("message").and_then(Value::as_str),
    };
    let kind = ["type", "status", "code"].iter().find_map(|k| match error.get(*k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    });
    match (kind, message) {
        (Some(kind), Some(message)) => format!("{kind}: {message}"),
        (None, Some(message)) => message.to_string(),
        _ => error.to_string(),
    }
}

/// The provider's finish reason in OpenAI spelling: `stop`, `length`,
/// `content_filter` or `tool_calls`; other values lowercased.
pub fn finish_reason(raw: &str) -> String {
    let lower = raw.to_ascii_lowercase();
    let mapped = match lower.as_str() {
        "stop" | "end_turn" | "stop_sequence" | "complete" => "stop",
        "length" | "max_tokens" => "length",
        "content_filter" | "safety" | "recitation" | "blocklist" | "prohibited_content" | "spii" | "image_safety"
        | "refusal" => "content_filter",
        "tool_calls" | "tool_use" | "tool_call" | "function_call" => "tool_calls",
        _ => return lower,
    };
    mapped.to_string()
}

// ---------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------

/// Streamed answer text. [`StreamText::push`] returns only text that stays a
/// prefix of [`final_text`] of everything pushed, whatever comes next: leading
/// whitespace is never emitted and trailing whitespace waits until more text
/// follows it.
#[derive(Debug, Clone, Default)]
pub struct StreamText {
    raw: String,
    emitted: usize,
}

impl StreamText {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `delta`; returns what can be emitted now.
    pub fn push(&mut self, delta: &str) -> String {
        self.raw.push_str(delta);
        // Byte offsets into `raw` of the stripped text so far. The start stays
        // put once non-whitespace was seen, and the end only grows.
        let start = self.raw.len() - self.raw.trim_start().len();
        let end = self.raw.trim_end().len().max(start);
        let emitted_end = start + self.emitted;
        if end <= emitted_end {
            return String::new();
        }
        let piece = self.raw[emitted_end..end].to_string();
        self.emitted = end - start;
        piece
    }

    /// The final answer text.
    pub fn text(&self) -> String {
        final_text(&self.raw)
    }
}

/// What a stream has told so far: text, token counts, finish reason, and the
/// error that ended it, if one did.
#[derive(Debug, Clone, Default)]
pub struct StreamState {
    pub text: StreamText,
    /// Reasoning, streamed apart from the text.
    pub reasoning: StreamText,
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
    pub reasoning_tokens: Option<u32>,
    /// Already mapped to OpenAI spelling.
    pub finish_reason: Option<String>,
    /// Reasoning ready to show, not yet taken by the stream.
    reasoning_piece: String,
    /// Calls by their index in the reply, put together from fragments.
    calls: std::collections::BTreeMap<u64, Call>,
    events: usize,
    failed: Option<KitError>,
}

impl StreamState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `handle` on one event. After an error (returned by `handle` or
    /// earlier), every push and the finish return that error.
    pub fn push(&mut self, handle: impl FnOnce(&mut Self) -> KitResult<String>) -> KitResult<String> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        self.events += 1;
        handle(self).inspect_err(|err| self.failed = Some(err.clone()))
    }

    /// Adds streamed reasoning text.
    pub fn push_reasoning(&mut self, delta: &str) {
        let piece = self.reasoning.push(delta);
        self.reasoning_piece.push_str(&piece);
    }

    /// The reasoning shown since the last call.
    pub fn take_reasoning(&mut self) -> String {
        std::mem::take(&mut self.reasoning_piece)
    }

    /// Adds a fragment of the `index`th call: its id and name when the fragment
    /// has them, and a piece of its arguments. At most [`MAX_STREAMED_CALLS`].
    pub fn call_fragment(
        &mut self,
        name: &str,
        index: u64,
        id: Option<&str>,
        tool: Option<&str>,
        arguments: &str,
    ) -> KitResult<()> {
        if !self.calls.contains_key(&index) && self.calls.len() >= MAX_STREAMED_CALLS {
            return Err(upstream(
                name,
                format!("the provider streamed more than {MAX_STREAMED_CALLS} tool calls"),
            ));
        }
        let call = self.calls.entry(index).or_default();
        if let Some(id) = id.filter(|id| !id.is_empty()) {
            call.id = id.to_string();
        }
        if let Some(tool) = tool.filter(|t| !t.is_empty()) {
            call.name.push_str(tool);
        }
        call.arguments.push_str(arguments);
        Ok(())
    }

    /// Adds a call that came whole (Gemini's `functionCall` parts), after the others.
    pub fn push_call(&mut self, name: &str, id: Option<&str>, tool: &str, arguments: &str) -> KitResult<()> {
        let index = self.calls.keys().next_back().map_or(0, |last| last + 1);
        self.call_fragment(name, index, id, Some(tool), arguments)
    }

    /// Records the raw finish reason, mapped.
    pub fn set_finish_reason(&mut self, raw: &str) {
        self.finish_reason = Some(finish_reason(raw));
    }

    /// Keeps counts that are present, leaving earlier ones otherwise.
    pub fn set_usage(&mut self, prompt: Option<u32>, completion: Option<u32>) {
        self.prompt_tokens = prompt.or(self.prompt_tokens);
        self.completion_tokens = completion.or(self.completion_tokens);
    }

    /// The answer of the whole stream.
    pub fn finish(&self, name: &str) -> KitResult<Reply> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if self.events == 0 {
            return Err(upstream(name, "the provider's stream ended without any event"));
        }
        let reasoning = self.reasoning.text();
        Ok(Reply {
            text: self.text.text(),
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            finish_reason: self.finish_reason.clone(),
            reasoning: (!reasoning.is_empty()).then_some(reasoning),
            tool_calls: self
                .calls
                .values()
                .map(|c| Call {
                    arguments: if c.arguments.trim().is_empty() {
                        "{}".into()
                    } else {
                        c.arguments.clone()
                    },
                    ..c.clone()
                })
                .collect(),
            reasoning_tokens: self.reasoning_tokens,
        })
    }
}

// ---------------------------------------------------------------------------
// The adapter trait and its WIT exports
// ---------------------------------------------------------------------------

/// Most tool calls one streamed reply may put together.
pub const MAX_STREAMED_CALLS: usize = 128;

/// A remote-API adapter: its wire format, and nothing else. [`Remote`] makes
/// the WIT exports of it; [`export_adapter!`] exports those.
pub trait RemoteAdapter: 'static {
    /// The adapter maps tools, tool calls and tool results; if not, a request
    /// with any of them is refused (`unsupported`) before it is shaped.
    const TOOLS: bool = false;
    /// The adapter maps `json-object` and `json-schema` response formats; if
    /// not, a request with one is refused.
    const RESPONSE_FORMATS: bool = false;

    /// The HTTP request (method, path, headers, JSON body; no credentials) that
    /// sends `messages` with `params` to `model`.
    fn shape(model: &ModelInfo, messages: &[Message], params: &Params) -> KitResult<HttpRequest>;

    /// The answer in a whole (not streamed) reply body `raw` to model `name`.
    fn parse_whole(name: &str, raw: &str) -> KitResult<Reply>;

    /// One streamed event's `data` for model `name`: records what it tells in
    /// `state` and returns the answer text to show now (see [`StreamText`]).
    fn stream_event(name: &str, state: &mut StreamState, data: &str) -> KitResult<String>;

    /// The last word on a reply, whole or streamed, before it becomes the
    /// completion (Anthropic's JSON answers arrive as a tool call).
    fn finish_reply(reply: Reply) -> Reply {
        reply
    }
}

/// The WIT `completion` of a [`Reply`].
pub fn completion(reply: Reply) -> Completion {
    Completion {
        text: reply.text,
        reasoning: reply.reasoning,
        tool_calls: reply
            .tool_calls
            .into_iter()
            .map(|c| ToolCall {
                id: c.id,
                name: c.name,
                arguments: c.arguments,
            })
            .collect(),
        prompt_tokens: reply.prompt_tokens,
        completion_tokens: reply.completion_tokens,
        reasoning_tokens: reply.reasoning_tokens,
        finish_reason: reply.finish_reason,
    }
}

/// The JSON schema of a tool's parameters, if it has one.
pub fn tool_parameters(name: &str, tool: &Tool) -> KitResult<Option<Value>> {
    tool.parameters
        .as_deref()
        .map(|text| {
            serde_json::from_str(text).map_err(|e| {
                invalid(
                    name,
                    format!("the parameters of tool `{}` are not JSON: {e}", tool.name),
                )
            })
        })
        .transpose()
}

/// A tool in OpenAI's shape, `{"type": "function", "function": {name,
/// description, parameters, strict}}` (which Cohere's v2 API takes too; `strict`
/// only where the API has it).
pub fn function_tool(name: &str, tool: &Tool, with_strict: bool) -> KitResult<Value> {
    let mut function = Map::new();
    function.insert("name".into(), tool.name.as_str().into());
    if let Some(description) = &tool.description {
        function.insert("description".into(), description.as_str().into());
    }
    if let Some(schema) = tool_parameters(name, tool)? {
        function.insert("parameters".into(), schema);
    }
    if with_strict && tool.strict {
        function.insert("strict".into(), true.into());
    }
    let mut wrapped = Map::new();
    wrapped.insert("type".into(), "function".into());
    wrapped.insert("function".into(), Value::Object(function));
    Ok(Value::Object(wrapped))
}

/// The schema of a `json-schema` response format.
pub fn format_schema(name: &str, format: &JsonSchemaFormat) -> KitResult<Value> {
    serde_json::from_str(&format.schema)
        .map_err(|e| invalid(name, format!("the response format's schema is not JSON: {e}")))
}

/// The id of the call a `tool` message answers.
pub fn answered_call_id<'a>(name: &str, message: &'a Message) -> KitResult<&'a str> {
    message
        .tool_call_id
        .as_deref()
        .ok_or_else(|| invalid(name, "a `tool` message needs the `tool_call_id` it answers"))
}

/// A call's arguments as the JSON object APIs that take them as objects want.
pub fn call_arguments(name: &str, call: &ToolCall) -> KitResult<Value> {
    serde_json::from_str::<Value>(&call.arguments)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| {
            invalid(
                name,
                format!("the arguments of call `{}` are not a JSON object", call.id),
            )
        })
}

/// A role and its content items (text blocks, parts, …).
pub type Turn = (&'static str, Vec<Value>);

/// Turns for APIs whose roles must alternate: consecutive turns of one role
/// merged (their content items concatenated), the system texts joined with a
/// blank line; an error when no turn is left.
pub fn alternating(name: &str, system: &[&str], turns: Vec<Turn>) -> KitResult<(Option<String>, Vec<Turn>)> {
    let mut merged: Vec<Turn> = Vec::new();
    for (role, items) in turns {
        match merged.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(items),
            _ => merged.push((role, items)),
        }
    }
    if merged.is_empty() {
        return Err(invalid(name, "no user or assistant message to send"));
    }
    Ok(((!system.is_empty()).then(|| system.join("\n\n")), merged))
}

/// Refuses what adapter `A` does not map: tools (in the parameters or the
/// history) and response formats.
fn refuse_unmapped<A: RemoteAdapter>(model: &ModelInfo, messages: &[Message], params: &Params) -> KitResult<()> {
    let tools = !params.tools.is_empty()
        || messages
            .iter()
            .any(|m| !m.tool_calls.is_empty() || m.tool_call_id.is_some() || m.role == "tool");
    if tools && !A::TOOLS {
        return Err(unsupported(
            &model.name,
            format!(
                "the `{}` backend's adapter does not map tools or tool calls yet",
                model.backend
            ),
        ));
    }
    if !matches!(params.response_format, ResponseFormat::Text) && !A::RESPONSE_FORMATS {
        return Err(unsupported(
            &model.name,
            format!(
                "the `{}` backend's adapter does not map `response_format` yet",
                model.backend
            ),
        ));
    }
    Ok(())
}

impl From<KitError> for AdapterError {
    fn from(err: KitError) -> Self {
        match err {
            KitError::InvalidInput(m) => AdapterError::InvalidInput(m),
            KitError::Unsupported(m) => AdapterError::Unsupported(m),
            KitError::Upstream(m) => AdapterError::Upstream(m),
        }
    }
}

/// The WIT exports of the adapter `A`.
pub struct Remote<A>(PhantomData<A>);

impl<A: RemoteAdapter> Guest for Remote<A> {
    type ResponseStream = Stream<A>;

    fn shape_request(model: ModelInfo, messages: Vec<Message>, params: Params) -> Result<Request, AdapterError> {
        refuse_unmapped::<A>(&model, &messages, &params)?;
        Ok(Request::Http(A::shape(&model, &messages, &params)?))
    }

    fn parse_response(
        model: ModelInfo,
        _params: Params,
        _request: Request,
        raw: String,
    ) -> Result<Completion, AdapterError> {
        Ok(completion(A::finish_reply(A::parse_whole(&model.name, &raw)?)))
    }
}

/// The response stream of adapter `A`: the model's name and what the events
/// told so far; each pushed event goes to [`RemoteAdapter::stream_event`].
pub struct Stream<A> {
    name: String,
    state: RefCell<StreamState>,
    adapter: PhantomData<A>,
}

impl<A: RemoteAdapter> GuestResponseStream for Stream<A> {
    fn new(model: ModelInfo, _params: Params, _request: Request) -> Self {
        Stream {
            name: model.name,
            state: RefCell::new(StreamState::new()),
            adapter: PhantomData,
        }
    }

    fn push(&self, chunk: String) -> Result<Delta, AdapterError> {
        let mut state = self.state.borrow_mut();
        let text = state.push(|st| A::stream_event(&self.name, st, &chunk))?;
        Ok(Delta {
            text,
            reasoning: state.take_reasoning(),
            // Calls come in fragments: whole only at the end, where the host
            // emits them from the final completion.
            tool_calls: Vec::new(),
        })
    }

    fn finish(&self) -> Result<Completion, AdapterError> {
        Ok(completion(A::finish_reply(self.state.borrow().finish(&self.name)?)))
    }
}

/// Exports the [`RemoteAdapter`] `$adapter` as the component's `adapter` world.
#[macro_export]
macro_rules! export_adapter {
    ($adapter:ty) => {
        type __LmhostRemoteAdapter = $crate::Remote<$adapter>;
        $crate::bindings::export_adapter_world!(__LmhostRemoteAdapter with_types_in $crate::bindings);
    };
}

/// Test helpers for an adapter crate's native unit tests, written once.
///
/// Expands, inside the adapter's test module, to
/// `use AdapterError`, `model(backend, spec)`, `params()`, `messages(&[(role, content)])`,
/// `shape(model, messages, params) -> (method, path, headers, body JSON)`,
/// `whole(model, raw)`, `upstream_message(error)` (the message of an `upstream`
/// error; panics on any other) and `streamed(model, events)`, which pushes each event,
/// checks that what was pushed is a prefix of the finished text, and returns the
/// finished completion. Completions come back as
/// `(text, prompt tokens, completion tokens, finish reason)`.
#[macro_export]
macro_rules! adapter_test_kit {
    ($adapter:ty) => {
        #[allow(unused_imports)]
        use $crate::AdapterError;

        type Summary = (String, Option<u32>, Option<u32>, Option<String>);

        fn model(backend: &str, spec: ::serde_json::Value) -> $crate::ModelInfo {
            $crate::ModelInfo {
                name: "test-model".to_string(),
                backend: backend.to_string(),
                spec_json: spec.to_string(),
                builtin_template: None,
                bos_token: None,
                eos_token: None,
                add_bos: false,
                context_length: None,
            }
        }

        fn params() -> $crate::Params {
            $crate::Params {
                max_tokens: None,
                temperature: None,
                top_p: None,
                top_k: None,
                min_p: None,
                seed: None,
                stop: Vec::new(),
                repetition_penalty: None,
                frequency_penalty: None,
                presence_penalty: None,
                stream: false,
                tools: Vec::new(),
                tool_choice: $crate::ToolChoice::Auto,
                parallel_tool_calls: true,
                response_format: $crate::ResponseFormat::Text,
            }
        }

        fn messages(pairs: &[(&str, &str)]) -> Vec<$crate::Message> {
            pairs
                .iter()
                .map(|(role, content)| $crate::Message {
                    role: role.to_string(),
                    content: content.to_string(),
                    tool_calls: Vec::new(),
                    tool_call_id: None,
                    name: None,
                    reasoning: None,
                })
                .collect()
        }

        fn shape(
            model: $crate::ModelInfo,
            messages: Vec<$crate::Message>,
            params: $crate::Params,
        ) -> Result<(String, String, Vec<(String, String)>, ::serde_json::Value), $crate::AdapterError> {
            match <$crate::Remote<$adapter> as $crate::Guest>::shape_request(model, messages, params)? {
                $crate::Request::Http(h) => Ok((
                    h.method,
                    h.path,
                    h.headers,
                    ::serde_json::from_str(&h.body).unwrap(),
                )),
                $crate::Request::Prompt(_) => panic!("a remote adapter shaped a prompt"),
            }
        }

        fn upstream_message(err: $crate::AdapterError) -> String {
            match err {
                $crate::AdapterError::Upstream(m) => m,
                other => panic!("expected an upstream error, got {other:?}"),
            }
        }

        fn summary(c: $crate::Completion) -> Summary {
            (c.text, c.prompt_tokens, c.completion_tokens, c.finish_reason)
        }

        /// A request as the host hands it back (the remote adapters ignore it).
        fn any_request() -> $crate::Request {
            $crate::Request::Http($crate::HttpRequest {
                method: "POST".into(),
                path: "/".into(),
                headers: Vec::new(),
                body: String::new(),
            })
        }

        fn whole_completion(model: $crate::ModelInfo, raw: &str) -> Result<$crate::Completion, $crate::AdapterError> {
            <$crate::Remote<$adapter> as $crate::Guest>::parse_response(model, params(), any_request(), raw.to_string())
        }

        fn whole(model: $crate::ModelInfo, raw: &str) -> Result<Summary, $crate::AdapterError> {
            whole_completion(model, raw).map(summary)
        }

        /// The finished completion of `events`, after checking that the pushed
        /// text and reasoning are prefixes of the final ones.
        fn streamed_completion(
            model: $crate::ModelInfo,
            events: &[&str],
        ) -> Result<$crate::Completion, $crate::AdapterError> {
            use $crate::GuestResponseStream as _;
            let stream = <$crate::Stream<$adapter> as $crate::GuestResponseStream>::new(model, params(), any_request());
            let (mut text, mut reasoning) = (String::new(), String::new());
            for event in events {
                let delta = stream.push(event.to_string())?;
                text.push_str(&delta.text);
                reasoning.push_str(&delta.reasoning);
            }
            let done = stream.finish()?;
            assert!(
                done.text.starts_with(&text),
                "pushed {text:?} is not a prefix of {:?}",
                done.text
            );
            let final_reasoning = done.reasoning.clone().unwrap_or_default();
            assert!(
                final_reasoning.starts_with(&reasoning),
                "pushed reasoning {reasoning:?} is not a prefix of {final_reasoning:?}"
            );
            Ok(done)
        }

        fn streamed(model: $crate::ModelInfo, events: &[&str]) -> Result<Summary, $crate::AdapterError> {
            streamed_completion(model, events).map(summary)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: Value) -> Spec {
        Spec::parse("m", &v.to_string()).unwrap()
    }

    #[test]
    fn spec_must_be_an_object() {
        assert!(matches!(Spec::parse("m", "[1]"), Err(KitError::InvalidInput(_))));
        assert!(matches!(Spec::parse("m", "nope"), Err(KitError::InvalidInput(_))));
    }

    #[test]
    fn first_str_falls_back_and_names_keys() {
        let s = spec(json!({"call_name": "", "model_id": "gpt"}));
        assert_eq!(s.first_str(&["call_name", "model_id"]).unwrap(), "gpt");
        let s = spec(json!({"model_id": null}));
        let err = s.first_str(&["model_id", "huggingface_id"]).unwrap_err();
        let KitError::InvalidInput(msg) = err else { panic!() };
        assert!(msg.contains("`m`") && msg.contains("`model_id`") && msg.contains("`huggingface_id`"));
        let s = spec(json!({"model_id": 3}));
        assert!(s.first_str(&["model_id"]).is_err());
    }

    #[test]
    fn flags_and_ints() {
        let s = spec(json!({"a": true, "b": "yes", "n": 5, "z": 0, "f": 1.5}));
        assert!(s.flag("a").unwrap());
        assert!(!s.flag("missing").unwrap());
        assert!(s.flag("b").is_err());
        assert_eq!(s.positive_int("n").unwrap(), Some(5));
        assert_eq!(s.positive_int("missing").unwrap(), None);
        assert!(s.positive_int("z").is_err());
        assert!(s.positive_int("f").is_err());
    }

    #[test]
    fn body_sets_only_what_is_set_and_extra_wins() {
        let s = spec(json!({"extra_body": {"temperature": 1, "top_k": 3}}));
        let mut b = Body::new();
        b.set("model", "x")
            .opt("max_tokens", Some(5u32))
            .opt::<u32>("seed", None);
        b.float("m", "temperature", Some(0.7)).unwrap();
        b.float("m", "top_p", None).unwrap();
        b.stop("stop", &[]);
        let map = b.finish(&s).unwrap();
        assert_eq!(
            Value::Object(map),
            json!({"model": "x", "max_tokens": 5, "temperature": 1, "top_k": 3})
        );

        let mut b = Body::new();
        b.float("m", "temperature", Some(0.7)).unwrap();
        b.stop("stop", &["a".to_string()]);
        assert_eq!(Value::Object(b.into_map()), json!({"temperature": 0.7, "stop": ["a"]}));
        assert!(Body::new().float("m", "t", Some(f32::NAN)).is_err());
        assert!(Body::new().finish(&spec(json!({"extra_body": [1]}))).is_err());
    }

    #[test]
    fn dialogue_groups_and_lifts_system() {
        let t = turns(
            "m",
            [
                ("system", "a"),
                ("user", "u1"),
                ("user", "u2"),
                ("system", "b"),
                ("assistant", "x"),
                ("user", "u3"),
            ],
        )
        .unwrap();
        let d = dialogue("m", &t).unwrap();
        assert_eq!(d.system.as_deref(), Some("a\n\nb"));
        assert_eq!(
            d.turns,
            vec![
                (Role::User, vec!["u1", "u2"]),
                (Role::Assistant, vec!["x"]),
                (Role::User, vec!["u3"])
            ]
        );
        assert!(turns("m", [("tool", "x")]).is_err());
        assert!(turns("m", []).is_err());
        assert!(dialogue("m", &turns("m", [("system", "s")]).unwrap()).is_err());
        assert_eq!(
            dialogue("m", &turns("m", [("user", "u")]).unwrap()).unwrap().system,
            None
        );
    }

    #[test]
    fn finish_reasons() {
        for (raw, want) in [
            ("stop", "stop"),
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("STOP", "stop"),
            ("COMPLETE", "stop"),
            ("STOP_SEQUENCE", "stop"),
            ("max_tokens", "length"),
            ("MAX_TOKENS", "length"),
            ("length", "length"),
            ("SAFETY", "content_filter"),
            ("RECITATION", "content_filter"),
            ("tool_use", "tool_calls"),
            ("TOOL_CALL", "tool_calls"),
            ("OTHER", "other"),
            ("pause_turn", "pause_turn"),
        ] {
            assert_eq!(finish_reason(raw), want, "{raw}");
        }
    }

    #[test]
    fn errors_are_described() {
        assert_eq!(
            describe_error(&json!({"type": "invalid_request_error", "message": "bad"})),
            "invalid_request_error: bad"
        );
        assert_eq!(describe_error(&json!({"code": 400, "message": "x"})), "400: x");
        assert_eq!(describe_error(&json!({"message": "x"})), "x");
        assert_eq!(describe_error(&json!("plain")), "plain");
        assert_eq!(describe_error(&json!({"weird": 1})), r#"{"weird":1}"#);
    }

    #[test]
    fn json_helpers() {
        let v = json!({"usage": {"n": 12, "big": 1u64 << 40, "neg": -1}, "s": "t"});
        assert_eq!(u32_at(&v, "/usage/n"), Some(12));
        assert_eq!(u32_at(&v, "/usage/big"), None);
        assert_eq!(u32_at(&v, "/usage/neg"), None);
        assert_eq!(u32_at(&v, "/nope"), None);
        assert_eq!(str_at(&v, "/s"), Some("t"));
        assert!(matches!(parse_reply("m", "{"), Err(KitError::Upstream(_))));
    }

    /// Pushes `deltas`; checks every step's emitted text is a prefix of the
    /// final text and returns (emitted pieces, final text).
    fn stream(deltas: &[&str]) -> (Vec<String>, String) {
        let mut s = StreamText::new();
        let mut pieces = Vec::new();
        for d in deltas {
            pieces.push(s.push(d));
        }
        let text = s.text();
        assert!(text.starts_with(&pieces.concat()), "{pieces:?} vs {text:?}");
        assert_eq!(text, final_text(&deltas.concat()));
        (pieces, text)
    }

    #[test]
    fn stream_text_holds_back_whitespace() {
        let (p, t) = stream(&["  ", "\n Hel", "lo ", " ", "wor", "ld \n", "  "]);
        assert_eq!(p, vec!["", "Hel", "lo", "", "  wor", "ld", ""]);
        assert_eq!(t, "Hello  world");
        let (p, t) = stream(&[" ", "\t"]);
        assert_eq!(p.concat(), "");
        assert_eq!(t, "");
        let (p, _) = stream(&["a", "", "b"]);
        assert_eq!(p, vec!["a", "", "b"]);
    }

    #[test]
    fn stream_text_handles_unicode_whitespace() {
        let (p, t) = stream(&["\u{3000}é", "\u{a0}", "ü\u{2003}"]);
        assert_eq!(p.concat(), "é\u{a0}ü");
        assert_eq!(t, "é\u{a0}ü");
    }

    #[test]
    fn stream_text_prefix_property_on_many_splits() {
        let whole = " \n The  answer:\tforty two. \n ";
        let chars: Vec<char> = whole.chars().collect();
        for a in 0..=chars.len() {
            for b in a..=chars.len() {
                let x: String = chars[..a].iter().collect();
                let y: String = chars[a..b].iter().collect();
                let z: String = chars[b..].iter().collect();
                let (p, t) = stream(&[&x, &y, &z]);
                assert_eq!(p.concat(), t);
            }
        }
    }

    #[test]
    fn stream_state_errors_stick() {
        let mut st = StreamState::new();
        assert!(st.finish("m").is_err());
        assert_eq!(st.push(|s| Ok(s.text.push(" hi "))).unwrap(), "hi");
        st.set_usage(Some(3), None);
        st.set_usage(None, Some(4));
        st.set_finish_reason("end_turn");
        assert_eq!(
            st.finish("m").unwrap(),
            Reply {
                text: "hi".into(),
                prompt_tokens: Some(3),
                completion_tokens: Some(4),
                finish_reason: Some("stop".into()),
                ..Reply::default()
            }
        );
        let err = st.push(|_| Err(upstream("m", "boom"))).unwrap_err();
        assert_eq!(st.push(|s| Ok(s.text.push("more"))).unwrap_err(), err);
        assert_eq!(st.finish("m").unwrap_err(), err);
    }

    #[test]
    fn calls_are_put_together_from_fragments_and_reasoning_streams_apart() {
        let mut st = StreamState::new();
        st.push(|s| {
            s.push_reasoning("\n Think");
            s.call_fragment("m", 1, Some("call_b"), Some("b"), "")?;
            s.call_fragment("m", 0, Some("call_a"), Some("a"), "{\"x\":")?;
            Ok(String::new())
        })
        .unwrap();
        assert_eq!(st.take_reasoning(), "Think");
        assert_eq!(st.take_reasoning(), "");
        st.push(|s| {
            s.push_reasoning(" more. ");
            s.call_fragment("m", 0, None, None, " 1}")?;
            Ok(String::new())
        })
        .unwrap();
        assert_eq!(st.take_reasoning(), " more.");
        let reply = st.finish("m").unwrap();
        assert_eq!(reply.reasoning.as_deref(), Some("Think more."));
        let calls: Vec<(&str, &str, &str)> = reply
            .tool_calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
            .collect();
        assert_eq!(calls, [("call_a", "a", "{\"x\": 1}"), ("call_b", "b", "{}")]);

        let mut many = StreamState::new();
        let err = many
            .push(|s| {
                for i in 0..=MAX_STREAMED_CALLS as u64 {
                    s.call_fragment("m", i, None, Some("f"), "{}")?;
                }
                Ok(String::new())
            })
            .unwrap_err();
        assert!(matches!(err, KitError::Upstream(m) if m.contains("more than 128")));
    }
}
