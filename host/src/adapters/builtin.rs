//! Where adapters come from: the ones compiled into lmhost (built from `guests/`
//! by `build.rs`), and the adapter folders searched for `<name>.wasm` when an
//! entry names an adapter that is not built in (e.g. `chat-template-py`).

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
