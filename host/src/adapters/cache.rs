//! On-disk cache of precompiled components.
//!
//! Compiling a component with cranelift takes tens to hundreds of milliseconds;
//! loading a precompiled one takes about one. Files are keyed by the SHA-256 of
//! the component and by the engine's compatibility hash (wasmtime version and
//! every setting that affects code), written to a temp file and renamed, so a
//! crash never leaves a half-written entry. Only this module deserializes
//! precompiled code, and only from the cache directory lmhost owns.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// The content hash of a component, hex.
pub(crate) fn content_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn cache_path(engine: &Engine, dir: &Path, hash: &str) -> PathBuf {
    let mut h = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    dir.join(format!("{hash}-{:016x}.cwasm", h.finish()))
}

/// Compile `bytes`, through the cache in `dir` when there is one. Returns the
/// component and whether it came from the cache.
pub(crate) fn load(
    engine: &Engine,
    bytes: &[u8],
    hash: &str,
    dir: Option<&Path>,
) -> wasmtime::Result<(Component, bool)> {
    let Some(dir) = dir else {
        return Ok((Component::new(engine, bytes)?, false));
    };
    let path = cache_path(engine, dir, hash);
    if path.is_file() {
        // SAFETY: the file was written by `precompile_component` of an engine with
        // the same compatibility hash (it is in the name), into lmhost's own cache.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok((component, true)),
            Err(e) => tracing::warn!(path = %path.display(), "ignoring unusable cache entry: {e:#}"),
        }
    }
    let compiled = engine.precompile_component(bytes)?;
    if let Err(e) = write_atomically(dir, &path, &compiled) {
        tracing::warn!(dir = %dir.display(), "cannot write the component cache: {e}");
    }
    // SAFETY: `compiled` was produced just now by this engine.
    let component = unsafe { Component::deserialize(engine, &compiled)? };
    Ok((component, false))
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
