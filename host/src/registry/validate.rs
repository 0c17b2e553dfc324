//! Validation of registry entries: every problem at once, each naming file,
//! entry, model and key.
//!
//! The key table [`KEYS`] is the single description of what lmhost reads; the
//! JSON schema for editors (`registry/schema.json`) is generated from it.
//! Errors are genuine data problems (a missing mandatory key, a wrong type, a
//! regex or template that does not compile). An entry for a backend lmhost does
//! not run is a warning: the file is still a valid registry.

use std::fmt;

use serde_json::{json, Map, Value};

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

/// The type a key must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// A string.
    Str,
    /// `true` or `false`.
    Bool,
    /// An integer ≥ 0.
    UInt,
    /// Any number.
    Number,
    /// A list of strings.
    StrList,
    /// A JSON object.
    Object,
    /// Anything.
    Any,
    /// A string that compiles as a regular expression.
    Regex,
    /// A string that parses as a Jinja template.
    Template,
    /// `"128k"`, `"4M"`, `"8192"`, `8192` or `""` (unknown).
    ContextSize,
    /// One of these strings.
    Choice(&'static [&'static str]),
}

/// A key lmhost reads (or knows from clemcore), its type and meaning.
#[derive(Debug, Clone, Copy)]
pub struct KeyRule {
    /// The key.
    pub name: &'static str,
    /// Its type.
    pub ty: KeyType,
    /// What it means.
    pub description: &'static str,
}

const fn key(name: &'static str, ty: KeyType, description: &'static str) -> KeyRule {
    KeyRule { name, ty, description }
}

use KeyType::*;

