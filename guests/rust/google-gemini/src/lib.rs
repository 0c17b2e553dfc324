//! `google-gemini`: the adapter for the Gemini API's `generateContent` (backend
//! `google`).
//!
//! Request: `POST /models/{model_id}:generateContent`, or for a streamed call
//! `POST /models/{model_id}:streamGenerateContent?alt=sse`, with a JSON body. The
//! entry's `model_id` goes into the path, so it must be a plain model name (a
//! leading `models/` is dropped; `/`, `?`, `#`, `%`, `:`, `..` and whitespace
//! are refused). The system messages are joined with a blank line into
//! `systemInstruction` (left out when there are none); the other messages go as
//! `contents` of `{role, parts: [{text}]}`, `assistant` as `model`, consecutive
//! messages of the same role merged into one content with several parts.
//! `generationConfig` holds what the call sets, and is left out when that is
//! nothing: `temperature`, `maxOutputTokens`, `topP`, `topK`, `stopSequences`
//! (when not empty), `seed`, `presencePenalty` and `frequencyPenalty`. The
//! entry's `extra_body` is merged into the top level of the body last; its keys
//! win (so an `extra_body.generationConfig` replaces the one built here). No
//! credentials: the host adds them.
//!
//! Tools (contract 0.2): `tools: [{functionDeclarations: [{name, description,
//! parametersJsonSchema}]}]` and `toolConfig.functionCallingConfig` (`mode`
//! `AUTO`, `ANY` for required, `NONE`; a named tool is `ANY` with
//! `allowedFunctionNames`). An assistant turn's calls become `functionCall`
//! parts (`args`: the arguments as an object) after its text; a tool result a
//! `functionResponse` part (`name`, `response`: the result if it is a JSON
//! object, else `{"result": text}`) of a user turn. A response format sets
//! `generationConfig.responseMimeType` to `application/json`, with
//! `responseJsonSchema` for a schema.
//!
//! Response: the `text` of `candidates[0].content.parts`, joined; the parts
//! marked `thought: true` are the reasoning, `functionCall` parts the calls;
//! `candidates[0].finishReason` (`STOP` becomes `stop`, `MAX_TOKENS` `length`,
//! `SAFETY`, `RECITATION` and the other block reasons `content_filter`);
//! `usageMetadata.promptTokenCount` / `candidatesTokenCount` /
//! `thoughtsTokenCount`. Streamed, each event is a partial reply of the same
//! shape: the texts are appended, calls come whole, and the latest finish
//! reason and usage kept. A
//! prompt blocked before any candidate (`promptFeedback.blockReason`) and an
//! `error` object are `upstream` errors. The answer text is stripped of leading
//! and trailing whitespace.

use remote_kit::{
    describe_error, final_text, invalid, parse_reply, str_at, u32_at, upstream, Body, Call, HttpRequest, KitResult,
    Message, ModelInfo, Params, RemoteAdapter, Reply, ResponseFormat, Role, Spec, StreamState, ToolChoice,
};
use serde_json::{json, Value};

struct GoogleGemini;

impl RemoteAdapter for GoogleGemini {
    const TOOLS: bool = true;
    const RESPONSE_FORMATS: bool = true;

