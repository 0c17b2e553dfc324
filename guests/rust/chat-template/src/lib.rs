//! `chat-template`: the adapter for local models, with clembench's semantics,
//! and tool calls and reasoning as each model family writes them.
//!
//! Request: the chat template is the one shipped in the model file, unless the
//! registry entry sets `premade_chat_template: false` and a `custom_chat_template`
//! (or the model file has none). The host renders it; the adapter picks it and
//! gives it what transformers gives it: the messages (assistant `tool_calls` with
//! their arguments as objects, `tool` turns with `tool_call_id` and `name`,
//! `reasoning_content`), `tools`, `add_generation_prompt`, the special tokens and
//! the entry's `chat_template_kwargs`. A template that does not read `tools`
//! gets them the way lmhost's fallback writes them (see [`context`]).
//!
//! Tool calls: the entry's `tool_call_format` (`hermes`, `llama3`, `mistral`)
//! names how the model writes them; without it the format is read from the
//! template, and is Hermes for templates without tool support. `tool_choice`
//! `required` or a named tool becomes a constraint the engine enforces; `auto`
//! becomes a lazy one, enforced from the call's opening marker on.
//!
//! Response, in clembench's order: the reasoning (`cot_start_tag`/`cot_end_tag`,
//! or `<think>` tags the template uses) and the tool calls are taken out, then the
//! text is stripped; if `output_split_prefix` is set and present, what follows its
//! last occurrence is kept; if only `cot_end_tag` is set and present, what follows
//! its last occurrence; then every match of the `eos_to_cull` regex is removed.
//! A call that does not parse stays in the text, and is logged.
//!
//! Streaming emits reasoning and calls as soon as they are complete, and only
//! text that no later chunk can change: nothing while a split prefix or a lone
//! cot end tag is configured or the cull regex is unbounded or uses look-around,
//! otherwise all but the regex's maximum match length.

wit_bindgen::generate!({
    world: "adapter",
    path: "../../../wit/0.2",
});

mod context;
mod post;

use std::cell::RefCell;

use chat_formats::{Event, Parser, ReasoningTags, ToolFormat, ToolSpec};
use exports::lmhost::adapter::model_adapter::{
    AdapterError, Completion, Delta, Guest, GuestResponseStream, Message, ModelInfo, Params, Request,
};
use lmhost::adapter::host::{log, LogLevel};
use lmhost::adapter::types::{Constraint, Prompt, ResponseFormat, ToolCall, ToolChoice};
use serde_json::{Map, Value};

use post::PostProcess;

struct ChatTemplate;

impl Guest for ChatTemplate {
    type ResponseStream = Stream;

    fn shape_request(model: ModelInfo, messages: Vec<Message>, params: Params) -> Result<Request, AdapterError> {
        let spec = parse_spec(&model)?;
        let template = choose_template(&model, &spec)?;
        let tools = Tools::new(&model, &spec, &template, &params)?;
        let context = context::template_context(&model, &spec, &messages, &tools, &params.tools)?;
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
            stop: params.stop.clone(),
            add_bos: model.add_bos && !starts_with_bos,
            constraint: tools.constraint(&params)?,
        }))
    }

    fn parse_response(
        model: ModelInfo,
        params: Params,
        request: Request,
        raw: String,
    ) -> Result<Completion, AdapterError> {
        let mut reader = Reader::new(&model, &params, &request)?;
        let events = reader.parser_push(&raw);
        reader.read(events);
        let rest = reader.parser_finish();
        reader.read(rest);
        Ok(reader.completion())
    }
}

/// What this call does with tools: the format calls are written in, and the
/// tools the model may call (empty when it may call none).
pub(crate) struct Tools {
    pub(crate) format: ToolFormat,
    /// The template reads `tools` itself (it names them; its call format may be
    /// one lmhost does not know); otherwise lmhost's fallback writes them.
    pub(crate) native: bool,
    pub(crate) active: bool,
}

