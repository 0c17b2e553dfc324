//! `human` (alias `terminal`): a person is the model.
//!
//! The prompt the adapter shaped is shown on the terminal (standard error by
//! default), and one line read from standard input is the reply. Input and
//! output are injectable, so the engine is tested like any other.

use std::io::{BufRead, Write};
use std::sync::Mutex;
use std::time::Instant;

use super::text::TextAccumulator;
use super::{EngineError, EngineInfo, EngineOutput, FinishReason, LocalEngine, PromptInput, TextSink};

/// The template a person reads: `[role] content` lines, then a `> ` prompt.
pub const HUMAN_TEMPLATE: &str = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}> ";

type Input = Box<dyn BufRead + Send>;
type Output = Box<dyn Write + Send>;

/// Replies typed by a person.
pub struct HumanEngine {
    io: Mutex<(Input, Output)>,
    info: EngineInfo,
}

impl std::fmt::Debug for HumanEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HumanEngine").finish_non_exhaustive()
    }
}

impl HumanEngine {
    /// Prompt on standard error, reply from standard input.
    pub fn stdio() -> Self {
        Self::with_io(
            Box::new(std::io::BufReader::new(std::io::stdin())),
            Box::new(std::io::stderr()),
        )
    }

    /// With any input and output.
    pub fn with_io(input: Input, output: Output) -> Self {
        let info = EngineInfo {
            builtin_template: Some(HUMAN_TEMPLATE.into()),
            ..EngineInfo::default()
        };
        Self {
            io: Mutex::new((input, output)),
            info,
        }
    }
}

impl LocalEngine for HumanEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    fn complete(&self, input: &PromptInput<'_>, sink: TextSink<'_>) -> Result<EngineOutput, EngineError> {
        let started = Instant::now();
        let mut io = self.io.lock().unwrap_or_else(|p| p.into_inner());
        let (reader, writer) = &mut *io;
        let fail = |message: String| EngineError::Inference {
            model: "human".into(),
            message,
        };
        writer
            .write_all(input.text.as_bytes())
            .and_then(|_| writer.flush())
            .map_err(|e| fail(format!("cannot show the prompt: {e}")))?;
        let mut line = String::new();
        let read = reader
            .read_line(&mut line)
            .map_err(|e| fail(format!("cannot read the reply: {e}")))?;
        if read == 0 {
            return Err(fail("no reply: standard input is closed".into()));
        }
        let reply = line.strip_suffix('\n').unwrap_or(&line);
        let reply = reply.strip_suffix('\r').unwrap_or(reply);
        let mut acc = TextAccumulator::new(input.stop);
        let mut piece = acc.push(reply.as_bytes());
        piece.push_str(&acc.finish());
        if !piece.is_empty() {
            sink(&piece);
        }
        Ok(EngineOutput {
            token_ids: Vec::new(),
            text: acc.text().to_string(),
            prompt_tokens: input.text.split_whitespace().count() as u32,
            completion_tokens: acc.text().split_whitespace().count() as u32,
            finish_reason: FinishReason::Stop,
            prompt_time: std::time::Duration::ZERO,
            generation_time: started.elapsed(),
            time_to_first_token: Some(started.elapsed()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GenerationParams;

    #[test]
    fn shows_the_prompt_and_reads_one_line() {
        let shown = std::sync::Arc::new(Mutex::new(Vec::new()));
        struct Shared(std::sync::Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let engine = HumanEngine::with_io(Box::new(&b"first reply\nsecond\n"[..]), Box::new(Shared(shown.clone())));
        let params = GenerationParams::default();
        let input = PromptInput {
            text: "[user] hi\n> ",
            add_bos: false,
            stop: &[],
            params: &params,
            constraint: None,
        };
        let out = engine.complete(&input, &mut |_| true).unwrap();
        assert_eq!(out.text, "first reply");
        assert_eq!(engine.complete(&input, &mut |_| true).unwrap().text, "second");
        assert_eq!(
            String::from_utf8(shown.lock().unwrap().clone()).unwrap(),
            "[user] hi\n> [user] hi\n> "
        );
        let err = engine.complete(&input, &mut |_| true).unwrap_err().to_string();
        assert!(err.contains("standard input is closed"), "{err}");
    }
}
