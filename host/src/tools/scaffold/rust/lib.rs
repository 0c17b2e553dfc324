//! `{{name}}`: an lmhost adapter, scaffolded by `lmhost adapter new --lang rust`.
//!
//! A minimal chat-template adapter: the prompt is the model's chat template
//! (or the entry's `custom_chat_template`) rendered by the host; the answer is
//! the raw output stripped, cut after `output_split_prefix` / `cot_end_tag`, with
//! every match of the `eos_to_cull` regex removed. Streaming buffers and hands
//! the whole answer over at `finish`. Change what you need, then
//! `lmhost adapter build` and `lmhost adapter check {{name}}.wasm`.

wit_bindgen::generate!({ world: "adapter", path: "wit" });

use std::cell::RefCell;

use exports::lmhost::adapter::model_adapter::{
    AdapterError, Completion, Guest, GuestResponseStream, Message, ModelInfo, Params, Request,
};
use lmhost::adapter::host::render_template;
use lmhost::adapter::types::Prompt;
use serde_json::{json, Map, Value};

struct Adapter;

impl Guest for Adapter {
    type ResponseStream = Stream;

    fn shape_request(model: ModelInfo, messages: Vec<Message>, params: Params) -> Result<Request, AdapterError> {
        let spec = parse_spec(&model)?;
        let template = choose_template(&model, &spec)?;
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| json!({ "role": m.role, "content": m.content }))
            .collect();
        let context = json!({
            "messages": messages,
            "add_generation_prompt": true,
            "bos_token": model.bos_token.clone().unwrap_or_default(),
            "eos_token": model.eos_token.clone().unwrap_or_default(),
        });
        let text = render_template(&template, &context.to_string()).map_err(|e| {
            AdapterError::InvalidInput(format!("chat template of `{}` failed to render: {e}", model.name))
        })?;
        // A template that writes the BOS token itself must not get a second one.
        let starts_with_bos = model
            .bos_token
            .as_deref()
            .is_some_and(|bos| !bos.is_empty() && text.starts_with(bos));
        Ok(Request::Prompt(Prompt {
            text,
            stop: params.stop,
            add_bos: model.add_bos && !starts_with_bos,
        }))
    }

    fn parse_response(model: ModelInfo, raw: String) -> Result<Completion, AdapterError> {
        Ok(completion(post_process(&model, &raw)?))
    }
}

fn completion(text: String) -> Completion {
    Completion {
        text,
        prompt_tokens: None,
        completion_tokens: None,
        finish_reason: None,
    }
}

fn parse_spec(model: &ModelInfo) -> Result<Map<String, Value>, AdapterError> {
    match serde_json::from_str::<Value>(&model.spec_json) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(AdapterError::InvalidInput(format!(
            "registry entry of `{}` is not a JSON object",
            model.name
        ))),
    }
}

fn string_key<'a>(model: &ModelInfo, spec: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, AdapterError> {
    match spec.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(AdapterError::InvalidInput(format!(
            "`{key}` of `{}` must be a string, found {other}",
            model.name
        ))),
    }
}

fn choose_template(model: &ModelInfo, spec: &Map<String, Value>) -> Result<String, AdapterError> {
    let custom = string_key(model, spec, "custom_chat_template")?;
    let premade = spec.get("premade_chat_template").and_then(Value::as_bool).unwrap_or(true);
    match (premade, custom, model.builtin_template.as_deref()) {
        (false, Some(custom), _) => Ok(custom.to_string()),
        (_, _, Some(builtin)) => Ok(builtin.to_string()),
        (_, Some(custom), None) => Ok(custom.to_string()),
        (_, None, None) => Err(AdapterError::Unsupported(format!(
            "`{}` has no chat template: the model file ships none and the entry sets no `custom_chat_template`",
            model.name
        ))),
    }
}

fn post_process(model: &ModelInfo, raw: &str) -> Result<String, AdapterError> {
    let spec = parse_spec(model)?;
    let mut text = raw.trim();
    if let Some(prefix) = string_key(model, &spec, "output_split_prefix")?.filter(|s| !s.is_empty()) {
        if let Some((_, after)) = text.rsplit_once(prefix) {
            text = after;
        }
    }
    if let Some(tag) = string_key(model, &spec, "cot_end_tag")?.filter(|s| !s.is_empty()) {
        if let Some((_, after)) = text.rsplit_once(tag) {
            text = after.trim();
        }
    }
    match string_key(model, &spec, "eos_to_cull")?.filter(|s| !s.is_empty()) {
        None => Ok(text.to_string()),
        Some(pattern) => {
            let re = regex::Regex::new(pattern).map_err(|e| {
                AdapterError::InvalidInput(format!("`eos_to_cull` of `{}` is not a valid regex: {e}", model.name))
            })?;
            Ok(re.replace_all(text, "").into_owned())
        }
    }
}

/// Buffers the raw text; the answer comes whole at `finish` (a constructor
/// cannot fail, so the entry is read there).
struct Stream {
    model: ModelInfo,
    raw: RefCell<String>,
}

impl GuestResponseStream for Stream {
    fn new(model: ModelInfo) -> Self {
        Self {
            model,
            raw: RefCell::new(String::new()),
        }
    }

    fn push(&self, chunk: String) -> Result<String, AdapterError> {
        self.raw.borrow_mut().push_str(&chunk);
        Ok(String::new())
    }

    fn finish(&self) -> Result<Completion, AdapterError> {
        Ok(completion(post_process(&self.model, &self.raw.borrow())?))
    }
}

export!(Adapter);