impl Tools {
    fn new(
        model: &ModelInfo,
        spec: &Map<String, Value>,
        template: &str,
        params: &Params,
    ) -> Result<Self, AdapterError> {
        let named = match string_key(model, spec, "tool_call_format")? {
            None => None,
            Some(name) => Some(ToolFormat::from_name(name).ok_or_else(|| {
                AdapterError::InvalidInput(format!(
                    "`tool_call_format` of `{}` is `{name}`, not one of: {}",
                    model.name,
                    ToolFormat::known_names().join(", ")
                ))
            })?),
        };
        let detected = ToolFormat::detect(template);
        Ok(Self {
            format: named.or(detected).unwrap_or(ToolFormat::Hermes),
            native: template.contains("tools"),
            active: !params.tools.is_empty() && !matches!(params.tool_choice, ToolChoice::None),
        })
    }

    /// The output the engine must (or, lazily, may) produce for this call.
    fn constraint(&self, params: &Params) -> Result<Option<Constraint>, AdapterError> {
        if !self.active {
            return Ok(None);
        }
        let (specs, lazy) = match &params.tool_choice {
            ToolChoice::Required => (specs(params, None)?, false),
            ToolChoice::Named(name) => (specs(params, Some(name))?, false),
            // The response format is enforced instead; a lazy call grammar would replace it.
            ToolChoice::Auto if !matches!(params.response_format, ResponseFormat::Text) => return Ok(None),
            ToolChoice::Auto if self.format.call_marker().is_some() => (specs(params, None)?, true),
            ToolChoice::Auto | ToolChoice::None => return Ok(None),
        };
        let c = self.format.constraint(&specs);
        Ok(Some(Constraint {
            prefix: c.prefix,
            schema: c.schema,
            suffix: c.suffix,
            lazy,
        }))
    }
}

/// The tools of `params` (only `named`, when given) as the constraint needs them.
fn specs(params: &Params, named: Option<&String>) -> Result<Vec<ToolSpec>, AdapterError> {
    params
        .tools
        .iter()
        .filter(|t| named.is_none_or(|n| *n == t.name))
        .map(|tool| {
            let parameters = match tool.parameters.as_deref() {
                None => serde_json::json!({"type": "object"}),
                Some(text) => serde_json::from_str(text).map_err(|e| {
                    AdapterError::InvalidInput(format!("the parameters of tool `{}` are not JSON: {e}", tool.name))
                })?,
            };
            Ok(ToolSpec {
                name: tool.name.clone(),
                parameters,
            })
        })
        .collect()
}

/// Reads the engine's output into a completion: the parser for calls and
/// reasoning, then clembench's rules on the text.
struct Reader {
    model_name: String,
    parser: Option<Parser>,
    post: PostProcess,
    /// The text so far, before the output rules.
    text: String,
    reasoning: String,
    calls: Vec<ToolCall>,
}

impl Reader {
    fn new(model: &ModelInfo, params: &Params, request: &Request) -> Result<Self, AdapterError> {
        let spec = parse_spec(model)?;
        let template = choose_template(model, &spec).unwrap_or_default();
        let tools = Tools::new(model, &spec, &template, params)?;
        let start = string_key(model, &spec, "cot_start_tag")?.filter(|s| !s.is_empty());
        let end = string_key(model, &spec, "cot_end_tag")?.filter(|s| !s.is_empty());
        let tags = match (start, end) {
            (Some(start), Some(end)) => Some(ReasoningTags {
                start: start.to_string(),
                end: end.to_string(),
            }),
            // A lone end tag keeps clembench's rule (the text after its last occurrence).
            (_, Some(_)) => None,
            _ => ReasoningTags::detect(&template),
        };
        let prompt = match request {
            Request::Prompt(p) => p.text.as_str(),
            Request::Http(_) => "",
        };
        let in_reasoning = tags.as_ref().is_some_and(|t| t.prompt_opens(prompt));
        let format = tools.active.then_some(tools.format);
        let reasoning_parsed = tags.is_some();
        Ok(Self {
            model_name: model.name.clone(),
            parser: Some(Parser::new(format, tags, in_reasoning)),
            post: PostProcess::new(model, reasoning_parsed)?,
            text: String::new(),
            reasoning: String::new(),
            calls: Vec::new(),
        })
    }

