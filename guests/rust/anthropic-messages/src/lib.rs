//! `anthropic-messages`: the adapter for the Anthropic Messages API (backend
//! `anthropic`).
//!
//! Request: `POST /messages` with the header `anthropic-version: 2023-06-01` and
//! a JSON body. The system messages are joined with a blank line into the
//! top-level `system`; the other messages go as `{role, content: [{type: "text",
//! text}]}`, consecutive messages of the same role merged into one message with
//! several text blocks, since the API wants the roles to alternate. The model is
//! the entry's `model_id`. `max_tokens` is required by the API: the call's limit,
//! or 4096. Sent only when set: `temperature`, `top_p`, `top_k`, and `stop` as
//! `stop_sequences` (when not empty); the seed and the penalties have no field
//! in this API and are not sent. With `thinking_mode: true` in the entry the body
//! asks for extended thinking, `thinking: {type: "enabled", budget_tokens: B}`
//! with B the entry's `thinking_budget` (default 16000), `max_tokens` becomes
//! B plus the answer limit, and `temperature`, `top_p` and `top_k` are left out
//! (the API wants its defaults with thinking). A streamed call sets
//! `stream: true`. The entry's `extra_body` is merged into the body last; its
//! keys win. No credentials: the host adds them.
//!
//! Tools (contract 0.2): `tools` as `{name, description, input_schema}`,
//! `tool_choice` as `{type: auto}`, `{type: any}` (required), `{type: tool, name}`
//! or `{type: none}`, with `disable_parallel_tool_use` when parallel calls are
//! off. An assistant turn's calls become `tool_use` blocks (`input`: the
//! arguments as an object) after its text; a tool result becomes a
//! `tool_result` block (`tool_use_id`, `content`) in a user turn.
//!
//! Response formats: the API has no JSON mode, so a `json-object` or
//! `json-schema` format becomes one tool, `lmhost_json_answer`, whose input
//! schema is the format's (`{"type": "object"}` for `json-object`), and the call
//! is forced (`tool_choice` `{type: tool}`); its input comes back as the answer
//! text. Refused with tools of the call's own, with `thinking_mode` (the API
//! forces no tool while thinking) and for a schema that is not an object.
//!
//! Response: the `text` of the content blocks of type `text`, joined; `tool_use`
//! blocks are the calls (`id`, `name`, `input`); `thinking` blocks the
//! reasoning; `stop_reason` (`end_turn` and `stop_sequence` become `stop`,
//! `max_tokens` becomes `length`, `tool_use` becomes `tool_calls`) and
//! `usage.input_tokens` / `output_tokens`. Streamed: `message_start` gives the
//! input tokens, `content_block_delta` events of type `text_delta` the text and
//! `thinking_delta` the reasoning, a `tool_use` block start a call whose
//! `input_json_delta`s are its arguments, `message_delta` the stop reason and
//! output tokens; signature deltas, `ping` and the other block events are
//! ignored. An `error` reply or event is an `upstream` error with its message.
//! The answer text is stripped of leading and trailing whitespace.

use remote_kit::{
    describe_error, final_text, invalid, parse_reply, str_at, u32_at, unsupported, upstream, Body, Call, HttpRequest,
    KitResult, Message, ModelInfo, Params, RemoteAdapter, Reply, ResponseFormat, Role, Spec, StreamState, ToolChoice,
};
use serde_json::{json, Value};

const API_VERSION: &str = "2023-06-01";
/// The answer limit when the call sets none (the API requires one).
const DEFAULT_MAX_TOKENS: u32 = 4096;
/// The thinking budget when `thinking_mode` is on and the entry sets none.
const DEFAULT_THINKING_BUDGET: u64 = 16000;
/// The tool a JSON response format becomes (see the module).
const JSON_TOOL: &str = "lmhost_json_answer";

struct AnthropicMessages;

impl RemoteAdapter for AnthropicMessages {
    const TOOLS: bool = true;
    const RESPONSE_FORMATS: bool = true;

