//! How model families write tool calls and reasoning.
//!
//! A local model writes its tool calls and its reasoning as text, each family in
//! its own way. This crate knows the families' published formats:
//!
//! - [`ToolFormat::Hermes`] (Hermes, Qwen 2.5/3, and lmhost's fallback for
//!   templates without tool support): `<tool_call>{"name": …, "arguments": {…}}</tool_call>`,
//!   one block per call;
//! - [`ToolFormat::Llama3`] (Llama 3.1–3.3 JSON tool calling): the answer is a JSON
//!   object `{"name": …, "parameters": {…}}`, optionally after `<|python_tag|>`;
//! - [`ToolFormat::Mistral`]: `[TOOL_CALLS][{"name": …, "arguments": {…}, "id": …}]`
//!   (v3/v7 templates) or `[TOOL_CALLS]name[ARGS]{…}` (v11 and later);
//! - reasoning between tags ([`ReasoningTags`], `<think>…</think>` by default).
//!
//! [`Parser`] reads a model's output incrementally into [`Event`]s. Its result
//! does not depend on how the output was split into chunks (only how the text
//! is cut into events does: [`coalesce`] merges neighbours), which the tests
//! check at every byte. A call that does not parse is reported as
//! [`Event::Malformed`] with its raw text, never dropped.
//!
//! Written here rather than taken from a crate: the formats are few, each a few
//! lines, and no maintained crate parses them incrementally for WebAssembly.

use serde_json::value::RawValue;
use serde_json::{json, Value};

/// How a model family writes its tool calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolFormat {
    Hermes,
    Llama3,
    Mistral,
}

/// Every format with the names a registry entry may use for it.
const FORMAT_NAMES: &[(ToolFormat, &[&str])] = &[
    (ToolFormat::Hermes, &["hermes", "qwen", "qwen2.5", "qwen3"]),
    (
        ToolFormat::Llama3,
        &["llama3", "llama3_json", "llama3.1", "llama3.2", "llama3.3"],
    ),
    (ToolFormat::Mistral, &["mistral"]),
];

/// A tool as the constraint needs it: its name and the JSON schema of its arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub parameters: Value,
}

/// Output a grammar must enforce: `prefix`, then JSON valid against `schema`,
/// then `suffix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constraint {
    pub prefix: String,
    /// JSON schema, as JSON text.
    pub schema: String,
    pub suffix: String,
}

/// A call read from the model's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The id the model wrote (Mistral's), if any.
    pub id: Option<String>,
    pub name: String,
    /// JSON text of an object: compact, or (Mistral v11) as the model wrote it.
    pub arguments: String,
}

/// A piece of the model's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Text(String),
    Reasoning(String),
    Call(Call),
    /// Something that started as a call but is not one: its raw text (markers
    /// included) and what is wrong with it.
    Malformed {
        raw: String,
        reason: String,
    },
}

