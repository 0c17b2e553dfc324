//! Python values in: messages and generation parameters, as the Python user
//! writes them (a string for one user turn; OpenAI-shaped dicts accepted beside
//! lmhost's own), checked and turned into the library's types. Every error
//! names the message index or the parameter.

use lmhost::{GenerationParams, Message};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use pythonize::depythonize;
use serde_json::{Map, Value};

use crate::errors::invalid_request;

/// `messages`: a string (one user turn) or a sequence of message dicts.
pub fn messages(value: &Bound<'_, PyAny>) -> PyResult<Vec<Message>> {
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(vec![Message::user(text.to_str()?)]);
    }
    if value.is_instance_of::<PyDict>() {
        return Err(PyTypeError::new_err(
            "messages must be a string or a list of message dicts, not one dict (wrap it in a list)",
        ));
    }
    let json: Value = depythonize(value)
        .map_err(|e| PyTypeError::new_err(format!("messages must be a string or a list of message dicts: {e}")))?;
    let Value::Array(items) = json else {
        return Err(PyTypeError::new_err(
            "messages must be a string or a list of message dicts",
        ));
    };
    if items.is_empty() {
        return Err(invalid_request("messages is empty"));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| message(item).map_err(|e| invalid_request(&format!("messages[{i}]: {e}"))))
        .collect()
}

/// One message dict, lmhost's shape or OpenAI's: `content` may be `None`
/// (an assistant turn that only calls tools) or a list of text parts; a tool
/// call may nest its name and arguments under `function`, with arguments as
/// JSON text or as an object; `reasoning_content` is `reasoning`.
fn message(item: Value) -> Result<Message, String> {
    let Value::Object(mut map) = item else {
        return Err(format!(
            "a message is a dict with `role` and `content`, found {}",
            kind(&item)
        ));
    };
    match map.remove("content") {
        None | Some(Value::Null) => {
            map.insert("content".into(), Value::String(String::new()));
        }
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (j, part) in parts.iter().enumerate() {
                match part.get("text").and_then(Value::as_str) {
                    Some(t) if part.get("type").is_none_or(|k| k == "text") => text.push_str(t),
                    _ => {
                        return Err(format!(
                            "content[{j}] is not a text part (`{{\"type\": \"text\", \"text\": ...}}`)"
                        ))
                    }
                }
            }
            map.insert("content".into(), Value::String(text));
        }
        Some(other) => {
            map.insert("content".into(), other);
        }
    }
    if let Some(r) = map.remove("reasoning_content") {
        map.entry("reasoning").or_insert(r);
    }
    if let Some(Value::Array(calls)) = map.get_mut("tool_calls") {
        for call in calls.iter_mut() {
            flatten_call(call);
        }
    }
    if map.get("tool_calls").is_some_and(Value::is_null) {
        map.remove("tool_calls");
    }
    serde_json::from_value(Value::Object(map)).map_err(|e| e.to_string())
}

/// `{"id", "type": "function", "function": {"name", "arguments"}}` to
/// `{"id", "name", "arguments"}`, arguments as JSON text.
fn flatten_call(call: &mut Value) {
    let Value::Object(map) = call else { return };
    map.remove("type");
    if let Some(Value::Object(function)) = map.remove("function") {
        for (k, v) in function {
            map.entry(k).or_insert(v);
        }
    }
    if let Some(args) = map.get_mut("arguments") {
        if !args.is_string() {
            *args = Value::String(args.to_string());
        }
    }
}

/// Keyword parameters (`None` values are unset) to [`GenerationParams`]:
/// `stop` may be one string; tools and `response_format` may be OpenAI-shaped.
pub fn params(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<GenerationParams> {
    let Some(kwargs) = kwargs else {
        return Ok(GenerationParams::default());
    };
    let json: Value = depythonize(kwargs).map_err(|e| invalid_request(&format!("generation parameters: {e}")))?;
    let Value::Object(mut map) = json else {
        return Ok(GenerationParams::default());
    };
    map.retain(|_, v| !v.is_null());
    if let Some(Value::String(s)) = map.get("stop") {
        let one = Value::Array(vec![Value::String(s.clone())]);
        map.insert("stop".into(), one);
    }
    if let Some(Value::Array(tools)) = map.get_mut("tools") {
        for tool in tools.iter_mut() {
            flatten_tool(tool);
        }
    }
    if let Some(choice) = map.get_mut("tool_choice") {
        if let Some(name) = choice.pointer("/function/name").cloned() {
            *choice = serde_json::json!({ "function": name });
        }
    }
    if let Some(Value::Object(format)) = map.get_mut("response_format") {
        flatten_format(format);
    }
    serde_json::from_value(Value::Object(map)).map_err(|e| invalid_request(&format!("generation parameters: {e}")))
}

/// `{"type": "function", "function": {...}}` to the function itself.
fn flatten_tool(tool: &mut Value) {
    if let Some(Value::Object(function)) = tool.get("function").cloned() {
        if tool.get("type").is_none_or(|t| t == "function") {
            *tool = Value::Object(function);
        }
    }
}

/// OpenAI's `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`
/// to lmhost's `{"type": "json_schema", "schema": ...}`.
fn flatten_format(format: &mut Map<String, Value>) {
    if let Some(Value::Object(inner)) = format.remove("json_schema") {
        if let Some(schema) = inner.get("schema") {
            format.entry("schema").or_insert_with(|| schema.clone());
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "None",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a dict",
    }
}
