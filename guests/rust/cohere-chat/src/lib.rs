//! `cohere-chat`: the adapter for the Cohere Chat API, version 2 (backend
//! `cohere`).
//!
//! Request: `POST /chat` with a JSON body `{model, messages, ...}`; the messages
//! go as `{role, content}` with the roles `system`, `user` and `assistant`. The
//! model is the entry's `model_id`. Sent only when set: `temperature`,
//! `max_tokens`, `top_p` as `p`, `top_k` as `k`, `seed`, `stop` as
//! `stop_sequences` (when not empty), `frequency_penalty` and
//! `presence_penalty`. A streamed call sets `stream: true`. The entry's
//! `extra_body` is merged into the body last; its keys win. No credentials: the
//! host adds them.
//!
//! Tools (contract 0.2): `tools` in OpenAI's shape (which Cohere's v2 API takes),
//! `tool_choice` `REQUIRED` or `NONE` (auto: left out; a named tool is
//! `REQUIRED` with only that tool sent); an assistant turn's calls as
//! `tool_calls`, a tool result as `{"role": "tool", "tool_call_id", "content"}`.
//! A response format is `{"type": "json_object"}`, with `json_schema` for a schema.
//!
//! Response: the `text` of the items of type `text` in `message.content`,
//! joined; `message.tool_calls` are the calls and `message.tool_plan` the
//! reasoning; `finish_reason` (`COMPLETE` and `STOP_SEQUENCE` become `stop`,
//! `MAX_TOKENS` becomes `length`, `TOOL_CALL` `tool_calls`);
//! `usage.tokens.input_tokens` / `output_tokens`, or `usage.billed_units` when
//! those are missing. Streamed, `content-delta` events carry the text
//! (`delta.message.content.text`), `tool-plan-delta` the reasoning,
//! `tool-call-start` and `tool-call-delta` a call and its arguments (by
//! `index`), and `message-end` the finish reason and usage
//! (`delta.finish_reason`, `delta.usage`); the other event types are ignored.
//! An error reply, a bare
//! `{"message": "..."}`, is an `upstream` error with that message, whole or as
//! an event. The answer text is stripped of leading and trailing whitespace.

use remote_kit::{
    final_text, invalid, parse_reply, str_at, u32_at, upstream, Body, Call, HttpRequest, KitResult, Message, ModelInfo,
    Params, RemoteAdapter, Reply, ResponseFormat, Role, Spec, StreamState, ToolChoice,
};
use serde_json::{json, Value};

struct CohereChat;

impl RemoteAdapter for CohereChat {
    const TOOLS: bool = true;
    const RESPONSE_FORMATS: bool = true;

    fn shape(model: &ModelInfo, messages: &[Message], params: &Params) -> KitResult<HttpRequest> {
        let name = model.name.as_str();
        let spec = Spec::parse(name, &model.spec_json)?;
        let model_id = spec.first_str(&["model_id"])?;
        let messages = wire_messages(name, messages)?;

        let mut body = Body::new();
        body.set("model", model_id)
            .set("messages", messages)
            .float(name, "temperature", params.temperature)?
            .opt("max_tokens", params.max_tokens)
            .float(name, "p", params.top_p)?
            .opt("k", params.top_k)
            .opt("seed", params.seed)
            .stop("stop_sequences", &params.stop)
            .float(name, "frequency_penalty", params.frequency_penalty)?
            .float(name, "presence_penalty", params.presence_penalty)?;
        if params.stream {
            body.set("stream", true);
        }
        let named = match &params.tool_choice {
            ToolChoice::Named(tool) => Some(tool.as_str()),
            _ => None,
        };
        let tools = params
            .tools
            .iter()
            .filter(|t| named.is_none_or(|n| n == t.name))
            .map(|t| remote_kit::function_tool(name, t, false))
            .collect::<KitResult<Vec<_>>>()?;
        if !tools.is_empty() {
            body.set("tools", tools);
            match &params.tool_choice {
                ToolChoice::Auto => {}
                ToolChoice::None => {
                    body.set("tool_choice", "NONE");
                }
                ToolChoice::Required | ToolChoice::Named(_) => {
                    body.set("tool_choice", "REQUIRED");
                }
            }
        }
        match &params.response_format {
            ResponseFormat::Text => {}
            ResponseFormat::JsonObject => {
                body.set("response_format", json!({"type": "json_object"}));
            }
            ResponseFormat::JsonSchema(format) => {
                let schema = remote_kit::format_schema(name, format)?;
                body.set("response_format", json!({"type": "json_object", "json_schema": schema}));
            }
        }
        let body = body.finish(&spec)?;
        Ok(HttpRequest {
            method: "POST".to_string(),
            path: "/chat".to_string(),
            headers: remote_kit::json_headers(&[]),
            body: Value::Object(body).to_string(),
        })
    }

