//! `mock` (alias `programmatic`): a deterministic engine with no model behind it.
//!
//! It answers with the entry's `reply` (default: `mock reply`), or with its
//! `replies` in turn (the n-th call of a loaded model gets reply n, cycling),
//! followed by the entry's `eos_string` when one is set, so adapters can be
//! tested end to end. Its built-in chat template is [`MOCK_TEMPLATE`].
//! `{prompt}` in the reply is replaced by the prompt it was given. Tokens are
//! counted as whitespace-separated words and streamed one by one; `delay_ms`
//! waits that long before each word (a deterministic slow model for tests).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::text::TextAccumulator;
use super::{EngineError, EngineInfo, EngineOutput, FinishReason, LocalEngine, PromptInput, TextSink};
use crate::registry::{MockSettings, ModelSpec};

/// The template the mock "model file" ships: one `<|role|>content` line per message.
pub const MOCK_TEMPLATE: &str =
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";

/// The scripted engine.
#[derive(Debug)]
pub struct MockEngine {
    replies: Vec<String>,
    calls: AtomicUsize,
    eos: Option<String>,
    delay: std::time::Duration,
    info: EngineInfo,
}

impl MockEngine {
    /// From the registry entry's [`MockSettings`]: `reply` or `replies`, `eos_string`, `delay_ms`.
    pub fn from_spec(spec: &ModelSpec) -> Result<Self, EngineError> {
        let settings: MockSettings = spec.settings()?;
        let mut replies = settings.replies.unwrap_or_default();
        if replies.is_empty() {
            replies.push(settings.reply.unwrap_or_else(|| "mock reply".into()));
        }
        let eos = settings.eos_string;
        let delay = settings.delay_ms.unwrap_or(0);
        let info = EngineInfo {
            builtin_template: Some(MOCK_TEMPLATE.into()),
            eos_token: eos.clone(),
            context_length: Some(1 << 20),
            ..EngineInfo::default()
        };
        Ok(Self {
            replies,
            calls: AtomicUsize::new(0),
            eos,
            delay: std::time::Duration::from_millis(delay),
            info,
        })
    }
}

impl LocalEngine for MockEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    /// One token per word, as the mock generates (so reasoning is counted as
    /// completion tokens are).
    fn tokenize(&self, text: &str) -> Option<Result<Vec<u32>, EngineError>> {
        let words = text.split_inclusive(char::is_whitespace).count();
        Some(Ok((0..u32::try_from(words).unwrap_or(u32::MAX)).collect()))
    }

    fn complete(&self, input: &PromptInput<'_>, sink: TextSink<'_>) -> Result<EngineOutput, EngineError> {
        let started = Instant::now();
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let reply = self.replies[n % self.replies.len()].replace("{prompt}", input.text);
        let max_tokens = input.params.max_tokens.unwrap_or(crate::generation::DEFAULT_MAX_TOKENS);
        let mut acc = TextAccumulator::new(input.stop);
        let mut completion_tokens = 0;
        let mut finish_reason = FinishReason::Stop;
        for word in reply.split_inclusive(char::is_whitespace) {
            if completion_tokens == max_tokens {
                finish_reason = FinishReason::Length;
                break;
            }
            if !self.delay.is_zero() {
                std::thread::sleep(self.delay);
            }
            completion_tokens += 1;
            let piece = acc.push(word.as_bytes());
            if !piece.is_empty() && !sink(&piece) {
                finish_reason = FinishReason::Cancelled;
                break;
            }
            if acc.stopped() {
                break;
            }
        }
        if finish_reason == FinishReason::Stop && !acc.stopped() {
            if let Some(eos) = &self.eos {
                acc.push_final(eos.as_bytes());
            }
        }
        let rest = acc.finish();
        if !rest.is_empty() && finish_reason != FinishReason::Cancelled {
            sink(&rest);
        }
        Ok(EngineOutput {
            token_ids: Vec::new(),
            text: acc.text().to_string(),
            prompt_tokens: input.text.split_whitespace().count() as u32,
            completion_tokens,
            finish_reason,
            prompt_time: std::time::Duration::ZERO,
            generation_time: started.elapsed(),
            time_to_first_token: Some(started.elapsed()),
        })
    }
}