    fn shape(model: &ModelInfo, messages: &[Message], params: &Params) -> KitResult<HttpRequest> {
        let name = model.name.as_str();
        let spec = Spec::parse(name, &model.spec_json)?;
        let model_id = model_segment(&spec)?;
        let (system, contents) = wire_contents(name, messages)?;

        let mut config = Body::new();
        config
            .float(name, "temperature", params.temperature)?
            .opt("maxOutputTokens", params.max_tokens)
            .float(name, "topP", params.top_p)?
            .opt("topK", params.top_k)
            .stop("stopSequences", &params.stop)
            .opt("seed", params.seed)
            .float(name, "presencePenalty", params.presence_penalty)?
            .float(name, "frequencyPenalty", params.frequency_penalty)?;
        match &params.response_format {
            ResponseFormat::Text => {}
            ResponseFormat::JsonObject => {
                config.set("responseMimeType", "application/json");
            }
            ResponseFormat::JsonSchema(format) => {
                let schema = remote_kit::format_schema(name, format)?;
                config
                    .set("responseMimeType", "application/json")
                    .set("responseJsonSchema", schema);
            }
        }

        let mut body = Body::new();
        body.set("contents", contents);
        if let Some(system) = &system {
            body.set("systemInstruction", json!({ "parts": text_parts(&[system]) }));
        }
        if !params.tools.is_empty() {
            let declarations = params
                .tools
                .iter()
                .map(|t| {
                    let mut declaration = json!({"name": t.name});
                    if let Some(d) = &t.description {
                        declaration["description"] = d.as_str().into();
                    }
                    if let Some(schema) = remote_kit::tool_parameters(name, t)? {
                        declaration["parametersJsonSchema"] = schema;
                    }
                    Ok(declaration)
                })
                .collect::<KitResult<Vec<_>>>()?;
            let config = match &params.tool_choice {
                ToolChoice::Auto => json!({"mode": "AUTO"}),
                ToolChoice::None => json!({"mode": "NONE"}),
                ToolChoice::Required => json!({"mode": "ANY"}),
                ToolChoice::Named(tool) => json!({"mode": "ANY", "allowedFunctionNames": [tool]}),
            };
            body.set("tools", json!([{ "functionDeclarations": declarations }]))
                .set("toolConfig", json!({ "functionCallingConfig": config }));
        }
        if !config.is_empty() {
            body.set("generationConfig", config.into_map());
        }
        let body = body.finish(&spec)?;
        let method = if params.stream {
            "streamGenerateContent?alt=sse"
        } else {
            "generateContent"
        };
        Ok(HttpRequest {
            method: "POST".to_string(),
            path: format!("/models/{model_id}:{method}"),
            headers: remote_kit::json_headers(&[]),
            body: Value::Object(body).to_string(),
        })
    }

    fn parse_whole(name: &str, raw: &str) -> KitResult<Reply> {
        let (chunk, has_candidate) = read_chunk(name, raw)?;
        if !has_candidate {
            return Err(upstream(name, "the provider's reply has no candidates"));
        }
        Ok(Reply {
            text: final_text(&chunk.text),
            prompt_tokens: chunk.prompt_tokens,
            completion_tokens: chunk.completion_tokens,
            finish_reason: chunk.finish_reason,
            reasoning: Some(final_text(&chunk.reasoning)).filter(|r| !r.is_empty()),
            tool_calls: chunk.calls,
            reasoning_tokens: chunk.reasoning_tokens,
        })
    }

    fn stream_event(name: &str, state: &mut StreamState, data: &str) -> KitResult<String> {
        let (chunk, _) = read_chunk(name, data)?;
        if chunk.finish_reason.is_some() {
            state.finish_reason = chunk.finish_reason;
        }
        state.set_usage(chunk.prompt_tokens, chunk.completion_tokens);
        if chunk.reasoning_tokens.is_some() {
            state.reasoning_tokens = chunk.reasoning_tokens;
        }
        state.push_reasoning(&chunk.reasoning);
        for call in &chunk.calls {
            state.push_call(name, Some(&call.id), &call.name, &call.arguments)?;
        }
        Ok(state.text.push(&chunk.text))
    }
}

/// The entry's `model_id`, checked to be safe as one path segment.
fn model_segment(spec: &Spec) -> KitResult<&str> {
    let id = spec.first_str(&["model_id"])?;
    let id = id.strip_prefix("models/").unwrap_or(id);
    let bad = id.is_empty()
        || id.contains("..")
        || id
            .chars()
            .any(|c| matches!(c, '/' | '?' | '#' | '%' | ':' | '\\') || c.is_whitespace() || c.is_control());
    if bad {
        return Err(invalid(
            spec.name(),
            format!("`model_id` `{id}` is not a plain model name (it goes into the request path)"),
        ));
    }
    Ok(id)
}

