//! Credentials: clemcore's `key.json` and the usual environment variables.
//!
//! Files, first found wins per backend section: `./key.json`,
//! `~/.clemcore/key.json`, `$LMHOST_HOME/key.json`. A section looks like
//! `{"openai": {"api_key": "…", "organisation": "…", "base_url": "…"}}`
//! (`organization` is accepted too). An API key in the backend's environment
//! variable (`OPENAI_API_KEY`, …, `HF_TOKEN`) overrides the file's.
//!
//! A section may also list `"trusted_origins": ["https://gateway.example:8443"]`:
//! origins (scheme, host, port) that may receive this section's key even when a
//! registry entry, not the user, names them as `base_url`. Registry files the
//! user trusts to direct keys are [`KeyStore::trust_registries`]. The HTTP
//! engine decides where a key goes from these (`engines/http/origin.rs`).
//!
//! Keys are held in [`Secret`], whose `Debug` never shows them; nothing here logs
//! a key, and only the host (never an adapter) asks for one.
//!
//! Imports only the backend table (which backend reads which section and
//! variable); must not import anything else of the crate. It reads no
//! environment itself: callers pass a lookup (`crate::config` does).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::backends::{find_backend, KeySource, BACKENDS, HUGGINGFACE_KEY};

/// An API key. Its `Debug` output is masked; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself: for building an outgoing request, nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The key masked as clemcore masks it.
    pub fn masked(&self) -> String {
        mask(Some(&self.0))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.masked())
    }
}

/// clemcore's masking: up to 8 characters → `****` and the last 2; longer → the
/// first 4, `...`, the last 4; none → `[MISSING]`.
///
/// ```
/// use lmhost::credentials::mask;
/// assert_eq!(mask(Some("sk-abcdefghijklmnop")), "sk-a...mnop");
/// assert_eq!(mask(Some("short")), "****rt");
/// assert_eq!(mask(None), "[MISSING]");
/// ```
pub fn mask(key: Option<&str>) -> String {
    match key {
        None | Some("") => "[MISSING]".into(),
        Some(k) => {
            let chars: Vec<char> = k.chars().collect();
            if chars.len() <= 8 {
                format!(
                    "****{}",
                    chars[chars.len().saturating_sub(2)..].iter().collect::<String>()
                )
            } else {
                format!(
                    "{}...{}",
                    chars[..4].iter().collect::<String>(),
                    chars[chars.len() - 4..].iter().collect::<String>()
                )
            }
        }
    }
}

/// The credentials of one backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credential {
    /// The API key.
    pub api_key: Option<Secret>,
    /// Organisation id (OpenAI).
    pub organization: Option<String>,
    /// Base URL from key.json.
    pub base_url: Option<String>,
    /// Where the key came from: a file path or `env:NAME`.
    pub source: Option<String>,
    /// The key.json holding this backend's section, if one does.
    pub file: Option<PathBuf>,
    /// Origins (`scheme://host[:port]`, checked when the file is read) that may
    /// receive the key whoever names them: the section's `trusted_origins`.
    pub trusted_origins: Vec<String>,
    /// Registry files (canonical paths) whose entries may send the key to their
    /// own `base_url` ([`KeyStore::trust_registries`]).
    pub trusted_registries: Vec<PathBuf>,
}

impl Credential {
    /// Whether the user marked registry file `path` as trusted to direct this key.
    pub fn trusts_registry(&self, path: &Path) -> bool {
        let path = canonical(path);
        self.trusted_registries.contains(&path)
    }
}

/// `path` made absolute and free of links, when it exists (as given otherwise),
/// so the same file named two ways is recognised.
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A `key.json` that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot use key file `{}`: {message}", path.display())]
pub struct KeyFileError {
    /// The file.
    pub path: PathBuf,
    /// Why (never its content).
    pub message: String,
}

/// All credentials lmhost can see.
#[derive(Debug, Clone, Default)]
pub struct KeyStore {
    /// section name → (section object, file).
    sections: HashMap<String, (serde_json::Map<String, Value>, PathBuf)>,
    /// environment variable → value, for the variables lmhost reads.
    env: HashMap<String, String>,
    /// Registry files trusted to direct keys, canonical.
    trusted_registries: Vec<PathBuf>,
}

