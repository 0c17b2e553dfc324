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
    /// `system`, `user`, `assistant`, `tool`, …
    pub role: String,
    /// The text.
    pub content: String,
    /// An assistant turn's tool calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// A `tool` turn: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// A `tool` turn: the name of the tool that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// An assistant turn's reasoning, when kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
}

impl Message {
    /// A message with any role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
            reasoning: None,
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
    /// The assistant turn of a generation, as the next request must carry it:
    /// its text, its tool calls and its reasoning.
    pub fn from_generation(g: &Generation) -> Self {
        Self {
            tool_calls: g.tool_calls.clone(),
            reasoning: g.reasoning.clone(),
            ..Self::assistant(g.response_text.clone())
        }
    }
    /// A `tool` message: the result of the call `call_id` of tool `name`.
    pub fn tool_result(call_id: impl Into<String>, name: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(call_id.into()),
            name: Some(name.into()),
            ..Self::new("tool", content)
        }
    }
}

/// A call of a tool, made by the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Unique within a conversation (`call_…`).
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments, JSON text of an object.
    pub arguments: String,
}

/// A tool the model may call: a function with a JSON schema for its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    /// Its name.
    pub name: String,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON schema of its arguments (an object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Arguments must follow the schema exactly.
    #[serde(default)]
    pub strict: bool,
}

impl Tool {
    /// A tool with a description and an argument schema.
    pub fn new(name: impl Into<String>, description: impl Into<String>, parameters: Value) -> Self {
        Self {
            name: name.into(),
            description: Some(description.into()),
            parameters: Some(parameters),
            strict: false,
        }
    }
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides.
    #[default]
    Auto,
    /// No tool call.
    None,
    /// At least one tool call (enforced while decoding by the llamacpp backend).
    Required,
    /// A call of this tool (enforced likewise).
    Function(String),
}

/// A piece of a streamed answer: text, reasoning and whole tool calls, in the
/// order the model wrote them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamDelta {
    /// Answer text.
    pub text: String,
    /// Reasoning text.
    pub reasoning: String,
    /// Tool calls completed in this piece.
    pub tool_calls: Vec<ToolCall>,
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
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// Whether and which tool it must call (`None`: auto).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Several calls in one turn are allowed (`None`: yes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
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
            tools: if self.tools.is_empty() {
                defaults.tools.clone()
            } else {
                self.tools.clone()
            },
            tool_choice: self.tool_choice.clone().or_else(|| defaults.tool_choice.clone()),
            parallel_tool_calls: self.parallel_tool_calls.or(defaults.parallel_tool_calls),
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
            ..GenerationParams::default()
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
    /// Of the completion tokens, those the model spent reasoning.
    #[serde(default)]
    pub reasoning_tokens: u32,
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
    /// The answer alone, post-processed by the adapter: no reasoning, no tool calls.
    pub response_text: String,
    /// The model's reasoning, when it wrote any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// The tool calls it made, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// `stop`, `length`, `tool_calls` or `cancelled`.
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