/// The system instruction and the contents: calls as `functionCall` parts, tool
/// results as `functionResponse` parts of a user turn (named after the call they
/// answer), consecutive turns of one role merged.
fn wire_contents(name: &str, messages: &[Message]) -> KitResult<(Option<String>, Vec<Value>)> {
    if messages.is_empty() {
        return Err(invalid(name, "no messages to send"));
    }
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for m in messages {
        let (role, parts) = if m.role == "tool" {
            let id = m.tool_call_id.as_deref();
            let tool = m.name.clone().or_else(|| {
                messages
                    .iter()
                    .flat_map(|earlier| &earlier.tool_calls)
                    .find(|c| Some(c.id.as_str()) == id)
                    .map(|c| c.name.clone())
            });
            let tool = tool.ok_or_else(|| {
                invalid(
                    name,
                    "a `tool` message needs the tool's `name` or the `tool_call_id` of a call it answers",
                )
            })?;
            let response = serde_json::from_str::<Value>(&m.content)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({"result": m.content}));
            (
                "user",
                vec![json!({"functionResponse": {"name": tool, "response": response}})],
            )
        } else {
            match Role::parse(name, &m.role)? {
                Role::System => {
                    system.push(m.content.as_str());
                    continue;
                }
                Role::User => ("user", vec![json!({"text": m.content})]),
                Role::Assistant => {
                    let mut parts = Vec::new();
                    if !m.content.is_empty() || m.tool_calls.is_empty() {
                        parts.push(json!({"text": m.content}));
                    }
                    for call in &m.tool_calls {
                        let args = remote_kit::call_arguments(name, call)?;
                        parts.push(json!({"functionCall": {"name": call.name, "args": args}}));
                    }
                    ("model", parts)
                }
            }
        };
        turns.push((role, parts));
    }
    let (system, turns) = remote_kit::alternating(name, &system, turns)?;
    let contents = turns
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect();
    Ok((system, contents))
}

fn text_parts(texts: &[&str]) -> Vec<Value> {
    texts.iter().map(|t| json!({ "text": t })).collect()
}

/// What one reply (or streamed chunk) says.
struct Chunk {
    text: String,
    reasoning: String,
    calls: Vec<Call>,
    finish_reason: Option<String>,
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
    reasoning_tokens: Option<u32>,
}

