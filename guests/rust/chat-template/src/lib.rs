//! `chat-template`: the adapter for local models, with clembench's semantics.
//!
//! Request: the chat template is the one shipped in the model file, unless the
//! registry entry sets `premade_chat_template: false` and a `custom_chat_template`
//! (or the model file has none). The host renders it; the adapter picks it.
//!
//! Response, in clembench's order: strip whitespace; if `output_split_prefix` is
//! set and present, keep what follows its last occurrence; if `cot_end_tag` is set
//! and present, keep what follows its last occurrence (the reasoning is dropped);
//! then remove every match of the `eos_to_cull` regex.
//!
//! Streaming emits only text that no later chunk can change: nothing while a
//! split prefix or cot tag is configured or the cull regex is unbounded or uses
//! look-around, otherwise all but the regex's maximum match length.

wit_bindgen::generate!({
    world: "adapter",
    path: "../../../wit",
});

use std::cell::RefCell;

use exports::lmhost::adapter::model_adapter::{
    AdapterError, Completion, Guest, GuestResponseStream, Message, ModelInfo, Params, Request,
};
use lmhost::adapter::types::Prompt;
use regex_syntax::hir::HirKind;
use serde_json::{Map, Value};

struct ChatTemplate;

impl Guest for ChatTemplate {
    type ResponseStream = Stream;

    fn shape_request(model: ModelInfo, messages: Vec<Message>, params: Params) -> Result<Request, AdapterError> {
        let spec = parse_spec(&model)?;
        let template = choose_template(&model, &spec)?;
        let context = template_context(&model, &spec, &messages)?;
        let rendered = lmhost::adapter::host::render_template(&template, &context.json).map_err(|e| {
            AdapterError::InvalidInput(format!("chat template of `{}` failed to render: {e}", model.name))
        })?;
        let text = match &context.continue_final {
            None => rendered,
            Some(last) => continue_final(&model, rendered, last)?,
        };
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
        let post = PostProcess::new(&model)?;
        Ok(completion(post.apply(&raw)))
    }
}

/// The variables transformers passes a chat template, in its order: `messages`,
/// `tools` and `documents` (none), `add_generation_prompt`, the special tokens,
/// then the entry's `chat_template_kwargs` (which may override a token, as
/// there). Written by hand so that keys keep this order: the host's renderer
/// keeps JSON key order, as Python dicts do.
struct TemplateContext {
    json: String,
    /// The final assistant message, when the chat ends on one: it is continued
    /// (transformers' `continue_final_message`), not closed.
    continue_final: Option<String>,
}

const RESERVED: [&str; 4] = ["messages", "tools", "documents", "add_generation_prompt"];

fn template_context(
    model: &ModelInfo,
    spec: &Map<String, Value>,
    messages: &[Message],
) -> Result<TemplateContext, AdapterError> {
    let kwargs = match spec.get("chat_template_kwargs") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(other) => {
            return Err(AdapterError::InvalidInput(format!(
                "`chat_template_kwargs` of `{}` must be an object, found {other}",
                model.name
            )))
        }
    };
    if let Some(key) = RESERVED.iter().find(|k| kwargs.contains_key(**k)) {
        return Err(AdapterError::InvalidInput(format!(
            "`chat_template_kwargs` of `{}` sets `{key}`, which lmhost passes itself",
            model.name
        )));
    }
    let continue_final = messages
        .last()
        .filter(|m| m.role == "assistant")
        .map(|m| m.content.clone());
    let string = |s: &str| Value::from(s).to_string();
    let mut json = String::from("{\"messages\":[");
    for (n, m) in messages.iter().enumerate() {
        if n > 0 {
            json.push(',');
        }
        json.push_str(&format!(
            "{{\"role\":{},\"content\":{}}}",
            string(&m.role),
            string(&m.content)
        ));
    }
    json.push_str(&format!(
        "],\"tools\":null,\"documents\":null,\"add_generation_prompt\":{},\"bos_token\":{},\"eos_token\":{}",
        continue_final.is_none(),
        string(model.bos_token.as_deref().unwrap_or_default()),
        string(model.eos_token.as_deref().unwrap_or_default()),
    ));
    for (key, value) in &kwargs {
        json.push_str(&format!(",{}:{value}", string(key)));
    }
    json.push('}');
    Ok(TemplateContext { json, continue_final })
}

/// The prompt cut just after the final message's text, so the model goes on
/// with it (whatever the template writes after a closed assistant turn is
/// dropped), as transformers' `continue_final_message` does.
fn continue_final(model: &ModelInfo, rendered: String, last: &str) -> Result<String, AdapterError> {
    let last = last.trim();
    match rendered.rfind(last) {
        Some(at) => {
            let mut text = rendered;
            text.truncate(at + last.len());
            Ok(text)
        }
        None => Err(AdapterError::InvalidInput(format!(
            "the chat of `{}` ends on an assistant message to continue, but its chat template does not \
             write that message's text into the prompt",
            model.name
        ))),
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
    let premade = match spec.get("premade_chat_template") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(AdapterError::InvalidInput(format!(
                "`premade_chat_template` of `{}` must be true or false, found {other}",
                model.name
            )))
        }
    };
    match (premade, custom, model.builtin_template.as_deref()) {
        (false, Some(custom), _) => Ok(custom.to_string()),
        (_, _, Some(builtin)) => Ok(builtin.to_string()),
        (_, Some(custom), None) => Ok(custom.to_string()),
        (_, None, None) => Err(AdapterError::Unsupported(format!(
            "`{}` has no chat template: the model file ships none and the registry entry sets no \
             `custom_chat_template`",
            model.name
        ))),
    }
}

