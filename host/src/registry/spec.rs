//! `ModelSpec`: one resolved registry entry, in the normalised (flat) view.

use std::fmt;
use std::path::PathBuf;

use serde_json::{Map, Value};

/// Where a spec came from: which registry file and which entry, or the query itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecSource {
    /// Entry `index` (0-based) of a registry file on disk.
    File {
        /// The registry file.
        path: PathBuf,
        /// The entry's position in the file's list.
        index: usize,
    },
    /// Entry `index` of the registry packaged inside lmhost (`registry/model_registry.json`).
    Packaged {
        /// The entry's position in the packaged list.
        index: usize,
    },
    /// No entry unified, and the query named a `backend`: the query is the spec.
    Query,
}

impl fmt::Display for SpecSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecSource::File { path, index } => write!(f, "{} (entry {index})", path.display()),
            SpecSource::Packaged { index } => {
                write!(f, "<packaged>/registry/model_registry.json (entry {index})")
            }
            SpecSource::Query => f.write_str("the query itself (ad-hoc spec)"),
        }
    }
}

/// Why an entry (or a query) is not a spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// `model_name` or `backend` is missing.
    #[error("missing `{key}`")]
    Missing {
        /// The key.
        key: &'static str,
    },
    /// `model_name` or `backend` is not a non-empty string.
    #[error("`{key}` must be a non-empty string, found {found}")]
    NotANonEmptyString {
        /// The key.
        key: &'static str,
        /// The value, as JSON.
        found: String,
    },
    /// `model_name` or `backend` starts or ends with white space. Names are
    /// looked up trimmed (`lmhost run -m " x "` asks for `x`), so such a name
    /// could never be found.
    #[error("`{key}` must not start or end with white space, found {found:?}")]
    SurroundingWhiteSpace {
        /// The key.
        key: &'static str,
        /// The value.
        found: String,
    },
    /// A key set at the top level and in `model_config` with different values.
    #[error("`{key}` is set at the top level ({top}) and in `model_config` ({config})")]
    Contradiction {
        /// The key.
        key: String,
        /// The top-level value, as JSON.
        top: String,
        /// The `model_config` value, as JSON.
        config: String,
    },
    /// `model_config` is not an object.
    #[error("`model_config` must be an object, found {found}")]
    ModelConfigNotAnObject {
        /// The value, as JSON.
        found: String,
    },
}

/// A model entry after lookup: `model_name`, `backend` and every other key, with the
/// keys of clemcore's `model_config` lifted to the top level. Unknown keys are kept
/// and reach the adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub(crate) map: Map<String, Value>,
    pub(crate) source: SpecSource,
    /// Keys the query added to the entry it unified with (empty when the query
    /// is the spec): their layer is the query, not the entry's file.
    pub(crate) query_keys: Vec<String>,
}

impl ModelSpec {
    /// Build a spec from an entry object (flat or with `model_config`).
    ///
    /// ```
    /// use lmhost::registry::{ModelSpec, SpecSource};
    /// let entry = serde_json::json!({"model_name": "m", "backend": "mock",
    ///                               "model_config": {"eos_to_cull": "</s>"}});
    /// let spec = ModelSpec::from_entry(entry.as_object().unwrap(), SpecSource::Query).unwrap();
    /// assert_eq!(spec.model_name(), "m");
    /// assert_eq!(spec.get("eos_to_cull").unwrap(), "</s>");
    /// ```
    pub fn from_entry(entry: &Map<String, Value>, source: SpecSource) -> Result<Self, SpecError> {
        let map = normalize(entry)?;
        for key in ["model_name", "backend"] {
            match map.get(key) {
                Some(Value::String(s)) if !s.trim().is_empty() && s.trim() != s => {
                    return Err(SpecError::SurroundingWhiteSpace { key, found: s.clone() })
                }
                Some(Value::String(s)) if !s.trim().is_empty() => {}
                Some(other) => {
                    return Err(SpecError::NotANonEmptyString {
                        key,
                        found: other.to_string(),
                    })
                }
                None => return Err(SpecError::Missing { key }),
            }
        }
        Ok(Self {
            map,
            source,
            query_keys: Vec::new(),
        })
    }

    /// The registry name of the model.
    pub fn model_name(&self) -> &str {
        self.map.get("model_name").and_then(Value::as_str).unwrap_or_default()
    }

    /// The backend that runs it (`llamacpp`, `mock`, …).
    pub fn backend(&self) -> &str {
        self.map.get("backend").and_then(Value::as_str).unwrap_or_default()
    }

