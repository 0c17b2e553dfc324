//! [`Model`]: one loaded model (spec, engine, adapter) and the one generation
//! path: adapter shapes → engine runs → adapter parses or streams →
//! [`Generation`]. A prompt goes to a local engine, an HTTP request to the remote
//! one; both end in the same [`Generation`] builder.
//!
//! Imports adapters, engines, generation and the registry; must not import the
//! host, the server or the tools.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::adapters::{wit, Adapter, AdapterSession, AdapterStream};
#[cfg(feature = "remote")]
use crate::engines::HttpInput;
use crate::engines::{Engine, EngineError, FinishReason, PromptInput};
use crate::error::{Error, Result};
use crate::generation::{Generation, GenerationParams, Message, Timings, Usage};
use crate::registry::ModelSpec;

/// A loaded model: spec, engine and adapter. Cheap to share across threads.
pub struct Model {
    spec: ModelSpec,
    engine: Engine,
    adapter: Adapter,
    info: wit::ModelInfo,
    defaults: GenerationParams,
}

/// What one call measured and produced, for [`finish`]: the one place a
/// [`Generation`] is assembled, for local and remote engines alike.
struct Outcome {
    prompt: Value,
    response: Value,
    completion: wit::Completion,
    /// The engine's reason; `Stop` defers to the adapter's.
    finish_reason: FinishReason,
    prompt_tokens: u32,
    completion_tokens: u32,
    prompt_time: Duration,
    generation_time: Duration,
    time_to_first_token: Option<Duration>,
}

/// Assemble the [`Generation`] of one call.
fn finish(model: String, outcome: Outcome, adapter_time: Duration, started: Instant) -> Generation {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let Outcome {
        prompt,
        response,
        completion,
        finish_reason,
        prompt_tokens,
        completion_tokens,
        prompt_time,
        generation_time,
        time_to_first_token,
    } = outcome;
    Generation {
        model,
        prompt,
        response,
        response_text: completion.text,
        finish_reason: match finish_reason {
            FinishReason::Stop => completion.finish_reason.unwrap_or_else(|| "stop".into()),
            other => other.as_str().into(),
        },
        usage: Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        },
        timings: Timings {
            adapter_ms: ms(adapter_time),
            prompt_ms: ms(prompt_time),
            generation_ms: ms(generation_time),
            time_to_first_token_ms: time_to_first_token.map(ms),
            total_ms: ms(started.elapsed()),
        },
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.name())
            .field("backend", &self.spec.backend())
            .field("adapter", &self.adapter)
            .finish_non_exhaustive()
    }
}

impl Model {
    pub(crate) fn new(
        spec: ModelSpec,
        engine: Engine,
        adapter: Adapter,
        info: wit::ModelInfo,
        defaults: GenerationParams,
    ) -> Self {
        Self {
            spec,
            engine,
            adapter,
            info,
            defaults,
        }
    }

    /// The resolved registry entry.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The model's registry name.
    pub fn name(&self) -> &str {
        self.spec.model_name()
    }

    /// The adapter shaping its requests.
    pub fn adapter(&self) -> &Adapter {
        &self.adapter
    }

    /// What its adapter is told about it (`model-info`: spec, template, BOS/EOS from the engine).
    pub fn model_info(&self) -> &wit::ModelInfo {
        &self.info
    }

    /// One user message, the entry's default parameters.
    pub fn run(&self, prompt: &str) -> Result<Generation> {
        self.generate(&[Message::user(prompt)], &GenerationParams::default())
    }

    /// Generate an answer to `messages`.
    pub fn generate(&self, messages: &[Message], params: &GenerationParams) -> Result<Generation> {
        self.call(messages, params, None)
    }

