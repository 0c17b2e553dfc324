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
//! Response: the `text` of the content blocks of type `text`, joined (thinking
//! blocks are skipped), `stop_reason` (`end_turn` and `stop_sequence` become
//! `stop`, `max_tokens` becomes `length`) and `usage.input_tokens` /
//! `output_tokens`. Streamed: `message_start` gives the input tokens,
//! `content_block_delta` events of type `text_delta` the text, `message_delta`
//! the stop reason and output tokens; thinking and signature deltas, `ping` and
//! the block start and stop events are ignored. An `error` reply or event is an
//! `upstream` error with its message. The answer text is stripped of leading and
//! trailing whitespace.

use remote_kit::{
    describe_error, final_text, parse_reply, str_at, u32_at, upstream, Body, HttpRequest, KitResult, Message,
    ModelInfo, Params, RemoteAdapter, Reply, Role, Spec, StreamState,
};
use serde_json::{json, Value};

const API_VERSION: &str = "2023-06-01";
/// The answer limit when the call sets none (the API requires one).
const DEFAULT_MAX_TOKENS: u32 = 4096;
/// The thinking budget when `thinking_mode` is on and the entry sets none.
const DEFAULT_THINKING_BUDGET: u64 = 16000;

struct AnthropicMessages;

impl RemoteAdapter for AnthropicMessages {
    fn shape(model: &ModelInfo, messages: &[Message], params: &Params) -> KitResult<HttpRequest> {
        let name = model.name.as_str();
        let spec = Spec::parse(name, &model.spec_json)?;
        let model_id = spec.first_str(&["model_id"])?;
        let turns = remote_kit::turns(name, messages.iter().map(|m| (m.role.as_str(), m.content.as_str())))?;
        let dialogue = remote_kit::dialogue(name, &turns)?;
        let messages: Vec<Value> = dialogue
            .turns
            .iter()
            .map(|(role, texts)| {
                let role = if *role == Role::Assistant { "assistant" } else { "user" };
                let content: Vec<Value> = texts.iter().map(|t| json!({ "type": "text", "text": t })).collect();
                json!({ "role": role, "content": content })
            })
            .collect();

        let mut body = Body::new();
        body.set("model", model_id)
            .set("messages", messages)
            .opt("system", dialogue.system);
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
        let text: String = blocks
            .iter()
            .filter(|b| str_at(b, "/type") == Some("text"))
            .filter_map(|b| str_at(b, "/text"))
            .collect();
        Ok(Reply {
            text: final_text(&text),
            prompt_tokens: u32_at(&v, "/usage/input_tokens"),
            completion_tokens: u32_at(&v, "/usage/output_tokens"),
            finish_reason: str_at(&v, "/stop_reason").map(remote_kit::finish_reason),
            ..Reply::default()
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
            Some("content_block_delta") if str_at(&v, "/delta/type") == Some("text_delta") => {
                return Ok(state.text.push(str_at(&v, "/delta/text").unwrap_or_default()));
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
}
