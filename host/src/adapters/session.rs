//! One request's adapter instance ([`AdapterSession`]) and its streaming
//! post-processing ([`AdapterStream`]), with the request's budget: the time all
//! its calls took, and its log budget. What each call returns is checked
//! against the caps of [`super::ledger`] before anything else sees it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceAny;
use wasmtime::Store;

use super::ledger::{check_completion, check_delta, check_request, quote, RequestLog};
use super::sandbox::AdapterState;
use super::v01::Bindings;
use super::{wit, Adapter, AdapterError};

/// What one request has spent: time in its calls, and its log budget.
pub(super) struct Budget {
    pub(super) spent: Duration,
    pub(super) log: Arc<RequestLog>,
    /// The current call was armed with the rest of the budget, not the deadline.
    by_budget: bool,
}

impl Budget {
    pub(super) fn new(adapter: &Adapter) -> Self {
        Self {
            spent: Duration::ZERO,
            log: RequestLog::new(adapter.name.clone()),
            by_budget: false,
        }
    }

    /// What is left, or the error once nothing is.
    fn remaining(&self, adapter: &Adapter) -> Result<Duration, AdapterError> {
        match adapter.limits.request_budget.checked_sub(self.spent) {
            Some(left) if !left.is_zero() => Ok(left),
            _ => Err(AdapterError::RequestBudget {
                adapter: adapter.name.to_string(),
                budget: adapter.limits.request_budget,
            }),
        }
    }
}

/// An instance with its store, for one call or one stream.
pub(super) struct Instance {
    pub(super) store: Store<AdapterState>,
    pub(super) bindings: Bindings,
}

/// One request's instance of an adapter. Every call is armed with its own
/// deadline; a call that traps or hits a limit drops the instance, and a later
/// call starts from a fresh one. An error value from the adapter keeps it.
pub struct AdapterSession {
    pub(super) adapter: Adapter,
    pub(super) inst: Option<Instance>,
    pub(super) budget: Budget,
}

impl AdapterSession {
    /// The instance, made now if there is none, armed for one call; the clock
    /// of the call starts at `started` (before instantiation, which runs guest
    /// code too).
    fn instance(&mut self, started: Instant) -> Result<&mut Instance, AdapterError> {
        let remaining = self.budget.remaining(&self.adapter)?;
        let inst = match self.inst.take() {
            Some(mut inst) => {
                self.budget.by_budget = self.adapter.arm(&mut inst.store, remaining);
                inst
            }
            None => {
                self.budget.by_budget = remaining < self.adapter.limits.deadline;
                let made = self.adapter.instantiate(self.budget.log.clone(), remaining);
                self.budget.spent += started.elapsed();
                made?
            }
        };
        Ok(self.inst.insert(inst))
    }

    /// A call's outcome: its time is spent, a trap drops the instance (after
    /// noting its memory peak).
    fn settle<T>(
        &mut self,
        started: Instant,
        result: wasmtime::Result<Result<T, wit::AdapterError>>,
    ) -> Result<T, AdapterError> {
        self.budget.spent += started.elapsed();
        let inst = self.inst.as_ref().expect("a call has an instance");
        self.adapter.note_peak(&inst.store);
        match result {
            Ok(answer) => answer.map_err(|e| self.adapter.refused(e)),
            Err(e) => {
                let err = self.adapter.trap(&inst.store, e, self.budget.by_budget);
                self.inst = None;
                Err(err)
            }
        }
    }

    /// Time spent in this request's calls so far.
    pub fn spent(&self) -> Duration {
        self.budget.spent
    }

    /// Messages and parameters → what the engine consumes.
    pub fn shape_request(
        &mut self,
        model: &wit::ModelInfo,
        messages: &[wit::Message],
        params: &wit::Params,
    ) -> Result<wit::Request, AdapterError> {
        let started = Instant::now();
        let inst = self.instance(started)?;
        let result = inst.bindings.shape_request(&mut inst.store, model, messages, params);
        let request = self.settle(started, result)?;
        check_request(&self.adapter.name, &request, self.adapter.limits.output_bytes)?;
        Ok(request)
    }

    /// The engine's whole raw output → the answer.
    pub fn parse_response(
        &mut self,
        model: &wit::ModelInfo,
        params: &wit::Params,
        request: &wit::Request,
        raw: &str,
    ) -> Result<wit::Completion, AdapterError> {
        let started = Instant::now();
        let inst = self.instance(started)?;
        let result = inst
            .bindings
            .parse_response(&mut inst.store, model, params, request, raw);
        let completion = self.settle(started, result)?;
        check_completion(&self.adapter.name, &completion, self.adapter.limits.output_bytes)?;
        Ok(completion)
    }

