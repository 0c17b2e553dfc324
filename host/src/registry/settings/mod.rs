//! Typed settings of a registry entry: one serde struct per group of keys (the
//! keys of every entry, and one struct per engine). They are the single
//! description of what lmhost reads: the JSON schema for editors
//! (`registry/schema.json`) is derived from them with `schemars`, validation
//! checks each key against its field's schema, and an engine reads its struct
//! instead of looking keys up by name. Keys no struct names are kept in the
//! entry and reach the adapter unchecked.
//!
//! Each field's doc comment is the key's description in the schema.

use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ModelSpec;

mod values;
pub use values::{
    parse_context_size, CandleKernels, ContextSize, ContextSizeError, ExecuteOn, RegexText, TemplateText,
};
use values::{FORMAT_REGEX, FORMAT_TEMPLATE, FORMAT_TOKEN_COUNT};

/// A setting of an entry that cannot be used. Names the model, and the key when one is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// One key has the wrong type or an unusable value.
    #[error("`{key}` {message}")]
    Key {
        /// Model name.
        model: String,
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The keys do not make settings (a value out of its type's range, say).
    #[error("{message}")]
    Entry {
        /// Model name.
        model: String,
        /// What is wrong.
        message: String,
    },
}

impl SettingsError {
    /// A problem with `key` of `spec`'s entry.
    pub fn key(spec: &ModelSpec, key: &str, message: impl Into<String>) -> Self {
        SettingsError::Key {
            model: spec.model_name().into(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// The model the settings belong to.
    pub fn model(&self) -> &str {
        match self {
            SettingsError::Key { model, .. } | SettingsError::Entry { model, .. } => model,
        }
    }
}

/// The two keys every entry must have.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EntryKeys {
    /// The name the model is looked up by.
    pub model_name: String,
    /// The backend that runs it: llamacpp, huggingface_local, openai, openai_compatible, openrouter, mistral, anthropic, google, cohere, mock (programmatic), human (terminal).
    pub backend: String,
}

/// Metadata: read by nobody but people and tools.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Metadata {
    /// Metadata: release date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_date: Option<String>,
    /// Metadata: whether the weights are public.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_weight: Option<bool>,
    /// Metadata: parameter count, e.g. "135M".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<String>,
    /// Metadata: languages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub languages: Option<Vec<String>>,
    /// Metadata: context length, e.g. "128k".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_size: Option<ContextSize>,
    /// Metadata: license.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<Value>,
}

/// The adapter of an entry and its sandbox limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AdapterSettings {
    /// Sandbox limits for this entry's adapter: deadline_ms, request_budget_ms, memory_mb, output_mb, template_fuel, template_memory_mb, template_deadline_ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter_limits: Option<Map<String, Value>>,
    /// The adapter: a built-in name (chat-template) or a path to a .wasm component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
}

/// Where a local engine's weights are: a file on disk or on a model hub.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FileSettings {
    /// Hugging Face repository id (for openrouter: the model slug).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub huggingface_id: Option<String>,
    /// llamacpp: fnmatch glob of the GGUF file in the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// llamacpp: globs of further shards to fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_files: Option<Vec<String>>,
    /// llamacpp: branch, tag or commit of huggingface_id to download from (default main).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Local weights file (absolute, or relative to the registry file or a models folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_path: Option<String>,
}

/// Keys the chat-template adapters read (the host passes them on).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChatTemplateSettings {
    /// Use the chat template shipped with the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub premade_chat_template: Option<bool>,
    /// A Jinja chat template used when premade_chat_template is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_chat_template: Option<TemplateText>,
    /// Extra variables for the chat template (e.g. {"enable_thinking": false}); `registry check` warns about keys the custom_chat_template does not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template_kwargs: Option<Map<String, Value>>,
    /// Regex removed from the output (end-of-turn tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_to_cull: Option<RegexText>,
    /// Keep only the output after the last occurrence of this string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_split_prefix: Option<String>,
    /// The model writes reasoning before its answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cot_output: Option<bool>,
    /// Start tag of the reasoning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cot_start_tag: Option<String>,
    /// End tag of the reasoning; the answer is what follows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cot_end_tag: Option<String>,
    /// How the model writes tool calls (default: read from the chat template; hermes for templates without tool support).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_format: Option<ToolCallFormat>,
}

