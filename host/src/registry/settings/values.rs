//! Typed values of registry keys that plain JSON types do not describe: token
//! counts (`"128k"`), regular expressions, Jinja templates and choices, each with
//! its schema and its check.

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// `context_size` is not a token count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a token count like \"128k\", \"4M\" or 8192, found {found}")]
pub struct ContextSizeError {
    /// The value given.
    pub found: String,
}

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
pub fn parse_context_size(value: &Value) -> Result<Option<u64>, ContextSizeError> {
    let bad = || ContextSizeError {
        found: value.to_string(),
    };
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

/// A token count: `"128k"`, `"4M"`, `"8192"`, `8192`, or `""` (unknown, `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextSize(pub Option<u64>);

impl<'de> Deserialize<'de> for ContextSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        parse_context_size(&value)
            .map(ContextSize)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for ContextSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(n) => s.serialize_u64(n),
            None => s.serialize_str(""),
        }
    }
}

impl JsonSchema for ContextSize {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "ContextSize".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": ["string", "integer"], "pattern": "^([0-9]+[kKmM]?)?$", "format": FORMAT_TOKEN_COUNT})
    }
}

/// A string that must compile as a regular expression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RegexText(pub String);

impl JsonSchema for RegexText {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Regex".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "format": FORMAT_REGEX})
    }
}

/// A string that must parse as a Jinja template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TemplateText(pub String);

impl JsonSchema for TemplateText {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Template".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "format": FORMAT_TEMPLATE})
    }
}

/// Schema formats validation checks beyond the JSON type.
pub(super) const FORMAT_REGEX: &str = "regex";
pub(super) const FORMAT_TEMPLATE: &str = "jinja-template";
pub(super) const FORMAT_TOKEN_COUNT: &str = "token-count";

/// Where a local engine runs its layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecuteOn {
    /// Every layer on the GPU.
    Gpu,
    /// No layer on the GPU.
    Cpu,
}

/// Which kernels candle runs a GGUF with on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CandleKernels {
    /// lmhost's integer kernels (Q4_0, Q4_1, Q8_0).
    Lmhost,
    /// candle's `quantized_llama`.
    Candle,
}