/// Every key with a known meaning. Keys not listed are kept and passed on unchecked.
pub const KEYS: &[KeyRule] = &[
    key("model_name", Str, "The name the model is looked up by."),
    key("backend", Str, "The backend that runs it: llamacpp, huggingface_local, openai, openai_compatible, openrouter, mistral, anthropic, google, cohere, mock (programmatic), human (terminal)."),
    key("release_date", Str, "Metadata: release date."),
    key("open_weight", Bool, "Metadata: whether the weights are public."),
    key("parameters", Str, "Metadata: parameter count, e.g. \"135M\"."),
    key("languages", StrList, "Metadata: languages."),
    key("context_size", ContextSize, "Metadata: context length, e.g. \"128k\"."),
    key("license", Any, "Metadata: license."),
    key("adapter_limits", Object, "Sandbox limits for this entry's adapter: deadline_ms, memory_mb, output_mb, template_fuel, template_memory_mb, template_deadline_ms."),
    key("adapter", Str, "The adapter: a built-in name (chat-template) or a path to a .wasm component."),
    key("huggingface_id", Str, "Hugging Face repository id (for openrouter: the model slug)."),
    key("filename", Str, "llamacpp: fnmatch glob of the GGUF file in the repository."),
    key("additional_files", StrList, "llamacpp: globs of further shards to fetch."),
    key("revision", Str, "llamacpp: branch, tag or commit of huggingface_id to download from (default main)."),
    key("model_path", Str, "Local weights file (absolute, or relative to the registry file or a models folder)."),
    key("premade_chat_template", Bool, "Use the chat template shipped with the model."),
    key("custom_chat_template", Template, "A Jinja chat template used when premade_chat_template is false."),
    key("eos_to_cull", Regex, "Regex removed from the output (end-of-turn tokens)."),
    key("output_split_prefix", Str, "Keep only the output after the last occurrence of this string."),
    key("cot_output", Bool, "The model writes reasoning before its answer."),
    key("cot_start_tag", Str, "Start tag of the reasoning."),
    key("cot_end_tag", Str, "End tag of the reasoning; the answer is what follows it."),
    key("bos_string", Str, "BOS text when the model file defines none."),
    key("eos_string", Str, "EOS text when the model file defines none (mock: appended to replies)."),
    key("requires_api_key", Bool, "The weights are gated: use the huggingface key."),
    key("slow_tokenizer", Bool, "Use the slow tokenizer (huggingface_local)."),
    key("trust_remote_code", Bool, "Allow model code from the repository (ignored by lmhost)."),
    key("execute_on", Choice(&["gpu", "cpu"]), "Run all layers on the GPU, or none."),
    key("gpu_layers_offloaded", UInt, "Layers to offload to the GPU when execute_on is not set."),
    key("n_ctx", UInt, "Context length to run with (capped at the model's)."),
    key("candle_kernels", Choice(&["lmhost", "candle"]), "huggingface_local, GGUF on the CPU: lmhost's integer kernels (default; Q4_0, Q4_1, Q8_0) or candle's quantized_llama."),
    key("threads", UInt, "CPU threads (llamacpp, and huggingface_local on the CPU); default: every core."),
    key("parallel", UInt, "llamacpp: most requests decoded together (default 4); each has its own n_ctx of KV cache."),
    key("model_id", Str, "The provider's model id (remote backends)."),
    key("call_name", Str, "openai_compatible: the name the server knows the model by."),
    key("base_url", Str, "Base URL of the API, overriding the backend's default and key.json."),
    key("extra_body", Object, "Extra fields merged into the request body."),
    key("reasoning_model", Bool, "The provider's reasoning-model quirks apply."),
    key("thinking_mode", Bool, "Enable the provider's extended thinking."),
    key("thinking_budget", UInt, "anthropic: thinking token budget when thinking_mode is set (default 16000)."),
    key("timeout_s", Number, "Remote backends: most seconds for a whole call, retries included (default 600)."),
    key("connect_timeout_s", Number, "Remote backends: most seconds to connect (default 10)."),
    key("chunk_timeout_s", Number, "Remote backends: most seconds between two chunks of a reply (default 120)."),
    key("max_retries", UInt, "Remote backends: retries on connection errors, 408, 429 and 5xx (default 3)."),
    key("retry_backoff_ms", UInt, "Remote backends: wait before the first retry, doubled each time (default 1000); Retry-After wins."),
    key("reply", Str, "mock: the reply ({prompt} is replaced by the prompt)."),
    key("replies", StrList, "mock: replies used in turn."),
    key("delay_ms", UInt, "mock: milliseconds to wait before each generated word (a slow model for tests)."),
    key("max_tokens", UInt, "Default most tokens to generate."),
    key("temperature", Number, "Default temperature (0 = greedy)."),
    key("top_p", Number, "Default nucleus sampling."),
    key("top_k", UInt, "Default top-k sampling."),
    key("min_p", Number, "Default min-p sampling."),
    key("seed", UInt, "Default sampling seed."),
    key("stop", StrList, "Default stop strings."),
    key("repetition_penalty", Number, "Default repetition penalty."),
    key("frequency_penalty", Number, "Default frequency penalty."),
    key("presence_penalty", Number, "Default presence penalty."),
];

/// Parse `context_size`: `"128k"` = 128 × 1024, `"4M"` = 4 × 1024², digits as is;
/// `""` is unknown (`None`).
///
/// ```
/// use lmhost::registry::parse_context_size;
/// use serde_json::json;
/// assert_eq!(parse_context_size(&json!("128k")), Ok(Some(131072)));
/// assert_eq!(parse_context_size(&json!("4M")), Ok(Some(4194304)));
/// assert_eq!(parse_context_size(&json!(8192)), Ok(Some(8192)));
/// assert_eq!(parse_context_size(&json!("")), Ok(None));
/// assert!(parse_context_size(&json!("lots")).is_err());
/// ```
pub fn parse_context_size(value: &Value) -> Result<Option<u64>, String> {
    let bad = || format!("must be a token count like \"128k\", \"4M\" or 8192, found {value}");
    match value {
        Value::Number(n) => n.as_u64().map(Some).ok_or_else(bad),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => {
            let s = s.trim();
            let (digits, factor) = match s.char_indices().last() {
                Some((i, 'k' | 'K')) => (&s[..i], 1024),
                Some((i, 'm' | 'M')) => (&s[..i], 1024 * 1024),
                _ => (s, 1),
            };
            digits
                .parse::<u64>()
                .ok()
                .and_then(|n| n.checked_mul(factor))
                .map(Some)
                .ok_or_else(bad)
        }
        _ => Err(bad()),
    }
}

