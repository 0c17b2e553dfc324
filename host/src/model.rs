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
use crate::engines::{Constraint, Engine, EngineError, FinishReason, PromptInput};
use crate::error::{Error, Result};
use crate::generation::{Generation, GenerationParams, Message, StreamDelta, Timings, Usage};
use crate::registry::ModelSpec;

mod calls;
use calls::{check_tools, CallIds};

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
    reasoning_tokens: u32,
    prompt_time: Duration,
    generation_time: Duration,
    time_to_first_token: Option<Duration>,
}

/// Assemble the [`Generation`] of one call; `ids` names its tool calls.
fn finish(model: String, outcome: Outcome, ids: &mut CallIds, adapter_time: Duration, started: Instant) -> Generation {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let Outcome {
        prompt,
        response,
        completion,
        finish_reason,
        prompt_tokens,
        completion_tokens,
        reasoning_tokens,
        prompt_time,
        generation_time,
        time_to_first_token,
    } = outcome;
    let tool_calls = ids.name(0, completion.tool_calls);
    Generation {
        model,
        prompt,
        response,
        response_text: completion.text,
        reasoning: completion.reasoning.filter(|r| !r.is_empty()),
        // A model that stopped after calling tools finished with `tool_calls`
        // (OpenAI's meaning), whatever its provider calls it (Gemini: STOP).
        finish_reason: match (finish_reason, completion.finish_reason) {
            (FinishReason::Stop, Some(r)) if r != "stop" || tool_calls.is_empty() => r,
            (FinishReason::Stop, _) if !tool_calls.is_empty() => "tool_calls".into(),
            (FinishReason::Stop, _) => "stop".into(),
            (other, _) => other.as_str().into(),
        },
        tool_calls,
        usage: Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            reasoning_tokens,
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

    /// How many tokens `text` is to the model's engine (no special tokens
    /// added); `None` for an engine that cannot tell (a remote API).
    ///
    /// ```
    /// # let host = lmhost::Host::new()?;
    /// let model = host.load(r#"{"model_name": "x", "backend": "mock"}"#)?;
    /// assert_eq!(model.count_tokens("three mock words")?, Some(3)); // the mock counts words
    /// # Ok::<(), lmhost::Error>(())
    /// ```
    pub fn count_tokens(&self, text: &str) -> Result<Option<u32>> {
        match self.engine.as_local().and_then(|e| e.tokenize(text)) {
            None => Ok(None),
            Some(Ok(tokens)) => Ok(Some(u32::try_from(tokens.len()).unwrap_or(u32::MAX))),
            Some(Err(e)) => Err(e.into()),
        }
    }

    /// One user message, the entry's default parameters.
    pub fn run(&self, prompt: &str) -> Result<Generation> {
        self.generate(&[Message::user(prompt)], &GenerationParams::default())
    }

    /// Generate an answer to `messages`.
    pub fn generate(&self, messages: &[Message], params: &GenerationParams) -> Result<Generation> {
        self.call(messages, params, None, &|| false)
    }

    /// Like [`generate`](Self::generate), but `cancelled` is asked each time
    /// the engine produces a piece: once it says `true`, generation stops and
    /// the call returns what was generated, with `finish_reason` `cancelled`.
    /// How a caller on another thread (the Python binding's Ctrl-C, an
    /// abandoned async call) stops a call it is not streaming.
    ///
    /// ```
    /// # let host = lmhost::Host::new()?;
    /// let model = host.load(r#"{"model_name": "x", "backend": "mock", "reply": "one two three"}"#)?;
    /// let g = model.generate_cancellable(&[lmhost::Message::user("Hi")], &Default::default(), &|| true)?;
    /// assert_eq!(g.finish_reason, "cancelled");
    /// # Ok::<(), lmhost::Error>(())
    /// ```
    pub fn generate_cancellable(
        &self,
        messages: &[Message],
        params: &GenerationParams,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Generation> {
        self.call(messages, params, None, cancelled)
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
        self.generate_stream_while(messages, params, |piece| {
            on_text(piece);
            true
        })
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
        self.generate_stream_deltas(messages, params, |d| d.text.is_empty() || on_text(&d.text))
    }

    /// Generate, handing each piece of the answer to `on_delta` as it is
    /// produced: text, reasoning and tool calls, in the order the model wrote
    /// them. Across the stream, the texts concatenate to `response_text`, the
    /// reasonings to `reasoning`, and the calls are `tool_calls` (same ids).
    /// `on_delta` returns whether to go on, as in
    /// [`generate_stream_while`](Self::generate_stream_while).
    pub fn generate_stream_deltas(
        &self,
        messages: &[Message],
        params: &GenerationParams,
        mut on_delta: impl FnMut(&StreamDelta) -> bool,
    ) -> Result<Generation> {
        self.call(messages, params, Some(&mut on_delta), &|| false)
    }

    fn call(
        &self,
        messages: &[Message],
        params: &GenerationParams,
        on_delta: Option<&mut dyn FnMut(&StreamDelta) -> bool>,
        cancelled: &dyn Fn() -> bool,
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
        check_tools(&name, &params)?;
        // A remote provider enforces a format itself: its adapter maps it, or
        // refuses it. A local engine must enforce it while decoding.
        let unenforced = self.engine.as_local().is_some_and(|e| !e.enforces_constraints());
        if params.response_format.is_some() && unenforced {
            return Err(EngineError::ResponseFormat {
                model: name,
                message: format!(
                    "the {} backend cannot enforce `response_format` (JSON output is enforced while decoding \
                     by the llamacpp backend, and by the providers of the OpenAI-style backends); refusing \
                     rather than returning unchecked text",
                    self.spec.backend()
                ),
            }
            .into());
        }
        let wit_messages: Vec<wit::Message> = messages.iter().map(wit::Message::from).collect();
        let wit_params = wit::Params {
            stream: on_delta.is_some(),
            ..wit::Params::from(&params)
        };
        // One adapter instance serves the whole request: shape, then parse or stream.
        let mut session = self.adapter.session();
        let request = session.shape_request(&self.info, &wit_messages, &wit_params)?;
        let mut adapter_time = started.elapsed();
        let mut ids = CallIds::default();
        let mut stream = on_delta.map(|on_delta| Streamer {
            on_delta,
            ids: &mut ids,
            calls: 0,
        });
        let call = Call {
            session,
            params: &params,
            wit_params: &wit_params,
            adapter_time: &mut adapter_time,
            cancelled,
        };
        let outcome = match (&request, &self.engine) {
            (wit::Request::Prompt(prompt), Engine::Local(engine)) => {
                self.call_local(engine.as_ref(), call, prompt, &request, stream.as_mut())?
            }
            #[cfg(feature = "remote")]
            (wit::Request::Http(http_request), Engine::Remote(http)) => {
                self.call_http(http, call, http_request, &request, stream.as_mut())?
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
        Ok(finish(name, outcome, &mut ids, adapter_time, started))
    }

    /// The constraint the engine must enforce: the adapter's (a tool call), or
    /// the call's `response_format`. `None` also for a lazy one the engine
    /// cannot enforce (a tool call the model may make is then read, not forced);
    /// an error for any other the engine cannot enforce.
    fn constraint(
        &self,
        engine: &dyn crate::engines::LocalEngine,
        prompt: &wit::Prompt,
        params: &GenerationParams,
    ) -> Result<Option<Constraint>> {
        let constraint = match &prompt.constraint {
            Some(c) => Some(Constraint {
                prefix: c.prefix.clone(),
                schema: serde_json::from_str(&c.schema).map_err(|e| crate::adapters::AdapterError::Contract {
                    adapter: self.adapter.name().into(),
                    message: format!("the schema of its constraint is not JSON: {e}"),
                })?,
                suffix: c.suffix.clone(),
                lazy: c.lazy,
                what: "tool_choice",
            }),
            None => params.response_format.as_ref().map(Constraint::response_format),
        };
        match constraint {
            Some(c) if !engine.enforces_constraints() => {
                if c.lazy {
                    return Ok(None);
                }
                Err(EngineError::ResponseFormat {
                    model: self.name().into(),
                    message: format!(
                        "the {} backend cannot enforce `{}` (output is constrained while decoding by the \
                         llamacpp backend only); refusing rather than returning unchecked text",
                        self.spec.backend(),
                        c.what
                    ),
                }
                .into())
            }
            c => Ok(c),
        }
    }

    /// The local half of [`call`](Self::call): the rendered prompt to the
    /// engine, its raw text to the adapter's parse or stream.
    fn call_local(
        &self,
        engine: &dyn crate::engines::LocalEngine,
        call: Call<'_>,
        prompt: &wit::Prompt,
        request: &wit::Request,
        stream: Option<&mut Streamer<'_>>,
    ) -> Result<Outcome> {
        let Call {
            mut session,
            params,
            wit_params,
            adapter_time,
            cancelled,
        } = call;
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
        let constraint = self.constraint(engine, prompt, params)?;
        let input = PromptInput {
            text: &prompt.text,
            add_bos: prompt.add_bos,
            stop: &stop,
            params,
            constraint: constraint.as_ref(),
        };

        let (output, completion) = match stream {
            None => {
                let output = engine.complete(&input, &mut |_| !cancelled())?;
                let t = Instant::now();
                let completion = session.parse_response(&self.info, wit_params, request, &output.text)?;
                *adapter_time += t.elapsed();
                (output, completion)
            }
            Some(streamer) => {
                let t = Instant::now();
                let mut stream = session.stream(&self.info, wit_params, request)?;
                *adapter_time += t.elapsed();
                let mut failure = None;
                let output = engine.complete(&input, &mut |raw| {
                    let t = Instant::now();
                    let pushed = stream.push(raw);
                    *adapter_time += t.elapsed();
                    streamer.deliver(pushed, &mut failure)
                })?;
                if let Some(e) = failure {
                    return Err(e.into());
                }
                let t = Instant::now();
                let (completion, rest) = stream.finish()?;
                *adapter_time += t.elapsed();
                if output.finish_reason != FinishReason::Cancelled {
                    streamer.deliver(Ok(rest), &mut None);
                }
                (output, completion)
            }
        };
        let reasoning_tokens = match (completion.reasoning_tokens, completion.reasoning.as_deref()) {
            (Some(n), _) => n,
            (None, Some(r)) if !r.is_empty() => engine
                .tokenize(r)
                .and_then(|t| t.ok())
                .map_or(0, |t| u32::try_from(t.len()).unwrap_or(u32::MAX)),
            _ => 0,
        };
        Ok(Outcome {
            prompt: Value::String(prompt.text.clone()),
            response: Value::String(output.text),
            completion,
            finish_reason: output.finish_reason,
            prompt_tokens: output.prompt_tokens,
            completion_tokens: output.completion_tokens,
            reasoning_tokens: reasoning_tokens.min(output.completion_tokens),
            prompt_time: output.prompt_time,
            generation_time: output.generation_time,
            time_to_first_token: output.time_to_first_token,
        })
    }
}

/// What [`Model::call`] hands its local or remote half.
struct Call<'a> {
    session: AdapterSession,
    params: &'a GenerationParams,
    wit_params: &'a wit::Params,
    adapter_time: &'a mut Duration,
    /// Asked at each piece of a call that is not streamed: `true` stops it.
    cancelled: &'a dyn Fn() -> bool,
}

/// The reader of a streamed call, and the ids of the calls streamed so far.
struct Streamer<'a> {
    on_delta: &'a mut dyn FnMut(&StreamDelta) -> bool,
    ids: &'a mut CallIds,
    calls: usize,
}

impl Streamer<'_> {
    /// Hand a piece the adapter's stream returned to the reader; `false` stops
    /// the engine, when the reader says so or when the adapter failed (kept in
    /// `failure`).
    fn deliver(
        &mut self,
        pushed: std::result::Result<wit::Delta, crate::adapters::AdapterError>,
        failure: &mut Option<crate::adapters::AdapterError>,
    ) -> bool {
        match pushed {
            Ok(delta) if delta.is_empty() => true,
            Ok(delta) => {
                let tool_calls = self.ids.name(self.calls, delta.tool_calls);
                self.calls += tool_calls.len();
                (self.on_delta)(&StreamDelta {
                    text: delta.text,
                    reasoning: delta.reasoning,
                    tool_calls,
                })
            }
            Err(e) => {
                *failure = Some(e);
                false
            }
        }
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
        call: Call<'_>,
        http_request: &wit::HttpRequest,
        request: &wit::Request,
        mut streamer: Option<&mut Streamer<'_>>,
    ) -> Result<Outcome> {
        let Call {
            session,
            wit_params,
            adapter_time,
            cancelled,
            ..
        } = call;
        let input = HttpInput {
            method: &http_request.method,
            path: &http_request.path,
            headers: &http_request.headers,
            body: &http_request.body,
        };
        // The session until the first event turns it into a stream.
        let mut session = Some(session);
        let mut stream: Option<AdapterStream> = None;
        let mut failure = None;
        let start_stream = |session: &mut Option<AdapterSession>| match session.take() {
            Some(session) => session.stream(&self.info, wit_params, request),
            None => self.adapter.stream(&self.info, wit_params, request),
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
            match streamer.as_deref_mut() {
                Some(streamer) => streamer.deliver(pushed, &mut failure),
                None => pushed.map_err(|e| failure = Some(e)).is_ok() && !cancelled(),
            }
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
            if let (false, Some(s)) = (output.cancelled, streamer.as_deref_mut()) {
                s.deliver(Ok(rest), &mut None);
            }
            completion
        } else {
            let completion = match session {
                Some(mut session) => session.parse_response(&self.info, wit_params, request, &output.body)?,
                None => self
                    .adapter
                    .parse_response(&self.info, wit_params, request, &output.body)?,
            };
            if let Some(s) = streamer {
                let whole = wit::Delta {
                    text: completion.text.clone(),
                    reasoning: completion.reasoning.clone().unwrap_or_default(),
                    tool_calls: completion.tool_calls.clone(),
                };
                s.deliver(Ok(whole), &mut None);
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
        let reasoning_tokens = completion.reasoning_tokens.unwrap_or(0).min(completion_tokens);
        // A streamed reply: "prompt" time is the wait for the first event. A
        // whole reply: the provider's generation is the whole request.
        let (prompt_time, generation_time) = match output.time_to_first_event {
            Some(first) if output.event_stream => (first, output.total.saturating_sub(first)),
            _ => (Duration::ZERO, output.total),
        };
        Ok(Outcome {
            prompt: json(&http_request.body),
            response,
            completion,
            finish_reason: if output.cancelled {
                FinishReason::Cancelled
            } else {
                FinishReason::Stop
            },
            prompt_tokens,
            completion_tokens,
            reasoning_tokens,
            prompt_time,
            generation_time,
            time_to_first_token: output.time_to_first_event.filter(|_| output.event_stream),
        })
    }
}