    /// Whether its backend is local, remote or scripted (`None`: unknown backend).
    pub fn backend_kind(&self) -> Option<crate::backends::BackendKind> {
        crate::backends::find_backend(self.backend()).map(|b| b.kind)
    }

    /// Where the spec came from.
    pub fn source(&self) -> &SpecSource {
        &self.source
    }

    /// The layer that set `key`: the query, for a key the query added to the
    /// entry it unified with; else where the spec came from. Credentials follow
    /// `base_url` only where its layer is trusted, so a query cannot borrow the
    /// trust of the entry it names.
    pub fn layer_of(&self, key: &str) -> &SpecSource {
        static QUERY: SpecSource = SpecSource::Query;
        if self.query_keys.iter().any(|k| k == key) {
            &QUERY
        } else {
            &self.source
        }
    }

    /// Any key of the normalised entry.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// Typed settings of the entry (see [`super::settings`]): each key checked,
    /// then deserialized; an error names the model and key.
    ///
    /// ```
    /// use lmhost::registry::{LlamaSettings, ModelSpec, SpecSource};
    /// let entry = serde_json::json!({"model_name": "m", "backend": "llamacpp", "n_ctx": 512});
    /// let spec = ModelSpec::from_entry(entry.as_object().unwrap(), SpecSource::Query).unwrap();
    /// assert_eq!(spec.settings::<LlamaSettings>().unwrap().n_ctx, Some(512));
    /// ```
    pub fn settings<T: super::settings::Settings>(&self) -> Result<T, super::settings::SettingsError> {
        T::from_spec(self)
    }

    /// Set `key` over whatever the entry holds, as a query would (its layer is
    /// then the query's): the CLI's `--threads`.
    pub fn set_from_query(&mut self, key: &str, value: Value) {
        self.map.insert(key.to_string(), value);
        if !self.query_keys.iter().any(|k| k == key) {
            self.query_keys.push(key.to_string());
        }
    }

    /// The normalised entry as a JSON object.
    pub fn as_json(&self) -> &Map<String, Value> {
        &self.map
    }
}

/// Lift the keys of `model_config` to the top level. A key set both places with
/// different values is an error: the entry contradicts itself.
pub(crate) fn normalize(entry: &Map<String, Value>) -> Result<Map<String, Value>, SpecError> {
    let mut out: Map<String, Value> = entry
        .iter()
        .filter(|(k, _)| k.as_str() != "model_config")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    match entry.get("model_config") {
        None => {}
        Some(Value::Object(config)) => {
            for (key, value) in config {
                match out.get(key) {
                    Some(top) if top != value => {
                        return Err(SpecError::Contradiction {
                            key: key.clone(),
                            top: top.to_string(),
                            config: value.to_string(),
                        })
                    }
                    _ => {
                        out.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        Some(other) => {
            return Err(SpecError::ModelConfigNotAnObject {
                found: other.to_string(),
            })
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn model_config_keys_are_lifted() {
        let n = normalize(&obj(json!({"model_name": "m", "backend": "b", "license": "x",
            "model_config": {"eos_to_cull": "</s>"}})))
        .unwrap();
        assert_eq!(
            n,
            obj(json!({"model_name": "m", "backend": "b", "license": "x", "eos_to_cull": "</s>"}))
        );
    }

    #[test]
    fn contradicting_model_config_is_an_error() {
        let err = normalize(&obj(json!({"eos_to_cull": "a", "model_config": {"eos_to_cull": "b"}}))).unwrap_err();
        assert!(err.to_string().contains("`eos_to_cull`"), "{err}");
        let err = normalize(&obj(json!({"model_config": 3}))).unwrap_err();
        assert!(err.to_string().contains("must be an object"), "{err}");
    }

    #[test]
    fn name_and_backend_are_required_strings() {
        let e = ModelSpec::from_entry(&obj(json!({"backend": "b"})), SpecSource::Query).unwrap_err();
        assert_eq!(e.to_string(), "missing `model_name`");
        let e = ModelSpec::from_entry(&obj(json!({"model_name": 1, "backend": "b"})), SpecSource::Query).unwrap_err();
        assert_eq!(e.to_string(), "`model_name` must be a non-empty string, found 1");
        // Names are looked up trimmed: one with white space at an end could never be found.
        let e =
            ModelSpec::from_entry(&obj(json!({"model_name": "m ", "backend": "b"})), SpecSource::Query).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`model_name` must not start or end with white space, found \"m \""
        );
    }
}