    fn finish_reply(mut reply: Reply) -> Reply {
        let (json, calls): (Vec<Call>, Vec<Call>) = reply.tool_calls.into_iter().partition(|c| c.name == JSON_TOOL);
        if let Some(answer) = json.into_iter().next() {
            reply.text = answer.arguments;
            if calls.is_empty() && reply.finish_reason.as_deref() == Some("tool_calls") {
                reply.finish_reason = Some("stop".into());
            }
        }
        reply.tool_calls = calls;
        reply
    }

    fn shape(model: &ModelInfo, messages: &[Message], params: &Params) -> KitResult<HttpRequest> {
        let name = model.name.as_str();
        let spec = Spec::parse(name, &model.spec_json)?;
        let model_id = spec.first_str(&["model_id"])?;
        let (system, messages) = wire_messages(name, messages)?;

        let mut body = Body::new();
        body.set("model", model_id)
            .set("messages", messages)
            .opt("system", system);
        if let Some(schema) = json_answer_schema(name, params, &spec)? {
            let tool = json!({"name": JSON_TOOL, "description": "Give the answer as this tool's input.", "input_schema": schema});
            body.set("tools", json!([tool]))
                .set("tool_choice", json!({"type": "tool", "name": JSON_TOOL}));
        }
        if !params.tools.is_empty() {
            let tools: Vec<Value> = params
                .tools
                .iter()
                .map(|t| {
                    let schema = remote_kit::tool_parameters(name, t)?.unwrap_or_else(|| json!({"type": "object"}));
                    let mut tool = json!({"name": t.name, "input_schema": schema});
                    if let Some(d) = &t.description {
                        tool["description"] = d.as_str().into();
                    }
                    Ok(tool)
                })
                .collect::<KitResult<_>>()?;
            let mut choice = match &params.tool_choice {
                ToolChoice::Auto => json!({"type": "auto"}),
                ToolChoice::None => json!({"type": "none"}),
                ToolChoice::Required => json!({"type": "any"}),
                ToolChoice::Named(tool) => json!({"type": "tool", "name": tool}),
            };
            if !params.parallel_tool_calls && !matches!(params.tool_choice, ToolChoice::None) {
                choice["disable_parallel_tool_use"] = true.into();
            }
            body.set("tools", tools).set("tool_choice", choice);
        }
        let answer_limit = params.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        if spec.flag("thinking_mode")? {
            let budget = spec.positive_int("thinking_budget")?.unwrap_or(DEFAULT_THINKING_BUDGET);
            body.set("thinking", json!({ "type": "enabled", "budget_tokens": budget }))
                .set("max_tokens", budget + u64::from(answer_limit));
        } else {
            body.set("max_tokens", answer_limit)
                .float(name, "temperature", params.temperature)?
                .float(name, "top_p", params.top_p)?
                .opt("top_k", params.top_k);
        }
        body.stop("stop_sequences", &params.stop);
        if params.stream {
            body.set("stream", true);
        }
        let body = body.finish(&spec)?;
        Ok(HttpRequest {
            method: "POST".to_string(),
            path: "/messages".to_string(),
            headers: remote_kit::json_headers(&[("anthropic-version", API_VERSION)]),
            body: Value::Object(body).to_string(),
        })
    }

