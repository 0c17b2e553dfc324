//! The candle engine (`huggingface_local`): against llama.cpp on the real
//! SmolLM2 GGUF, and on a tiny safetensors llama this test writes itself.

use std::sync::Arc;

use lmhost::credentials::KeyStore;
use lmhost::engines::{load_engine, Engine, LocalEngine, PromptInput};
use lmhost::{GenerationParams, Host, Message};
use lmhost_tests::{chatml, repo_root, smollm, TempDir};
use serde_json::{json, Value};

fn engine(host: &Host, backend: &str) -> Arc<dyn LocalEngine> {
    engine_with(host, json!({"backend": backend}))
}

/// An engine on SmolLM2 for `extra` (its `backend` and any further keys).
fn engine_with(host: &Host, extra: Value) -> Arc<dyn LocalEngine> {
    let backend = extra["backend"].as_str().unwrap_or_default().to_string();
    let mut spec = json!({"model_name": format!("smollm-{extra}"), "model_path": lmhost_tests::SMOLLM_FILE});
    spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let spec = host.resolve(spec.to_string().as_str()).unwrap();
    load_engine(
        &spec,
        &[repo_root().join("models")],
        &host.config().hub,
        &KeyStore::default(),
    )
    .map(|engine| match engine {
        Engine::Local(local) => local,
        other => panic!("{backend}: a local engine, got {other:?}"),
    })
    .unwrap_or_else(|e| panic!("{backend}: {e}"))
}

#[test]
fn candle_tokenizes_and_decodes_greedily_exactly_as_llama_cpp() {
    if smollm().is_none() {
        return;
    }
    let (host, _home) = lmhost_tests::host(None);
    let llama = engine(&host, "llamacpp");
    let candle = engine(&host, "huggingface_local");
    let candle_own = engine_with(
        &host,
        json!({"backend": "huggingface_local", "candle_kernels": "candle"}),
    );

    // The tokenizer rebuilt from the GGUF's vocabulary, against llama.cpp's own.
    for text in [
        "Hello, world!",
        "1234567890 and 3.14159, 2024-11-23",
        "Grüße aus Köln 🌍 — naïve café",
        "日本語のテキストと한국어",
        "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
        "  leading spaces\n\n\ttabs and\r\nCRLF",
        "don't stop-believing!!! ... ??",
        "emoji family 👩‍👩‍👧 and flags 🇩🇪",
        "x=1+2*3; y = x**2 // comment",
    ] {
        let want = llama.tokenize(text).unwrap().unwrap();
        let got = candle.tokenize(text).unwrap().unwrap();
        assert_eq!(got, want, "tokens of {text:?}");
    }
    // Both kernel sets: lmhost's (the default) and candle's own.
    greedy_against_llama_cpp(&host, &*llama, &*candle, "lmhost");
    greedy_against_llama_cpp(&host, &*llama, &*candle_own, "candle");
}

