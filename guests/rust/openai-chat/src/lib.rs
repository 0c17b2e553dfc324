//! `openai-chat`: the adapter for OpenAI-style chat completions, used by the
//! backends `openai`, `openai_compatible`, `openrouter` and `mistral`.
//!
//! Request: `POST /chat/completions` with a JSON body `{model, messages, ...}`.
//! The messages go as `{role, content}`. The model is the entry's `model_id`;
//! `openai_compatible` prefers `call_name`, and `openrouter` falls back to
//! `huggingface_id`. Parameters are sent only when set: `temperature`,
//! `max_tokens`, `top_p`, `seed`, `stop` (when not empty), `frequency_penalty`,
//! `presence_penalty`. `top_k`, `min_p` and `repetition_penalty` have no field
//! in this API and are not sent (an entry's `extra_body` can add them for
//! servers that take them). With `reasoning_model: true` in the entry the limit
//! goes as `max_completion_tokens` and `temperature` and `top_p` are left out.
//! `mistral` takes the seed as `random_seed`. A streamed call sets
//! `stream: true` and, except for `mistral`, asks for the usage in the last event
//! (`stream_options.include_usage`). The entry's `extra_body` is merged into the
//! body last; its keys win. No credentials: the host adds them.
//!
//! Tools (contract 0.2), in OpenAI's shapes both ways: `tools` as
//! `{"type": "function", "function": {name, description, parameters, strict}}`,
//! `tool_choice` (`auto`, `none`, `required`, or a named function) and
//! `parallel_tool_calls`, sent only with tools; an assistant turn's calls as
//! `tool_calls` (content `null` when it has no text), a tool result as
//! `{"role": "tool", "tool_call_id", "content"}` (with `name` for `mistral`).
//! `response_format` goes as `{"type": "json_object"}` or `{"type":
//! "json_schema", "json_schema": {name, schema, strict}}`.
//!
//! Response: `choices[0].message.content` (a `null` content is an empty answer),
//! `message.tool_calls`, the reasoning (`message.reasoning_content`, as
//! DeepSeek, vLLM and llama.cpp's server write it, or OpenRouter's
//! `message.reasoning`), `choices[0].finish_reason` and `usage.prompt_tokens` /
//! `completion_tokens` / `completion_tokens_details.reasoning_tokens`.
//! Streamed, each event's `choices[0].delta.content` is appended, reasoning
//! likewise, tool calls are put together from their fragments by `index`, and
//! the finish reason and usage are taken from the events that carry them. An
//! `error` object, whole or in an event, is an `upstream` error with its
//! message. The answer text is stripped of leading and trailing whitespace.

use remote_kit::{
    describe_error, final_text, invalid, parse_reply, str_at, u32_at, unsupported, upstream, Body, Call, HttpRequest,
    KitResult, Message, ModelInfo, Params, RemoteAdapter, Reply, ResponseFormat, Spec, StreamState, ToolChoice,
};
use serde_json::{json, Value};

/// The flavour of the OpenAI-style API a backend speaks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    OpenAi,
    Compatible,
    OpenRouter,
    Mistral,
}

impl Flavor {
    fn of(model: &ModelInfo) -> KitResult<Self> {
        match model.backend.as_str() {
            "openai" => Ok(Flavor::OpenAi),
            "openai_compatible" => Ok(Flavor::Compatible),
            "openrouter" => Ok(Flavor::OpenRouter),
            "mistral" => Ok(Flavor::Mistral),
            other => Err(unsupported(
                &model.name,
                format!(
                    "backend `{other}` is not one this adapter speaks (openai, openai_compatible, openrouter, mistral)"
                ),
            )),
        }
    }

    /// Registry keys that name the model at the provider, in order of preference.
    fn model_keys(self) -> &'static [&'static str] {
        match self {
            Flavor::Compatible => &["call_name", "model_id"],
            Flavor::OpenRouter => &["model_id", "huggingface_id"],
            Flavor::OpenAi | Flavor::Mistral => &["model_id"],
        }
    }
}

struct OpenAiChat;

impl RemoteAdapter for OpenAiChat {
    const TOOLS: bool = true;
    const RESPONSE_FORMATS: bool = true;

