//! The suite's inputs: the fixed `model-info` ([`fixed_model_info`]), a remote
//! backend's ([`remote_model_info`]), which one an adapter is checked with
//! ([`model_for`]), the conversations, stop strings, raw outputs and bad
//! replies, and the parameters and messages the suite's calls carry.

use serde_json::{json, Map, Value};

use crate::adapters::{wit, Adapter};
use crate::backends::{Backend, BackendKind, BACKENDS};

/// The ChatML template of the fixed model: writes the BOS token itself, so a
/// conforming adapter must not ask for a second one.
pub const CHATML_TEMPLATE: &str = "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// The `model-info` the suite uses when no model is given.
pub fn fixed_model_info() -> wit::ModelInfo {
    wit::ModelInfo {
        name: "conformance".into(),
        backend: "mock".into(),
        spec_json: json!({
            "model_name": "conformance",
            "backend": "mock",
            "premade_chat_template": true,
            "eos_to_cull": "<\\|im_end\\|>",
        })
        .to_string(),
        builtin_template: Some(CHATML_TEMPLATE.into()),
        bos_token: Some("<s>".into()),
        eos_token: Some("<|im_end|>".into()),
        add_bos: true,
        context_length: Some(4096),
    }
}

/// The `model-info` of a remote entry of `backend`, as the suite uses it for
/// adapters that shape HTTP requests: no template, no BOS/EOS, no credentials.
pub fn remote_model_info(backend: &str) -> wit::ModelInfo {
    wit::ModelInfo {
        name: "conformance".into(),
        backend: backend.into(),
        spec_json: json!({
            "model_name": "conformance",
            "backend": backend,
            "model_id": "conformance-model",
            "call_name": "conformance-model",
        })
        .to_string(),
        builtin_template: None,
        bos_token: None,
        eos_token: None,
        add_bos: false,
        context_length: None,
    }
}

/// The `model-info` to check `adapter` with when no model is given: the fixed
/// one ([`fixed_model_info`]) when the adapter makes a prompt of it, else the
/// first remote backend's ([`remote_model_info`]) on which it shapes an HTTP
/// request, else the fixed one again (the prompt suite then says what is
/// wrong). Remote backends are tried in [`BACKENDS`] order, those whose default
/// adapter has the adapter's name first (an adapter that takes any backend is
/// then checked on its own).
pub fn model_for(adapter: &Adapter) -> wit::ModelInfo {
    let fixed = fixed_model_info();
    let turns = messages(CONVERSATIONS[0].1);
    if let Ok(wit::Request::Prompt(_)) = adapter.shape_request(&fixed, &turns, &params(&[])) {
        return fixed;
    }
    let remote = || BACKENDS.iter().filter(|b| b.kind == BackendKind::Remote);
    let own = |b: &&Backend| b.default_adapter == adapter.name();
    remote()
        .filter(own)
        .chain(remote().filter(|b| !own(b)))
        .map(|b| remote_model_info(b.name))
        .find(|model| {
            matches!(
                adapter.shape_request(model, &turns, &params(&[])),
                Ok(wit::Request::Http(_))
            )
        })
        .unwrap_or(fixed)
}

/// The conversations every adapter must render.
pub const CONVERSATIONS: &[(&str, &[(&str, &str)])] = &[
    ("roles", &[("system", "You are terse."), ("user", "What is 2+2?")]),
    (
        "multi-turn",
        &[
            ("system", "Be brief."),
            ("user", "Hi"),
            ("assistant", "Hello! How can I help?"),
            ("user", "Name a colour."),
        ],
    ),
    ("empty-content", &[("user", "")]),
    (
        "unicode",
        &[(
            "user",
            "Grüße, 世界! 🌍 «ünïcödé» \"quotes\", \\back\\slash, {{ not a tag }} and a\nnew line",
        )],
    ),
    // Ends on an assistant turn: the model continues it (no generation prompt,
    // the turn left open), as transformers' `continue_final_message`.
    (
        "continue-final",
        &[
            ("system", "Be brief."),
            ("user", "Name a colour."),
            ("assistant", "The colour is"),
        ],
    ),
];

/// Stop strings the adapter must pass through.
pub const STOP: &[&str] = &["\nUser:", "</s>"];

/// Stop strings an HTTP adapter must put in its request body.
pub const HTTP_STOP: &[&str] = &["STOP-1", "STOP-2"];

/// The base URL an HTTP adapter's paths are joined to.
pub const HTTP_BASE: &str = "https://api.example.invalid/v1";

/// Replies no provider sends: each must be read as an error value or a completion.
pub const BAD_REPLIES: &[&str] = &["", "not json", "{}", "[]", BOOM_REPLY];

/// A provider's error object: `parse-response` must turn it into an error naming `boom`.
pub const BOOM_REPLY: &str = "{\"error\": {\"message\": \"boom\"}}";

/// Raw engine outputs, `{eos}` standing for the model's EOS token.
pub const RAW_OUTPUTS: &[&str] = &[
    "  The answer is 4.{eos}",
    "Grüße 🌍 aus Köln.{eos}\n",
    "no end token here",
    "one{eos} two{eos}",
    "",
];

pub(super) fn params(stop: &[&str]) -> wit::Params {
    params_with(stop, false)
}

pub(super) fn params_with(stop: &[&str], stream: bool) -> wit::Params {
    let greedy = crate::GenerationParams {
        stop: stop.iter().map(|s| s.to_string()).collect(),
        ..crate::GenerationParams::greedy(64)
    };
    wit::Params {
        stream,
        ..wit::Params::from(&greedy)
    }
}

pub(super) fn messages(turns: &[(&str, &str)]) -> Vec<wit::Message> {
    turns
        .iter()
        .map(|(role, content)| wit::Message::new(*role, *content))
        .collect()
}

/// The request a raw output is parsed against when no `shape-request` made
/// one: an empty prompt.
pub(super) fn unshaped() -> wit::Request {
    wit::Request::empty_prompt()
}

pub(super) fn spec_of(model: &wit::ModelInfo) -> Map<String, Value> {
    match serde_json::from_str(&model.spec_json) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

pub(super) fn spec_str<'a>(spec: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    spec.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}
