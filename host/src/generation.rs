//! The data of one call: messages in, parameters, and the `Generation` out.
//!
//! Imports the registry (an entry's default parameters); must not import
//! engines, adapters or the model layer.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::registry::{GenerationDefaults, ModelSpec, SettingsError};

/// `max_tokens` when neither the call nor the registry entry sets one.
pub const DEFAULT_MAX_TOKENS: u32 = 256;

/// One chat turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant`, …
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message with any role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// Generation parameters. `None` defers to the registry entry, then to the engine.
/// Temperature defaults to 0 (greedy), as in clembench runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationParams {
    /// Most tokens to generate.
    pub max_tokens: Option<u32>,
    /// 0 is greedy.
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Top-k sampling (0 = off).
    pub top_k: Option<u32>,
    /// Min-p sampling.
    pub min_p: Option<f32>,
    /// Sampling seed; the same seed gives the same text.
    pub seed: Option<u64>,
    /// Stop strings: generation ends before the first one.
    #[serde(default)]
    pub stop: Vec<String>,
    /// Repetition penalty (1 = off).
    pub repetition_penalty: Option<f32>,
    /// Frequency penalty (0 = off).
    pub frequency_penalty: Option<f32>,
    /// Presence penalty (0 = off).
    pub presence_penalty: Option<f32>,
    /// The shape the output must have, enforced while decoding (llamacpp);
    /// `None` is free text. An engine that cannot enforce it refuses the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
}

/// A constraint on the output, enforced token by token with a grammar: the
/// text can only be what the format allows (up to `max_tokens`: a generation
/// that runs out of tokens is cut, with finish reason `length`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ResponseFormat {
    /// Any JSON object.
    JsonObject,
    /// JSON valid against a JSON schema.
    JsonSchema {
        /// The schema (an object).
        schema: Value,
    },
}

impl ResponseFormat {
    /// The JSON schema the output must satisfy (`{"type": "object"}` for any object).
    pub fn schema(&self) -> Value {
        match self {
            ResponseFormat::JsonObject => serde_json::json!({"type": "object"}),
            ResponseFormat::JsonSchema { schema } => schema.clone(),
        }
    }
}

impl GenerationParams {
    /// Greedy decoding with a token budget.
    pub fn greedy(max_tokens: u32) -> Self {
        Self {
            max_tokens: Some(max_tokens),
            temperature: Some(0.0),
            ..Self::default()
        }
    }

    /// The generation defaults a registry entry sets ([`GenerationDefaults`]).
    pub(crate) fn from_spec(spec: &ModelSpec) -> Result<Self, SettingsError> {
        Ok(spec.settings::<GenerationDefaults>()?.into())
    }

    /// `self`, with unset values taken from `defaults`.
    pub fn or(&self, defaults: &GenerationParams) -> GenerationParams {
        GenerationParams {
            max_tokens: self.max_tokens.or(defaults.max_tokens),
            temperature: self.temperature.or(defaults.temperature),
            top_p: self.top_p.or(defaults.top_p),
            top_k: self.top_k.or(defaults.top_k),
            min_p: self.min_p.or(defaults.min_p),
            seed: self.seed.or(defaults.seed),
            stop: if self.stop.is_empty() {
                defaults.stop.clone()
            } else {
                self.stop.clone()
            },
            repetition_penalty: self.repetition_penalty.or(defaults.repetition_penalty),
            frequency_penalty: self.frequency_penalty.or(defaults.frequency_penalty),
            presence_penalty: self.presence_penalty.or(defaults.presence_penalty),
            response_format: self
                .response_format
                .clone()
                .or_else(|| defaults.response_format.clone()),
        }
    }
}

impl From<GenerationDefaults> for GenerationParams {
    fn from(d: GenerationDefaults) -> Self {
        GenerationParams {
            max_tokens: d.max_tokens,
            temperature: d.temperature,
            top_p: d.top_p,
            top_k: d.top_k,
            min_p: d.min_p,
            seed: d.seed,
            stop: d.stop.unwrap_or_default(),
            repetition_penalty: d.repetition_penalty,
            frequency_penalty: d.frequency_penalty,
            presence_penalty: d.presence_penalty,
            response_format: None,
        }
    }
}

/// Token counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Their sum.
    pub total_tokens: u32,
}

/// Where the time went, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// In the adapter (shaping and parsing).
    pub adapter_ms: f64,
    /// Evaluating the prompt.
    pub prompt_ms: f64,
    /// Generating, first token included.
    pub generation_ms: f64,
    /// From the engine call to the first generated token.
    pub time_to_first_token_ms: Option<f64>,
    /// The whole call.
    pub total_ms: f64,
}

/// The result of one call, as clembench defines it, plus usage and timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// The model's registry name.
    pub model: String,
    /// Exactly what the engine was given (the prompt text, or the HTTP request body).
    pub prompt: Value,
    /// Exactly what the engine returned.
    pub response: Value,
    /// The answer alone, post-processed by the adapter.
    pub response_text: String,
    /// `stop`, `length` or `cancelled`.
    pub finish_reason: String,
    /// Token counts.
    pub usage: Usage,
    /// Timings.
    pub timings: Timings,
}

impl Generation {
    /// Generated tokens per second of generation time.
    pub fn tokens_per_second(&self) -> f64 {
        rate(self.usage.completion_tokens, self.timings.generation_ms)
    }

    /// Prompt tokens per second of prompt evaluation time.
    pub fn prompt_tokens_per_second(&self) -> f64 {
        rate(self.usage.prompt_tokens, self.timings.prompt_ms)
    }
}

fn rate(tokens: u32, ms: f64) -> f64 {
    if ms > 0.0 {
        f64::from(tokens) * 1000.0 / ms
    } else {
        0.0
    }
}
