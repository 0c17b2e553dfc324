//! THE backend table: one row per backend lmhost knows by name (clemcore's
//! names), holding everything the rest of the host needs to know about it.
//!
//! Owns: names and aliases, which engine runs a backend, its default adapter,
//! how its API key is found and sent, its default URL, the keys an entry needs,
//! and whether it may be served over HTTP. Adding a backend is one row here plus
//! one engine file (for a new kind of engine).
//!
//! Must not import anything from the crate: every other module may read it.

/// How a backend runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Weights on this machine.
    Local,
    /// A remote API over HTTP.
    Remote,
    /// No model: scripted replies or a person.
    Scripted,
}

impl BackendKind {
    /// The word `lmhost list backends` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Local => "local",
            BackendKind::Remote => "remote",
            BackendKind::Scripted => "scripted",
        }
    }
}

/// The engine that runs a backend's models (one file each under `engines/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// llama.cpp on a GGUF file (feature `llama`).
    Llama,
    /// candle on a GGUF file or a safetensors checkpoint (feature `candle`).
    Candle,
    /// A remote API over HTTP, the request shaped by the adapter (feature `remote`).
    Http,
    /// Scripted replies.
    Mock,
    /// A person at the terminal.
    Human,
}

impl EngineKind {
    /// Whether this build of lmhost contains the engine (its cargo feature is on).
    pub const fn built(self) -> bool {
        match self {
            EngineKind::Llama => cfg!(feature = "llama"),
            EngineKind::Candle => cfg!(feature = "candle"),
            EngineKind::Http => cfg!(feature = "remote"),
            EngineKind::Mock | EngineKind::Human => true,
        }
    }

    /// Whether the engine loads a weights file (`model_path` or `huggingface_id`).
    pub const fn loads_file(self) -> bool {
        matches!(self, EngineKind::Llama | EngineKind::Candle)
    }
}

/// How the host sends a backend's API key. Adapters never see the key, and may
/// not set these headers themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No key is sent.
    None,
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// The key as the value of this header.
    Header(&'static str),
}

impl Auth {
    /// The header the key travels in (lowercase), if any.
    pub const fn header(self) -> Option<&'static str> {
        match self {
            Auth::None => None,
            Auth::Bearer => Some("authorization"),
            Auth::Header(name) => Some(name),
        }
    }
}

/// Where a backend's key is found: a section of clemcore's `key.json` and an
/// environment variable (which wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySource {
    /// The section of `key.json` holding the credentials.
    pub section: &'static str,
    /// The environment variable holding the API key.
    pub env: &'static str,
}

/// The Hugging Face token: gated downloads of local weights.
pub const HUGGINGFACE_KEY: KeySource = KeySource {
    section: "huggingface",
    env: "HF_TOKEN",
};

/// Keys an entry must have: it is complete when every key of at least one group
/// is set. `message` says so in words for `registry check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Required {
    /// Alternatives: each a list of keys that must all be set.
    pub any_of: &'static [&'static [&'static str]],
    /// What is missing, for the error ("needs `model_id`").
    pub message: &'static str,
}

/// One known backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend {
    /// The registry's `backend` value.
    pub name: &'static str,
    /// Other names registries use for it.
    pub aliases: &'static [&'static str],
    /// Local, remote or scripted.
    pub kind: BackendKind,
    /// The engine that runs it.
    pub engine: EngineKind,
    /// The adapter an entry of this backend uses when it names none.
    pub default_adapter: &'static str,
    /// Where its credentials are found.
    pub key: Option<KeySource>,
    /// Whether a remote call needs a key (a local OpenAI-compatible server usually wants none).
    pub key_required: bool,
    /// How its API key is sent.
    pub auth: Auth,
    /// The header carrying key.json's `organization`, if the API has one.
    pub organization_header: Option<&'static str>,
    /// Default base URL of its API.
    pub default_base_url: Option<&'static str>,
    /// The keys an entry of this backend needs, if any.
    pub required: Option<Required>,
    /// Whether `lmhost serve` may serve it (`human` reads the server's own terminal).
    pub servable: bool,
}

impl Backend {
    /// Whether this build can run it.
    pub const fn runnable(&self) -> bool {
        self.engine.built()
    }

    /// The section of `key.json` holding its credentials.
    pub fn key_section(&self) -> Option<&'static str> {
        self.key.map(|k| k.section)
    }

    /// The environment variable holding its API key.
    pub fn key_env(&self) -> Option<&'static str> {
        self.key.map(|k| k.env)
    }

    /// The keys of `has` this backend misses, as the error to report; `None` when complete.
    pub fn missing_keys(&self, has: impl Fn(&str) -> bool) -> Option<&'static str> {
        let required = self.required?;
        let complete = required.any_of.iter().any(|group| group.iter().all(|k| has(k)));
        (!complete).then_some(required.message)
    }
}

const fn local(name: &'static str, engine: EngineKind, required: Required) -> Backend {
    Backend {
        name,
        aliases: &[],
        kind: BackendKind::Local,
        engine,
        default_adapter: "chat-template",
        key: Some(HUGGINGFACE_KEY),
        key_required: false,
        auth: Auth::None,
        organization_header: None,
        default_base_url: None,
        required: Some(required),
        servable: true,
    }
}

