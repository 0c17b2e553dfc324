//! The model registry: JSON lists of model entries, looked up by unification.
//!
//! Owns loading (with errors that name file, line, entry and key), layering of
//! several files, and [`Registry::resolve`]. It never loads a model or touches an
//! engine: a resolved [`ModelSpec`] is plain data. It reads the backend table
//! ([`crate::backends`]) and the template checker (`lmhost-template`), and must
//! not import adapters, engines or the model layer.
//!
//! Lookup: a query (a model name, or a JSON object) resolves to the first entry,
//! in file order across the layered files, that unifies with it (see [`unify`]).
//! When none does and the query names a `backend`, the query itself is the spec.
//! Both sides are compared in the normalised view where `model_config` keys sit at
//! the top level, so `{"eos_to_cull": …}` and `{"model_config": {"eos_to_cull": …}}`
//! mean the same.
//!
//! Files: `unify` (the lookup rule), `spec` ([`ModelSpec`]), `validate` (the key
//! table, the checks, [`registry_schema`]), `register` (`lmhost register model`),
//! `docs` (the markdown key reference, [`registry_keys_markdown`]).

mod docs;
mod register;
pub mod settings;
mod spec;
mod unify;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::{Map, Value};

pub use docs::registry_keys_markdown;
pub use register::{parse_assignments, register_entry, Registered};
pub use settings::{
    parse_context_size, AdapterSettings, CandleKernels, CandleSettings, ChatTemplateSettings, ContextSize,
    ContextSizeError, ExecuteOn, FileSettings, GenerationDefaults, LlamaSettings, Metadata, MockSettings,
    RemoteSettings, Settings, SettingsError,
};
pub use spec::{ModelSpec, SpecError, SpecSource};
pub use unify::unify;
pub use validate::{check_registry_text, registry_schema, validate_spec, Problem, Severity};

/// The registry packaged with lmhost.
pub const PACKAGED_REGISTRY: &str = include_str!("../../../registry/model_registry.json");

/// Errors of loading a registry or resolving a query.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A registry file could not be read.
    #[error("cannot read registry `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A registry file is not JSON.
    #[error("registry `{path}` is not valid JSON: {message} at line {line}, column {column}")]
    Json {
        /// The file.
        path: String,
        /// serde_json's message.
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// The top level of a registry file is not a list.
    #[error("registry `{path}` must be a JSON list of model entries, found {found}")]
    NotAList {
        /// The file.
        path: String,
        /// What it holds instead.
        found: &'static str,
    },
    /// One entry is unusable.
    #[error("registry `{path}`, entry {index}{}: {reason}", name.as_ref().map(|n| format!(" (`{n}`)")).unwrap_or_default())]
    Entry {
        /// The file.
        path: String,
        /// 0-based position in the list.
        index: usize,
        /// The entry's `model_name`, when it has one.
        name: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// A query that is neither a name nor a JSON object.
    #[error("invalid model query `{query}`: {reason}")]
    InvalidQuery {
        /// The query as given.
        query: String,
        /// What is wrong.
        reason: String,
    },
    /// The resolved entry has invalid keys (found when the model is loaded).
    #[error("registry entry of `{model}` ({source_desc}) is invalid: {}", problems.join("; "))]
    InvalidEntry {
        /// Model name.
        model: String,
        /// Where the entry came from.
        source_desc: String,
        /// Each problem, naming its key.
        problems: Vec<String>,
    },
    /// Nothing unifies and the query names no backend.
    #[error("no registry entry matches {query}{}", suggest(close))]
    NoMatch {
        /// The query, as JSON or a quoted name.
        query: String,
        /// Model names close to the queried one.
        close: Vec<String>,
    },
}

fn suggest(close: &[String]) -> String {
    if close.is_empty() {
        "; `lmhost models` lists the known models, or give a JSON query with a `backend`".into()
    } else {
        let names: Vec<String> = close.iter().map(|n| format!("`{n}`")).collect();
        format!("; did you mean {}?", names.join(", "))
    }
}

/// The backend name of clemcore's entries that run an lmhost model (the
/// Python package's `lmhost.clemcore`): lmhost's own lookups skip them.
pub const CLEMCORE_LMHOST_BACKEND: &str = "lmhost";

/// A model query: a `model_name`, or a JSON object of features to unify with.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// Look up by `model_name`.
    Name(String),
    /// Look up by any features; may be a full ad-hoc spec.
    Spec(Map<String, Value>),
}

