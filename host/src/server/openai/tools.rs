//! The tool side of OpenAI's chat API: `tools`, `tool_choice`, messages'
//! `tool_calls`, `response_format`, and calls as OpenAI's clients read them.

use serde_json::{json, Value};

use super::super::error::ApiError;
use crate::generation::ResponseFormat;
use crate::{Tool, ToolCall, ToolChoice};

/// A `tool_choice` that names what the request has: `required` needs tools, a
/// named function must be one of them.
pub(super) fn check_tool_choice(tools: &[Tool], choice: Option<&ToolChoice>) -> Result<(), ApiError> {
    match choice {
        Some(ToolChoice::Required) if tools.is_empty() => Err(ApiError::invalid_request(
            "`tool_choice` `required` needs `tools`",
            Some("tool_choice"),
        )),
        Some(ToolChoice::Function(name)) if !tools.iter().any(|t| t.name == *name) => Err(ApiError::invalid_request(
            format!("`tool_choice` names `{name}`, which is not among `tools`"),
            Some("tool_choice"),
        )),
        _ => Ok(()),
    }
}

/// OpenAI's `response_format`: `{"type": "text"}` (free text), `{"type":
/// "json_object"}` or `{"type": "json_schema", "json_schema": {"name": …,
/// "schema": {…}, "strict": …}}`. The schema is enforced whatever `strict` says.
pub(super) fn response_format(format: &Value) -> Result<Option<ResponseFormat>, ApiError> {
    let bad = |message: String| ApiError::invalid_request(message, Some("response_format"));
    if format.is_null() {
        return Ok(None);
    }
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(ResponseFormat::JsonObject)),
        Some("json_schema") => {
            let schema = format
                .get("json_schema")
                .and_then(|j| j.get("schema"))
                .filter(|s| s.is_object())
                .ok_or_else(|| bad("`response_format.json_schema.schema` must be a JSON schema object".into()))?;
            Ok(Some(ResponseFormat::JsonSchema { schema: schema.clone() }))
        }
        other => Err(bad(format!(
            "`response_format.type` must be `text`, `json_object` or `json_schema`, found {}",
            other.map_or_else(
                || format.get("type").cloned().unwrap_or(Value::Null).to_string(),
                |t| format!("`{t}`")
            )
        ))),
    }
}

/// One entry of `tools`: `{"type": "function", "function": {"name", "description"?, "parameters"?, "strict"?}}`.
pub(super) fn tool(value: &Value, index: usize) -> Result<Tool, ApiError> {
    let param = format!("tools[{index}]");
    let bad = |what: &str| ApiError::invalid_request(format!("`{param}` {what}"), Some(param.as_str()));
    match value.get("type").and_then(Value::as_str) {
        Some("function") => {}
        Some(other) => {
            return Err(bad(&format!(
                "has type {}; only `function` tools are supported",
                crate::adapters::ledger::quote(other)
            )))
        }
        None => return Err(bad("has no `type`")),
    }
    let function = value.get("function").ok_or_else(|| bad("has no `function`"))?;
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("has no `function.name`"))?;
    let parameters = match function.get("parameters") {
        None | Some(Value::Null) => None,
        Some(p) if p.is_object() => Some(p.clone()),
        Some(_) => return Err(bad("has `function.parameters` that is not a JSON schema object")),
    };
    Ok(Tool {
        name: name.into(),
        description: function.get("description").and_then(Value::as_str).map(str::to_string),
        parameters,
        strict: function.get("strict").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// `tool_choice`: `"auto"`, `"none"`, `"required"` or a named function.
pub(super) fn tool_choice(value: &Value) -> Result<ToolChoice, ApiError> {
    let bad = |message: String| ApiError::invalid_request(message, Some("tool_choice"));
    match value {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(bad(format!(
                "`tool_choice` must be `auto`, `none`, `required` or a function, found {}",
                crate::adapters::ledger::quote(other)
            ))),
        },
        Value::Object(_) => value
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(|name| ToolChoice::Function(name.into()))
            .ok_or_else(|| bad("`tool_choice` must be {\"type\": \"function\", \"function\": {\"name\": …}}".into())),
        _ => Err(bad("`tool_choice` must be a string or an object".into())),
    }
}

/// An assistant message's `tool_calls`: `[{"id", "type": "function", "function": {"name", "arguments"}}]`.
pub(super) fn tool_calls(value: &Value, index: usize) -> Result<Vec<ToolCall>, ApiError> {
    let param = format!("messages[{index}].tool_calls");
    let bad = |what: &str| ApiError::invalid_request(format!("`{param}` {what}"), Some(param.as_str()));
    let Value::Array(calls) = value else {
        return Err(bad("must be a list"));
    };
    calls
        .iter()
        .map(|call| {
            let function = call
                .get("function")
                .ok_or_else(|| bad("has a call without `function`"))?;
            let name = function
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("has a call without `function.name`"))?;
            let arguments = match function.get("arguments") {
                Some(Value::String(s)) => s.clone(),
                None | Some(Value::Null) => "{}".into(),
                Some(v) if v.is_object() => v.to_string(),
                Some(_) => return Err(bad("has `function.arguments` that is not a JSON string")),
            };
            Ok(ToolCall {
                id: call.get("id").and_then(Value::as_str).unwrap_or_default().into(),
                name: name.into(),
                arguments,
            })
        })
        .collect()
}

/// A tool call as OpenAI writes it (`index` only in stream deltas).
pub fn tool_call_body(call: &ToolCall, index: Option<usize>) -> Value {
    let mut body = json!({
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    });
    if let Some(index) = index {
        body["index"] = index.into();
    }
    body
}