    /// Start streaming post-processing for the response, in this instance.
    pub fn stream(
        mut self,
        model: &wit::ModelInfo,
        params: &wit::Params,
        request: &wit::Request,
    ) -> Result<AdapterStream, AdapterError> {
        let started = Instant::now();
        let inst = self.instance(started)?;
        let result = inst.bindings.stream_new(&mut inst.store, model, params, request);
        let resource = self.settle(started, result.map(Ok))?;
        let inst = self.inst.take().expect("a stream has an instance");
        Ok(AdapterStream {
            adapter: self.adapter,
            inst,
            resource,
            emitted: wit::Delta::empty(),
            budget: self.budget,
        })
    }
}

/// Streaming post-processing of one response. The host enforces the contract:
/// what was emitted (text, reasoning, tool calls) is always a prefix of the
/// final completion's.
pub struct AdapterStream {
    adapter: Adapter,
    inst: Instance,
    resource: ResourceAny,
    /// Everything emitted so far, concatenated.
    emitted: wit::Delta,
    budget: Budget,
}

impl AdapterStream {
    /// Arm the instance for one call within the request budget.
    fn arm(&mut self) -> Result<(), AdapterError> {
        let remaining = self.budget.remaining(&self.adapter)?;
        self.budget.by_budget = self.adapter.arm(&mut self.inst.store, remaining);
        Ok(())
    }

    /// Feed raw engine output; returns what is safe to show now.
    pub fn push(&mut self, chunk: &str) -> Result<wit::Delta, AdapterError> {
        self.arm()?;
        let started = Instant::now();
        let result = self
            .inst
            .bindings
            .stream_push(&mut self.inst.store, self.resource, chunk);
        self.budget.spent += started.elapsed();
        let result = result.map_err(|e| self.adapter.trap(&self.inst.store, e, self.budget.by_budget))?;
        let piece = result.map_err(|e| self.adapter.refused(e))?;
        check_delta(
            &self.adapter.name,
            &self.emitted,
            &piece,
            self.adapter.limits.output_bytes,
        )?;
        self.emitted.text.push_str(&piece.text);
        self.emitted.reasoning.push_str(&piece.reasoning);
        self.emitted.tool_calls.extend(piece.tool_calls.iter().cloned());
        Ok(piece)
    }

    /// Time spent in this request's calls so far.
    pub fn spent(&self) -> Duration {
        self.budget.spent
    }

    /// End of the raw output: the final completion, and what of it was not yet emitted.
    pub fn finish(mut self) -> Result<(wit::Completion, wit::Delta), AdapterError> {
        self.arm()?;
        let started = Instant::now();
        let result = self.inst.bindings.stream_finish(&mut self.inst.store, self.resource);
        self.budget.spent += started.elapsed();
        let result = result.map_err(|e| self.adapter.trap(&self.inst.store, e, self.budget.by_budget));
        self.adapter.note_peak(&self.inst.store);
        let result = result?;
        let completion = result.map_err(|e| self.adapter.refused(e))?;
        check_completion(&self.adapter.name, &completion, self.adapter.limits.output_bytes)?;
        let contradicts = |what: &str, emitted: String, last: String| AdapterError::Contract {
            adapter: self.adapter.name.to_string(),
            message: format!("it streamed {what} {emitted} but its final {what} {last} does not start with that"),
        };
        let Some(text) = completion.text.strip_prefix(self.emitted.text.as_str()) else {
            return Err(contradicts("text", quote(&self.emitted.text), quote(&completion.text)));
        };
        let reasoning = completion.reasoning.as_deref().unwrap_or_default();
        let Some(reasoning) = reasoning.strip_prefix(self.emitted.reasoning.as_str()) else {
            return Err(contradicts(
                "reasoning",
                quote(&self.emitted.reasoning),
                quote(reasoning),
            ));
        };
        let calls = &self.emitted.tool_calls;
        if !completion.tool_calls.starts_with(calls) {
            let names = |c: &[wit::ToolCall]| quote(&c.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "));
            return Err(contradicts("tool calls", names(calls), names(&completion.tool_calls)));
        }
        let rest = wit::Delta {
            text: text.to_string(),
            reasoning: reasoning.to_string(),
            tool_calls: completion.tool_calls[calls.len()..].to_vec(),
        };
        let _ = self.resource.resource_drop(&mut self.inst.store);
        Ok((completion, rest))
    }
}

/// The first 80 characters of `s`, for messages.
pub(crate) fn truncate(s: &str) -> String {
    if s.chars().count() <= 80 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(80).collect::<String>())
    }
}