fn check_type(ty: KeyType, value: &Value) -> Result<(), String> {
    let found = || format!("found {value}");
    match ty {
        Any => Ok(()),
        Str => value
            .as_str()
            .map(|_| ())
            .ok_or_else(|| format!("must be a string, {}", found())),
        Bool => value
            .as_bool()
            .map(|_| ())
            .ok_or_else(|| format!("must be true or false, {}", found())),
        UInt => value
            .as_u64()
            .map(|_| ())
            .ok_or_else(|| format!("must be an integer ≥ 0, {}", found())),
        Number => value
            .as_f64()
            .map(|_| ())
            .ok_or_else(|| format!("must be a number, {}", found())),
        Object => value
            .as_object()
            .map(|_| ())
            .ok_or_else(|| format!("must be an object, {}", found())),
        StrList => match value.as_array() {
            Some(items) if items.iter().all(Value::is_string) => Ok(()),
            _ => Err(format!("must be a list of strings, {}", found())),
        },
        Regex => {
            let s = value
                .as_str()
                .ok_or_else(|| format!("must be a string (a regex), {}", found()))?;
            regex::Regex::new(s).map(|_| ()).map_err(|e| {
                let last = e.to_string().lines().last().unwrap_or_default().trim().to_string();
                let first = last.strip_prefix("error: ").unwrap_or(&last).to_string();
                format!("`{s}` is not a valid regex: {first}")
            })
        }
        Template => {
            let s = value
                .as_str()
                .ok_or_else(|| format!("must be a string (a Jinja template), {}", found()))?;
            lmhost_template::check(s).map_err(|e| format!("the template does not parse: {e}"))
        }
        ContextSize => parse_context_size(value).map(|_| ()),
        Choice(options) => match value.as_str() {
            Some(s) if options.contains(&s) => Ok(()),
            _ => Err(format!("must be one of {}, {}", quote_list(options), found())),
        },
    }
}

fn quote_list(items: &[&str]) -> String {
    items.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
}

/// Problems of one resolved spec: `(severity, key, message)`.
pub fn validate_spec(spec: &ModelSpec) -> Vec<(Severity, Option<String>, String)> {
    let mut out = Vec::new();
    let map = spec.as_json();
    for rule in KEYS {
        if let Some(value) = map.get(rule.name).filter(|v| !v.is_null()) {
            if let Err(message) = check_type(rule.ty, value) {
                out.push((Severity::Error, Some(rule.name.to_string()), message));
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
    let backend = spec.backend();
    match find_backend(backend) {
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
            Err(message) => out.push(problem(Some(index), name, None, message)),
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

/// The JSON schema of a registry file, for editors (`registry/schema.json`).
pub fn registry_schema() -> Value {
    let mut properties = Map::new();
    for rule in KEYS {
        let mut schema = match rule.ty {
            Str => json!({"type": "string"}),
            Bool => json!({"type": "boolean"}),
            UInt => json!({"type": "integer", "minimum": 0}),
            Number => json!({"type": "number"}),
            StrList => json!({"type": "array", "items": {"type": "string"}}),
            Object => json!({"type": "object"}),
            Any => json!({}),
            Regex => json!({"type": "string", "format": "regex"}),
            Template => json!({"type": "string"}),
            ContextSize => json!({"type": ["string", "integer"], "pattern": "^([0-9]+[kKmM]?)?$"}),
            Choice(options) => json!({"enum": options}),
        };
        schema["description"] = json!(rule.description);
        properties.insert(rule.name.into(), schema);
    }
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
        for rule in KEYS {
            assert!(props.get(rule.name).is_some(), "{}", rule.name);
        }
        assert!(props["model_config"]["properties"].get("eos_to_cull").is_some());
        assert!(props["model_config"]["properties"].get("model_name").is_none());
    }
}