/// Reads a reply or chunk, and whether it has a candidate.
fn read_chunk(name: &str, raw: &str) -> KitResult<(Chunk, bool)> {
    let v = parse_reply(name, raw)?;
    if let Some(error) = v.get("error").filter(|e| !e.is_null()) {
        return Err(upstream(
            name,
            format!("the provider answered with an error: {}", describe_error(error)),
        ));
    }
    let candidate = v.pointer("/candidates/0");
    if candidate.is_none() {
        if let Some(reason) = str_at(&v, "/promptFeedback/blockReason") {
            let detail = str_at(&v, "/promptFeedback/blockReasonMessage")
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            return Err(upstream(
                name,
                format!("the provider blocked the prompt ({reason}){detail}"),
            ));
        }
    }
    let parts: Vec<&Value> = candidate
        .and_then(|c| c.pointer("/content/parts"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let thought = |p: &Value| p.get("thought").and_then(Value::as_bool) == Some(true);
    let text: String = parts
        .iter()
        .filter(|p| !thought(p))
        .filter_map(|p| str_at(p, "/text"))
        .collect();
    let reasoning: String = parts
        .iter()
        .filter(|p| thought(p))
        .filter_map(|p| str_at(p, "/text"))
        .collect();
    let calls = parts
        .iter()
        .filter_map(|p| p.get("functionCall"))
        .map(|call| {
            let tool = str_at(call, "/name")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| upstream(name, format!("a `functionCall` has no name: {call}")))?;
            Ok(Call {
                id: str_at(call, "/id").unwrap_or_default().to_string(),
                name: tool.to_string(),
                arguments: call
                    .get("args")
                    .filter(|a| a.is_object())
                    .map_or("{}".into(), Value::to_string),
            })
        })
        .collect::<KitResult<Vec<_>>>()?;
    let chunk = Chunk {
        text,
        reasoning,
        calls,
        reasoning_tokens: u32_at(&v, "/usageMetadata/thoughtsTokenCount"),
        finish_reason: candidate
            .and_then(|c| str_at(c, "/finishReason"))
            .map(remote_kit::finish_reason),
        prompt_tokens: u32_at(&v, "/usageMetadata/promptTokenCount"),
        completion_tokens: u32_at(&v, "/usageMetadata/candidatesTokenCount"),
    };
    Ok((chunk, candidate.is_some()))
}

remote_kit::export_adapter!(GoogleGemini);

#[cfg(test)]
mod tests {
    use super::*;

    remote_kit::adapter_test_kit!(GoogleGemini);

    #[test]
    fn shapes_contents_and_config() {
        let mut p = params();
        p.max_tokens = Some(64);
        p.temperature = Some(0.5);
        p.top_p = Some(0.95);
        p.top_k = Some(8);
        p.seed = Some(42);
        p.stop = vec!["STOP".into()];
        p.presence_penalty = Some(0.1);
        let msgs = messages(&[("system", "sys"), ("user", "a"), ("assistant", "b"), ("assistant", "c")]);
        let (method, path, headers, body) =
            shape(model("google", json!({"model_id": "gemini-2.0-flash"})), msgs, p).unwrap();
        assert_eq!(
            (method.as_str(), path.as_str()),
            ("POST", "/models/gemini-2.0-flash:generateContent")
        );
        assert_eq!(
            headers,
            vec![("content-type".to_string(), "application/json".to_string())]
        );
        assert_eq!(
            body,
            json!({
                "contents": [
                    {"role": "user", "parts": [{"text": "a"}]},
                    {"role": "model", "parts": [{"text": "b"}, {"text": "c"}]},
                ],
                "systemInstruction": {"parts": [{"text": "sys"}]},
                "generationConfig": {
                    "temperature": 0.5, "maxOutputTokens": 64, "topP": 0.95, "topK": 8,
                    "stopSequences": ["STOP"], "seed": 42, "presencePenalty": 0.1,
                },
            })
        );
    }

    #[test]
    fn streaming_path_minimal_body_and_model_checks() {
        let mut p = params();
        p.stream = true;
        let spec = json!({"model_id": "models/gemini-pro", "extra_body": {"safetySettings": []}});
        let (_, path, _, body) = shape(model("google", spec), messages(&[("user", "u")]), p).unwrap();
        assert_eq!(path, "/models/gemini-pro:streamGenerateContent?alt=sse");
        assert_eq!(
            body,
            json!({"contents": [{"role": "user", "parts": [{"text": "u"}]}], "safetySettings": []})
        );
        for bad in ["a/b", "a?x=1", "a#b", "..", "x/../y", "a b", "a%2f", "a:b"] {
            assert!(
                matches!(
                    shape(
                        model("google", json!({"model_id": bad})),
                        messages(&[("user", "u")]),
                        params()
                    ),
                    Err(AdapterError::InvalidInput(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn whole_and_streamed_replies_agree() {
        let m = || model("google", json!({"model_id": "g"}));
        let raw = r#"{"candidates":[{"content":{"role":"model","parts":[
            {"text":"thinking...","thought":true},{"text":"\nBerlin"},{"text":" it is "}]},
            "finishReason":"STOP","index":0}],
            "usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":3,"totalTokenCount":8}}"#;
        let want = ("Berlin it is".to_string(), Some(5), Some(3), Some("stop".to_string()));
        assert_eq!(whole(m(), raw).unwrap(), want);
        let events = [
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"thinking...","thought":true}]}}],
                "usageMetadata":{"promptTokenCount":5}}"#,
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"\nBerlin"}]}}],
                "usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":1}}"#,
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":" it is "}]},"finishReason":"STOP"}],
                "usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":3}}"#,
        ];
        assert_eq!(streamed(m(), &events).unwrap(), want);
        let raw = r#"{"candidates":[{"finishReason":"SAFETY"}]}"#;
        assert_eq!(
            whole(m(), raw).unwrap(),
            (String::new(), None, None, Some("content_filter".to_string()))
        );
        let raw = r#"{"candidates":[{"content":{"parts":[{"text":"x"}]},"finishReason":"MAX_TOKENS"}]}"#;
        assert_eq!(whole(m(), raw).unwrap().3.as_deref(), Some("length"));
    }

    #[test]
    fn errors_are_upstream() {
        let m = || model("google", json!({"model_id": "g"}));
        let raw = r#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":3}}"#;
        assert!(upstream_message(whole(m(), raw).unwrap_err()).contains("SAFETY"));
        assert!(upstream_message(streamed(m(), &[raw]).unwrap_err()).contains("SAFETY"));
        let raw = r#"{"error":{"code":400,"message":"API key not valid","status":"INVALID_ARGUMENT"}}"#;
        assert!(upstream_message(whole(m(), raw).unwrap_err()).contains("API key not valid"));
        assert!(upstream_message(whole(m(), "{}").unwrap_err()).contains("no candidates"));
    }

    #[test]
    fn tools_calls_results_and_formats_go_in_gemini_shapes() {
        let mut p = params();
        p.tools = vec![remote_kit::Tool {
            name: "get_weather".into(),
            description: Some("Weather.".into()),
            parameters: Some(r#"{"type":"object","properties":{"city":{"type":"string"}}}"#.into()),
            strict: false,
        }];
        p.tool_choice = ToolChoice::Named("get_weather".into());
        p.response_format = ResponseFormat::JsonObject;
        let mut history = messages(&[("user", "Weather in Oslo?"), ("assistant", ""), ("tool", "3 C")]);
        history[1].tool_calls = vec![remote_kit::ToolCall {
            id: "call_1".into(),
            name: "get_weather".into(),
            arguments: r#"{"city":"Oslo"}"#.into(),
        }];
        history[2].tool_call_id = Some("call_1".into());
        let (_, _, _, body) = shape(model("google", json!({"model_id": "g"})), history.clone(), p).unwrap();
        assert_eq!(
            body["contents"],
            json!([
                {"role": "user", "parts": [{"text": "Weather in Oslo?"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"result": "3 C"}}}]}
            ])
        );
        assert_eq!(
            body["tools"],
            json!([{"functionDeclarations": [{"name": "get_weather", "description": "Weather.",
                "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}}}}]}])
        );
        assert_eq!(
            body["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
        );
        assert_eq!(
            body["generationConfig"],
            json!({"responseMimeType": "application/json"})
        );
        let mut orphan = history;
        orphan[2].tool_call_id = Some("call_9".into());
        assert!(matches!(
            shape(model("google", json!({"model_id": "g"})), orphan, params()),
            Err(AdapterError::InvalidInput(m)) if m.contains("`name`")
        ));
    }

    #[test]
    fn function_calls_and_thoughts_are_read_whole_and_streamed() {
        let m = || model("google", json!({"model_id": "g"}));
        let part_call = json!({"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}});
        let reply = json!({"candidates": [{"content": {"role": "model", "parts": [
                {"text": "Need weather.", "thought": true}, {"text": "Checking."}, part_call]},
            "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 8, "thoughtsTokenCount": 3}});
        let read = whole_completion(m(), &reply.to_string()).unwrap();
        let events = [
            json!({"candidates": [{"content": {"parts": [{"text": "Need weather.", "thought": true}]}}]}).to_string(),
            json!({"candidates": [{"content": {"parts": [{"text": "Checking."}]}}]}).to_string(),
            json!({"candidates": [{"content": {"parts": [part_call]}, "finishReason": "STOP"}],
                   "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 8, "thoughtsTokenCount": 3}})
            .to_string(),
        ];
        let events: Vec<&str> = events.iter().map(String::as_str).collect();
        let streamed = streamed_completion(m(), &events).unwrap();
        for c in [read, streamed] {
            assert_eq!(c.text, "Checking.");
            assert_eq!(c.reasoning.as_deref(), Some("Need weather."));
            assert_eq!(c.reasoning_tokens, Some(3));
            assert_eq!(c.tool_calls.len(), 1);
            assert_eq!(c.tool_calls[0].name, "get_weather");
            assert_eq!(c.tool_calls[0].arguments, r#"{"city":"Oslo"}"#);
            assert_eq!(c.tool_calls[0].id, "", "Gemini gives no id: the host makes one");
        }
    }
}