    fn parser_push(&mut self, chunk: &str) -> Vec<Event> {
        self.parser.as_mut().map(|p| p.push(chunk)).unwrap_or_default()
    }

    fn parser_finish(&mut self) -> Vec<Event> {
        self.parser.take().map(Parser::finish).unwrap_or_default()
    }

    /// Takes in `events`; returns the reasoning and the calls among them.
    fn read(&mut self, events: Vec<Event>) -> (String, Vec<ToolCall>) {
        let mut reasoning = String::new();
        let mut calls = Vec::new();
        for event in events {
            match event {
                Event::Text(text) => self.text.push_str(&text),
                Event::Reasoning(text) => reasoning.push_str(&text),
                Event::Call(call) => calls.push(ToolCall {
                    id: call.id.unwrap_or_default(),
                    name: call.name,
                    arguments: call.arguments,
                }),
                Event::Malformed { raw, reason } => {
                    log(
                        LogLevel::Warn,
                        &format!(
                            "`{}` wrote a tool call that is not one ({reason}); kept as text",
                            self.model_name
                        ),
                    );
                    self.text.push_str(&raw);
                }
            }
        }
        self.reasoning.push_str(&reasoning);
        self.calls.extend(calls.iter().cloned());
        (reasoning, calls)
    }

    fn completion(&self) -> Completion {
        Completion {
            text: self.post.apply(&self.text),
            reasoning: (!self.reasoning.is_empty()).then(|| self.reasoning.clone()),
            tool_calls: self.calls.clone(),
            prompt_tokens: None,
            completion_tokens: None,
            reasoning_tokens: None,
            finish_reason: None,
        }
    }
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

pub(crate) fn parse_spec(model: &ModelInfo) -> Result<Map<String, Value>, AdapterError> {
    match serde_json::from_str::<Value>(&model.spec_json) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(AdapterError::InvalidInput(format!(
            "registry entry of `{}` is not a JSON object",
            model.name
        ))),
    }
}

pub(crate) fn string_key<'a>(
    model: &ModelInfo,
    spec: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, AdapterError> {
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

/// Streaming state, built at the first push (a constructor cannot fail): the
/// reader, and how much text was emitted.
struct Stream {
    model: ModelInfo,
    params: Params,
    request: Request,
    reader: RefCell<Option<Reader>>,
    emitted: RefCell<usize>,
}

impl Stream {
    fn with_reader<T>(&self, f: impl FnOnce(&mut Reader) -> T) -> Result<T, AdapterError> {
        let mut reader = self.reader.borrow_mut();
        if reader.is_none() {
            *reader = Some(Reader::new(&self.model, &self.params, &self.request)?);
        }
        Ok(f(reader.as_mut().expect("just set")))
    }
}

impl GuestResponseStream for Stream {
    fn new(model: ModelInfo, params: Params, request: Request) -> Self {
        Stream {
            model,
            params,
            request,
            reader: RefCell::new(None),
            emitted: RefCell::new(0),
        }
    }

    fn push(&self, chunk: String) -> Result<Delta, AdapterError> {
        let (reasoning, tool_calls, stable) = self.with_reader(|reader| {
            let events = reader.parser_push(&chunk);
            let (reasoning, calls) = reader.read(events);
            (reasoning, calls, reader.post.stable_prefix(&reader.text))
        })?;
        let mut emitted = self.emitted.borrow_mut();
        let text = if stable.len() > *emitted {
            let piece = stable[*emitted..].to_string();
            *emitted = stable.len();
            piece
        } else {
            String::new()
        };
        Ok(Delta {
            text,
            reasoning,
            tool_calls,
        })
    }

    fn finish(&self) -> Result<Completion, AdapterError> {
        self.with_reader(|reader| {
            let rest = reader.parser_finish();
            reader.read(rest);
            reader.completion()
        })
    }
}

export!(ChatTemplate);
