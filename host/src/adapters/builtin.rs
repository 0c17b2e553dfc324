//! Where adapters come from: the ones compiled into lmhost (built from `guests/`
//! by `build.rs`), and the adapter folders searched for `<name>.wasm` when an
//! entry names an adapter that is not built in (e.g. `chat-template-py`).

use std::path::{Path, PathBuf};

/// Directory where the build put every guest, test guests included. For tests.
#[doc(hidden)]
pub const GUEST_DIR: &str = env!("LMHOST_GUEST_DIR");

/// The host-internal template renderer (see `template.rs`).
pub(crate) const TEMPLATE_RENDERER: &[u8] =
    include_bytes!(concat!(env!("LMHOST_GUEST_DIR"), "/template_renderer.wasm"));

/// Names of the built-in adapters, as registries name them.
pub const BUILTIN_ADAPTERS: &[&str] = &[
    "chat-template",
    "openai-chat",
    "anthropic-messages",
    "google-gemini",
    "cohere-chat",
];

/// Where `make adapters` puts the Python and JavaScript adapters of this checkout.
pub const REPO_ADAPTER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guests/out");

/// The component bytes of a built-in adapter.
pub fn builtin_adapter(name: &str) -> Option<&'static [u8]> {
    match name {
        "chat-template" => Some(include_bytes!(concat!(env!("LMHOST_GUEST_DIR"), "/chat_template.wasm"))),
        "openai-chat" => Some(include_bytes!(concat!(env!("LMHOST_GUEST_DIR"), "/openai_chat.wasm"))),
        "anthropic-messages" => Some(include_bytes!(concat!(
            env!("LMHOST_GUEST_DIR"),
            "/anthropic_messages.wasm"
        ))),
        "google-gemini" => Some(include_bytes!(concat!(env!("LMHOST_GUEST_DIR"), "/google_gemini.wasm"))),
        "cohere-chat" => Some(include_bytes!(concat!(env!("LMHOST_GUEST_DIR"), "/cohere_chat.wasm"))),
        _ => None,
    }
}

/// The adapter a backend uses when its registry entry names none.
pub fn default_adapter(backend: &str) -> Option<&'static str> {
    match backend {
        "llamacpp" | "huggingface_local" | "mock" | "programmatic" | "human" | "terminal" => Some("chat-template"),
        "openai" | "openai_compatible" | "openrouter" | "mistral" => Some("openai-chat"),
        "anthropic" => Some("anthropic-messages"),
        "google" => Some("google-gemini"),
        "cohere" => Some("cohere-chat"),
        _ => None,
    }
}

/// The folders searched, in order, for `<name>.wasm` when an adapter is named but
/// not built in: `$LMHOST_ADAPTERS_DIR` when set, `<home>/adapters`, then this
/// checkout's `guests/out` when it exists.
pub fn adapter_dirs(home: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("LMHOST_ADAPTERS_DIR").filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(dir));
    }
    dirs.push(home.join("adapters"));
    let repo = Path::new(REPO_ADAPTER_DIR);
    if repo.is_dir() {
        dirs.push(std::fs::canonicalize(repo).unwrap_or_else(|_| repo.to_path_buf()));
    }
    dirs
}

/// Whether `reference` is an adapter name (looked up in the adapter folders)
/// rather than a path: letters, digits, `-`, `_` and `.`, not ending in `.wasm`.
pub fn is_adapter_name(reference: &str) -> bool {
    !reference.is_empty()
        && !reference.ends_with(".wasm")
        && !reference.starts_with('.')
        && reference
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// How to build the adapters that ship as sources, for error messages.
pub(crate) fn build_hint(name: &str) -> &'static str {
    match name {
        "chat-template-py" | "chat-template-js" => {
            "build it with `make adapters` (it goes to guests/out/), or copy it into one of these folders"
        }
        _ => {
            "build it with `lmhost adapter build DIR` and copy the .wasm into one of these folders \
             (or set LMHOST_ADAPTERS_DIR)"
        }
    }
}
