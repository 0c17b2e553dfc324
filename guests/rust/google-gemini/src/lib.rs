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
//! Response: the `text` of `candidates[0].content.parts`, joined, skipping the
//! parts marked `thought: true`; `candidates[0].finishReason` (`STOP` becomes
//! `stop`, `MAX_TOKENS` `length`, `SAFETY`, `RECITATION` and the other block
//! reasons `content_filter`); `usageMetadata.promptTokenCount` /
//! `candidatesTokenCount`. Streamed, each event is a partial reply of the same
//! shape: the texts are appended and the latest finish reason and usage kept. A
//! prompt blocked before any candidate (`promptFeedback.blockReason`) and an
//! `error` object are `upstream` errors. The answer text is stripped of leading
//! and trailing whitespace.

use remote_kit::{
    describe_error, final_text, invalid, parse_reply, str_at, u32_at, upstream, Body, HttpRequest, KitResult, Message,
    ModelInfo, Params, RemoteAdapter, Reply, Role, Spec, StreamState,
};
use serde_json::{json, Value};

struct GoogleGemini;

impl RemoteAdapter for GoogleGemini {
    fn shape(model: &ModelInfo, messages: &[Message], params: &Params) -> KitResult<HttpRequest> {
        let name = model.name.as_str();
        let spec = Spec::parse(name, &model.spec_json)?;
        let model_id = model_segment(&spec)?;
        let turns = remote_kit::turns(name, messages.iter().map(|m| (m.role.as_str(), m.content.as_str())))?;
        let dialogue = remote_kit::dialogue(name, &turns)?;
        let contents: Vec<Value> = dialogue
            .turns
            .iter()
            .map(|(role, texts)| {
                let role = if *role == Role::Assistant { "model" } else { "user" };
                json!({ "role": role, "parts": text_parts(texts) })
            })
            .collect();

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

        let mut body = Body::new();
        body.set("contents", contents);
        if let Some(system) = &dialogue.system {
            body.set("systemInstruction", json!({ "parts": text_parts(&[system]) }));
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
            ..Reply::default()
        })
    }

    fn stream_event(name: &str, state: &mut StreamState, data: &str) -> KitResult<String> {
        let (chunk, _) = read_chunk(name, data)?;
        if chunk.finish_reason.is_some() {
            state.finish_reason = chunk.finish_reason;
        }
        state.set_usage(chunk.prompt_tokens, chunk.completion_tokens);
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

fn text_parts(texts: &[&str]) -> Vec<Value> {
    texts.iter().map(|t| json!({ "text": t })).collect()
}

/// What one reply (or streamed chunk) says.
struct Chunk {
    text: String,
    finish_reason: Option<String>,
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
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
    let text: String = candidate
        .and_then(|c| c.pointer("/content/parts"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| p.get("thought").and_then(Value::as_bool) != Some(true))
        .filter_map(|p| str_at(p, "/text"))
        .collect();
    let chunk = Chunk {
        text,
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
}