/// Greedy decoding against llama.cpp, 64 tokens on five prompts.
///
/// Two implementations sum in different orders (and llama.cpp keeps its KV
/// cache in f16), so where the best two logits are tied within float noise they
/// may pick different tokens and, decoding freely, go separate ways from there.
/// So candle is checked at every one of llama.cpp's 64 positions by teacher
/// forcing (feeding llama.cpp's ids): at each, candle's own choice must be
/// llama.cpp's, or a tie within 0.5 of its best logit (seen: 0.02 to 0.38 at
/// logits of 10 to 27), and 95 % of positions must agree exactly. A wrong model
/// (rope, norms, tokenizer, a kernel) disagrees everywhere, by whole units.
/// Free-running greedy decoding must also agree up to its first such tie.
fn greedy_against_llama_cpp(host: &Host, llama: &dyn LocalEngine, candle: &dyn LocalEngine, kernels: &str) {
    let spec = host
        .resolve(
            json!({"model_name": "smollm-candle-direct", "backend": "huggingface_local",
                   "model_path": smollm().unwrap(), "candle_kernels": kernels})
            .to_string()
            .as_str(),
        )
        .unwrap();
    let direct = lmhost::engines::CandleEngine::load(&spec, &smollm().unwrap()).unwrap();
    let greedy = GenerationParams::greedy(64);
    let (mut positions, mut exact, mut free) = (0, 0, 0);
    for question in [
        "What is the capital of France?",
        "Write a short poem about the sea.",
        "List three prime numbers and explain why they are prime.",
        "Explain what a rainbow is to a child.",
        "Give me a recipe for pancakes.",
    ] {
        let prompt = chatml(&[("system", "You are a helpful assistant."), ("user", question)]);
        let input = PromptInput {
            text: &prompt,
            add_bos: false,
            stop: &[],
            params: &greedy,
            constraint: None,
        };
        let want = llama.complete(&input, &mut |_| true).unwrap();
        let prompt_ids = candle.tokenize(&prompt).unwrap().unwrap();
        for (i, (best, top, theirs)) in direct
            .forced(&prompt_ids, &want.token_ids)
            .unwrap()
            .into_iter()
            .enumerate()
        {
            positions += 1;
            if best == want.token_ids[i] {
                exact += 1;
                continue;
            }
            eprintln!("{kernels}: {question:?}, token {i}: a tie, best {top}, llama.cpp's pick {theirs}");
            assert!(
                top - theirs < 0.5,
                "{kernels}: {question:?}, token {i}: candle's best logit is {top} but llama.cpp's pick has {theirs}"
            );
        }
        // Free-running, streamed: identical ids up to the first tie.
        let mut streamed = String::new();
        let got = candle
            .complete(&input, &mut |piece| {
                streamed.push_str(piece);
                true
            })
            .unwrap();
        assert_eq!(got.prompt_tokens, want.prompt_tokens);
        assert!(got.text.starts_with(&streamed), "{streamed:?}");
        let same = got
            .token_ids
            .iter()
            .zip(&want.token_ids)
            .take_while(|(a, b)| a == b)
            .count();
        free += same;
        if same == want.token_ids.len() && same == got.token_ids.len() {
            assert_eq!((&got.text, got.finish_reason), (&want.text, want.finish_reason));
        }
    }
    eprintln!("{kernels}: {exact} of {positions} positions chose llama.cpp's token; free-running agreed on {free} ids");
    assert!(
        positions >= 4 * 64 / 2,
        "{kernels}: llama.cpp generated only {positions} tokens"
    );
    assert!(
        exact * 100 >= positions * 95,
        "{kernels}: only {exact} of {positions} positions chose llama.cpp's token"
    );
}