    fn parse_whole(name: &str, raw: &str) -> KitResult<Reply> {
        let v = parse_reply(name, raw)?;
        check_error(name, &v)?;
        let blocks = v
            .get("content")
            .and_then(Value::as_array)
            .ok_or_else(|| upstream(name, "the provider's reply has no `content` list"))?;
        let of_type = |kind: &'static str| blocks.iter().filter(move |b| str_at(b, "/type") == Some(kind));
        let text: String = of_type("text").filter_map(|b| str_at(b, "/text")).collect();
        let reasoning: String = of_type("thinking").filter_map(|b| str_at(b, "/thinking")).collect();
        let tool_calls = of_type("tool_use")
            .map(|b| {
                let tool = str_at(b, "/name")
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| upstream(name, format!("a `tool_use` block has no name: {b}")))?;
                Ok(Call {
                    id: str_at(b, "/id").unwrap_or_default().to_string(),
                    name: tool.to_string(),
                    arguments: b
                        .get("input")
                        .filter(|i| i.is_object())
                        .map_or("{}".into(), Value::to_string),
                })
            })
            .collect::<KitResult<_>>()?;
        Ok(Reply {
            text: final_text(&text),
            prompt_tokens: u32_at(&v, "/usage/input_tokens"),
            completion_tokens: u32_at(&v, "/usage/output_tokens"),
            finish_reason: str_at(&v, "/stop_reason").map(remote_kit::finish_reason),
            reasoning: Some(final_text(&reasoning)).filter(|r| !r.is_empty()),
            tool_calls,
            reasoning_tokens: None,
        })
    }

    fn stream_event(name: &str, state: &mut StreamState, data: &str) -> KitResult<String> {
        let v = parse_reply(name, data)?;
        check_error(name, &v)?;
        match str_at(&v, "/type") {
            Some("message_start") => {
                state.set_usage(
                    u32_at(&v, "/message/usage/input_tokens"),
                    u32_at(&v, "/message/usage/output_tokens"),
                );
            }
            Some("content_block_delta") => match str_at(&v, "/delta/type") {
                Some("text_delta") => return Ok(state.text.push(str_at(&v, "/delta/text").unwrap_or_default())),
                Some("thinking_delta") => state.push_reasoning(str_at(&v, "/delta/thinking").unwrap_or_default()),
                Some("input_json_delta") => {
                    let index = v.get("index").and_then(Value::as_u64).unwrap_or_default();
                    let piece = str_at(&v, "/delta/partial_json").unwrap_or_default();
                    state.call_fragment(name, index, None, None, piece)?;
                }
                _ => {}
            },
            Some("content_block_start") if str_at(&v, "/content_block/type") == Some("tool_use") => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or_default();
                let block = &v["content_block"];
                state.call_fragment(name, index, str_at(block, "/id"), str_at(block, "/name"), "")?;
            }
            Some("message_delta") => {
                if let Some(reason) = str_at(&v, "/delta/stop_reason") {
                    state.set_finish_reason(reason);
                }
                state.set_usage(u32_at(&v, "/usage/input_tokens"), u32_at(&v, "/usage/output_tokens"));
            }
            // `ping`, `message_stop`, block start/stop, thinking and signature
            // deltas, and event types added later carry nothing for the answer.
            _ => {}
        }
        Ok(String::new())
    }
}

/// The input schema of the tool a JSON response format becomes, if it asks for one.
fn json_answer_schema(name: &str, params: &Params, spec: &Spec) -> KitResult<Option<Value>> {
    let schema = match &params.response_format {
        ResponseFormat::Text => return Ok(None),
        ResponseFormat::JsonObject => json!({"type": "object"}),
        ResponseFormat::JsonSchema(format) => remote_kit::format_schema(name, format)?,
    };
    let refuse = |why: &str| {
        Err(unsupported(
            name,
            format!("`response_format` {why} on the anthropic backend"),
        ))
    };
    if !params.tools.is_empty() {
        return refuse("together with tools is not supported");
    }
    if spec.flag("thinking_mode")? {
        return refuse("with `thinking_mode` is not supported (the API forces no tool while thinking)");
    }
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        return refuse("needs a schema of an object (it becomes a tool's input)");
    }
    Ok(Some(schema))
}

