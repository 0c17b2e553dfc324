//! The tool-call suite, for prompt adapters on contract 0.2: the tools reach the
//! prompt; a required call is a constraint an engine can enforce; the call that
//! constraint makes the engine write is read back, whole and streamed in every
//! chunking; a tool result reaches the prompt. Adapters on 0.1 skip it.

use serde_json::{json, Value};

use super::prompt::chunkings;
use super::{models, Row, Suite};
use crate::adapters::wit;

const QUESTION: &str = "What is the weather in Oslo?";
const RESULT: &str = "Sunny, 21 degrees";

fn weather() -> wit::Tool {
    wit::Tool {
        name: "get_weather".into(),
        description: Some("The current weather in a city.".into()),
        parameters: Some(
            json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}).to_string(),
        ),
        strict: false,
    }
}

fn with_tools(choice: wit::ToolChoice) -> wit::Params {
    wit::Params {
        tools: vec![weather()],
        tool_choice: choice,
        ..models::params(&[])
    }
}

/// A value valid against `schema`, for the subset a call constraint uses:
/// `const`, `enum`, the first of `anyOf`/`oneOf`, objects with their required
/// properties, arrays of one item, strings (`Oslo`), numbers, booleans.
fn instance(schema: &Value, depth: usize) -> Value {
    if depth > 16 {
        return Value::Null;
    }
    if let Some(value) = schema.get("const") {
        return value.clone();
    }
    if let Some(first) = schema.get("enum").and_then(Value::as_array).and_then(|e| e.first()) {
        return first.clone();
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(first) = schema.get(key).and_then(Value::as_array).and_then(|o| o.first()) {
            return instance(first, depth + 1);
        }
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("array") => json!([instance(schema.get("items").unwrap_or(&Value::Null), depth + 1)]),
        Some("string") => "Oslo".into(),
        Some("integer") | Some("number") => 1.into(),
        Some("boolean") => true.into(),
        Some("null") => Value::Null,
        _ => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let required = schema.get("required").and_then(Value::as_array);
            let mut object = serde_json::Map::new();
            for name in required.into_iter().flatten().filter_map(Value::as_str) {
                let property = properties.and_then(|p| p.get(name)).unwrap_or(&Value::Null);
                object.insert(name.into(), instance(property, depth + 1));
            }
            Value::Object(object)
        }
    }
}

/// The problem with `calls`, if they are not the one expected call.
fn wrong_call(calls: &[wit::ToolCall]) -> Option<String> {
    let [call] = calls else {
        return Some(format!("{} calls, expected one: {calls:?}", calls.len()));
    };
    let arguments: Option<Value> = serde_json::from_str(&call.arguments).ok();
    if call.name != "get_weather" || arguments != Some(json!({"city": "Oslo"})) {
        return Some(format!(
            "read {call:?}, expected get_weather with {{\"city\": \"Oslo\"}}"
        ));
    }
    None
}