/// The output rules of one registry entry.
struct PostProcess {
    split_prefix: Option<String>,
    cot_end_tag: Option<String>,
    cull: Option<Cull>,
    /// How many trailing bytes of raw output a future chunk can still change;
    /// `None` when that is unbounded and streaming must wait for the end.
    holdback: Option<usize>,
}

impl PostProcess {
    fn new(model: &ModelInfo) -> Result<Self, AdapterError> {
        let spec = parse_spec(model)?;
        let split_prefix = string_key(model, &spec, "output_split_prefix")?
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let cot_end_tag = string_key(model, &spec, "cot_end_tag")?
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let pattern = string_key(model, &spec, "eos_to_cull")?.filter(|s| !s.is_empty());
        let (cull, cull_len) = match pattern {
            None => (None, Some(0)),
            Some(p) => {
                let invalid = |e: &dyn std::fmt::Display| {
                    AdapterError::InvalidInput(format!(
                        "`eos_to_cull` of `{}` is not a valid regex `{p}`: {e}",
                        model.name
                    ))
                };
                let hir = regex_syntax::parse(p).map_err(|e| invalid(&e))?;
                let props = hir.properties();
                let bounded = if props.look_set().is_empty() {
                    props.maximum_len()
                } else {
                    None
                };
                // Most patterns are an escaped token (`<\|im_end\|>`): match it as
                // text rather than compile a regex on every call.
                let cull = match hir.kind() {
                    HirKind::Literal(lit) => match std::str::from_utf8(&lit.0) {
                        Ok(text) => Cull::Literal(text.to_string()),
                        Err(_) => Cull::Regex(regex::Regex::new(p).map_err(|e| invalid(&e))?),
                    },
                    _ => Cull::Regex(regex::Regex::new(p).map_err(|e| invalid(&e))?),
                };
                (Some(cull), bounded)
            }
        };
        let holdback = if split_prefix.is_some() || cot_end_tag.is_some() {
            None
        } else {
            cull_len
        };
        Ok(Self {
            split_prefix,
            cot_end_tag,
            cull,
            holdback,
        })
    }

    fn apply(&self, raw: &str) -> String {
        let mut text = raw.trim();
        if let Some(prefix) = &self.split_prefix {
            if let Some((_, after)) = text.rsplit_once(prefix.as_str()) {
                text = after;
            }
        }
        if let Some(tag) = &self.cot_end_tag {
            if let Some((_, after)) = text.rsplit_once(tag.as_str()) {
                text = after.trim();
            }
        }
        match &self.cull {
            Some(Cull::Literal(lit)) => text.replace(lit.as_str(), ""),
            Some(Cull::Regex(re)) => re.replace_all(text, "").into_owned(),
            None => text.to_string(),
        }
    }

    /// The part of the final answer already fixed by `raw`, which may still grow.
    fn stable_prefix(&self, raw: &str) -> String {
        let Some(holdback) = self.holdback else {
            return String::new();
        };
        let text = raw.trim_start();
        // Trailing whitespace may yet be stripped, and the last `holdback` bytes
        // may yet become part of a match.
        let mut boundary = text.trim_end().len().min(text.len().saturating_sub(holdback));
        while !text.is_char_boundary(boundary) {
            boundary -= 1;
        }
        let mut out = String::new();
        let mut last = 0;
        let matches: Vec<(usize, usize)> = match &self.cull {
            Some(Cull::Literal(lit)) => text
                .match_indices(lit.as_str())
                .map(|(i, m)| (i, i + m.len()))
                .collect(),
            Some(Cull::Regex(re)) => re.find_iter(text).map(|m| (m.start(), m.end())).collect(),
            None => Vec::new(),
        };
        for (start, end) in matches {
            if start >= boundary {
                break;
            }
            out.push_str(&text[last..start]);
            last = end;
        }
        if last < boundary {
            out.push_str(&text[last..boundary]);
        }
        out
    }
}

/// What `eos_to_cull` removes: a plain text, or matches of a regex.
enum Cull {
    Literal(String),
    Regex(regex::Regex),
}

/// Streaming state: the output rules (parsed once, at the first push), the raw
/// text so far and how much answer was emitted.
struct Stream {
    model: ModelInfo,
    post: RefCell<Option<PostProcess>>,
    raw: RefCell<String>,
    emitted: RefCell<usize>,
}

impl Stream {
    /// The entry's output rules, parsed on first use (a constructor cannot fail).
    fn with_post<T>(&self, f: impl FnOnce(&PostProcess) -> T) -> Result<T, AdapterError> {
        let mut post = self.post.borrow_mut();
        if post.is_none() {
            *post = Some(PostProcess::new(&self.model)?);
        }
        Ok(f(post.as_ref().expect("just set")))
    }
}

impl GuestResponseStream for Stream {
    fn new(model: ModelInfo) -> Self {
        Stream {
            model,
            post: RefCell::new(None),
            raw: RefCell::new(String::new()),
            emitted: RefCell::new(0),
        }
    }

    fn push(&self, chunk: String) -> Result<String, AdapterError> {
        let mut raw = self.raw.borrow_mut();
        raw.push_str(&chunk);
        let stable = self.with_post(|post| post.stable_prefix(&raw))?;
        let mut emitted = self.emitted.borrow_mut();
        if stable.len() <= *emitted {
            return Ok(String::new());
        }
        let piece = stable[*emitted..].to_string();
        *emitted = stable.len();
        Ok(piece)
    }

    fn finish(&self) -> Result<Completion, AdapterError> {
        let raw = self.raw.borrow();
        self.with_post(|post| completion(post.apply(&raw)))
    }
}

export!(ChatTemplate);
