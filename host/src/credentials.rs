//! Credentials: clemcore's `key.json` and the usual environment variables.
//!
//! Files, first found wins per backend section: `./key.json`,
//! `~/.clemcore/key.json`, `$LMHOST_HOME/key.json`. A section looks like
//! `{"openai": {"api_key": "…", "organisation": "…", "base_url": "…"}}`
//! (`organization` is accepted too). An API key in the backend's environment
//! variable (`OPENAI_API_KEY`, …, `HF_TOKEN`) overrides the file's.
//!
//! Keys are held in [`Secret`], whose `Debug` never shows them; nothing here logs
//! a key, and only the host (never an adapter) asks for one.

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

    /// The credentials of a backend (by registry name or alias).
    pub fn for_backend(&self, backend: &str) -> Credential {
        match find_backend(backend).and_then(|b| b.key) {
            Some(source) => self.credential_for(source),
            None => Credential::default(),
        }
    }

    /// The Hugging Face token (gated model downloads).
    pub fn huggingface(&self) -> Credential {
        self.credential_for(HUGGINGFACE_KEY)
    }

    fn credential_for(&self, source: KeySource) -> Credential {
        let mut cred = Credential::default();
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