    /// Generate answers to several conversations at once. They run concurrently
    /// and, on llama.cpp, are decoded together in one batch per step; the results
    /// come back in input order.
    pub fn generate_batch(&self, requests: &[(Vec<Message>, GenerationParams)]) -> Vec<Result<Generation>> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = requests
                .iter()
                .map(|(messages, params)| scope.spawn(move || self.generate(messages, params)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::InvalidRequest {
                            model: self.name().into(),
                            message: "a batch worker panicked".into(),
                        })
                    })
                })
                .collect()
        })
    }

    /// Generate, handing answer text to `on_text` as it is produced. The pieces
    /// concatenate to the returned `response_text`.
    pub fn generate_stream(
        &self,
        messages: &[Message],
        params: &GenerationParams,
        mut on_text: impl FnMut(&str),
    ) -> Result<Generation> {
        self.call(
            messages,
            params,
            Some(&mut |piece: &str| {
                on_text(piece);
                true
            }),
        )
    }

    /// Like [`generate_stream`](Self::generate_stream), but `on_text` returns
    /// whether to go on: `false` stops generation early (the generation then
    /// ends with `finish_reason` `cancelled`). Used when the reader of a stream
    /// has gone away.
    ///
    /// ```
    /// # let host = lmhost::Host::new()?;
    /// let model = host.load(r#"{"model_name": "x", "backend": "mock", "reply": "one two three four"}"#)?;
    /// let mut pieces = Vec::new();
    /// let g = model.generate_stream_while(&[lmhost::Message::user("Hi")], &Default::default(), |piece| {
    ///     pieces.push(piece.to_string());
    ///     pieces.len() < 2
    /// })?;
    /// assert_eq!(pieces, ["one", " two"]); // the adapter holds back trailing spaces
    /// assert_eq!(g.finish_reason, "cancelled");
    /// # Ok::<(), lmhost::Error>(())
    /// ```
    pub fn generate_stream_while(
        &self,
        messages: &[Message],
        params: &GenerationParams,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<Generation> {
        self.call(messages, params, Some(&mut on_text))
    }

    fn call(
        &self,
        messages: &[Message],
        params: &GenerationParams,
        on_text: Option<&mut dyn FnMut(&str) -> bool>,
    ) -> Result<Generation> {
        let started = Instant::now();
        let name = self.name().to_string();
        if messages.is_empty() {
            return Err(Error::InvalidRequest {
                model: name,
                message: "no messages".into(),
            });
        }
        let params = params.or(&self.defaults);
        let enforced = self.engine.as_local().is_some_and(|e| e.enforces_response_format());
        if params.response_format.is_some() && !enforced {
            return Err(EngineError::ResponseFormat {
                model: name,
                message: format!(
                    "the {} backend cannot enforce `response_format` (JSON output is enforced while decoding \
                     by the llamacpp backend only); refusing rather than returning unchecked text",
                    self.spec.backend()
                ),
            }
            .into());
        }
        let wit_messages: Vec<wit::Message> = messages
            .iter()
            .map(|m| wit::Message {
                role: m.role.clone(),
                content: m.content.clone(),
            })
            .collect();
        let wit_params = wit::Params {
            stream: on_text.is_some(),
            ..wit::Params::from(&params)
        };
        // One adapter instance serves the whole request: shape, then parse or stream.
        let mut session = self.adapter.session();
        let request = session.shape_request(&self.info, &wit_messages, &wit_params)?;
        let mut adapter_time = started.elapsed();
        let outcome = match (request, &self.engine) {
            (wit::Request::Prompt(prompt), Engine::Local(engine)) => {
                self.call_local(engine.as_ref(), session, prompt, &params, on_text, &mut adapter_time)?
            }
            #[cfg(feature = "remote")]
            (wit::Request::Http(request), Engine::Remote(http)) => {
                self.call_http(http, session, request, on_text, &mut adapter_time)?
            }
            (request, _) => {
                let (expected, got) = match request {
                    wit::Request::Prompt(_) => ("an HTTP request", "a prompt"),
                    wit::Request::Http(_) => ("a prompt", "an HTTP request"),
                };
                return Err(EngineError::WrongInput {
                    model: name,
                    backend: self.spec.backend().into(),
                    expected,
                    got,
                }
                .into());
            }
        };
        Ok(finish(name, outcome, adapter_time, started))
    }

    /// The local half of [`call`](Self::call): the rendered prompt to the
    /// engine, its raw text to the adapter's parse or stream.
    fn call_local(
        &self,
        engine: &dyn crate::engines::LocalEngine,
        mut session: AdapterSession,
        prompt: wit::Prompt,
        params: &GenerationParams,
        on_text: Option<&mut dyn FnMut(&str) -> bool>,
        adapter_time: &mut Duration,
    ) -> Result<Outcome> {
        // The caller's stop strings, then the adapter's (at most
        // `adapters::ledger::MAX_STOP_STRINGS`), each once: linear, whatever
        // the counts.
        let mut seen = std::collections::HashSet::new();
        let stop: Vec<String> = params
            .stop
            .iter()
            .chain(&prompt.stop)
            .filter(|s| seen.insert(s.as_str()))
            .cloned()
            .collect();
        let input = PromptInput {
            text: &prompt.text,
            add_bos: prompt.add_bos,
            stop: &stop,
            params,
        };

        let (output, completion) = match on_text {
            None => {
                let output = engine.complete(&input, &mut |_| true)?;
                let t = Instant::now();
                let completion = session.parse_response(&self.info, &output.text)?;
                *adapter_time += t.elapsed();
                (output, completion)
            }
            Some(on_text) => {
                let t = Instant::now();
                let mut stream = session.stream(&self.info)?;
                *adapter_time += t.elapsed();
                let mut failure = None;
                let output = engine.complete(&input, &mut |raw| {
                    let t = Instant::now();
                    let pushed = stream.push(raw);
                    *adapter_time += t.elapsed();
                    deliver(pushed, &mut failure, &mut *on_text)
                })?;
                if let Some(e) = failure {
                    return Err(e.into());
                }
                let t = Instant::now();
                let (completion, rest) = stream.finish()?;
                *adapter_time += t.elapsed();
                if !rest.is_empty() && output.finish_reason != FinishReason::Cancelled {
                    on_text(&rest);
                }
                (output, completion)
            }
        };
        Ok(Outcome {
            prompt: Value::String(prompt.text),
            response: Value::String(output.text),
            completion,
            finish_reason: output.finish_reason,
            prompt_tokens: output.prompt_tokens,
            completion_tokens: output.completion_tokens,
            prompt_time: output.prompt_time,
            generation_time: output.generation_time,
            time_to_first_token: output.time_to_first_token,
        })
    }
}

