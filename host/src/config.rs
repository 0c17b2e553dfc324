//! Configuration: [`HostConfig`] (where the host finds its files and what limits
//! it applies), [`HubOptions`] (where model files are downloaded from), lmhost's
//! home folder, and **every read of the process environment** in the library.
//!
//! No constructor elsewhere reads the environment behind its caller's back: a
//! caller builds a [`HostConfig`] (from the environment with
//! [`HostConfig::from_env`], or field by field) and hands it down. The variables
//! read are: `LMHOST_HOME`, `HOME`, `LMHOST_MODELS_DIR`, `LMHOST_ADAPTERS_DIR`,
//! `HF_ENDPOINT`, `HF_HOME`, `HF_HUB_CACHE`, `XDG_CACHE_HOME`, `HF_TOKEN`,
//! `HF_HUB_OFFLINE`, the API-key variables of the backend table (when
//! [`HostConfig::keys_from_env`] is set), `LMHOST_TRUSTED_REGISTRIES`,
//! `LMHOST_LLAMA_LOG` and `LMHOST_LLAMA_CPU`.
//!
//! Imports only the backend table, credentials and the sandbox's limit types;
//! must not import engines, the registry or the model layer.

use std::path::{Path, PathBuf};

use crate::adapters::{AdapterLimits, REPO_ADAPTER_DIR};
use crate::credentials::{KeyFileError, KeyStore, Secret};

/// A read of the process environment. The one place the library calls `std::env::var`.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// `$LMHOST_HOME`, default `~/.lmhost`.
pub fn default_home() -> PathBuf {
    home_from(&env_var)
}

fn home_from(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    env("LMHOST_HOME").map(PathBuf::from).unwrap_or_else(|| {
        env("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".lmhost")
    })
}

/// The llama.cpp CPU variant to load instead of the best one for this CPU
/// (`LMHOST_LLAMA_CPU`, e.g. `haswell`), for comparing variants.
pub fn llama_cpu_variant() -> Option<String> {
    env_var("LMHOST_LLAMA_CPU").filter(|v| !v.is_empty())
}

/// The candle engine's kernels to use instead of the most capable this CPU
/// runs (`LMHOST_CANDLE_SIMD`: `vnni`, `avx2` or `scalar`), for comparing them.
pub fn candle_simd() -> Option<String> {
    env_var("LMHOST_CANDLE_SIMD").filter(|v| !v.is_empty())
}

/// Whether llama.cpp's own log is shown (`LMHOST_LLAMA_LOG` set).
pub fn llama_log_enabled() -> bool {
    std::env::var_os("LMHOST_LLAMA_LOG").is_some()
}

/// Where the host finds its files.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// lmhost's home: user registry, component cache, models (`$LMHOST_HOME`, default `~/.lmhost`).
    pub home: PathBuf,
    /// Registry files consulted before the default layers (`--registry`).
    pub registry_files: Vec<PathBuf>,
    /// Folders searched for relative `model_path`s, in order.
    pub model_dirs: Vec<PathBuf>,
    /// Keep precompiled adapters in `<home>/cache/components`.
    pub component_cache: bool,
    /// Limits for every adapter call.
    pub adapter_limits: AdapterLimits,
    /// Folders searched for `<name>.wasm` when an entry names an adapter that is
    /// not built in ([`adapter_dirs`]: `$LMHOST_ADAPTERS_DIR`, `<home>/adapters`,
    /// this checkout's `guests/out`).
    pub adapter_dirs: Vec<PathBuf>,
    /// Where `llamacpp` entries with `huggingface_id` + `filename` get their files
    /// ([`HubOptions::from_lookup`] on the environment and `home`'s key.json).
    pub hub: HubOptions,
    /// The key.json files remote backends take their keys from, first wins per
    /// backend ([`KeyStore::default_files`]).
    pub key_files: Vec<PathBuf>,
    /// Whether API keys in the environment (`OPENAI_API_KEY`, ...) override them.
    pub keys_from_env: bool,
    /// Registry files whose entries may send the user's keys to their own
    /// `base_url` (`--trusted-registry`, `$LMHOST_TRUSTED_REGISTRIES`, a list
    /// separated like `PATH`). Entries of other files (and ad-hoc queries) get a
    /// key only for the backend's default origin, key.json's `base_url` or a
    /// section's `trusted_origins`. Trusting a file does not load it: it must
    /// also be a layer (`registry_files` or a default location).
    pub trusted_registries: Vec<PathBuf>,
    /// CPU threads for every local model (`llamacpp`, `huggingface_local`) this
    /// host loads, over the entry's own `threads` (`run/chat/serve --threads`).
    pub threads: Option<u32>,
}

impl HostConfig {
    /// From the environment: `LMHOST_HOME` (default `~/.lmhost`), `LMHOST_MODELS_DIR`
    /// (default `<home>/models`), then `./models`.
    pub fn from_env() -> Self {
        Self::with_home(default_home())
    }

    /// With an explicit home folder (tests use a temporary one); everything else
    /// (models folder, adapter folders, hub options, key files) still comes from
    /// the environment, as in [`from_env`](Self::from_env).
    pub fn with_home(home: PathBuf) -> Self {
        Self::from_lookup(home, env_var)
    }

