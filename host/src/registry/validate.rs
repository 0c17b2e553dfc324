//! Validation of registry entries: every problem at once, each naming file,
//! entry, model and key.
//!
//! The settings structs ([`super::settings`]) are the single description of
//! what lmhost reads: each key is checked against its field's schema, and the
//! JSON schema for editors (`registry/schema.json`) is generated from them.
//! Errors are genuine data problems (a missing mandatory key, a wrong type, a
//! regex or template that does not compile). An entry for a backend lmhost does
//! not run is a warning: the file is still a valid registry.

use std::fmt;

use serde_json::{json, Value};

use super::settings::{check, known_keys};
use super::ModelSpec;
use crate::backends::find_backend;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The entry cannot be used as written.
    Error,
    /// The entry is valid, but lmhost cannot use it (e.g. an unsupported backend).
    Warning,
}

/// One finding of [`check_registry_text`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// The registry file, as named by the caller.
    pub file: String,
    /// 0-based entry index, when the problem is in an entry.
    pub index: Option<usize>,
    /// The entry's `model_name`, when it has one.
    pub model_name: Option<String>,
    /// The key at fault, when one is.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}", self.file)?;
        if let Some(index) = self.index {
            write!(f, ", entry {index}")?;
        }
        if let Some(name) = &self.model_name {
            write!(f, " (`{name}`)")?;
        }
        if let Some(key) = &self.key {
            write!(f, ", key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Problems of one resolved spec: `(severity, key, message)`.
pub fn validate_spec(spec: &ModelSpec) -> Vec<(Severity, Option<String>, String)> {
    let mut out = Vec::new();
    let map = spec.as_json();
    for (key, schema) in known_keys() {
        if let Some(value) = map.get(key).filter(|v| !v.is_null()) {
            if let Err(message) = check(schema, value) {
                out.push((Severity::Error, Some(key.clone()), message));
            }
        }
    }
    let has = |k: &str| map.get(k).is_some_and(|v| !v.is_null());
    // Every key of an entry reaches its adapter: a key here would be handed to
    // untrusted code.
    for secret in ["api_key", "api_keys", "token", "access_token"] {
        if has(secret) {
            out.push((
                Severity::Error,
                Some(secret.to_string()),
                "credentials do not belong in a registry entry (its adapter sees every key): put them in key.json or the backend's environment variable".into(),
            ));
        }
    }
    out.extend(unread_template_kwargs(map));
    let backend = spec.backend();
    match find_backend(backend) {
        None if backend == super::CLEMCORE_LMHOST_BACKEND => out.push((
            Severity::Warning,
            Some("backend".into()),
            "an entry for clemcore's `lmhost` backend (it names an lmhost model); lmhost's own lookups skip it".into(),
        )),
        None => out.push((
            Severity::Warning,
            Some("backend".into()),
            format!("backend `{backend}` is not supported by lmhost; the entry is listed but cannot be loaded"),
        )),
        Some(b) => {
            let missing = b.missing_keys(has);
            if let Some(message) = missing {
                out.push((Severity::Error, None, format!("backend `{backend}` {message}")));
            }
        }
    }
    out
}

/// Keys of `chat_template_kwargs` the entry's `custom_chat_template` never
/// reads: a typo, or a switch meant for another model's template. (A template
/// shipped in the model file is only known when the model loads.)
fn unread_template_kwargs(map: &serde_json::Map<String, Value>) -> Vec<(Severity, Option<String>, String)> {
    let (Some(Value::Object(kwargs)), Some(Value::String(template))) =
        (map.get("chat_template_kwargs"), map.get("custom_chat_template"))
    else {
        return Vec::new();
    };
    let Ok(read) = lmhost_template::variables(template) else {
        return Vec::new(); // the template's own error is reported under its key
    };
    kwargs
        .keys()
        .filter(|key| !read.contains(key))
        .map(|key| {
            (
                Severity::Warning,
                Some("chat_template_kwargs".into()),
                format!("`{key}` is not read by the entry's `custom_chat_template`; it has no effect there"),
            )
        })
        .collect()
}

/// Check a whole registry text, collecting every problem.
pub fn check_registry_text(file: &str, text: &str) -> Vec<Problem> {
    let problem = |index: Option<usize>, model_name: Option<String>, key: Option<String>, message: String| Problem {
        severity: Severity::Error,
        file: file.into(),
        index,
        model_name,
        key,
        message,
    };
    let items = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items,
        Ok(other) => {
            return vec![problem(
                None,
                None,
                None,
                format!("must be a JSON list of model entries, found {}", kind(&other)),
            )]
        }
        Err(e) => {
            let message = e.to_string().split(" at line ").next().unwrap_or_default().to_string();
            return vec![problem(
                None,
                None,
                None,
                format!("not valid JSON: {message} at line {}, column {}", e.line(), e.column()),
            )];
        }
    };
    let mut out = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let name = item.get("model_name").and_then(Value::as_str).map(str::to_string);
        let Value::Object(entry) = item else {
            out.push(problem(
                Some(index),
                None,
                None,
                format!("an entry must be a JSON object, found {}", kind(item)),
            ));
            continue;
        };
        match ModelSpec::from_entry(entry, super::SpecSource::Query) {
            Err(e) => out.push(problem(Some(index), name, None, e.to_string())),
            Ok(spec) => {
                for (severity, key, message) in validate_spec(&spec) {
                    out.push(Problem {
                        severity,
                        ..problem(Some(index), name.clone(), key, message)
                    });
                }
            }
        }
    }
    out
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The JSON schema of a registry file, for editors (`registry/schema.json`),
/// derived from the settings structs ([`super::settings`]).
pub fn registry_schema() -> Value {
    let mut properties = known_keys().clone();
    let mut config_properties = properties.clone();
    config_properties.remove("model_name");
    config_properties.remove("backend");
    properties.insert(
        "model_config".into(),
        json!({"type": "object", "description": "Backend keys (current clemcore format).", "properties": config_properties}),
    );
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://lmhost.invalid/registry/schema.json",
        "title": "lmhost model registry",
        "description": "A list of model entries; a query resolves to the first entry that unifies with it. Generated by `lmhost registry schema`.",
        "type": "array",
        "items": {
            "type": "object",
            "required": ["model_name", "backend"],
            "properties": properties,
            "additionalProperties": true
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(entries: Value) -> Vec<String> {
        check_registry_text("r.json", &entries.to_string())
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn template_kwargs_the_template_does_not_read_are_warnings() {
        let template = "{% if enable_thinking is defined and not enable_thinking %}/no_think{% endif %}{{ messages }}";
        let found = problems(json!([
            {"model_name": "q", "backend": "llamacpp", "model_path": "q.gguf", "premade_chat_template": false,
             "custom_chat_template": template, "chat_template_kwargs": {"enable_thinking": false, "enable_thinkng": true}},
            {"model_name": "r", "backend": "llamacpp", "model_path": "r.gguf", "chat_template_kwargs": ["x"]},
        ]));
        assert_eq!(
            found,
            [
                "warning: r.json, entry 0 (`q`), key `chat_template_kwargs`: `enable_thinkng` is not read by the entry's `custom_chat_template`; it has no effect there",
                "error: r.json, entry 1 (`r`), key `chat_template_kwargs`: must be an object, found [\"x\"]",
            ]
        );
    }

    #[test]
    fn reports_every_problem_at_once() {
        let found = problems(json!([
            {"model_name": "a", "backend": "llamacpp", "model_config": {"eos_to_cull": "(", "premade_chat_template": "yes"}},
            {"model_name": "b", "backend": "openai"},
            {"model_name": "c", "backend": "slurk"},
            {"backend": "mock"},
            {"model_name": "e", "backend": "mock", "context_size": "lots", "execute_on": "tpu"},
        ]));
        assert_eq!(found, vec![
            "error: r.json, entry 0 (`a`), key `premade_chat_template`: must be true or false, found \"yes\"",
            "error: r.json, entry 0 (`a`), key `eos_to_cull`: `(` is not a valid regex: unclosed group",
            "error: r.json, entry 0 (`a`): backend `llamacpp` needs `model_path`, or `huggingface_id` and `filename`",
            "error: r.json, entry 1 (`b`): backend `openai` needs `model_id`",
            "warning: r.json, entry 2 (`c`), key `backend`: backend `slurk` is not supported by lmhost; the entry is listed but cannot be loaded",
            "error: r.json, entry 3: missing `model_name`",
            "error: r.json, entry 4 (`e`), key `context_size`: must be a token count like \"128k\", \"4M\" or 8192, found \"lots\"",
            "error: r.json, entry 4 (`e`), key `execute_on`: must be one of `gpu`, `cpu`, found \"tpu\"",
        ]);
    }

    #[test]
    fn templates_must_parse() {
        let found = problems(
            json!([{"model_name": "t", "backend": "mock", "custom_chat_template": "{% for m in messages %}"}]),
        );
        assert_eq!(found.len(), 1);
        assert!(
            found[0]
                .starts_with("error: r.json, entry 0 (`t`), key `custom_chat_template`: the template does not parse:"),
            "{found:?}"
        );
    }

    #[test]
    fn schema_lists_every_key_in_both_places() {
        let schema = registry_schema();
        let props = &schema["items"]["properties"];
        for key in known_keys().keys() {
            assert!(props.get(key).is_some(), "{key}");
        }
        assert!(props["model_config"]["properties"].get("eos_to_cull").is_some());
        assert!(props["model_config"]["properties"].get("model_name").is_none());
    }
}