impl KeyStore {
    /// The key files looked at, in order: `./key.json`, `<user_home>/.clemcore/key.json`,
    /// `<home>/key.json`.
    pub fn default_files(home: &Path, user_home: Option<PathBuf>) -> Vec<PathBuf> {
        let mut files = vec![PathBuf::from("key.json")];
        if let Some(user_home) = user_home {
            files.push(user_home.join(".clemcore").join("key.json"));
        }
        files.push(home.join("key.json"));
        files
    }

    /// From explicit files (missing ones skipped) and an environment lookup.
    pub fn from_files(files: &[PathBuf], env: impl Fn(&str) -> Option<String>) -> Result<Self, KeyFileError> {
        let mut store = KeyStore::default();
        for path in files.iter().filter(|p| p.is_file()) {
            let fail = |message: String| KeyFileError {
                path: path.clone(),
                message,
            };
            let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| fail(format!("not valid JSON at line {}, column {}", e.line(), e.column())))?;
            let Value::Object(sections) = value else {
                return Err(fail("must be a JSON object of backend sections".into()));
            };
            for (name, section) in sections {
                let Value::Object(section) = section else {
                    return Err(fail(format!("section `{name}` must be an object")));
                };
                if let Some(origins) = section.get("trusted_origins") {
                    check_origins(origins).map_err(|e| fail(format!("section `{name}`: `trusted_origins` {e}")))?;
                }
                store.sections.entry(name).or_insert((section, path.clone()));
            }
        }
        for var in BACKENDS.iter().filter_map(|b| b.key_env()).chain([HUGGINGFACE_KEY.env]) {
            if let Some(value) = env(var).filter(|v| !v.is_empty()) {
                store.env.insert(var.to_string(), value);
            }
        }
        Ok(store)
    }

    /// Mark registry files whose entries may send keys to their own `base_url`
    /// (`--trusted-registry`, `$LMHOST_TRUSTED_REGISTRIES`). Every key then
    /// follows those entries wherever they point: the coarse switch, for a file
    /// the user wrote; a section's `trusted_origins` is the narrow one.
    pub fn trust_registries(mut self, files: &[PathBuf]) -> Self {
        self.trusted_registries = files.iter().map(|f| canonical(f)).collect();
        self
    }

    /// The credentials of a backend (by registry name or alias).
    pub fn for_backend(&self, backend: &str) -> Credential {
        match find_backend(backend).and_then(|b| b.key) {
            Some(source) => self.credential_of(source),
            None => Credential::default(),
        }
    }

    /// The Hugging Face token (gated model downloads).
    pub fn huggingface(&self) -> Credential {
        self.credential_of(HUGGINGFACE_KEY)
    }

    fn credential_of(&self, source: KeySource) -> Credential {
        let mut cred = Credential {
            trusted_registries: self.trusted_registries.clone(),
            ..Credential::default()
        };
        if let Some((section, path)) = self.sections.get(source.section) {
            let text = |k: &str| {
                section
                    .get(k)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            };
            cred.api_key = text("api_key").map(Secret);
            cred.organization = text("organization").or_else(|| text("organisation"));
            cred.base_url = text("base_url");
            cred.file = Some(path.clone());
            cred.trusted_origins = section
                .get("trusted_origins")
                .and_then(Value::as_array)
                .map(|list| list.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default();
            if cred.api_key.is_some() {
                cred.source = Some(path.display().to_string());
            }
        }
        if let Some(value) = self.env.get(source.env) {
            cred.api_key = Some(Secret(value.clone()));
            cred.source = Some(format!("env:{}", source.env));
        }
        cred
    }
}

/// A section's `trusted_origins`: a list of `scheme://host[:port]` (http or
/// https), without credentials, path, query or fragment. A path is refused
/// rather than ignored: trust is per origin, and a path would suggest otherwise.
fn check_origins(value: &Value) -> Result<(), String> {
    let Value::Array(list) = value else {
        return Err("must be a list of origins (\"https://host[:port]\")".into());
    };
    for item in list {
        let Some(text) = item.as_str() else {
            return Err(format!("must hold strings, found {}", clip(&item.to_string())));
        };
        let shown = clip(text);
        let url = reqwest::Url::parse(text).map_err(|e| format!("holds {shown}, not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!("holds {shown}: an origin is http(s)://host[:port]"));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(format!(
                "holds {shown}: an origin is scheme://host[:port] alone (no path, query or credentials)"
            ));
        }
    }
    Ok(())
}