/// The tool-call formats of the chat-template adapter (see `chat-formats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ToolCallFormat {
    /// `<tool_call>{"name": …, "arguments": {…}}</tool_call>` (Hermes, Qwen 2.5/3).
    Hermes,
    /// A bare `{"name": …, "parameters": {…}}` object (Llama 3.1–3.3).
    Llama3,
    /// `[TOOL_CALLS][{…}]` or `[TOOL_CALLS]name[ARGS]{…}`.
    Mistral,
}

/// Settings of the llama.cpp engine (`llamacpp`). Two entries that load the same
/// file with equal settings share one loaded engine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LlamaSettings {
    /// BOS text when the model file defines none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_string: Option<String>,
    /// EOS text when the model file defines none (mock: appended to replies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_string: Option<String>,
    /// The weights are gated: use the huggingface key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_api_key: Option<bool>,
    /// Run all layers on the GPU, or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execute_on: Option<ExecuteOn>,
    /// Layers to offload to the GPU when execute_on is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_layers_offloaded: Option<u64>,
    /// Context length to run with (capped at the model's); default: the model's trained length, on llamacpp capped so that the KV cache (parallel × n_ctx cells) takes at most a quarter of the memory available at load (never below 512).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_ctx: Option<u64>,
    /// CPU threads (llamacpp, and huggingface_local on the CPU); default: every core, but llamacpp generates with half of them (prompts get every core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u64>,
    /// llamacpp: most requests decoded together (default 4); each has its own n_ctx of KV cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel: Option<u64>,
}

/// Settings of the candle engine (`huggingface_local`). Two entries that load
/// the same weights with equal settings share one loaded engine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CandleSettings {
    /// Use the slow tokenizer (huggingface_local).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_tokenizer: Option<bool>,
    /// Allow model code from the repository (ignored by lmhost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_remote_code: Option<bool>,
    /// Run all layers on the GPU, or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execute_on: Option<ExecuteOn>,
    /// Context length to run with (capped at the model's); default: the model's trained length (the KV cache grows per request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_ctx: Option<u64>,
    /// huggingface_local, GGUF on the CPU: lmhost's integer kernels (default; Q4_0, Q4_1, Q8_0) or candle's quantized_llama.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candle_kernels: Option<CandleKernels>,
    /// CPU threads (llamacpp, and huggingface_local on the CPU); default: every core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u64>,
}

/// Settings of the remote engine (openai, anthropic, ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RemoteSettings {
    /// The provider's model id (remote backends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// openai_compatible: the name the server knows the model by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_name: Option<String>,
    /// Base URL of the API, overriding the backend's default and key.json. The user's key goes with it only to an origin the key is bound to (docs/registry.md#credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Extra fields merged into the request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_body: Option<Map<String, Value>>,
    /// The provider's reasoning-model quirks apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_model: Option<bool>,
    /// Enable the provider's extended thinking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_mode: Option<bool>,
    /// anthropic: thinking token budget when thinking_mode is set (default 16000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_budget: Option<u64>,
    /// Remote backends: most seconds for a whole call, retries included (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
    /// Remote backends: most seconds to connect (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_s: Option<f64>,
    /// Remote backends: most seconds between two chunks of a reply (default 120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_timeout_s: Option<f64>,
    /// Remote backends: retries on connection errors, 408, 429 and 5xx (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u64>,
    /// Remote backends: wait before the first retry, doubled each time (default 1000); Retry-After wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_backoff_ms: Option<u64>,
}

/// Settings of the scripted `mock` engine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MockSettings {
    /// mock: the reply ({prompt} is replaced by the prompt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// mock: replies used in turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replies: Option<Vec<String>>,
    /// mock: milliseconds to wait before each generated word (a slow model for tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// EOS text when the model file defines none (mock: appended to replies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_string: Option<String>,
}