    /// With an explicit home folder and an explicit environment lookup.
    pub fn from_lookup(home: PathBuf, env: impl Fn(&str) -> Option<String>) -> Self {
        let models = env("LMHOST_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join("models"));
        Self {
            model_dirs: model_dirs(models),
            hub: HubOptions::from_lookup(&home, &env),
            adapter_dirs: adapter_dirs(&home, env("LMHOST_ADAPTERS_DIR").map(PathBuf::from)),
            key_files: KeyStore::default_files(&home, env("HOME").map(PathBuf::from)),
            keys_from_env: true,
            trusted_registries: env("LMHOST_TRUSTED_REGISTRIES")
                .map(|list| {
                    std::env::split_paths(&list)
                        .filter(|p| !p.as_os_str().is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            home,
            registry_files: Vec::new(),
            component_cache: true,
            adapter_limits: AdapterLimits::default(),
            threads: None,
        }
    }

    /// The credentials of [`key_files`](Self::key_files), with the environment's
    /// API-key variables on top when [`keys_from_env`](Self::keys_from_env) is set.
    pub fn key_store(&self) -> Result<KeyStore, KeyFileError> {
        let env = self.keys_from_env;
        Ok(
            KeyStore::from_files(&self.key_files, |name| env.then(|| env_var(name)).flatten())?
                .trust_registries(&self.trusted_registries),
        )
    }

    /// The folder of precompiled adapters, when the disk cache is on.
    pub fn component_cache_dir(&self) -> Option<PathBuf> {
        self.component_cache.then(|| self.home.join("cache").join("components"))
    }
}

/// Where weights are looked for: `models` (`$LMHOST_MODELS_DIR`, else
/// `<home>/models`), `./models`, then the `models/` of the checkout lmhost was
/// built from (where `make model` puts the default model) when it exists, so
/// that a build from a checkout finds it from any working directory (the
/// Python package in a notebook, clemcore in a game folder).
fn model_dirs(models: PathBuf) -> Vec<PathBuf> {
    let mut dirs = vec![models, PathBuf::from("models")];
    let repo = Path::new(REPO_MODEL_DIR);
    if repo.is_dir() {
        dirs.push(std::fs::canonicalize(repo).unwrap_or_else(|_| repo.to_path_buf()));
    }
    dirs
}

/// The `models/` folder of the checkout this build comes from.
const REPO_MODEL_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models");

/// The folders searched, in order, for `<name>.wasm` when an adapter is named but
/// not built in: `explicit` (`$LMHOST_ADAPTERS_DIR`) when given, `<home>/adapters`,
/// then this checkout's `guests/out` when it exists.
pub fn adapter_dirs(home: &Path, explicit: Option<PathBuf>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = explicit.filter(|d| !d.as_os_str().is_empty()) {
        dirs.push(dir);
    }
    dirs.push(home.join("adapters"));
    let repo = Path::new(REPO_ADAPTER_DIR);
    if repo.is_dir() {
        dirs.push(std::fs::canonicalize(repo).unwrap_or_else(|_| repo.to_path_buf()));
    }
    dirs
}

/// The public hub, used when `HF_ENDPOINT` is not set.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Where and how to fetch model files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubOptions {
    /// Base URL of the hub, without a trailing slash (`HF_ENDPOINT`).
    pub endpoint: String,
    /// The hub cache folder: `$HF_HUB_CACHE`, else `$HF_HOME/hub`
    /// (`HF_HOME` defaults to `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`).
    pub cache_dir: PathBuf,
    /// Token sent as `Authorization: Bearer` (`HF_TOKEN`, else the `huggingface`
    /// section of key.json).
    pub token: Option<Secret>,
    /// Use the cache only, never the network (`HF_HUB_OFFLINE=1`).
    pub offline: bool,
}

impl HubOptions {
    /// From an environment lookup (`HF_ENDPOINT`, `HF_HOME`, `HF_HUB_CACHE`,
    /// `XDG_CACHE_HOME`, `HOME`, `HF_TOKEN`, `HF_HUB_OFFLINE`) and the key files
    /// of `lmhost_home` (see [`KeyStore`]); `HF_TOKEN` wins over key.json.
    pub fn from_lookup(lmhost_home: &Path, env: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let endpoint = var("HF_ENDPOINT")
            .unwrap_or_else(|| DEFAULT_ENDPOINT.into())
            .trim_end_matches('/')
            .to_string();
        let cache_dir = var("HF_HUB_CACHE").map(PathBuf::from).unwrap_or_else(|| {
            let hf_home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
                let cache = var("XDG_CACHE_HOME").map(PathBuf::from).unwrap_or_else(|| {
                    var("HOME")
                        .map(PathBuf::from)
                        .unwrap_or_else(|| PathBuf::from("."))
                        .join(".cache")
                });
                cache.join("huggingface")
            });
            hf_home.join("hub")
        });
        let offline = var("HF_HUB_OFFLINE")
            .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "on" | "yes" | "true"));
        let files = KeyStore::default_files(lmhost_home, var("HOME").map(PathBuf::from));
        let token = match KeyStore::from_files(&files, var) {
            Ok(store) => store.huggingface().api_key,
            Err(e) => {
                tracing::warn!("{e}; using HF_TOKEN only");
                var("HF_TOKEN").map(Secret::new)
            }
        };
        Self {
            endpoint,
            cache_dir,
            token,
            offline,
        }
    }

    /// The cache folder of one repository: `<cache>/models--{org}--{name}`.
    pub fn repo_dir(&self, repo: &str) -> PathBuf {
        self.cache_dir.join(format!("models--{}", repo.replace('/', "--")))
    }
}