impl ToolFormat {
    /// The format a registry entry names (`tool_call_format`), case-insensitive.
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.trim().to_ascii_lowercase();
        FORMAT_NAMES
            .iter()
            .find(|(_, names)| names.contains(&name.as_str()))
            .map(|(format, _)| *format)
    }

    /// The names [`from_name`](Self::from_name) accepts, for error messages.
    pub fn known_names() -> Vec<&'static str> {
        FORMAT_NAMES
            .iter()
            .flat_map(|(_, names)| names.iter().copied())
            .collect()
    }

    pub fn name(self) -> &'static str {
        FORMAT_NAMES
            .iter()
            .find(|(format, _)| *format == self)
            .map(|(_, names)| names[0])
            .expect("every format has names")
    }

    /// The format a chat template writes calls in, from the markers it uses;
    /// `None` when the template shows no tool support of a known family.
    pub fn detect(template: &str) -> Option<Self> {
        if template.contains("[TOOL_CALLS]") {
            Some(Self::Mistral)
        } else if template.contains("<tool_call>") {
            Some(Self::Hermes)
        } else if template.contains("<|python_tag|>") || template.contains("Environment: ipython") {
            Some(Self::Llama3)
        } else {
            None
        }
    }

    /// The text that opens a call (after which a lazy grammar takes over); `None`
    /// for Llama 3, whose calls are a bare JSON object.
    pub fn call_marker(self) -> Option<&'static str> {
        match self {
            Self::Hermes => Some("<tool_call>"),
            Self::Mistral => Some("[TOOL_CALLS]"),
            Self::Llama3 => None,
        }
    }

    /// The output that is one call of one of `tools`, in this format.
    pub fn constraint(self, tools: &[ToolSpec]) -> Constraint {
        let args_key = match self {
            Self::Llama3 => "parameters",
            Self::Hermes | Self::Mistral => "arguments",
        };
        let calls: Vec<Value> = tools
            .iter()
            .map(|tool| {
                json!({
                    "type": "object",
                    "properties": {"name": {"const": tool.name}, args_key: tool.parameters},
                    "required": ["name", args_key],
                    "additionalProperties": false,
                })
            })
            .collect();
        let one = if calls.len() == 1 {
            calls.into_iter().next().expect("one")
        } else {
            json!({"anyOf": calls})
        };
        let (prefix, schema, suffix) = match self {
            Self::Hermes => ("<tool_call>\n", one, "\n</tool_call>"),
            Self::Llama3 => ("", one, ""),
            Self::Mistral => (
                "[TOOL_CALLS]",
                json!({"type": "array", "items": one, "minItems": 1}),
                "",
            ),
        };
        Constraint {
            prefix: prefix.to_string(),
            schema: schema.to_string(),
            suffix: suffix.to_string(),
        }
    }

    /// `calls` written as the model would write them (for templates that cannot
    /// render calls themselves).
    pub fn render_calls(self, calls: &[Call]) -> String {
        let object = |call: &Call, args_key: &str| {
            let arguments = RawValue::from_string(call.arguments.clone())
                .map(|raw| raw.get().to_string())
                .unwrap_or_else(|_| Value::from(call.arguments.as_str()).to_string());
            format!(
                "{{\"name\": {}, \"{args_key}\": {arguments}}}",
                Value::from(call.name.as_str())
            )
        };
        match self {
            Self::Hermes => calls
                .iter()
                .map(|c| format!("<tool_call>\n{}\n</tool_call>", object(c, "arguments")))
                .collect::<Vec<_>>()
                .join("\n"),
            Self::Llama3 => calls
                .iter()
                .map(|c| object(c, "parameters"))
                .collect::<Vec<_>>()
                .join("; "),
            Self::Mistral => format!(
                "[TOOL_CALLS][{}]",
                calls
                    .iter()
                    .map(|c| object(c, "arguments"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// The tags around a model's reasoning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReasoningTags {
    pub start: String,
    pub end: String,
}

impl ReasoningTags {
    /// `<think>…</think>` (DeepSeek R1, Qwen3, SmolLM3 and most open reasoning models).
    pub fn think() -> Self {
        Self {
            start: "<think>".into(),
            end: "</think>".into(),
        }
    }

    /// The tags a chat template uses, when it uses `<think>`.
    pub fn detect(template: &str) -> Option<Self> {
        template.contains("</think>").then(Self::think)
    }

    /// Whether `prompt` leaves the model inside its reasoning (the template
    /// opened the tag itself, as DeepSeek R1's does).
    pub fn prompt_opens(&self, prompt: &str) -> bool {
        prompt.trim_end().ends_with(self.start.as_str())
    }
}

/// A whole output read at once.
pub fn parse(
    format: Option<ToolFormat>,
    reasoning: Option<ReasoningTags>,
    in_reasoning: bool,
    output: &str,
) -> Vec<Event> {
    let mut parser = Parser::new(format, reasoning, in_reasoning);
    let mut events = parser.push(output);
    events.extend(parser.finish());
    coalesce(events)
}

/// `events` with neighbouring text (and neighbouring reasoning) merged.
pub fn coalesce(events: Vec<Event>) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::with_capacity(events.len());
    for event in events {
        match (out.last_mut(), event) {
            (Some(Event::Text(a)), Event::Text(b)) => a.push_str(&b),
            (Some(Event::Reasoning(a)), Event::Reasoning(b)) => a.push_str(&b),
            (_, event) => out.push(event),
        }
    }
    out
}

mod parser;
pub use parser::Parser;

#[cfg(test)]
mod tests;