impl Query {
    fn features(&self) -> Map<String, Value> {
        match self {
            Query::Name(name) => {
                let mut m = Map::new();
                m.insert("model_name".into(), Value::String(name.clone()));
                m
            }
            Query::Spec(map) => map.clone(),
        }
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A query may come from the network (`serve`): cut, so that an error
        // about it stays short whatever was sent.
        let text = match self {
            Query::Name(name) => name.clone(),
            Query::Spec(map) => Value::Object(map.clone()).to_string(),
        };
        let (kept, cut) = match text.char_indices().nth(200) {
            Some((end, _)) => (&text[..end], true),
            None => (text.as_str(), false),
        };
        write!(f, "`{kept}`")?;
        if cut {
            write!(f, "… ({} bytes in all)", text.len())?;
        }
        Ok(())
    }
}

impl FromStr for Query {
    type Err = RegistryError;

    /// A string that starts with `{` is a JSON object; anything else is a name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err(RegistryError::InvalidQuery {
                query: s.into(),
                reason: "it is empty".into(),
            });
        }
        if !trimmed.starts_with('{') {
            return Ok(Query::Name(trimmed.to_string()));
        }
        match serde_json::from_str::<Value>(trimmed) {
            Ok(Value::Object(map)) => Ok(Query::Spec(map)),
            Ok(_) => unreachable!("a JSON text starting with `{{` is an object"),
            Err(e) => Err(RegistryError::InvalidQuery {
                query: s.into(),
                reason: format!("not a JSON object: {e}"),
            }),
        }
    }
}

impl From<&str> for Query {
    /// Like [`str::parse`], but an unparsable JSON-looking string becomes a name
    /// (and then fails to resolve with a clear error).
    fn from(s: &str) -> Self {
        s.parse().unwrap_or_else(|_| Query::Name(s.to_string()))
    }
}

/// The layered model registry.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: Vec<ModelSpec>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The registry packaged with lmhost alone.
    pub fn packaged() -> Self {
        let mut r = Self::new();
        r.add_json("<packaged>/registry/model_registry.json", PACKAGED_REGISTRY, |index| {
            SpecSource::Packaged { index }
        })
        .expect("the packaged registry is valid (checked by a test)");
        r
    }

    /// The default layering: `files` (e.g. `--registry` flags) first, then
    /// `./model_registry.json` and `<home>/model_registry.json` when they exist,
    /// then the packaged registry.
    pub fn layered(files: &[PathBuf], home: &Path) -> Result<Self, RegistryError> {
        let mut r = Self::new();
        for path in files {
            r.add_file(path)?;
        }
        for candidate in [PathBuf::from("model_registry.json"), home.join("model_registry.json")] {
            if candidate.is_file() && !files.contains(&candidate) {
                r.add_file(&candidate)?;
            }
        }
        r.entries.extend(Self::packaged().entries);
        Ok(r)
    }

    /// Append the entries of a registry file, after those already loaded.
    pub fn add_file(&mut self, path: &Path) -> Result<(), RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let owned = path.to_path_buf();
        self.add_json(&path.display().to_string(), &text, |index| SpecSource::File {
            path: owned.clone(),
            index,
        })
    }

    /// Append the entries of a registry given as JSON text; `name` is used in errors.
    pub fn add_json(
        &mut self,
        name: &str,
        text: &str,
        source: impl Fn(usize) -> SpecSource,
    ) -> Result<(), RegistryError> {
        let value: Value = serde_json::from_str(text).map_err(|e| RegistryError::Json {
            path: name.into(),
            message: e.to_string().split(" at line ").next().unwrap_or_default().to_string(),
            line: e.line(),
            column: e.column(),
        })?;
        let Value::Array(items) = value else {
            return Err(RegistryError::NotAList {
                path: name.into(),
                found: json_kind(&value),
            });
        };
        let mut specs = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let entry_error = |reason: String| RegistryError::Entry {
                path: name.into(),
                index,
                name: item.get("model_name").and_then(Value::as_str).map(str::to_string),
                reason,
            };
            let Value::Object(entry) = item else {
                return Err(entry_error(format!(
                    "an entry must be a JSON object, found {}",
                    json_kind(item)
                )));
            };
            specs.push(ModelSpec::from_entry(entry, source(index)).map_err(|e| entry_error(e.to_string()))?);
        }
        self.entries.extend(specs);
        Ok(())
    }

    /// All entries, in lookup order.
    pub fn entries(&self) -> &[ModelSpec] {
        &self.entries
    }

    /// The first entry that unifies with the query, unified with it; else the query
    /// itself when it names a `backend`; else an error naming close model names.
    ///
    /// ```
    /// use lmhost::registry::Registry;
    /// let r = Registry::packaged();
    /// let spec = r.resolve(&"SmolLM2-135M-Instruct".into()).unwrap();
    /// assert_eq!(spec.backend(), "llamacpp");
    /// let adhoc = r.resolve(&r#"{"model_name": "x", "backend": "mock"}"#.into()).unwrap();
    /// assert_eq!(adhoc.model_name(), "x");
    /// assert!(r.resolve(&"SmolLM2-135M-Instruc".into()).unwrap_err().to_string().contains("SmolLM2-135M-Instruct"));
    /// ```
    pub fn resolve(&self, query: &Query) -> Result<ModelSpec, RegistryError> {
        let features = spec::normalize(&query.features()).map_err(|e| RegistryError::InvalidQuery {
            query: query.to_string(),
            reason: e.to_string(),
        })?;
        let features = Value::Object(features);
        for entry in &self.entries {
            // clemcore's pointers to lmhost models (its `lmhost` backend) sit in
            // the same registry files; to lmhost they would be itself.
            if entry.map.get("backend").and_then(Value::as_str) == Some(CLEMCORE_LMHOST_BACKEND) {
                continue;
            }
            if let Some(Value::Object(map)) = unify(&features, &Value::Object(entry.map.clone())) {
                let query_keys = map.keys().filter(|k| !entry.map.contains_key(*k)).cloned().collect();
                return Ok(ModelSpec {
                    map,
                    source: entry.source.clone(),
                    query_keys,
                });
            }
        }
        let Value::Object(features) = features else {
            unreachable!()
        };
        if features.contains_key("backend") {
            return ModelSpec::from_entry(&features, SpecSource::Query).map_err(|e| RegistryError::InvalidQuery {
                query: query.to_string(),
                reason: e.to_string(),
            });
        }
        let wanted = features.get("model_name").and_then(Value::as_str).unwrap_or_default();
        Err(RegistryError::NoMatch {
            query: query.to_string(),
            close: self.close_names(wanted),
        })
    }

    /// Up to five distinct model names close to `name` (edit distance, or containment).
    pub fn close_names(&self, name: &str) -> Vec<String> {
        let wanted = name.to_lowercase();
        if wanted.is_empty() {
            return Vec::new();
        }
        let wanted_chars = wanted.chars().count();
        let most = (wanted_chars / 3).max(2);
        let mut scored: Vec<(usize, &str)> = Vec::new();
        for entry in &self.entries {
            let candidate = entry.model_name();
            if scored.iter().any(|(_, n)| *n == candidate) {
                continue;
            }
            let lower = candidate.to_lowercase();
            let contains = lower.contains(&wanted) || wanted.contains(&lower);
            // The edit distance is at least the difference in length: skip the
            // quadratic computation when that alone rules a name out (a name
            // from the network may be megabytes long).
            let distance = if wanted_chars.abs_diff(lower.chars().count()) > most {
                usize::MAX
            } else {
                strsim::levenshtein(&wanted, &lower)
            };
            if distance <= most || contains {
                scored.push((if contains { distance.min(1) } else { distance }, candidate));
            }
        }
        scored.sort_by_key(|(d, _)| *d);
        scored.into_iter().take(5).map(|(_, n)| n.to_string()).collect()
    }
}

