//! The adapters compiled into lmhost (built from `guests/` by `build.rs`).

/// Directory where the build put every guest, test guests included. For tests.
#[doc(hidden)]
pub const GUEST_DIR: &str = env!("LMHOST_GUEST_DIR");

/// The host-internal template renderer (see `template.rs`).
pub(crate) const TEMPLATE_RENDERER: &[u8] =
    include_bytes!(concat!(env!("LMHOST_GUEST_DIR"), "/template_renderer.wasm"));

/// Names of the built-in adapters, as registries name them.
pub const BUILTIN_ADAPTERS: &[&str] = &["chat-template"];

/// The component bytes of a built-in adapter.
pub fn builtin_adapter(name: &str) -> Option<&'static [u8]> {
    match name {
        "chat-template" => Some(include_bytes!(concat!(env!("LMHOST_GUEST_DIR"), "/chat_template.wasm"))),
        _ => None,
    }
}

/// The adapter a backend uses when its registry entry names none.
pub fn default_adapter(backend: &str) -> Option<&'static str> {
    match backend {
        "llamacpp" | "huggingface_local" | "mock" | "programmatic" | "human" | "terminal" => Some("chat-template"),
        _ => None,
    }
}