const fn remote(name: &'static str, env: &'static str, url: &'static str, adapter: &'static str) -> Backend {
    Backend {
        name,
        aliases: &[],
        kind: BackendKind::Remote,
        engine: EngineKind::Http,
        default_adapter: adapter,
        key: Some(KeySource { section: name, env }),
        key_required: true,
        auth: Auth::Bearer,
        organization_header: None,
        default_base_url: Some(url),
        required: Some(NEEDS_MODEL_ID),
        servable: true,
    }
}

const fn scripted(name: &'static str, alias: &'static [&'static str], engine: EngineKind) -> Backend {
    Backend {
        name,
        aliases: alias,
        kind: BackendKind::Scripted,
        engine,
        default_adapter: "chat-template",
        key: None,
        key_required: false,
        auth: Auth::None,
        organization_header: None,
        default_base_url: None,
        required: None,
        servable: true,
    }
}

const NEEDS_MODEL_ID: Required = Required {
    any_of: &[&["model_id"]],
    message: "needs `model_id`",
};

/// Every backend lmhost knows, in the order `lmhost list backends` shows them.
pub const BACKENDS: &[Backend] = &[
    local(
        "llamacpp",
        EngineKind::Llama,
        Required {
            any_of: &[&["model_path"], &["huggingface_id", "filename"]],
            message: "needs `model_path`, or `huggingface_id` and `filename`",
        },
    ),
    local(
        "huggingface_local",
        EngineKind::Candle,
        Required {
            any_of: &[&["huggingface_id"], &["model_path"]],
            message: "needs `huggingface_id` or `model_path`",
        },
    ),
    Backend {
        organization_header: Some("openai-organization"),
        ..remote("openai", "OPENAI_API_KEY", "https://api.openai.com/v1", "openai-chat")
    },
    Backend {
        default_base_url: None,
        key_required: false,
        required: Some(Required {
            any_of: &[&["model_id"], &["call_name"]],
            message: "needs `model_id` (or `call_name`)",
        }),
        ..remote("openai_compatible", "OPENAI_COMPATIBLE_API_KEY", "", "openai-chat")
    },
    Backend {
        required: Some(Required {
            any_of: &[&["model_id"], &["huggingface_id"]],
            message: "needs `model_id` (or `huggingface_id` as the model slug)",
        }),
        ..remote(
            "openrouter",
            "OPENROUTER_API_KEY",
            "https://openrouter.ai/api/v1",
            "openai-chat",
        )
    },
    remote("mistral", "MISTRAL_API_KEY", "https://api.mistral.ai/v1", "openai-chat"),
    Backend {
        auth: Auth::Header("x-api-key"),
        ..remote(
            "anthropic",
            "ANTHROPIC_API_KEY",
            "https://api.anthropic.com/v1",
            "anthropic-messages",
        )
    },
    Backend {
        auth: Auth::Header("x-goog-api-key"),
        ..remote(
            "google",
            "GOOGLE_API_KEY",
            "https://generativelanguage.googleapis.com/v1beta",
            "google-gemini",
        )
    },
    remote("cohere", "COHERE_API_KEY", "https://api.cohere.com/v2", "cohere-chat"),
    scripted("mock", &["programmatic"], EngineKind::Mock),
    Backend {
        servable: false,
        ..scripted("human", &["terminal"], EngineKind::Human)
    },
];

/// The known backend a registry name refers to (aliases included).
pub fn find_backend(name: &str) -> Option<&'static Backend> {
    BACKENDS.iter().find(|b| b.name == name || b.aliases.contains(&name))
}

/// Names of the backends this build runs, aliases included.
pub fn runnable_backend_names() -> Vec<&'static str> {
    BACKENDS
        .iter()
        .filter(|b| b.runnable())
        .flat_map(|b| std::iter::once(b.name).chain(b.aliases.iter().copied()))
        .collect()
}

/// Whether `header` (lowercase) carries a credential of some backend.
pub fn is_credential_header(header: &str) -> bool {
    BACKENDS
        .iter()
        .flat_map(|b| [b.auth.header(), b.organization_header])
        .flatten()
        .any(|h| h == header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_are_unique() {
        let mut names: Vec<&str> = BACKENDS
            .iter()
            .flat_map(|b| std::iter::once(b.name).chain(b.aliases.iter().copied()))
            .collect();
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all);
    }

    #[test]
    fn every_remote_backend_has_a_key_source_and_an_http_engine() {
        for b in BACKENDS.iter().filter(|b| b.kind == BackendKind::Remote) {
            assert!(b.key.is_some(), "{}", b.name);
            assert_eq!(b.engine, EngineKind::Http, "{}", b.name);
        }
    }

    #[test]
    fn required_keys_accept_any_complete_group() {
        let llama = find_backend("llamacpp").unwrap();
        assert_eq!(llama.missing_keys(|k| k == "model_path"), None);
        assert_eq!(llama.missing_keys(|k| k == "huggingface_id" || k == "filename"), None);
        assert!(llama.missing_keys(|k| k == "huggingface_id").is_some());
        assert_eq!(find_backend("mock").unwrap().missing_keys(|_| false), None);
    }

    #[test]
    fn credential_headers_come_from_the_table() {
        for h in ["authorization", "x-api-key", "x-goog-api-key", "openai-organization"] {
            assert!(is_credential_header(h), "{h}");
        }
        assert!(!is_credential_header("content-type"));
    }
}
