//! The backends lmhost knows by name (clemcore's names), and what each needs.

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

/// One known backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend {
    /// The registry's `backend` value.
    pub name: &'static str,
    /// Other names registries use for it.
    pub aliases: &'static [&'static str],
    /// Local, remote or scripted.
    pub kind: BackendKind,
    /// Whether this build can run it.
    pub runnable: bool,
    /// The section of `key.json` holding its credentials.
    pub key_section: Option<&'static str>,
    /// The environment variable holding its API key.
    pub key_env: Option<&'static str>,
    /// Default base URL of its API.
    pub default_base_url: Option<&'static str>,
    /// How its API key is sent.
    pub auth: Auth,
}

const fn backend(name: &'static str, kind: BackendKind, runnable: bool) -> Backend {
    Backend {
        name,
        aliases: &[],
        kind,
        runnable,
        key_section: None,
        key_env: None,
        default_base_url: None,
        auth: Auth::None,
    }
}

const fn remote(name: &'static str, env: &'static str, url: &'static str) -> Backend {
    Backend {
        key_section: Some(name),
        key_env: Some(env),
        default_base_url: Some(url),
        auth: Auth::Bearer,
        ..backend(name, BackendKind::Remote, true)
    }
}

/// Every backend lmhost knows, in the order `lmhost list backends` shows them.
pub const BACKENDS: &[Backend] = &[
    Backend {
        key_section: Some("huggingface"),
        key_env: Some("HF_TOKEN"),
        ..backend("llamacpp", BackendKind::Local, true)
    },
    Backend {
        key_section: Some("huggingface"),
        key_env: Some("HF_TOKEN"),
        ..backend("huggingface_local", BackendKind::Local, true)
    },
    remote("openai", "OPENAI_API_KEY", "https://api.openai.com/v1"),
    Backend {
        default_base_url: None,
        ..remote("openai_compatible", "OPENAI_COMPATIBLE_API_KEY", "")
    },
    remote("openrouter", "OPENROUTER_API_KEY", "https://openrouter.ai/api/v1"),
    remote("mistral", "MISTRAL_API_KEY", "https://api.mistral.ai/v1"),
    Backend {
        auth: Auth::Header("x-api-key"),
        ..remote("anthropic", "ANTHROPIC_API_KEY", "https://api.anthropic.com/v1")
    },
    Backend {
        auth: Auth::Header("x-goog-api-key"),
        ..remote(
            "google",
            "GOOGLE_API_KEY",
            "https://generativelanguage.googleapis.com/v1beta",
        )
    },
    remote("cohere", "COHERE_API_KEY", "https://api.cohere.com/v2"),
    Backend {
        aliases: &["programmatic"],
        ..backend("mock", BackendKind::Scripted, true)
    },
    Backend {
        aliases: &["terminal"],
        ..backend("human", BackendKind::Scripted, true)
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
        .filter(|b| b.runnable)
        .flat_map(|b| std::iter::once(b.name).chain(b.aliases.iter().copied()))
        .collect()
}
