//! The tool side of a call: call ids, checks of a request's tools, and the
//! library's types as the adapter contract carries them.

use serde_json::Value;

use crate::adapters::wit;
use crate::error::{Error, Result};
use crate::generation::{GenerationParams, Message, ResponseFormat, ToolCall, ToolChoice};

/// The ids of one answer's tool calls, by position: the adapter's where it
/// gave one, else a fresh unique one, the same in the stream and in the
/// final [`Generation`].
#[derive(Default)]
pub(super) struct CallIds(Vec<String>);

impl CallIds {
    /// `calls`, the first at position `start`, with their ids.
    pub(super) fn name(&mut self, start: usize, calls: Vec<wit::ToolCall>) -> Vec<ToolCall> {
        calls
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let at = start + i;
                let id = if !c.id.is_empty() {
                    c.id
                } else if let Some(id) = self.0.get(at).filter(|id| !id.is_empty()) {
                    id.clone()
                } else {
                    new_call_id()
                };
                if at >= self.0.len() {
                    self.0.resize(at + 1, String::new());
                }
                self.0[at] = id.clone();
                ToolCall {
                    id,
                    name: c.name,
                    arguments: c.arguments,
                }
            })
            .collect()
    }
}

/// `call_` and 24 hex digits, unique in the process and unpredictable across
/// processes (std's randomly keyed hasher: no dependency for an id).
fn new_call_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(n);
    format!("call_{:016x}{:08x}", hasher.finish(), n as u32)
}

/// A request's tools and tool choice make sense together: names unique, a
/// named choice among them, a required one with some.
pub(super) fn check_tools(model: &str, params: &GenerationParams) -> Result<()> {
    let bad = |message: String| Error::InvalidRequest {
        model: model.into(),
        message,
    };
    let mut names = std::collections::HashSet::new();
    for tool in &params.tools {
        if tool.name.is_empty() {
            return Err(bad("a tool has an empty name".into()));
        }
        if !names.insert(tool.name.as_str()) {
            return Err(bad(format!("two tools are named `{}`", tool.name)));
        }
        if let Some(p) = tool.parameters.as_ref().filter(|p| !p.is_object()) {
            return Err(bad(format!(
                "the parameters of tool `{}` must be a JSON schema object, found {p}",
                tool.name
            )));
        }
    }
    match &params.tool_choice {
        Some(ToolChoice::Required) if params.tools.is_empty() => {
            Err(bad("`tool_choice` is `required`, but the request has no tools".into()))
        }
        Some(ToolChoice::Function(name)) if !names.contains(name.as_str()) => Err(bad(format!(
            "`tool_choice` names the tool `{name}`, which is not among the request's tools"
        ))),
        _ => Ok(()),
    }
}

/// A message as the adapter contract carries it.
impl From<&Message> for wit::Message {
    fn from(m: &Message) -> Self {
        wit::Message {
            role: m.role.clone(),
            content: m.content.clone(),
            tool_calls: m
                .tool_calls
                .iter()
                .map(|c| wit::ToolCall {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    arguments: c.arguments.clone(),
                })
                .collect(),
            tool_call_id: m.tool_call_id.clone(),
            name: m.name.clone(),
            reasoning: m.reasoning.clone(),
        }
    }
}

/// The parameters as the adapter contract carries them.
impl From<&GenerationParams> for wit::Params {
    fn from(p: &GenerationParams) -> Self {
        wit::Params {
            max_tokens: p.max_tokens,
            temperature: p.temperature,
            top_p: p.top_p,
            top_k: p.top_k,
            min_p: p.min_p,
            seed: p.seed,
            stop: p.stop.clone(),
            repetition_penalty: p.repetition_penalty,
            frequency_penalty: p.frequency_penalty,
            presence_penalty: p.presence_penalty,
            stream: false,
            tools: p
                .tools
                .iter()
                .map(|t| wit::Tool {
                    name: t.name.clone(),
                    description: t.description.clone(),
                    parameters: t.parameters.as_ref().map(Value::to_string),
                    strict: t.strict,
                })
                .collect(),
            tool_choice: match &p.tool_choice {
                None | Some(ToolChoice::Auto) => wit::ToolChoice::Auto,
                Some(ToolChoice::None) => wit::ToolChoice::None,
                Some(ToolChoice::Required) => wit::ToolChoice::Required,
                Some(ToolChoice::Function(name)) => wit::ToolChoice::Named(name.clone()),
            },
            parallel_tool_calls: p.parallel_tool_calls.unwrap_or(true),
            response_format: match &p.response_format {
                None => wit::ResponseFormat::Text,
                Some(ResponseFormat::JsonObject) => wit::ResponseFormat::JsonObject,
                Some(ResponseFormat::JsonSchema { schema }) => wit::ResponseFormat::JsonSchema(wit::JsonSchemaFormat {
                    name: "response".into(),
                    schema: schema.to_string(),
                    strict: true,
                }),
            },
        }
    }
}
