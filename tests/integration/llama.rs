//! The real model (SmolLM2-135M-Instruct, Q4_1 GGUF) through the real
//! chat-template adapter and llama.cpp.

use std::sync::OnceLock;

use lmhost::engines::EngineError;
use lmhost::{Error, GenerationParams, Host, Message};
use lmhost_tests::{chatml, host, smollm, TempDir};

/// One host for the module: the model loads once.
fn shared() -> Option<&'static Host> {
    static HOST: OnceLock<Option<(Host, TempDir)>> = OnceLock::new();
    HOST.get_or_init(|| smollm().map(|_| host(None)))
        .as_ref()
        .map(|(h, _)| h)
}

const MODEL: &str = "SmolLM2-135M-Instruct";

#[test]
fn prompt_is_the_chatml_rendering_and_response_text_is_culled() {
    let Some(host) = shared() else { return };
    let model = host.load(MODEL).unwrap();
    let messages = [
        Message::system("You are a helpful assistant."),
        Message::user("What is the capital of France?"),
    ];
    let g = model.generate(&messages, &GenerationParams::greedy(48)).unwrap();
    assert_eq!(
        g.prompt,
        serde_json::json!(chatml(&[
            ("system", "You are a helpful assistant."),
            ("user", "What is the capital of France?")
        ]))
    );
    assert!(!g.response_text.contains("<|im_end|>"), "{g:?}");
    assert!(
        g.response_text.contains("Paris"),
        "a sensible answer: {:?}",
        g.response_text
    );
    if g.finish_reason == "stop" {
        // The raw response keeps the end-of-turn token; the answer does not.
        assert!(g.response.as_str().unwrap().ends_with("<|im_end|>"), "{g:?}");
    }
    assert_eq!(g.usage.total_tokens, g.usage.prompt_tokens + g.usage.completion_tokens);
    assert!(g.usage.completion_tokens > 0 && g.tokens_per_second() > 0.0);
}

#[test]
fn greedy_is_deterministic_and_streaming_matches() {
    let Some(host) = shared() else { return };
    let model = host.load(MODEL).unwrap();
    let messages = [Message::user("Write one sentence about the sea.")];
    let params = GenerationParams::greedy(40);
    let a = model.generate(&messages, &params).unwrap();
    let b = model.generate(&messages, &params).unwrap();
    assert_eq!(a.response, b.response);
    let mut pieces = Vec::new();
    let streamed = model
        .generate_stream(&messages, &params, |p| pieces.push(p.to_string()))
        .unwrap();
    assert_eq!(streamed.response, a.response);
    assert_eq!(pieces.concat(), streamed.response_text);
    assert_eq!(streamed.response_text, a.response_text);
    assert!(pieces.len() > 3, "text arrives in pieces: {pieces:?}");
}

#[test]
fn max_tokens_is_honoured_exactly() {
    let Some(host) = shared() else { return };
    let model = host.load(MODEL).unwrap();
    let g = model
        .generate(&[Message::user("Name three colours.")], &GenerationParams::greedy(7))
        .unwrap();
    assert_eq!(g.usage.completion_tokens, 7);
    assert_eq!(g.finish_reason, "length");
}

#[test]
fn context_overflow_is_an_error_before_decoding() {
    let Some(host) = shared() else { return };
    let model = host
        .load(r#"{"model_name": "SmolLM2-135M-Instruct", "n_ctx": 64}"#)
        .unwrap();
    let err = model
        .generate(&[Message::user("Hello there")], &GenerationParams::greedy(100))
        .unwrap_err();
    match err {
        Error::Engine(EngineError::ContextOverflow {
            prompt_tokens,
            max_tokens,
            context,
            ..
        }) => {
            assert_eq!((max_tokens, context), (100, 64));
            assert!(prompt_tokens > 5);
        }
        other => panic!("expected ContextOverflow, got {other:?}"),
    }
}

#[test]
fn missing_gguf_error_names_the_paths_and_how_to_get_it() {
    let (host, _home) = host(None);
    let err = host
        .load(r#"{"model_name": "SmolLM2-135M-Instruct", "backend": "llamacpp", "model_path": "nowhere/absent.gguf"}"#)
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, Error::Engine(EngineError::ModelFileNotFound { .. })),
        "{err:?}"
    );
    assert!(text.contains("`nowhere/absent.gguf`"), "{text}");
    assert!(text.contains("models/nowhere/absent.gguf"), "{text}");
    assert!(text.contains("make model"), "{text}");
}

#[test]
fn unknown_model_lists_close_names() {
    let (host, _home) = host(None);
    let err = host.load("SmolLM2-135M").unwrap_err().to_string();
    assert_eq!(
        err,
        "no registry entry matches `SmolLM2-135M`; did you mean `SmolLM2-135M-Instruct`?"
    );
}

#[test]
fn unsupported_backend_is_reported_at_load() {
    let (host, _home) = host(None);
    let err = host
        .load(r#"{"model_name": "slurk", "backend": "slurk"}"#)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("backend `slurk` of `slurk` is not supported"), "{err}");
}