/// Generation defaults of an entry (a call's own parameters win).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GenerationDefaults {
    /// Default most tokens to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Default temperature (0 = greedy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Default nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Default top-k sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Default min-p sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_p: Option<f32>,
    /// Default sampling seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Default stop strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Vec<String>>,
    /// Default repetition penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repetition_penalty: Option<f32>,
    /// Default frequency penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f32>,
    /// Default presence penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f32>,
}

/// Settings that can be read from an entry: every field checked against its
/// schema first (so an error names the key), then deserialized.
pub trait Settings: DeserializeOwned + JsonSchema {
    /// Read from a spec.
    fn from_spec(spec: &ModelSpec) -> Result<Self, SettingsError> {
        read(spec, &properties_of::<Self>())
    }
}

impl<T: DeserializeOwned + JsonSchema> Settings for T {}

fn read<T: DeserializeOwned>(spec: &ModelSpec, properties: &Map<String, Value>) -> Result<T, SettingsError> {
    let mut map = Map::new();
    for (key, schema) in properties {
        if let Some(value) = spec.get(key) {
            check(schema, value).map_err(|message| SettingsError::key(spec, key, message))?;
            map.insert(key.clone(), value.clone());
        }
    }
    T::deserialize(Value::Object(map)).map_err(|e| SettingsError::Entry {
        model: spec.model_name().into(),
        message: e.to_string(),
    })
}

/// The schema of each field of `T`, by key, in declaration order, tidied for
/// editors (no `null` alternatives: a null key counts as absent).
pub fn properties_of<T: JsonSchema + ?Sized>() -> Map<String, Value> {
    let generator = SchemaSettings::draft07()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    let root = generator.into_root_schema_for::<T>();
    let mut properties = root
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for schema in properties.values_mut() {
        tidy(schema);
    }
    properties
}

/// Drop what `Option` adds (`null` in `type` or `enum`, an `anyOf` with null)
/// and titles; `true` becomes `{}`.
fn tidy(schema: &mut Value) {
    if schema == &Value::Bool(true) {
        *schema = Value::Object(Map::new());
    }
    let Some(obj) = schema.as_object_mut() else { return };
    obj.remove("title");
    if let Some(Value::Array(types)) = obj.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            obj.insert("type".into(), only);
        }
    }
    if let Some(Value::Array(options)) = obj.get_mut("enum") {
        options.retain(|o| !o.is_null());
    }
    if let Some(Value::Array(any_of)) = obj.get("anyOf").cloned() {
        let rest: Vec<Value> = any_of
            .into_iter()
            .filter(|s| s.get("type") != Some(&Value::from("null")))
            .collect();
        if rest.len() == 1 {
            obj.remove("anyOf");
            if let Some(inner) = rest[0].as_object() {
                for (k, v) in inner {
                    obj.entry(k.clone()).or_insert(v.clone());
                }
            }
        }
    }
    // A unit-only enum documented variant by variant: the plain list of values.
    let consts: Option<Vec<Value>> = obj
        .get("oneOf")
        .and_then(Value::as_array)
        .and_then(|items| items.iter().map(|s| s.get("const").cloned()).collect());
    if let Some(values) = consts {
        obj.remove("oneOf");
        obj.insert("type".into(), Value::from("string"));
        obj.insert("enum".into(), Value::Array(values));
    }
}

/// Every key with a known meaning: its schema, in the order the schema lists them.
pub fn known_keys() -> &'static Map<String, Value> {
    static KEYS: OnceLock<Map<String, Value>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut all = Map::new();
        for group in [
            properties_of::<EntryKeys>(),
            properties_of::<Metadata>(),
            properties_of::<AdapterSettings>(),
            properties_of::<FileSettings>(),
            properties_of::<ChatTemplateSettings>(),
            properties_of::<LlamaSettings>(),
            properties_of::<CandleSettings>(),
            properties_of::<RemoteSettings>(),
            properties_of::<MockSettings>(),
            properties_of::<GenerationDefaults>(),
        ] {
            for (key, schema) in group {
                all.entry(key).or_insert(schema);
            }
        }
        all
    })
}