    fn shape(model: &ModelInfo, messages: &[Message], params: &Params) -> KitResult<HttpRequest> {
        let name = model.name.as_str();
        let flavor = Flavor::of(model)?;
        let spec = Spec::parse(name, &model.spec_json)?;
        let model_id = spec.first_str(flavor.model_keys())?;
        let reasoning = spec.flag("reasoning_model")?;
        let messages = wire_messages(name, flavor, messages)?;

        let mut body = Body::new();
        body.set("model", model_id).set("messages", messages);
        if reasoning {
            body.opt("max_completion_tokens", params.max_tokens);
        } else {
            body.float(name, "temperature", params.temperature)?
                .float(name, "top_p", params.top_p)?
                .opt("max_tokens", params.max_tokens);
        }
        let seed_key = if flavor == Flavor::Mistral {
            "random_seed"
        } else {
            "seed"
        };
        body.opt(seed_key, params.seed)
            .stop("stop", &params.stop)
            .float(name, "frequency_penalty", params.frequency_penalty)?
            .float(name, "presence_penalty", params.presence_penalty)?;
        if params.stream {
            body.set("stream", true);
            if flavor != Flavor::Mistral {
                body.set("stream_options", json!({ "include_usage": true }));
            }
        }
        if !params.tools.is_empty() {
            let tools = params
                .tools
                .iter()
                .map(|t| remote_kit::function_tool(name, t, true))
                .collect::<KitResult<Vec<_>>>()?;
            body.set("tools", tools)
                .set("tool_choice", wire_tool_choice(&params.tool_choice));
            if !params.parallel_tool_calls {
                body.set("parallel_tool_calls", false);
            }
        }
        match &params.response_format {
            ResponseFormat::Text => {}
            ResponseFormat::JsonObject => {
                body.set("response_format", json!({"type": "json_object"}));
            }
            ResponseFormat::JsonSchema(format) => {
                let schema = remote_kit::format_schema(name, format)?;
                body.set(
                    "response_format",
                    json!({"type": "json_schema", "json_schema": {"name": format.name, "schema": schema, "strict": format.strict}}),
                );
            }
        }
        let body = body.finish(&spec)?;
        Ok(HttpRequest {
            method: "POST".to_string(),
            path: "/chat/completions".to_string(),
            headers: remote_kit::json_headers(&[]),
            body: Value::Object(body).to_string(),
        })
    }

    fn parse_whole(name: &str, raw: &str) -> KitResult<Reply> {
        let v = parse_reply(name, raw)?;
        check_error(name, &v)?;
        let choice = v
            .pointer("/choices/0")
            .ok_or_else(|| upstream(name, "the provider's reply has no choices"))?;
        let message = choice.get("message");
        let reasoning = message.map(reasoning_text).unwrap_or_default();
        let tool_calls = match message.and_then(|m| m.get("tool_calls")) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(calls)) => calls.iter().map(|c| read_call(name, c)).collect::<KitResult<_>>()?,
            Some(_) => return Err(upstream(name, "the provider's `tool_calls` is not a list")),
        };
        Ok(Reply {
            text: final_text(&content_text(choice.pointer("/message/content"))),
            prompt_tokens: u32_at(&v, "/usage/prompt_tokens"),
            completion_tokens: u32_at(&v, "/usage/completion_tokens"),
            finish_reason: str_at(choice, "/finish_reason").map(remote_kit::finish_reason),
            reasoning: Some(final_text(&reasoning)).filter(|r| !r.is_empty()),
            tool_calls,
            reasoning_tokens: u32_at(&v, "/usage/completion_tokens_details/reasoning_tokens"),
        })
    }

    fn stream_event(name: &str, state: &mut StreamState, data: &str) -> KitResult<String> {
        let v = parse_reply(name, data)?;
        check_error(name, &v)?;
        let mut out = String::new();
        if let Some(choice) = v.pointer("/choices/0") {
            out = state.text.push(&content_text(choice.pointer("/delta/content")));
            if let Some(delta) = choice.get("delta") {
                state.push_reasoning(&reasoning_text(delta));
                if let Some(Value::Array(calls)) = delta.get("tool_calls") {
                    for (n, call) in calls.iter().enumerate() {
                        let index = call.get("index").and_then(Value::as_u64).unwrap_or(n as u64);
                        state.call_fragment(
                            name,
                            index,
                            str_at(call, "/id"),
                            str_at(call, "/function/name"),
                            &arguments_text(call.pointer("/function/arguments")),
                        )?;
                    }
                }
            }
            if let Some(reason) = str_at(choice, "/finish_reason") {
                state.set_finish_reason(reason);
            }
        }
        state.set_usage(
            u32_at(&v, "/usage/prompt_tokens"),
            u32_at(&v, "/usage/completion_tokens"),
        );
        if let Some(n) = u32_at(&v, "/usage/completion_tokens_details/reasoning_tokens") {
            state.reasoning_tokens = Some(n);
        }
        Ok(out)
    }
}