    fn parse_whole(name: &str, raw: &str) -> KitResult<Reply> {
        let v = parse_reply(name, raw)?;
        check_error(name, &v)?;
        let Some(message) = v.get("message").filter(|m| m.is_object()) else {
            let shown: String = raw.chars().take(200).collect();
            return Err(upstream(
                name,
                format!("the provider's reply has no `message`: {shown}"),
            ));
        };
        let text: String = message
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|item| str_at(item, "/type") == Some("text"))
            .filter_map(|item| str_at(item, "/text"))
            .collect();
        let (prompt_tokens, completion_tokens) = usage(v.get("usage"));
        let tool_calls = message
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|call| {
                let tool = str_at(call, "/function/name")
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| {
                        upstream(name, format!("a tool call in the provider's reply has no name: {call}"))
                    })?;
                let arguments = str_at(call, "/function/arguments").unwrap_or_default();
                Ok(Call {
                    id: str_at(call, "/id").unwrap_or_default().to_string(),
                    name: tool.to_string(),
                    arguments: if arguments.trim().is_empty() {
                        "{}".into()
                    } else {
                        arguments.to_string()
                    },
                })
            })
            .collect::<KitResult<Vec<_>>>()?;
        Ok(Reply {
            text: final_text(&text),
            prompt_tokens,
            completion_tokens,
            finish_reason: str_at(&v, "/finish_reason").map(remote_kit::finish_reason),
            reasoning: str_at(message, "/tool_plan").map(final_text).filter(|r| !r.is_empty()),
            tool_calls,
            reasoning_tokens: None,
        })
    }

    fn stream_event(name: &str, state: &mut StreamState, data: &str) -> KitResult<String> {
        let v = parse_reply(name, data)?;
        check_error(name, &v)?;
        match str_at(&v, "/type") {
            Some("content-delta") => {
                return Ok(state
                    .text
                    .push(str_at(&v, "/delta/message/content/text").unwrap_or_default()));
            }
            Some("tool-plan-delta") => {
                state.push_reasoning(str_at(&v, "/delta/message/tool_plan").unwrap_or_default());
            }
            Some(kind @ ("tool-call-start" | "tool-call-delta")) => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or_default();
                let call = v.pointer("/delta/message/tool_calls").unwrap_or(&Value::Null);
                let (id, tool) = if kind == "tool-call-start" {
                    (str_at(call, "/id"), str_at(call, "/function/name"))
                } else {
                    (None, None)
                };
                let arguments = str_at(call, "/function/arguments").unwrap_or_default();
                state.call_fragment(name, index, id, tool, arguments)?;
            }
            Some("message-end") => {
                if let Some(reason) = str_at(&v, "/delta/finish_reason") {
                    state.set_finish_reason(reason);
                }
                let (prompt, completion) = usage(v.pointer("/delta/usage"));
                state.set_usage(prompt, completion);
            }
            // `message-start`, `content-start`, `content-end`, tool and citation
            // events, and event types added later carry nothing for the answer.
            _ => {}
        }
        Ok(String::new())
    }
}

/// The messages in Cohere's v2 shape: `{role, content}`, an assistant turn's
/// calls as `tool_calls`, a tool result as a `tool` message with its call's id.
fn wire_messages(name: &str, messages: &[Message]) -> KitResult<Vec<Value>> {
    if messages.is_empty() {
        return Err(invalid(name, "no messages to send"));
    }
    messages
        .iter()
        .map(|m| {
            if m.role == "tool" {
                let id = remote_kit::answered_call_id(name, m)?;
                return Ok(json!({"role": "tool", "tool_call_id": id, "content": m.content}));
            }
            let role = Role::parse(name, &m.role)?;
            let mut turn = json!({"role": role.as_str(), "content": m.content});
            if !m.tool_calls.is_empty() {
                turn["tool_calls"] = m
                    .tool_calls
                    .iter()
                    .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
                    .collect();
            }
            Ok(turn)
        })
        .collect()
}

