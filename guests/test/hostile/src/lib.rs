//! A test-only adapter that misbehaves on purpose, to prove the sandbox holds.
//!
//! The registry entry's `hostile` key picks the misbehaviour of `shape-request`:
//! `panic`, `loop`, `oom`, `huge-output`, `read-file`, `read-env`, `bad-template`,
//! `template-bomb`; anything else (or none) shapes a plain prompt, so the same
//! instance pool can be shown to keep serving.

wit_bindgen::generate!({
    world: "adapter",
    path: "../../../wit",
});

use exports::lmhost::adapter::model_adapter::{
    AdapterError, Completion, Guest, GuestResponseStream, Message, ModelInfo, Params, Request,
};
use lmhost::adapter::types::Prompt;

struct Hostile;

fn mode(model: &ModelInfo) -> String {
    serde_json::from_str::<serde_json::Value>(&model.spec_json)
        .ok()
        .and_then(|v| v.get("hostile").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or_default()
}

fn plain(text: String) -> Result<Request, AdapterError> {
    Ok(Request::Prompt(Prompt {
        text,
        stop: Vec::new(),
        add_bos: false,
    }))
}

impl Guest for Hostile {
    type ResponseStream = Stream;

    fn shape_request(model: ModelInfo, messages: Vec<Message>, _params: Params) -> Result<Request, AdapterError> {
        match mode(&model).as_str() {
            "panic" => panic!("hostile adapter panics on purpose"),
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "oom" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "huge-output" => plain("x".repeat(64 << 20)),
            "read-file" => match std::fs::read_to_string("/etc/passwd") {
                Ok(text) => plain(text),
                Err(e) => Err(AdapterError::Unsupported(format!("read-file denied: {e}"))),
            },
            "read-env" => {
                let vars: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
                plain(vars.join("\n"))
            }
            "bad-template" => lmhost::adapter::host::render_template("{% for x in %}", "{}")
                .map_err(AdapterError::InvalidInput)
                .and_then(plain),
            "template-bomb" => {
                lmhost::adapter::host::render_template("{% for i in range(1000000000) %}{{ i }}{% endfor %}", "{}")
                    .map_err(AdapterError::InvalidInput)
                    .and_then(plain)
            }
            _ => plain(
                messages
                    .iter()
                    .map(|m| m.content.as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        }
    }

    fn parse_response(_model: ModelInfo, raw: String) -> Result<Completion, AdapterError> {
        Ok(Completion {
            text: raw,
            prompt_tokens: None,
            completion_tokens: None,
            finish_reason: None,
        })
    }
}

struct Stream;

impl GuestResponseStream for Stream {
    fn new(_model: ModelInfo) -> Self {
        Stream
    }
    fn push(&self, chunk: String) -> Result<String, AdapterError> {
        Ok(chunk)
    }
    fn finish(&self) -> Result<Completion, AdapterError> {
        Err(AdapterError::Unsupported("hostile adapter does not stream".into()))
    }
}

export!(Hostile);