#[cfg(feature = "remote")]
impl Model {
    /// The HTTP half of [`call`](Self::call): send what the adapter shaped, hand
    /// each event of a streamed reply to the adapter's stream (created at the
    /// first event, so a provider that streams unasked is still read right), or
    /// the whole body to `parse-response`.
    fn call_http(
        &self,
        http: &crate::engines::HttpEngine,
        session: AdapterSession,
        request: wit::HttpRequest,
        mut on_text: Option<&mut dyn FnMut(&str) -> bool>,
        adapter_time: &mut Duration,
    ) -> Result<Outcome> {
        let input = HttpInput {
            method: &request.method,
            path: &request.path,
            headers: &request.headers,
            body: &request.body,
        };
        // The session until the first event turns it into a stream.
        let mut session = Some(session);
        let mut stream: Option<AdapterStream> = None;
        let mut failure = None;
        let start_stream = |session: &mut Option<AdapterSession>| match session.take() {
            Some(session) => session.stream(&self.info),
            None => self.adapter.stream(&self.info),
        };
        let output = http.send(&input, &mut |event| {
            let t = Instant::now();
            let pushed = match stream.take() {
                Some(s) => Ok(s),
                None => start_stream(&mut session),
            }
            .and_then(|mut s| {
                let piece = s.push(event);
                stream = Some(s);
                piece
            });
            *adapter_time += t.elapsed();
            deliver(pushed, &mut failure, &mut |piece| {
                on_text.as_mut().is_none_or(|f| f(piece))
            })
        })?;
        if let Some(e) = failure {
            return Err(e.into());
        }
        let t = Instant::now();
        let completion = if output.event_stream {
            let stream = match stream {
                Some(stream) => stream,
                None => start_stream(&mut session)?,
            };
            let (completion, rest) = stream.finish()?;
            if let (false, Some(f)) = (rest.is_empty() || output.cancelled, on_text.as_mut()) {
                f(&rest);
            }
            completion
        } else {
            let completion = match session {
                Some(mut session) => session.parse_response(&self.info, &output.body)?,
                None => self.adapter.parse_response(&self.info, &output.body)?,
            };
            if let (false, Some(f)) = (completion.text.is_empty(), on_text.as_mut()) {
                f(&completion.text);
            }
            completion
        };
        *adapter_time += t.elapsed();

        let json = |text: &str| serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()));
        let response = if output.event_stream {
            Value::Array(output.events.iter().map(|e| json(e)).collect())
        } else {
            json(&output.body)
        };
        let prompt_tokens = completion.prompt_tokens.unwrap_or(0);
        let completion_tokens = completion.completion_tokens.unwrap_or(0);
        // A streamed reply: "prompt" time is the wait for the first event. A
        // whole reply: the provider's generation is the whole request.
        let (prompt_time, generation_time) = match output.time_to_first_event {
            Some(first) if output.event_stream => (first, output.total.saturating_sub(first)),
            _ => (Duration::ZERO, output.total),
        };
        Ok(Outcome {
            prompt: json(&request.body),
            response,
            completion,
            finish_reason: if output.cancelled {
                FinishReason::Cancelled
            } else {
                FinishReason::Stop
            },
            prompt_tokens,
            completion_tokens,
            prompt_time,
            generation_time,
            time_to_first_token: output.time_to_first_event.filter(|_| output.event_stream),
        })
    }
}

/// Hand a piece the adapter's stream returned to the reader; `false` stops the
/// engine, when the reader says so or when the adapter failed (kept in `failure`).
fn deliver(
    pushed: std::result::Result<String, crate::adapters::AdapterError>,
    failure: &mut Option<crate::adapters::AdapterError>,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> bool {
    match pushed {
        Ok(piece) => piece.is_empty() || on_text(&piece),
        Err(e) => {
            *failure = Some(e);
            false
        }
    }
}

/// The parameters as the adapter contract carries them.
impl From<&GenerationParams> for wit::Params {
    fn from(p: &GenerationParams) -> Self {
        wit::Params {
            max_tokens: p.max_tokens,
            temperature: p.temperature,
            top_p: p.top_p,
            top_k: p.top_k,
            min_p: p.min_p,
            seed: p.seed,
            stop: p.stop.clone(),
            repetition_penalty: p.repetition_penalty,
            frequency_penalty: p.frequency_penalty,
            presence_penalty: p.presence_penalty,
            stream: false,
        }
    }
}