#[test]
fn candle_serves_smollm_through_the_chat_template_adapter() {
    if smollm().is_none() {
        return;
    }
    let (host, _home) = lmhost_tests::host(Some(
        &json!([{"model_name": "smol-candle", "backend": "huggingface_local",
                 "model_path": lmhost_tests::SMOLLM_FILE, "premade_chat_template": true,
                 "eos_to_cull": "<\\|im_end\\|>"}])
        .to_string(),
    ));
    let model = host.load("smol-candle").unwrap();
    let messages = [Message::user("What is the capital of France? Answer in one word.")];
    let g = model.generate(&messages, &GenerationParams::greedy(16)).unwrap();
    assert!(g.response_text.contains("Paris"), "{g:?}");
    assert!(!g.response_text.contains("<|im_end|>"));
    // The GGUF's own template (it adds SmolLM2's default system prompt).
    let prompt = g.prompt.as_str().unwrap();
    assert!(
        prompt.ends_with(&chatml(&[(
            "user",
            "What is the capital of France? Answer in one word."
        )])),
        "{prompt}"
    );
    // Stop strings, the context guard and parameter checks behave as llama.cpp's.
    let stopped = model
        .generate(
            &messages,
            &GenerationParams {
                stop: vec!["Paris".into()],
                ..GenerationParams::greedy(16)
            },
        )
        .unwrap();
    assert!(!stopped.response_text.contains("Paris"), "{stopped:?}");
    assert_eq!(stopped.finish_reason, "stop");
    let err = model
        .generate(&messages, &GenerationParams::greedy(100_000))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("exceeds the context of 8192 tokens of `smol-candle`"),
        "{err}"
    );
    let err = model
        .generate(
            &messages,
            &GenerationParams {
                temperature: Some(-1.0),
                ..GenerationParams::default()
            },
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("temperature"), "{err}");
    let err = host
        .load(r#"{"model_name": "smol-candle", "threads": 0}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`threads` must be at least 1"), "{err}");
    // One thread gives the same greedy answer as every core.
    let one = host
        .load(r#"{"model_name": "smol-candle", "threads": 1}"#)
        .unwrap()
        .generate(&messages, &GenerationParams::greedy(16))
        .unwrap();
    assert_eq!(one.response, g.response);
}

// ---------------------------------------------------------------------------
// A tiny llama checkpoint, written here: random weights, a byte-level tokenizer.

const HIDDEN: usize = 16;
const LAYERS: usize = 2;
const HEADS: usize = 2;
const KV_HEADS: usize = 1;
const FFN: usize = 32;
const VOCAB: usize = 257; // 256 bytes + <|endoftext|>

fn write_tiny_llama(dir: &std::path::Path, seed: u64) {
    let head_dim = HIDDEN / HEADS;
    std::fs::write(
        dir.join("config.json"),
        json!({
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "hidden_size": HIDDEN, "intermediate_size": FFN, "vocab_size": VOCAB,
            "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
            "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 256,
            "tie_word_embeddings": false, "bos_token_id": null, "eos_token_id": 256
        })
        .to_string(),
    )
    .unwrap();
    // Byte-level BPE without merges: one token per byte, spelled in the byte alphabet.
    let mut printable: Vec<u32> = (33..=126).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut vocab = serde_json::Map::new();
    let mut extra = 0;
    for b in 0u32..256 {
        let c = if printable.contains(&b) {
            b
        } else {
            extra += 1;
            255 + extra
        };
        vocab.insert(char::from_u32(c).unwrap().to_string(), json!(b));
    }
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    std::fs::write(
        dir.join("tokenizer.json"),
        json!({
            "version": "1.0", "truncation": null, "padding": null,
            "added_tokens": [{"id": 256, "content": "<|endoftext|>", "single_word": false, "lstrip": false,
                              "rstrip": false, "normalized": false, "special": true}],
            "normalizer": null, "pre_tokenizer": byte_level, "post_processor": null, "decoder": byte_level,
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                      "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                      "vocab": vocab, "merges": []}
        })
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        json!({
            "chat_template": "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}assistant:",
            "eos_token": {"content": "<|endoftext|>"}, "add_bos_token": false
        })
        .to_string(),
    )
    .unwrap();

    let mut tensors: Vec<(String, Vec<usize>)> = vec![("model.embed_tokens.weight".into(), vec![VOCAB, HIDDEN])];
    for i in 0..LAYERS {
        let p = format!("model.layers.{i}");
        for (name, shape) in [
            ("self_attn.q_proj", vec![HEADS * head_dim, HIDDEN]),
            ("self_attn.k_proj", vec![KV_HEADS * head_dim, HIDDEN]),
            ("self_attn.v_proj", vec![KV_HEADS * head_dim, HIDDEN]),
            ("self_attn.o_proj", vec![HIDDEN, HEADS * head_dim]),
            ("mlp.gate_proj", vec![FFN, HIDDEN]),
            ("mlp.up_proj", vec![FFN, HIDDEN]),
            ("mlp.down_proj", vec![HIDDEN, FFN]),
            ("input_layernorm", vec![HIDDEN]),
            ("post_attention_layernorm", vec![HIDDEN]),
        ] {
            tensors.push((format!("{p}.{name}.weight"), shape));
        }
    }
    tensors.push(("model.norm.weight".into(), vec![HIDDEN]));
    tensors.push(("lm_head.weight".into(), vec![VOCAB, HIDDEN]));

    // safetensors: u64 header length, a JSON header, then little-endian f32 data.
    let mut rng = seed | 1;
    let mut data = Vec::new();
    let mut header = serde_json::Map::new();
    for (name, shape) in &tensors {
        let n: usize = shape.iter().product();
        let start = data.len();
        for _ in 0..n {
            let v = if shape.len() == 1 {
                1.0f32 // norms
            } else {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                ((rng >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.8
            };
            data.extend_from_slice(&v.to_le_bytes());
        }
        header.insert(
            name.clone(),
            json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut header = Value::Object(header).to_string().into_bytes();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&header);
    file.extend_from_slice(&data);
    std::fs::write(dir.join("model.safetensors"), file).unwrap();
}

#[test]
fn a_tiny_safetensors_llama_made_here_loads_and_generates_deterministically() {
    let dir = TempDir::new("tiny-llama");
    write_tiny_llama(dir.path(), 42);
    let entry = json!([{"model_name": "tiny", "backend": "huggingface_local",
                        "model_path": dir.path(), "premade_chat_template": true}]);
    let messages = [Message::system("Be odd."), Message::user("hi")];
    let greedy = GenerationParams::greedy(12);
    let run = || {
        let (host, _home) = lmhost_tests::host(Some(&entry.to_string()));
        let model = host.load("tiny").unwrap();
        let g = model.generate(&messages, &greedy).unwrap();
        let mut pieces = String::new();
        let s = model
            .generate_stream(&messages, &greedy, |p| pieces.push_str(p))
            .unwrap();
        assert_eq!(pieces, s.response_text);
        assert_eq!(s.response, g.response, "streaming changed the answer");
        // A seeded sample repeats.
        let seeded = GenerationParams {
            temperature: Some(1.0),
            seed: Some(5),
            max_tokens: Some(12),
            ..GenerationParams::default()
        };
        let a = model.generate(&messages, &seeded).unwrap();
        let b = model.generate(&messages, &seeded).unwrap();
        assert_eq!(a.response, b.response);
        g
    };
    let first = run();
    // The template comes from tokenizer_config.json.
    assert_eq!(first.prompt, json!("system: Be odd.\nuser: hi\nassistant:"));
    let prompt = "system: Be odd.\nuser: hi\nassistant:";
    assert_eq!(first.usage.prompt_tokens as usize, prompt.len(), "one token per byte");
    assert!(first.usage.completion_tokens >= 1);
    // Deterministic across loads: same weights, same tokens.
    let again = run();
    assert_eq!(again.response, first.response);
    assert_eq!(again.usage.completion_tokens, first.usage.completion_tokens);
    // Other weights give another answer (the weights are really used).
    let other = TempDir::new("tiny-llama-other");
    write_tiny_llama(other.path(), 7);
    let entry = json!([{"model_name": "tiny", "backend": "huggingface_local", "model_path": other.path()}]);
    let (host, _home) = lmhost_tests::host(Some(&entry.to_string()));
    let g = host
        .load("tiny")
        .unwrap()
        .generate(&messages, &GenerationParams::greedy(12))
        .unwrap();
    assert_ne!(g.response, first.response);

    // A broken checkpoint is a clear error naming the model and the file.
    std::fs::write(dir.path().join("config.json"), "{\"hidden_size\": 16}").unwrap();
    let entry = json!([{"model_name": "broken", "backend": "huggingface_local", "model_path": dir.path()}]);
    let (host, _home) = lmhost_tests::host(Some(&entry.to_string()));
    let err = host.load("broken").unwrap_err().to_string();
    assert!(err.contains("`broken`") && err.contains("config.json"), "{err}");
    // Another architecture is refused, not run with the wrong weights.
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(other.path().join("config.json")).unwrap()).unwrap();
    config["model_type"] = json!("qwen2");
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let (host, _home) = lmhost_tests::host(Some(&entry.to_string()));
    let err = host.load("broken").unwrap_err().to_string();
    assert!(err.contains("model_type `qwen2`"), "{err}");
}

#[test]
fn a_checkpoint_named_by_repository_comes_from_the_hub_and_runs() {
    use lmhost_tests::fake_hub::{host_with_hub, FakeFile, FakeHub, FakeRepo};
    let made = TempDir::new("tiny-llama-hub");
    write_tiny_llama(made.path(), 42);
    let file = |name: &str, lfs: bool| FakeFile {
        name: name.into(),
        content: std::fs::read(made.path().join(name)).unwrap(),
        lfs,
    };
    let hub = FakeHub::start(vec![FakeRepo {
        id: "test-org/tiny-llama".into(),
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        files: vec![
            file("config.json", false),
            file("tokenizer.json", false),
            file("tokenizer_config.json", false),
            file("model.safetensors", true),
            FakeFile::small("README.md", "not fetched"),
        ],
        token: None,
    }]);
    let registry =
        json!([{"model_name": "tiny-hub", "backend": "huggingface_local", "huggingface_id": "test-org/tiny-llama"}]);
    let (host, _home) = host_with_hub(&hub, &registry, "hub-candle");
    let g = host
        .load("tiny-hub")
        .unwrap()
        .generate(&[Message::user("hi")], &GenerationParams::greedy(6))
        .unwrap();
    assert_eq!(g.prompt, json!("user: hi\nassistant:"));
    // The same answer as from the folder the repository was made from.
    let entry = json!([{"model_name": "tiny", "backend": "huggingface_local", "model_path": made.path()}]);
    let (local, _home) = lmhost_tests::host(Some(&entry.to_string()));
    let want = local
        .load("tiny")
        .unwrap()
        .generate(&[Message::user("hi")], &GenerationParams::greedy(6))
        .unwrap();
    assert_eq!(g.response, want.response);
    let fetched: Vec<String> = hub.requests().iter().map(|r| r.path.clone()).collect();
    assert!(!fetched.iter().any(|p| p.contains("README")), "{fetched:?}");
}