/// An `error` object in a reply or event.
fn check_error(name: &str, v: &Value) -> KitResult<()> {
    match v.get("error") {
        None | Some(Value::Null) => Ok(()),
        Some(error) => Err(upstream(
            name,
            format!("the provider answered with an error: {}", describe_error(error)),
        )),
    }
}

/// The messages as OpenAI's API takes them (see the module).
fn wire_messages(name: &str, flavor: Flavor, messages: &[Message]) -> KitResult<Vec<Value>> {
    if messages.is_empty() {
        return Err(invalid(name, "no messages to send"));
    }
    messages
        .iter()
        .map(|m| {
            if m.role == "tool" {
                let id = remote_kit::answered_call_id(name, m)?;
                let mut turn = json!({"role": "tool", "tool_call_id": id, "content": m.content});
                if let (Flavor::Mistral, Some(tool)) = (flavor, &m.name) {
                    turn["name"] = tool.as_str().into();
                }
                return Ok(turn);
            }
            let role = remote_kit::Role::parse(name, &m.role)?;
            if m.tool_calls.is_empty() {
                return Ok(json!({"role": role.as_str(), "content": m.content}));
            }
            let calls: Vec<Value> = m
                .tool_calls
                .iter()
                .map(
                    |c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}),
                )
                .collect();
            let content = if m.content.is_empty() {
                Value::Null
            } else {
                m.content.as_str().into()
            };
            Ok(json!({"role": role.as_str(), "content": content, "tool_calls": calls}))
        })
        .collect()
}

fn wire_tool_choice(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto => "auto".into(),
        ToolChoice::None => "none".into(),
        ToolChoice::Required => "required".into(),
        ToolChoice::Named(tool) => json!({"type": "function", "function": {"name": tool}}),
    }
}

/// A call in a reply: `{id, type, function: {name, arguments}}`.
fn read_call(name: &str, call: &Value) -> KitResult<Call> {
    let tool = str_at(call, "/function/name")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            upstream(
                name,
                format!("a tool call in the provider's reply has no function name: {call}"),
            )
        })?;
    let arguments = arguments_text(call.pointer("/function/arguments"));
    Ok(Call {
        id: str_at(call, "/id").unwrap_or_default().to_string(),
        name: tool.to_string(),
        arguments: if arguments.trim().is_empty() {
            "{}".into()
        } else {
            arguments
        },
    })
}

/// A call's `arguments`: JSON text (OpenAI), or an object some servers send as is.
fn arguments_text(arguments: Option<&Value>) -> String {
    match arguments {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A message's or delta's reasoning: `reasoning_content` or `reasoning`.
fn reasoning_text(message: &Value) -> String {
    ["reasoning_content", "reasoning"]
        .iter()
        .find_map(|k| message.get(*k).and_then(Value::as_str))
        .unwrap_or_default()
        .to_string()
}

/// Message or delta `content`: a string, `null`, or a list of text parts.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.as_str().or_else(|| p.get("text").and_then(Value::as_str)))
            .collect(),
        _ => String::new(),
    }
}

remote_kit::export_adapter!(OpenAiChat);

#[cfg(test)]
mod tests {
    use super::*;

    remote_kit::adapter_test_kit!(OpenAiChat);

    #[test]
    fn shapes_a_full_request() {
        let spec = json!({"model_id": "gpt-4o", "extra_body": {"temperature": 1.0, "user": "x"}});
        let mut p = params();
        p.max_tokens = Some(100);
        p.temperature = Some(0.7);
        p.top_p = Some(0.9);
        p.top_k = Some(40);
        p.seed = Some(7);
        p.stop = vec!["END".into()];
        p.frequency_penalty = Some(0.5);
        p.presence_penalty = Some(-0.5);
        let (method, path, headers, body) =
            shape(model("openai", spec), messages(&[("system", "s"), ("user", "u")]), p).unwrap();
        assert_eq!((method.as_str(), path.as_str()), ("POST", "/chat/completions"));
        assert_eq!(
            headers,
            vec![("content-type".to_string(), "application/json".to_string())]
        );
        assert_eq!(
            body,
            json!({
                "model": "gpt-4o",
                "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
                "max_tokens": 100, "temperature": 1.0, "top_p": 0.9, "seed": 7, "stop": ["END"],
                "frequency_penalty": 0.5, "presence_penalty": -0.5, "user": "x",
            })
        );
    }