impl Suite<'_> {
    pub(super) fn tool_calls(&mut self) {
        let rows = [
            "tools: described in the prompt",
            "tools: a required call is an enforceable constraint",
            "tools: the constrained call is read back, whole and streamed",
            "tools: a tool result reaches the prompt",
        ];
        if self.adapter.contract_version() != "0.2.0" {
            for name in rows {
                let mut row = Row::new(name);
                row.skip = Some(format!(
                    "the adapter implements lmhost:adapter@{}, which has no tool calling",
                    self.adapter.contract_version()
                ));
                self.finish(row);
            }
            return;
        }
        let model = self.model;
        let question = [("user", QUESTION)];

        let mut row = Row::new(rows[0]);
        match self.shape_with(&mut row, model, &question, &with_tools(wit::ToolChoice::Auto)) {
            Ok(wit::Request::Prompt(p)) if p.text.contains("get_weather") => {
                self.output("tools:prompt".into(), p.text);
            }
            Ok(wit::Request::Prompt(p)) => row.problems.push(format!(
                "the prompt does not name the tool: {:?}",
                crate::adapters::truncate(&p.text)
            )),
            Ok(wit::Request::Http(_)) => row.skip = Some("the adapter shapes HTTP requests".into()),
            Err(e) => row.problems.push(format!("shape-request failed: {e}")),
        }
        self.finish(row);

        let params = with_tools(wit::ToolChoice::Required);
        let mut row = Row::new(rows[1]);
        let shaped = self.shape_with(&mut row, model, &question, &params);
        let constrained = match &shaped {
            Ok(wit::Request::Prompt(p)) => match &p.constraint {
                Some(c) if c.lazy => {
                    row.problems
                        .push("the constraint is lazy: the call would not be required".into());
                    None
                }
                Some(c) => match serde_json::from_str::<Value>(&c.schema) {
                    Ok(schema) if schema.is_object() => Some((c.clone(), schema)),
                    _ => {
                        row.problems
                            .push(format!("the schema is not a JSON object: {}", c.schema));
                        None
                    }
                },
                None => {
                    row.problems
                        .push("no constraint: nothing makes the engine call a tool".into());
                    None
                }
            },
            Ok(wit::Request::Http(_)) => {
                row.skip = Some("the adapter shapes HTTP requests".into());
                None
            }
            Err(e) => {
                row.problems.push(format!("shape-request failed: {e}"));
                None
            }
        };
        self.finish(row);

        let mut row = Row::new(rows[2]);
        match (constrained, shaped) {
            (Some((c, schema)), Ok(request)) => {
                let raw = format!("{}{}{}", c.prefix, instance(&schema, 0), c.suffix);
                row.notes.push(format!("{raw:?}"));
                self.output("tools:constraint".into(), raw.clone());
                row.calls += 1;
                match self.adapter.parse_response(model, &params, &request, &raw) {
                    Ok(done) => row.problems.extend(wrong_call(&done.tool_calls)),
                    Err(e) => row.problems.push(format!("parse-response failed: {e}")),
                }
                for (how, chunks) in chunkings(&raw) {
                    row.calls += chunks.len() + 2;
                    let streamed = (|| {
                        let mut stream = self.adapter.stream(model, &params, &request)?;
                        let mut calls = Vec::new();
                        for chunk in &chunks {
                            calls.extend(stream.push(chunk)?.tool_calls);
                        }
                        let (done, rest) = stream.finish()?;
                        calls.extend(rest.tool_calls);
                        Ok::<_, crate::adapters::AdapterError>((calls, done.tool_calls))
                    })();
                    match streamed {
                        Ok((shown, done)) => {
                            if let Some(problem) = wrong_call(&done) {
                                row.problems.push(format!("{how} chunks: {problem}"));
                            } else if shown.len() != done.len() {
                                row.problems
                                    .push(format!("{how} chunks: streamed {shown:?}, final {done:?}"));
                            }
                        }
                        Err(e) => row.problems.push(format!("{how} chunks: {e}")),
                    }
                }
            }
            _ => row.skip = Some("no constraint to write a call with".into()),
        }
        self.finish(row);

        let mut row = Row::new(rows[3]);
        let call = wit::ToolCall {
            id: "call_1".into(),
            name: "get_weather".into(),
            arguments: json!({"city": "Oslo"}).to_string(),
        };
        let history = vec![
            wit::Message::new("user", QUESTION),
            wit::Message {
                tool_calls: vec![call],
                ..wit::Message::new("assistant", "")
            },
            wit::Message {
                tool_call_id: Some("call_1".into()),
                name: Some("get_weather".into()),
                ..wit::Message::new("tool", RESULT)
            },
        ];
        row.calls += 1;
        match self
            .adapter
            .shape_request(model, &history, &with_tools(wit::ToolChoice::Auto))
        {
            Ok(wit::Request::Prompt(p)) if p.text.contains(RESULT) => {
                self.output("tools:result-prompt".into(), p.text);
            }
            Ok(wit::Request::Prompt(p)) => row.problems.push(format!(
                "the prompt lacks the tool's result: {:?}",
                crate::adapters::truncate(&p.text)
            )),
            Ok(wit::Request::Http(_)) => row.skip = Some("the adapter shapes HTTP requests".into()),
            Err(e) => row.problems.push(format!("shape-request failed: {e}")),
        }
        self.finish(row);
        self.family_outputs();
    }

    /// Recorded outputs of each family (and reasoning, and a malformed call)
    /// read with `tool_call_format` set: recorded as outputs, so that adapters
    /// in different languages can be compared reading for reading.
    fn family_outputs(&mut self) {
        let recorded: [(&str, &str); 6] = [
            ("hermes", "Sure.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>"),
            ("hermes", "<think>Weather, so a tool.</think>\n<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": </tool_call> oops"),
            ("llama3", "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}"),
            ("llama3", "{\"answer\": 42}"),
            ("mistral", "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}, \"id\": \"a1b2c3d4e\"}]"),
            ("mistral", "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Oslo\"}"),
        ];
        let params = with_tools(wit::ToolChoice::Auto);
        let request = models::unshaped();
        for (i, (format, raw)) in recorded.into_iter().enumerate() {
            let mut spec = models::spec_of(self.model);
            spec.insert("tool_call_format".into(), format.into());
            spec.insert("cot_start_tag".into(), "<think>".into());
            spec.insert("cot_end_tag".into(), "</think>".into());
            let model = wit::ModelInfo {
                spec_json: Value::Object(spec).to_string(),
                ..self.model.clone()
            };
            let reading = match self.adapter.parse_response(&model, &params, &request, raw) {
                Ok(c) => {
                    let calls: Vec<Value> = c
                        .tool_calls
                        .iter()
                        .map(|t| json!([t.id, t.name, serde_json::from_str::<Value>(&t.arguments).ok()]))
                        .collect();
                    json!({"text": c.text, "reasoning": c.reasoning, "calls": calls}).to_string()
                }
                Err(e) => format!("error: {e}"),
            };
            self.output(format!("tools:family:{i}"), reading);
        }
    }
}
