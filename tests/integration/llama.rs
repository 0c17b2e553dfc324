//! The real model (SmolLM2-135M-Instruct, Q4_1 GGUF) through the real
//! chat-template adapter and llama.cpp.

use lmhost::engines::EngineError;
use lmhost::{Error, GenerationParams, Host, Message};
use lmhost_tests::{chatml, host, smollm_host};

/// One host for the module: the model loads once.
fn shared() -> Option<&'static Host> {
    smollm_host()
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
        "no registry entry matches `SmolLM2-135M`; did you mean `SmolLM2-135M-Instruct`, `SmolLM2-135M-Instruct-py`, `SmolLM2-135M-Instruct-js`?"
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

#[test]
fn same_seed_same_text_and_sampling_parameters_apply() {
    let Some(host) = shared() else { return };
    let model = host.load(MODEL).unwrap();
    let messages = [Message::user("Tell me a short story about a cat.")];
    let sampled = |seed| GenerationParams {
        max_tokens: Some(24),
        temperature: Some(1.0),
        top_p: Some(0.95),
        top_k: Some(50),
        seed: Some(seed),
        ..GenerationParams::default()
    };
    let a = model.generate(&messages, &sampled(7)).unwrap();
    let b = model.generate(&messages, &sampled(7)).unwrap();
    assert_eq!(a.response, b.response, "same seed, same text");
    let others: Vec<_> = (8..12)
        .map(|s| model.generate(&messages, &sampled(s)).unwrap().response)
        .collect();
    assert!(others.iter().any(|o| *o != a.response), "other seeds give other texts");
}

#[test]
fn stop_strings_end_the_answer_before_them() {
    let Some(host) = shared() else { return };
    let model = host.load(MODEL).unwrap();
    let messages = [Message::user("What is the capital of France? Answer in one sentence.")];
    let full = model.generate(&messages, &GenerationParams::greedy(30)).unwrap();
    assert!(full.response_text.contains("Paris"), "{full:?}");
    let params = GenerationParams {
        stop: vec!["Paris".into()],
        ..GenerationParams::greedy(30)
    };
    let stopped = model.generate(&messages, &params).unwrap();
    let before = full.response_text.split("Paris").next().unwrap();
    assert_eq!(stopped.response_text, before.trim());
    assert_eq!(stopped.finish_reason, "stop");
    assert!(!stopped.response.as_str().unwrap().contains("Paris"));
}

fn prompts() -> Vec<Vec<Message>> {
    [
        "What is the capital of France? Answer in one sentence.",
        "Name three colours.",
        "What is the capital of Germany?",
        "Write one sentence about the sea.",
    ]
    .iter()
    .map(|p| vec![Message::user(*p)])
    .collect()
}

#[test]
fn concurrent_requests_equal_their_sequential_answers() {
    let Some(host) = shared() else { return };
    let model = host.load(MODEL).unwrap();
    let params = GenerationParams::greedy(32);
    let sequential: Vec<_> = prompts()
        .iter()
        .map(|m| model.generate(m, &params).unwrap().response)
        .collect();
    let concurrent: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = prompts()
            .into_iter()
            .map(|m| {
                let model = &model;
                let params = &params;
                s.spawn(move || model.generate(&m, params).unwrap().response)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(concurrent, sequential);
    let batch: Vec<_> = model
        .generate_batch(&prompts().into_iter().map(|m| (m, params.clone())).collect::<Vec<_>>())
        .into_iter()
        .map(|g| g.unwrap().response)
        .collect();
    assert_eq!(batch, sequential);
}

#[test]
fn requests_beyond_the_parallel_slots_queue_and_still_match() {
    let Some(host) = shared() else { return };
    // Two slots for four requests: two run, two queue; every answer must still
    // equal the request's answer alone.
    let model = host
        .load(r#"{"model_name": "SmolLM2-135M-Instruct", "n_ctx": 256, "parallel": 2}"#)
        .unwrap();
    let params = GenerationParams::greedy(64);
    let requests: Vec<_> = prompts().into_iter().map(|m| (m, params.clone())).collect();
    let batch = model.generate_batch(&requests);
    for (g, (m, _)) in batch.iter().zip(&requests) {
        let g = g.as_ref().unwrap();
        let alone = model.generate(m, &params).unwrap();
        assert_eq!(g.response, alone.response);
    }
}

#[test]
fn bad_parameters_and_gpu_keys_are_clear_errors() {
    let Some(host) = shared() else { return };
    let model = host.load(MODEL).unwrap();
    let m = [Message::user("hi")];
    let bad = |p: GenerationParams| model.generate(&m, &p).unwrap_err().to_string();
    assert!(bad(GenerationParams {
        temperature: Some(-1.0),
        ..Default::default()
    })
    .contains("temperature must be"));
    let top_p = GenerationParams {
        temperature: Some(0.7),
        top_p: Some(2.0),
        ..Default::default()
    };
    assert!(bad(top_p).contains("top_p must be in [0, 1]"));
    assert!(bad(GenerationParams {
        max_tokens: Some(0),
        ..Default::default()
    })
    .contains("max_tokens must be at least 1"));
    if !lmhost::engines::gpu_offload_supported() {
        let err = host
            .load(r#"{"model_name": "SmolLM2-135M-Instruct", "execute_on": "gpu"}"#)
            .unwrap_err();
        // This build has no GPU module: the error says so and what to do.
        let err = err.to_string();
        assert!(
            err.contains("no GPU backend module") && err.contains("execute_on: cpu"),
            "{err}"
        );
    }
    let cpu = host
        .load(r#"{"model_name": "SmolLM2-135M-Instruct", "execute_on": "cpu", "threads": 1}"#)
        .unwrap();
    assert!(cpu.run("hi").is_ok());
    for (threads, says) in [(0, "at least 1"), (5000, "more than 1024")] {
        let err = host
            .load(format!(r#"{{"model_name": "SmolLM2-135M-Instruct", "threads": {threads}}}"#).as_str())
            .unwrap_err();
        assert!(err.to_string().contains(says), "{err}");
    }
}