use validate::kind as json_kind;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_huge_unknown_name_is_answered_quickly_and_quoted_short() {
        let r = registry(json!([{"model_name": "m", "backend": "mock"}]));
        let huge = "x".repeat(8 << 20);
        let started = std::time::Instant::now();
        let err = r.resolve(&Query::Name(huge)).unwrap_err().to_string();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(err.len() < 400, "{}", err.len());
        assert!(err.contains(&format!("… ({} bytes in all)", 8 << 20)), "{err}");
        let err = r.resolve(&Query::Name("mm".into())).unwrap_err().to_string();
        assert!(err.contains("did you mean `m`"), "{err}");
    }

    #[test]
    fn clemcore_entries_for_lmhost_are_skipped_by_lmhost() {
        // clemcore's registry names the lmhost model under the same name; the
        // entry is clemcore's, lmhost resolves the name to its own entry.
        let r = registry(json!([
            {"model_name": "m", "backend": "lmhost", "model_config": {"lmhost_model": "m"}},
            {"model_name": "m", "backend": "mock"},
        ]));
        assert_eq!(r.resolve(&Query::Name("m".into())).unwrap().backend(), "mock");
        let only = registry(json!([{"model_name": "x", "backend": "lmhost"}]));
        assert!(matches!(
            only.resolve(&Query::Name("x".into())),
            Err(RegistryError::NoMatch { .. })
        ));
    }

    fn registry(v: Value) -> Registry {
        let mut r = Registry::new();
        r.add_json("test.json", &v.to_string(), |index| SpecSource::Packaged { index })
            .unwrap();
        r
    }

    #[test]
    fn packaged_registry_is_valid() {
        assert!(!Registry::packaged().entries().is_empty());
    }

    #[test]
    fn duplicate_names_resolve_to_first_unless_backend_given() {
        let r = registry(json!([
            {"model_name": "model1", "backend": "huggingface_local"},
            {"model_name": "model1", "backend": "openai"},
        ]));
        assert_eq!(r.resolve(&"model1".into()).unwrap().backend(), "huggingface_local");
        let q: Query = r#"{"model_name": "model1", "backend": "openai"}"#.parse().unwrap();
        let spec = r.resolve(&q).unwrap();
        assert_eq!(spec.backend(), "openai");
        assert_eq!(spec.source(), &SpecSource::Packaged { index: 1 });
    }

    #[test]
    fn flat_and_nested_queries_mean_the_same() {
        let r = registry(json!([
            {"model_name": "m", "backend": "llamacpp", "model_config": {"eos_to_cull": "</s>"}},
            {"model_name": "m", "backend": "llamacpp", "model_config": {"eos_to_cull": "<eos>"}},
        ]));
        let flat: Query = r#"{"model_name": "m", "eos_to_cull": "<eos>"}"#.parse().unwrap();
        let nested: Query = r#"{"model_name": "m", "model_config": {"eos_to_cull": "<eos>"}}"#
            .parse()
            .unwrap();
        assert_eq!(r.resolve(&flat).unwrap().source(), &SpecSource::Packaged { index: 1 });
        assert_eq!(r.resolve(&nested).unwrap().source(), &SpecSource::Packaged { index: 1 });
    }

    #[test]
    fn adhoc_spec_when_nothing_unifies_but_backend_given() {
        let r = registry(json!([{"model_name": "m", "backend": "openai_compatible", "base_url": "http://a"}]));
        let q: Query = r#"{"model_name": "m", "backend": "openai_compatible", "base_url": "http://b"}"#
            .parse()
            .unwrap();
        let spec = r.resolve(&q).unwrap();
        assert_eq!(spec.source(), &SpecSource::Query);
        assert_eq!(
            spec.settings::<RemoteSettings>().unwrap().base_url.as_deref(),
            Some("http://b")
        );
    }

    #[test]
    fn a_key_the_query_adds_belongs_to_the_query_layer() {
        let r = registry(json!([{"model_name": "m", "backend": "openai", "base_url": "http://a"},
                                {"model_name": "n", "backend": "openai"}]));
        let own = r
            .resolve(&r#"{"model_name": "m", "base_url": "http://a"}"#.into())
            .unwrap();
        assert_eq!(own.layer_of("base_url"), &SpecSource::Packaged { index: 0 });
        let added = r
            .resolve(&r#"{"model_name": "n", "base_url": "http://b"}"#.into())
            .unwrap();
        assert_eq!(added.source(), &SpecSource::Packaged { index: 1 });
        assert_eq!(added.layer_of("base_url"), &SpecSource::Query);
        assert_eq!(added.layer_of("backend"), &SpecSource::Packaged { index: 1 });
    }

    #[test]
    fn no_match_names_close_models() {
        let r = registry(json!([
            {"model_name": "SmolLM2-135M-Instruct", "backend": "llamacpp"},
            {"model_name": "gpt-4o", "backend": "openai"},
        ]));
        let err = r.resolve(&"smollm2-135m".into()).unwrap_err().to_string();
        assert_eq!(
            err,
            "no registry entry matches `smollm2-135m`; did you mean `SmolLM2-135M-Instruct`?"
        );
        let err = r.resolve(&"zzzzzzzzzz".into()).unwrap_err().to_string();
        assert!(err.contains("`lmhost models` lists"), "{err}");
    }

    #[test]
    fn malformed_json_names_file_line_and_column() {
        let mut r = Registry::new();
        let err = r
            .add_json(
                "reg.json",
                "[\n  {\"model_name\": \"a\",\n   \"backend\": }\n]",
                |index| SpecSource::Packaged { index },
            )
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "registry `reg.json` is not valid JSON: expected value at line 3, column 15"
        );
    }

    #[test]
    fn bad_entries_name_file_index_and_model() {
        let mut r = Registry::new();
        let err = r
            .add_json(
                "reg.json",
                r#"[{"model_name": "a", "backend": "b"}, {"model_name": "c"}]"#,
                |index| SpecSource::Packaged { index },
            )
            .unwrap_err()
            .to_string();
        assert_eq!(err, "registry `reg.json`, entry 1 (`c`): missing `backend`");
        let err = r.add_json("reg.json", r#"{"model_name": "a"}"#, |index| SpecSource::Packaged {
            index,
        });
        assert_eq!(
            err.unwrap_err().to_string(),
            "registry `reg.json` must be a JSON list of model entries, found an object"
        );
    }

    #[test]
    fn query_parsing() {
        assert_eq!("  name ".parse::<Query>().unwrap(), Query::Name("name".into()));
        assert!(matches!("{\"a\": 1}".parse::<Query>().unwrap(), Query::Spec(_)));
        let err = "{not json".parse::<Query>().unwrap_err().to_string();
        assert!(
            err.starts_with("invalid model query `{not json`: not a JSON object"),
            "{err}"
        );
        assert!("".parse::<Query>().is_err());
    }
}
