//! The variables a chat template gets, as transformers passes them.
//!
//! A template that does not read `tools` (or writes calls in no known format)
//! gets lmhost's fallback: the tools described in the system message, past
//! calls written into the assistant's text in the call format, and tool results
//! as a user turn of `<tool_response>` blocks (consecutive results merged, so
//! templates that insist on alternating roles still render).

use chat_formats::{Call, ToolFormat};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::lmhost::adapter::types::{Tool, ToolCall};
use crate::{AdapterError, Message, ModelInfo, Tools};

/// The template's variables as JSON text, and the final assistant message when
/// the chat ends on one: it is continued (transformers' `continue_final_message`),
/// not closed.
pub(crate) struct TemplateContext {
    pub(crate) json: String,
    pub(crate) continue_final: Option<String>,
}

const RESERVED: [&str; 4] = ["messages", "tools", "documents", "add_generation_prompt"];

/// Written by hand so that keys keep transformers' order (`messages`, `tools`,
/// `documents`, `add_generation_prompt`, the special tokens, then the entry's
/// `chat_template_kwargs`, which may override a token, as there): the host's
/// renderer keeps JSON key order, as Python dicts do.
pub(crate) fn template_context(
    model: &ModelInfo,
    spec: &Map<String, Value>,
    messages: &[Message],
    tools: &Tools,
    tool_list: &[Tool],
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
        .filter(|m| m.role == "assistant" && m.tool_calls.is_empty())
        .map(|m| m.content.clone());
    let fallback;
    let messages = if tools.native {
        messages
    } else {
        let described = if tools.active { tool_list } else { &[] };
        fallback = fallback_messages(messages, tools.format, described)?;
        &fallback[..]
    };
    let mistral_ids = tools.native && tools.format == ToolFormat::Mistral;
    let mut json = String::from("{\"messages\":[");
    for (n, m) in messages.iter().enumerate() {
        if n > 0 {
            json.push(',');
        }
        write_message(&mut json, m, mistral_ids);
    }
    json.push_str("],\"tools\":");
    if tools.active && tools.native {
        write_tools(&mut json, tool_list)?;
    } else {
        json.push_str("null");
    }
    json.push_str(&format!(
        ",\"documents\":null,\"add_generation_prompt\":{},\"bos_token\":{},\"eos_token\":{}",
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

fn string(s: &str) -> String {
    Value::from(s).to_string()
}

/// A JSON object's text as it was written (key order kept), or `None`.
fn raw_object(text: &str) -> Option<Box<RawValue>> {
    serde_json::from_str::<Box<RawValue>>(text)
        .ok()
        .filter(|raw| raw.get().starts_with('{'))
}

/// One message as transformers passes it (and as the template corpus renders
/// it): `role`, then for a tool result `tool_call_id` and `name` before
/// `content`, else `content` and the calls; only the keys it has.
fn write_message(json: &mut String, m: &Message, mistral_ids: bool) {
    let id = |id: &str| if mistral_ids { mistral_id(id) } else { id.to_string() };
    json.push_str(&format!("{{\"role\":{}", string(&m.role)));
    if m.tool_call_id.is_some() {
        if let Some(call_id) = &m.tool_call_id {
            json.push_str(&format!(",\"tool_call_id\":{}", string(&id(call_id))));
        }
        if let Some(name) = &m.name {
            json.push_str(&format!(",\"name\":{}", string(name)));
        }
        json.push_str(&format!(",\"content\":{}}}", string(&m.content)));
        return;
    }
    json.push_str(&format!(",\"content\":{}", string(&m.content)));
    if !m.tool_calls.is_empty() {
        json.push_str(",\"tool_calls\":[");
        for (n, call) in m.tool_calls.iter().enumerate() {
            if n > 0 {
                json.push(',');
            }
            // Arguments as an object, as transformers documents them (a string
            // that is not a JSON object stays a string).
            let arguments = raw_object(&call.arguments)
                .map(|raw| raw.get().to_string())
                .unwrap_or_else(|| string(&call.arguments));
            json.push_str(&format!(
                "{{\"id\":{},\"type\":\"function\",\"function\":{{\"name\":{},\"arguments\":{arguments}}}}}",
                string(&id(&call.id)),
                string(&call.name),
            ));
        }
        json.push(']');
    }
    if let Some(name) = &m.name {
        json.push_str(&format!(",\"name\":{}", string(name)));
    }
    if let Some(reasoning) = &m.reasoning {
        json.push_str(&format!(",\"reasoning_content\":{}", string(reasoning)));
    }
    json.push('}');
}

/// `tools` as transformers passes them: `{"type": "function", "function": {…}}`.
fn write_tools(json: &mut String, tools: &[Tool]) -> Result<(), AdapterError> {
    json.push('[');
    for (n, tool) in tools.iter().enumerate() {
        if n > 0 {
            json.push(',');
        }
        json.push_str(&tool_json(tool)?);
    }
    json.push(']');
    Ok(())
}

fn tool_json(tool: &Tool) -> Result<String, AdapterError> {
    let parameters = match tool.parameters.as_deref() {
        None => "{\"type\":\"object\",\"properties\":{}}".to_string(),
        Some(text) => raw_object(text)
            .ok_or_else(|| {
                AdapterError::InvalidInput(format!("the parameters of tool `{}` are not a JSON object", tool.name))
            })?
            .get()
            .to_string(),
    };
    let description = match &tool.description {
        Some(d) => format!(",\"description\":{}", string(d)),
        None => String::new(),
    };
    Ok(format!(
        "{{\"type\":\"function\",\"function\":{{\"name\":{}{description},\"parameters\":{parameters}}}}}",
        string(&tool.name)
    ))
}

fn plain(role: &str, content: String) -> Message {
    Message {
        role: role.into(),
        content,
        tool_calls: Vec::new(),
        tool_call_id: None,
        name: None,
        reasoning: None,
    }
}

/// The messages rewritten for a template without tool support (see the module).
fn fallback_messages(messages: &[Message], format: ToolFormat, tools: &[Tool]) -> Result<Vec<Message>, AdapterError> {
    let mut out: Vec<Message> = Vec::with_capacity(messages.len() + 1);
    if !tools.is_empty() {
        let mut described = String::from(
            "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n\
             You are provided with function signatures within <tools></tools> XML tags:\n<tools>",
        );
        for tool in tools {
            described.push('\n');
            described.push_str(&tool_json(tool)?);
        }
        let example = format.render_calls(&[Call {
            id: None,
            name: "function_name".into(),
            arguments: "{\"argument\": \"value\"}".into(),
        }]);
        described.push_str(&format!(
            "\n</tools>\n\nTo call a function, write its name and arguments in this form:\n{example}"
        ));
        match messages.first() {
            Some(first) if first.role == "system" => {
                out.push(plain("system", format!("{}\n\n{described}", first.content)));
            }
            _ => out.push(plain("system", described)),
        }
    }
    let skip = usize::from(!tools.is_empty() && messages.first().is_some_and(|m| m.role == "system"));
    for m in &messages[skip..] {
        match m.role.as_str() {
            "tool" => {
                let block = format!("<tool_response>\n{}\n</tool_response>", m.content);
                match out.last_mut() {
                    Some(last) if last.role == "user" && last.content.starts_with("<tool_response>") => {
                        last.content.push('\n');
                        last.content.push_str(&block);
                    }
                    _ => out.push(plain("user", block)),
                }
            }
            "assistant" if !m.tool_calls.is_empty() => {
                let calls: Vec<Call> = m.tool_calls.iter().map(call_of).collect();
                let written = format.render_calls(&calls);
                let content = match m.content.trim() {
                    "" => written,
                    text => format!("{text}\n{written}"),
                };
                out.push(Message {
                    reasoning: m.reasoning.clone(),
                    ..plain("assistant", content)
                });
            }
            _ => out.push(m.clone()),
        }
    }
    Ok(out)
}

fn call_of(call: &ToolCall) -> Call {
    Call {
        id: (!call.id.is_empty()).then(|| call.id.clone()),
        name: call.name.clone(),
        arguments: call.arguments.clone(),
    }
}

/// Mistral's templates require call ids of 9 letters and digits: any other id
/// becomes one derived from it (FNV-1a), the same for a call and its result.
fn mistral_id(id: &str) -> String {
    if id.len() == 9 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return id.to_string();
    }
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    (0..9)
        .map(|_| {
            let digit = DIGITS[(hash % 62) as usize] as char;
            hash /= 62;
            digit
        })
        .collect()
}