/// An error reply: a string `message` and nothing of an answer.
fn check_error(name: &str, v: &Value) -> KitResult<()> {
    if v.get("finish_reason").is_none() && v.get("type").is_none() {
        if let Some(message) = str_at(v, "/message") {
            return Err(upstream(
                name,
                format!("the provider answered with an error: {message}"),
            ));
        }
    }
    Ok(())
}

/// Token counts from a `usage` object: `tokens`, else `billed_units`.
fn usage(usage: Option<&Value>) -> (Option<u32>, Option<u32>) {
    let Some(usage) = usage else {
        return (None, None);
    };
    let count =
        |key: &str| u32_at(usage, &format!("/tokens/{key}")).or_else(|| u32_at(usage, &format!("/billed_units/{key}")));
    (count("input_tokens"), count("output_tokens"))
}

remote_kit::export_adapter!(CohereChat);

#[cfg(test)]
mod tests {
    use super::*;

    remote_kit::adapter_test_kit!(CohereChat);

    #[test]
    fn shapes_a_request() {
        let mut p = params();
        p.max_tokens = Some(10);
        p.temperature = Some(0.25);
        p.top_p = Some(0.75);
        p.top_k = Some(3);
        p.seed = Some(9);
        p.stop = vec!["x".into()];
        p.frequency_penalty = Some(0.2);
        p.stream = true;
        let msgs = messages(&[("system", "s"), ("user", "u"), ("assistant", "a"), ("user", "v")]);
        let (method, path, headers, body) = shape(
            model(
                "cohere",
                json!({"model_id": "command-r", "extra_body": {"safety_mode": "OFF"}}),
            ),
            msgs,
            p,
        )
        .unwrap();
        assert_eq!((method.as_str(), path.as_str()), ("POST", "/chat"));
        assert_eq!(
            headers,
            vec![("content-type".to_string(), "application/json".to_string())]
        );
        assert_eq!(
            body,
            json!({
                "model": "command-r",
                "messages": [
                    {"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                    {"role": "assistant", "content": "a"}, {"role": "user", "content": "v"},
                ],
                "max_tokens": 10, "temperature": 0.25, "p": 0.75, "k": 3, "seed": 9, "stop_sequences": ["x"],
                "frequency_penalty": 0.2, "stream": true, "safety_mode": "OFF",
            })
        );
        assert!(matches!(
            shape(model("cohere", json!({})), messages(&[("user", "u")]), params()),
            Err(AdapterError::InvalidInput(_))
        ));
    }

    #[test]
    fn whole_and_streamed_replies_agree() {
        let m = || model("cohere", json!({"model_id": "c"}));
        let raw = r#"{"id":"1","message":{"role":"assistant","content":[{"type":"text","text":" Hi there \n"}]},
            "finish_reason":"COMPLETE","usage":{"billed_units":{"input_tokens":4,"output_tokens":2},
            "tokens":{"input_tokens":70,"output_tokens":2}}}"#;
        let want = ("Hi there".to_string(), Some(70), Some(2), Some("stop".to_string()));
        assert_eq!(whole(m(), raw).unwrap(), want);
        let events = [
            r#"{"id":"1","type":"message-start","delta":{"message":{"role":"assistant","content":[]}}}"#,
            r#"{"type":"content-start","index":0,"delta":{"message":{"content":{"type":"text","text":""}}}}"#,
            r#"{"type":"content-delta","index":0,"delta":{"message":{"content":{"text":" Hi"}}}}"#,
            r#"{"type":"content-delta","index":0,"delta":{"message":{"content":{"text":" there \n"}}}}"#,
            r#"{"type":"content-end","index":0}"#,
            r#"{"type":"message-end","delta":{"finish_reason":"COMPLETE","usage":{"billed_units":
                {"input_tokens":4,"output_tokens":2},"tokens":{"input_tokens":70,"output_tokens":2}}}}"#,
        ];
        assert_eq!(streamed(m(), &events).unwrap(), want);
        let raw = r#"{"message":{"content":[{"type":"text","text":"x"}]},"finish_reason":"MAX_TOKENS",
            "usage":{"billed_units":{"input_tokens":4,"output_tokens":2}}}"#;
        assert_eq!(
            whole(m(), raw).unwrap(),
            ("x".to_string(), Some(4), Some(2), Some("length".to_string()))
        );
    }

    #[test]
    fn errors_are_upstream() {
        let m = || model("cohere", json!({"model_id": "c"}));
        let raw = r#"{"id":"e","message":"invalid api token"}"#;
        assert!(upstream_message(whole(m(), raw).unwrap_err()).contains("invalid api token"));
        assert!(upstream_message(streamed(m(), &[raw]).unwrap_err()).contains("invalid api token"));
        assert!(whole(m(), r#"{"finish_reason":"COMPLETE"}"#).is_err());
    }

    #[test]
    fn tools_calls_and_results_go_in_cohere_shapes_and_come_back() {
        let mut p = params();
        p.tools = ["get_weather", "get_time"]
            .iter()
            .map(|n| remote_kit::Tool {
                name: n.to_string(),
                description: None,
                parameters: Some(r#"{"type":"object"}"#.into()),
                strict: false,
            })
            .collect();
        p.tool_choice = ToolChoice::Named("get_weather".into());
        let mut history = messages(&[("user", "Weather?"), ("assistant", ""), ("tool", "3 C")]);
        history[1].tool_calls = vec![remote_kit::ToolCall {
            id: "c1".into(),
            name: "get_weather".into(),
            arguments: r#"{"city":"Oslo"}"#.into(),
        }];
        history[2].tool_call_id = Some("c1".into());
        let (_, _, _, body) = shape(model("cohere", json!({"model_id": "command-r"})), history, p).unwrap();
        assert_eq!(
            body["messages"][1]["tool_calls"][0]["function"]["arguments"],
            r#"{"city":"Oslo"}"#
        );
        assert_eq!(
            body["messages"][2],
            json!({"role": "tool", "tool_call_id": "c1", "content": "3 C"})
        );
        assert_eq!(
            body["tools"].as_array().map(Vec::len),
            Some(1),
            "only the named tool: {body}"
        );
        assert_eq!(body["tool_choice"], "REQUIRED");

        let m = || model("cohere", json!({"model_id": "command-r"}));
        let raw = r#"{"id":"x","finish_reason":"TOOL_CALL","message":{"role":"assistant","tool_plan":"I will check.",
            "tool_calls":[{"id":"get_weather_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}]},
            "usage":{"tokens":{"input_tokens":20,"output_tokens":9}}}"#;
        let read = whole_completion(m(), raw).unwrap();
        let events = [
            r#"{"type":"message-start","id":"x","delta":{"message":{"role":"assistant"}}}"#,
            r#"{"type":"tool-plan-delta","delta":{"message":{"tool_plan":"I will "}}}"#,
            r#"{"type":"tool-plan-delta","delta":{"message":{"tool_plan":"check."}}}"#,
            r#"{"type":"tool-call-start","index":0,"delta":{"message":{"tool_calls":{"id":"get_weather_1","type":"function","function":{"name":"get_weather","arguments":""}}}}}"#,
            r#"{"type":"tool-call-delta","index":0,"delta":{"message":{"tool_calls":{"function":{"arguments":"{\"city\":"}}}}}"#,
            r#"{"type":"tool-call-delta","index":0,"delta":{"message":{"tool_calls":{"function":{"arguments":"\"Oslo\"}"}}}}}"#,
            r#"{"type":"tool-call-end","index":0}"#,
            r#"{"type":"message-end","delta":{"finish_reason":"TOOL_CALL","usage":{"tokens":{"input_tokens":20,"output_tokens":9}}}}"#,
        ];
        let streamed = streamed_completion(m(), &events).unwrap();
        for c in [read, streamed] {
            assert_eq!(c.reasoning.as_deref(), Some("I will check."));
            assert_eq!(c.finish_reason.as_deref(), Some("tool_calls"));
            let calls: Vec<(&str, &str, &str)> = c
                .tool_calls
                .iter()
                .map(|t| (t.id.as_str(), t.name.as_str(), t.arguments.as_str()))
                .collect();
            assert_eq!(calls, [("get_weather_1", "get_weather", r#"{"city":"Oslo"}"#)]);
        }
    }
}