/// A value from a file, quoted for a message: at most 200 characters and its length.
fn clip(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{:?}… ({} bytes)", &text[..cut], text.len()),
        None => format!("{text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_file_wins_per_section_and_env_overrides_the_key() {
        let dir = std::env::temp_dir().join(format!("lmhost-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.json");
        let b = dir.join("b.json");
        std::fs::write(
            &a,
            r#"{"openai": {"api_key": "sk-from-file-a-123456", "organisation": "org-1"}}"#,
        )
        .unwrap();
        std::fs::write(
            &b,
            r#"{"openai": {"api_key": "sk-b"}, "anthropic": {"api_key": "ant-from-b-987654"}}"#,
        )
        .unwrap();
        let files = [dir.join("absent.json"), a.clone(), b.clone()];
        let store = KeyStore::from_files(&files, |_| None).unwrap();
        let openai = store.for_backend("openai");
        assert_eq!(openai.api_key.as_ref().unwrap().expose(), "sk-from-file-a-123456");
        assert_eq!(openai.organization.as_deref(), Some("org-1"));
        assert_eq!(openai.source.as_deref(), Some(a.to_str().unwrap()));
        assert_eq!(store.for_backend("anthropic").api_key.unwrap().masked(), "ant-...7654");
        let env = KeyStore::from_files(&files, |v| (v == "OPENAI_API_KEY").then(|| "sk-env-000000000".into())).unwrap();
        let openai = env.for_backend("openai");
        assert_eq!(openai.api_key.unwrap().expose(), "sk-env-000000000");
        assert_eq!(openai.source.as_deref(), Some("env:OPENAI_API_KEY"));
        assert_eq!(store.for_backend("cohere"), Credential::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn trusted_origins_are_checked_when_the_file_is_read() {
        let dir = std::env::temp_dir().join(format!("lmhost-origins-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key.json");
        let write = |origins: Value| {
            std::fs::write(
                &file,
                serde_json::json!({"openai": {"api_key": "sk-x", "trusted_origins": origins}}).to_string(),
            )
            .unwrap()
        };
        write(serde_json::json!(["https://gw.example:8443", "http://127.0.0.1:9000/"]));
        let store = KeyStore::from_files(std::slice::from_ref(&file), |_| None).unwrap();
        let cred = store.for_backend("openai");
        assert_eq!(
            cred.trusted_origins,
            ["https://gw.example:8443", "http://127.0.0.1:9000/"]
        );
        assert_eq!(cred.file.as_deref(), Some(file.as_path()));
        for (bad, says) in [
            (serde_json::json!("https://gw.example"), "must be a list"),
            (serde_json::json!([3]), "must hold strings"),
            (serde_json::json!(["gw.example"]), "not a URL"),
            (serde_json::json!(["ftp://gw.example"]), "http(s)://host"),
            (serde_json::json!(["https://gw.example/v1"]), "no path"),
            (
                serde_json::json!([format!("https://{}.example/v1", "x".repeat(100_000))]),
                "bytes)",
            ),
        ] {
            write(bad.clone());
            let err = KeyStore::from_files(std::slice::from_ref(&file), |_| None)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("`openai`") && err.contains(says) && !err.contains("sk-x"),
                "{bad}: {err}"
            );
            assert!(err.len() < 1000, "{}", err.len());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debug_never_shows_a_key() {
        let cred = Credential {
            api_key: Some(Secret::new("sk-supersecretvalue")),
            ..Credential::default()
        };
        let shown = format!("{cred:?}");
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(shown.contains("sk-s...alue"), "{shown}");
    }

    #[test]
    fn malformed_key_file_error_names_the_file_not_its_content() {
        let path = std::env::temp_dir().join(format!("lmhost-badkeys-{}.json", std::process::id()));
        std::fs::write(&path, r#"{"openai": {"api_key": "sk-leak" "#).unwrap();
        let err = KeyStore::from_files(std::slice::from_ref(&path), |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(path.to_str().unwrap()) && !err.contains("sk-leak"),
            "{err}"
        );
        std::fs::remove_file(&path).unwrap();
    }
}