/// The messages as the API takes them: system messages lifted into `system`,
/// tool results as `tool_result` blocks of a user turn, calls as `tool_use`
/// blocks, consecutive turns of one role merged (the roles must alternate).
fn wire_messages(name: &str, messages: &[Message]) -> KitResult<(Option<String>, Vec<Value>)> {
    if messages.is_empty() {
        return Err(invalid(name, "no messages to send"));
    }
    let text = |t: &str| json!({"type": "text", "text": t});
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for m in messages {
        let (role, blocks) = if m.role == "tool" {
            let id = remote_kit::answered_call_id(name, m)?;
            (
                "user",
                vec![json!({"type": "tool_result", "tool_use_id": id, "content": m.content})],
            )
        } else {
            match Role::parse(name, &m.role)? {
                Role::System => {
                    system.push(m.content.as_str());
                    continue;
                }
                Role::User => ("user", vec![text(&m.content)]),
                Role::Assistant => {
                    let mut blocks = Vec::new();
                    if !m.content.is_empty() || m.tool_calls.is_empty() {
                        blocks.push(text(&m.content));
                    }
                    for call in &m.tool_calls {
                        let input = remote_kit::call_arguments(name, call)?;
                        blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}));
                    }
                    ("assistant", blocks)
                }
            }
        };
        turns.push((role, blocks));
    }
    let (system, turns) = remote_kit::alternating(name, &system, turns)?;
    let messages = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    Ok((system, messages))
}

/// An error reply or event: `{"type": "error", "error": {...}}`.
fn check_error(name: &str, v: &Value) -> KitResult<()> {
    let error = v.get("error").filter(|e| !e.is_null());
    if str_at(v, "/type") == Some("error") || error.is_some() {
        let what = error.map(describe_error).unwrap_or_else(|| v.to_string());
        return Err(upstream(name, format!("the provider answered with an error: {what}")));
    }
    Ok(())
}

remote_kit::export_adapter!(AnthropicMessages);

#[cfg(test)]
mod tests {
    use super::*;

    remote_kit::adapter_test_kit!(AnthropicMessages);