/// Check one value against its key's schema; the message says what it must be.
pub(crate) fn check(schema: &Value, value: &Value) -> Result<(), String> {
    let found = || format!("found {value}");
    match schema.get("format").and_then(Value::as_str) {
        Some(FORMAT_REGEX) => {
            let s = value
                .as_str()
                .ok_or_else(|| format!("must be a string (a regex), {}", found()))?;
            return regex::Regex::new(s).map(|_| ()).map_err(|e| {
                let last = e.to_string().lines().last().unwrap_or_default().trim().to_string();
                let first = last.strip_prefix("error: ").unwrap_or(&last).to_string();
                format!("`{s}` is not a valid regex: {first}")
            });
        }
        Some(FORMAT_TEMPLATE) => {
            let s = value
                .as_str()
                .ok_or_else(|| format!("must be a string (a Jinja template), {}", found()))?;
            return lmhost_template::check(s).map_err(|e| format!("the template does not parse: {e}"));
        }
        Some(FORMAT_TOKEN_COUNT) => return parse_context_size(value).map(|_| ()).map_err(|e| e.to_string()),
        _ => {}
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        return if options.contains(value) {
            Ok(())
        } else {
            let list: Vec<String> = options
                .iter()
                .map(|o| format!("`{}`", o.as_str().unwrap_or_default()))
                .collect();
            Err(format!("must be one of {}, {}", list.join(", "), found()))
        };
    }
    let (fits, want) = match schema.get("type").and_then(Value::as_str) {
        Some("string") => (value.is_string(), "a string"),
        Some("boolean") => (value.is_boolean(), "true or false"),
        Some("integer") => (value.is_u64(), "an integer ≥ 0"),
        Some("number") => (value.is_number(), "a number"),
        Some("object") => (value.is_object(), "an object"),
        Some("array") => (
            value.as_array().is_some_and(|items| items.iter().all(Value::is_string)),
            "a list of strings",
        ),
        _ => (true, ""),
    };
    if fits {
        Ok(())
    } else {
        Err(format!("must be {want}, {}", found()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::SpecSource;
    use serde_json::json;

    fn spec(v: Value) -> ModelSpec {
        ModelSpec::from_entry(v.as_object().unwrap(), SpecSource::Query).unwrap()
    }

    #[test]
    fn settings_name_model_and_key() {
        let s = spec(json!({"model_name": "m", "backend": "llamacpp", "n_ctx": "big"}));
        let err = LlamaSettings::from_spec(&s).unwrap_err();
        assert_eq!(err.to_string(), "`n_ctx` must be an integer ≥ 0, found \"big\"");
        assert_eq!(err.model(), "m");
        let s = spec(json!({"model_name": "m", "backend": "llamacpp", "execute_on": "cpu", "n_ctx": 64, "other": 1}));
        let llama = LlamaSettings::from_spec(&s).unwrap();
        assert_eq!(llama.execute_on, Some(ExecuteOn::Cpu));
        assert_eq!(llama.n_ctx, Some(64));
    }

    #[test]
    fn every_field_has_a_schema_and_a_description() {
        let keys = known_keys();
        for key in [
            "model_name",
            "backend",
            "eos_to_cull",
            "execute_on",
            "context_size",
            "license",
            "stop",
            "max_retries",
        ] {
            assert!(keys.contains_key(key), "{key}");
        }
        for (key, schema) in keys {
            assert!(schema.get("description").is_some(), "{key}: {schema}");
            assert!(
                schema.get("anyOf").is_none() && schema.get("title").is_none(),
                "{key}: {schema}"
            );
        }
        assert_eq!(keys["execute_on"]["enum"], json!(["gpu", "cpu"]));
        assert_eq!(keys["eos_to_cull"]["format"], json!("regex"));
        assert_eq!(keys["n_ctx"]["type"], json!("integer"));
    }

    #[test]
    fn generation_value_out_of_range_is_an_entry_error() {
        let s = spec(json!({"model_name": "m", "backend": "mock", "max_tokens": 5_000_000_000u64}));
        let err = GenerationDefaults::from_spec(&s).unwrap_err();
        assert!(matches!(err, SettingsError::Entry { .. }), "{err:?}");
    }
}