    #[test]
    fn minimal_request_sends_no_parameters() {
        let (_, _, _, body) = shape(
            model("openai", json!({"model_id": "m"})),
            messages(&[("user", "u")]),
            params(),
        )
        .unwrap();
        assert_eq!(
            body,
            json!({"model": "m", "messages": [{"role": "user", "content": "u"}]})
        );
    }

    #[test]
    fn reasoning_models_and_streaming() {
        let mut p = params();
        p.max_tokens = Some(50);
        p.temperature = Some(0.2);
        p.top_p = Some(0.5);
        p.stream = true;
        let spec = json!({"model_id": "o3", "reasoning_model": true});
        let (_, _, _, body) = shape(model("openai", spec), messages(&[("user", "u")]), p).unwrap();
        assert_eq!(body["max_completion_tokens"], 50);
        assert!(body.get("max_tokens").is_none() && body.get("temperature").is_none() && body.get("top_p").is_none());
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
    }

    #[test]
    fn backends_pick_their_model_and_seed_keys() {
        let mut p = params();
        p.seed = Some(3);
        p.stream = true;
        let (_, _, _, body) = shape(
            model("mistral", json!({"model_id": "mistral-large"})),
            messages(&[("user", "u")]),
            p.clone(),
        )
        .unwrap();
        assert_eq!(body["random_seed"], 3);
        assert!(body.get("seed").is_none() && body.get("stream_options").is_none());
        assert_eq!(body["stream"], true);

        let spec = json!({"model_id": "a", "call_name": "served-name"});
        let (_, _, _, body) = shape(model("openai_compatible", spec), messages(&[("user", "u")]), params()).unwrap();
        assert_eq!(body["model"], "served-name");
        let spec = json!({"model_id": "a"});
        let (_, _, _, body) = shape(model("openai_compatible", spec), messages(&[("user", "u")]), params()).unwrap();
        assert_eq!(body["model"], "a");
        let spec = json!({"huggingface_id": "org/model"});
        let (_, _, _, body) = shape(model("openrouter", spec), messages(&[("user", "u")]), params()).unwrap();
        assert_eq!(body["model"], "org/model");

        let err = shape(
            model("openai", json!({"huggingface_id": "x"})),
            messages(&[("user", "u")]),
            params(),
        );
        match err.unwrap_err() {
            AdapterError::InvalidInput(m) => assert!(m.contains("test-model") && m.contains("`model_id`"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            shape(
                model("cohere", json!({"model_id": "x"})),
                messages(&[("user", "u")]),
                params()
            ),
            Err(AdapterError::Unsupported(_))
        ));
        assert!(matches!(
            shape(
                model("openai", json!({"model_id": "x"})),
                messages(&[("tool", "u")]),
                params()
            ),
            Err(AdapterError::InvalidInput(_))
        ));
    }

    #[test]
    fn whole_and_streamed_replies_agree() {
        let m = || model("openai", json!({"model_id": "m"}));
        let raw = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"\n Hello world. "},
            "finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}"#;
        let want = ("Hello world.".to_string(), Some(9), Some(4), Some("stop".to_string()));
        assert_eq!(whole(m(), raw).unwrap(), want);
        let events = [
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"\n Hello "},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"world. "},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4}}"#,
        ];
        assert_eq!(streamed(m(), &events).unwrap(), want);
    }

    #[test]
    fn null_content_and_length() {
        let raw = r#"{"choices":[{"message":{"content":null},"finish_reason":"length"}]}"#;
        let got = whole(model("openai", json!({"model_id": "m"})), raw).unwrap();
        assert_eq!(got, (String::new(), None, None, Some("length".to_string())));
    }

    #[test]
    fn errors_are_upstream() {
        let m = || model("openrouter", json!({"model_id": "m"}));
        let raw = r#"{"error":{"message":"Rate limit exceeded","type":"rate_limit","code":429}}"#;
        assert!(upstream_message(whole(m(), raw).unwrap_err()).contains("Rate limit exceeded"));
        assert!(upstream_message(whole(m(), "<html>").unwrap_err()).contains("not JSON"));
        assert!(upstream_message(whole(m(), r#"{"choices":[]}"#).unwrap_err()).contains("no choices"));
        let events = [
            r#"{"choices":[{"delta":{"content":"Hi"}}]}"#,
            r#"{"error":{"message":"provider overloaded"},"choices":[{"delta":{},"finish_reason":"error"}]}"#,
        ];
        assert!(upstream_message(streamed(m(), &events).unwrap_err()).contains("provider overloaded"));
        assert!(streamed(m(), &[]).is_err());
    }

    #[test]
    fn tools_tool_calls_and_formats_go_in_openai_shapes() {
        let mut p = params();
        p.tools = vec![remote_kit::Tool {
            name: "get_weather".into(),
            description: Some("Weather.".into()),
            parameters: Some(r#"{"type":"object","properties":{"city":{"type":"string"}}}"#.into()),
            strict: true,
        }];
        p.tool_choice = ToolChoice::Named("get_weather".into());
        p.parallel_tool_calls = false;
        p.response_format = ResponseFormat::JsonObject;
        let mut history = messages(&[("user", "Weather in Oslo?"), ("assistant", ""), ("tool", "{\"t\": 3}")]);
        history[1].tool_calls = vec![remote_kit::ToolCall {
            id: "call_1".into(),
            name: "get_weather".into(),
            arguments: r#"{"city":"Oslo"}"#.into(),
        }];
        history[2].tool_call_id = Some("call_1".into());
        history[2].name = Some("get_weather".into());
        let (_, _, _, body) = shape(model("openai", json!({"model_id": "m"})), history.clone(), p.clone()).unwrap();
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": "Weather in Oslo?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "{\"t\": 3}"}
            ])
        );
        assert_eq!(
            body["tools"],
            json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true}}])
        );
        assert_eq!(
            body["tool_choice"],
            json!({"type": "function", "function": {"name": "get_weather"}})
        );
        assert_eq!(body["parallel_tool_calls"], false);
        assert_eq!(body["response_format"], json!({"type": "json_object"}));
        let (_, _, _, body) = shape(model("mistral", json!({"model_id": "m"})), history.clone(), p).unwrap();
        assert_eq!(body["messages"][2]["name"], "get_weather");

        let mut orphan = history;
        orphan[2].tool_call_id = None;
        assert!(matches!(
            shape(model("openai", json!({"model_id": "m"})), orphan, params()),
            Err(AdapterError::InvalidInput(m)) if m.contains("tool_call_id")
        ));
        let mut schema = params();
        schema.response_format = ResponseFormat::JsonSchema(remote_kit::JsonSchemaFormat {
            name: "city".into(),
            schema: r#"{"type":"object"}"#.into(),
            strict: true,
        });
        let (_, _, _, body) = shape(
            model("openai", json!({"model_id": "m"})),
            messages(&[("user", "u")]),
            schema,
        )
        .unwrap();
        assert_eq!(
            body["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "city", "schema": {"type": "object"}, "strict": true}})
        );
    }

    #[test]
    fn tool_calls_and_reasoning_are_read_whole_and_streamed() {
        let m = || model("openai_compatible", json!({"model_id": "m"}));
        let raw = r#"{"choices":[{"message":{"role":"assistant","content":null,"reasoning_content":" Need weather. ",
            "tool_calls":[{"id":"call_9","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Oslo\"}"}}]},
            "finish_reason":"tool_calls"}],"usage":{"prompt_tokens":20,"completion_tokens":9,
            "completion_tokens_details":{"reasoning_tokens":4}}}"#;
        let read = whole_completion(m(), raw).unwrap();
        let events = [
            r#"{"choices":[{"delta":{"role":"assistant","reasoning_content":" Need "}}]}"#,
            r#"{"choices":[{"delta":{"reasoning_content":"weather. "}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_9","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": "}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Oslo\"}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":20,"completion_tokens":9,"completion_tokens_details":{"reasoning_tokens":4}}}"#,
        ];
        let streamed = streamed_completion(m(), &events).unwrap();
        for c in [read, streamed] {
            assert_eq!(c.text, "");
            assert_eq!(c.reasoning.as_deref(), Some("Need weather."));
            assert_eq!(c.reasoning_tokens, Some(4));
            assert_eq!(c.finish_reason.as_deref(), Some("tool_calls"));
            let calls: Vec<(&str, &str, &str)> = c
                .tool_calls
                .iter()
                .map(|t| (t.id.as_str(), t.name.as_str(), t.arguments.as_str()))
                .collect();
            assert_eq!(calls, [("call_9", "get_weather", "{\"city\": \"Oslo\"}")]);
        }
        let nameless = r#"{"choices":[{"message":{"tool_calls":[{"id":"x","function":{"arguments":"{}"}}]}}]}"#;
        assert!(upstream_message(whole(m(), nameless).unwrap_err()).contains("no function name"));
    }
}