    #[test]
    fn shapes_system_and_merged_turns() {
        let mut p = params();
        p.temperature = Some(0.3);
        p.top_k = Some(5);
        p.seed = Some(1);
        p.stop = vec!["\n\n".into()];
        let msgs = messages(&[
            ("system", "be brief"),
            ("user", "a"),
            ("user", "b"),
            ("assistant", "c"),
            ("system", "s2"),
        ]);
        let spec = json!({"model_id": "claude-x", "extra_body": {"metadata": {"user_id": "u"}}});
        let (method, path, headers, body) = shape(model("anthropic", spec), msgs, p).unwrap();
        assert_eq!((method.as_str(), path.as_str()), ("POST", "/messages"));
        assert!(headers.contains(&("anthropic-version".to_string(), "2023-06-01".to_string())));
        assert!(headers.iter().all(|(k, _)| k != "x-api-key" && k != "authorization"));
        assert_eq!(
            body,
            json!({
                "model": "claude-x",
                "system": "be brief\n\ns2",
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                    {"role": "assistant", "content": [{"type": "text", "text": "c"}]},
                ],
                "max_tokens": 4096, "temperature": 0.3, "top_k": 5, "stop_sequences": ["\n\n"],
                "metadata": {"user_id": "u"},
            })
        );
    }

    #[test]
    fn thinking_mode() {
        let mut p = params();
        p.max_tokens = Some(1000);
        p.temperature = Some(0.0);
        p.top_p = Some(0.9);
        p.stream = true;
        let spec = json!({"model_id": "c", "thinking_mode": true, "thinking_budget": 2048});
        let (_, _, _, body) = shape(model("anthropic", spec), messages(&[("user", "u")]), p.clone()).unwrap();
        assert_eq!(body["thinking"], json!({"type": "enabled", "budget_tokens": 2048}));
        assert_eq!(body["max_tokens"], 3048);
        assert_eq!(body["stream"], true);
        assert!(body.get("temperature").is_none() && body.get("top_p").is_none());
        let spec = json!({"model_id": "c", "thinking_mode": true});
        let (_, _, _, body) = shape(model("anthropic", spec), messages(&[("user", "u")]), params()).unwrap();
        assert_eq!(body["max_tokens"], 16000 + 4096);
        let spec = json!({"model_id": "c", "thinking_mode": true, "thinking_budget": 0});
        assert!(matches!(
            shape(model("anthropic", spec), messages(&[("user", "u")]), params()),
            Err(AdapterError::InvalidInput(_))
        ));
        assert!(matches!(
            shape(
                model("anthropic", json!({"model_id": "c"})),
                messages(&[("system", "only")]),
                params()
            ),
            Err(AdapterError::InvalidInput(_))
        ));
    }

    #[test]
    fn whole_and_streamed_replies_agree() {
        let m = || model("anthropic", json!({"model_id": "c"}));
        let raw = r#"{"id":"msg_1","type":"message","role":"assistant","model":"c","content":[
            {"type":"thinking","thinking":"hmm","signature":"sig"},
            {"type":"text","text":"  Paris"},{"type":"text","text":" is it.\n"}],
            "stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":30}}"#;
        let want = ("Paris is it.".to_string(), Some(12), Some(30), Some("stop".to_string()));
        assert_eq!(whole(m(), raw).unwrap(), want);
        let events = [
            r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],
                "usage":{"input_tokens":12,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"  Paris"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":" is it.\n"}}"#,
            r#"{"type":"content_block_stop","index":1}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":30}}"#,
            r#"{"type":"message_stop"}"#,
        ];
        assert_eq!(streamed(m(), &events).unwrap(), want);
        let raw = r#"{"type":"message","content":[{"type":"text","text":"x"}],"stop_reason":"max_tokens"}"#;
        assert_eq!(whole(m(), raw).unwrap().3.as_deref(), Some("length"));
    }

    #[test]
    fn errors_are_upstream() {
        let m = || model("anthropic", json!({"model_id": "c"}));
        let raw = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert!(upstream_message(whole(m(), raw).unwrap_err()).contains("Overloaded"));
        let events = [
            r#"{"type":"message_start","message":{"usage":{"input_tokens":1}}}"#,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ];
        assert!(upstream_message(streamed(m(), &events).unwrap_err()).contains("Overloaded"));
        assert!(whole(m(), r#"{"type":"message"}"#).is_err());
    }

    #[test]
    fn tools_calls_and_results_go_as_blocks() {
        let mut p = params();
        p.tools = vec![remote_kit::Tool {
            name: "get_weather".into(),
            description: Some("Weather.".into()),
            parameters: Some(r#"{"type":"object","properties":{"city":{"type":"string"}}}"#.into()),
            strict: false,
        }];
        p.tool_choice = ToolChoice::Required;
        p.parallel_tool_calls = false;
        let mut history = messages(&[
            ("system", "s"),
            ("user", "Weather in Oslo and Rome?"),
            ("assistant", "Checking."),
            ("tool", "3 C"),
            ("tool", "20 C"),
        ]);
        history[2].tool_calls = ["Oslo", "Rome"]
            .iter()
            .enumerate()
            .map(|(i, city)| remote_kit::ToolCall {
                id: format!("toolu_{i}"),
                name: "get_weather".into(),
                arguments: format!(r#"{{"city":"{city}"}}"#),
            })
            .collect();
        history[3].tool_call_id = Some("toolu_0".into());
        history[4].tool_call_id = Some("toolu_1".into());
        let (_, _, _, body) = shape(model("anthropic", json!({"model_id": "c"})), history.clone(), p).unwrap();
        assert_eq!(body["system"], "s");
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo and Rome?"}]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_0", "name": "get_weather", "input": {"city": "Oslo"}},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Rome"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_0", "content": "3 C"},
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "20 C"}]}
            ])
        );
        assert_eq!(
            body["tools"],
            json!([{"name": "get_weather", "description": "Weather.",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}])
        );
        assert_eq!(
            body["tool_choice"],
            json!({"type": "any", "disable_parallel_tool_use": true})
        );

        let mut bad = history;
        bad[2].tool_calls[0].arguments = "[1]".into();
        assert!(matches!(
            shape(model("anthropic", json!({"model_id": "c"})), bad, params()),
            Err(AdapterError::InvalidInput(m)) if m.contains("toolu_0")
        ));
    }

    #[test]
    fn tool_use_and_thinking_are_read_whole_and_streamed() {
        let m = || model("anthropic", json!({"model_id": "c"}));
        let raw = r#"{"type":"message","content":[
            {"type":"thinking","thinking":"Need the weather.","signature":"sig"},
            {"type":"text","text":"Let me check."},
            {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Oslo"}}],
            "stop_reason":"tool_use","usage":{"input_tokens":40,"output_tokens":25}}"#;
        let read = whole_completion(m(), raw).unwrap();
        let events = [
            r#"{"type":"message_start","message":{"usage":{"input_tokens":40,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Need the "}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"weather."}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig"}}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Let me check."}}"#,
            r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}"#,
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\": "}}"#,
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"\"Oslo\"}"}}"#,
            r#"{"type":"content_block_stop","index":2}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":25}}"#,
            r#"{"type":"message_stop"}"#,
        ];
        let streamed = streamed_completion(m(), &events).unwrap();
        for c in [read, streamed] {
            assert_eq!(c.text, "Let me check.");
            assert_eq!(c.reasoning.as_deref(), Some("Need the weather."));
            assert_eq!(c.finish_reason.as_deref(), Some("tool_calls"));
            assert_eq!(c.tool_calls.len(), 1);
            assert_eq!(
                (c.tool_calls[0].id.as_str(), c.tool_calls[0].name.as_str()),
                ("toolu_1", "get_weather")
            );
            let args: Value = serde_json::from_str(&c.tool_calls[0].arguments).unwrap();
            assert_eq!(args, json!({"city": "Oslo"}));
        }
    }

    #[test]
    fn a_json_format_is_a_forced_tool_whose_input_is_the_answer() {
        let mut p = params();
        p.response_format = ResponseFormat::JsonSchema(remote_kit::JsonSchemaFormat {
            name: "city".into(),
            schema: r#"{"type":"object","properties":{"city":{"type":"string"}}}"#.into(),
            strict: true,
        });
        let m = || model("anthropic", json!({"model_id": "c"}));
        let (_, _, _, body) = shape(m(), messages(&[("user", "u")]), p.clone()).unwrap();
        assert_eq!(body["tools"][0]["name"], JSON_TOOL);
        assert_eq!(body["tools"][0]["input_schema"]["properties"]["city"]["type"], "string");
        assert_eq!(body["tool_choice"], json!({"type": "tool", "name": JSON_TOOL}));

        let raw = r#"{"type":"message","content":[{"type":"tool_use","id":"toolu_1","name":"lmhost_json_answer",
            "input":{"city":"Oslo"}}],"stop_reason":"tool_use","usage":{"input_tokens":5,"output_tokens":7}}"#;
        let read = whole_completion(m(), raw).unwrap();
        let events = [
            r#"{"type":"message_start","message":{"usage":{"input_tokens":5}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"lmhost_json_answer","input":{}}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Oslo\"}"}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":7}}"#,
        ];
        let streamed = streamed_completion(m(), &events).unwrap();
        for c in [read, streamed] {
            assert!(c.tool_calls.is_empty(), "{:?}", c.tool_calls);
            assert_eq!(serde_json::from_str::<Value>(&c.text).unwrap(), json!({"city": "Oslo"}));
            assert_eq!(c.finish_reason.as_deref(), Some("stop"));
        }

        let mut with_tools = p.clone();
        with_tools.tools = vec![remote_kit::Tool {
            name: "f".into(),
            description: None,
            parameters: None,
            strict: false,
        }];
        assert!(matches!(
            shape(m(), messages(&[("user", "u")]), with_tools),
            Err(AdapterError::Unsupported(_))
        ));
        let thinking = model("anthropic", json!({"model_id": "c", "thinking_mode": true}));
        assert!(matches!(
            shape(thinking, messages(&[("user", "u")]), p),
            Err(AdapterError::Unsupported(_))
        ));
    }
}
