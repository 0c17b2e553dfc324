//! The conformance kit: a fixed suite every adapter must pass, whatever language
//! it is written in (`lmhost adapter check`).
//!
//! This module owns the suite. It calls `shape-request`, `parse-response` and the
//! `response-stream` resource directly, with no engine, on a fixed `model-info`
//! ([`fixed_model_info`]: a ChatML template, BOS/EOS tokens, `eos_to_cull`), on a
//! fixed remote one when the adapter shapes HTTP requests ([`model_for`] picks),
//! or on a real model's (`-m`). An adapter whose request is a prompt runs the
//! prompt suite below; one whose request is HTTP runs the HTTP suite.
//!
//! The prompt suite. Expected prompts come from the host rendering the same
//! template with the same context (the `chat-template` contract); expected answers
//! from a reference of clembench's output rules in Rust (strip, split prefix, cot
//! tag, `eos_to_cull`). It checks: roles (system included), multi-turn, empty and
//! unicode content, stop strings passed through, BOS not doubled, EOS culled,
//! streamed pieces concatenating to the final text under several chunkings,
//! errors coming back as variants (not traps) for a bad spec and a missing
//! template, and time and memory within the adapter's limits. For adapters on
//! contract 0.2, tool calls too (`calls.rs`): the tools reach the prompt, a
//! required call is an enforceable constraint, the call it makes the engine
//! write is read back whole and streamed, a tool result reaches the prompt.
//!
//! The HTTP suite: every conversation becomes a POST or GET whose path stays
//! under a base URL, with no credential or hop-by-hop header and a JSON body
//! holding every message; `stream = true` changes the request; stop strings
//! reach the body; malformed replies and stream events come back as error
//! values (a provider's `error` object with its message), never traps; a bad
//! spec is an error value; time and memory within the limits.
//!
//! [`Report::outputs`] records every prompt and answer the adapter produced, so
//! two adapters can be compared output for output.
//!
//! Files: this one owns the report types, [`run`] and the checks both suites
//! share (a bad spec, time and memory); `models.rs` the suite's inputs (the
//! fixed and remote `model-info`s, [`model_for`], the conversations, stop
//! strings and replies); `prompt.rs` the prompt suite; `calls.rs` its tool-call
//! checks; `http.rs` the HTTP suite.

mod calls;
mod http;
mod models;
mod prompt;

use std::time::{Duration, Instant};

use serde::Serialize;

pub use self::models::{
    fixed_model_info, model_for, remote_model_info, BAD_REPLIES, BOOM_REPLY, CHATML_TEMPLATE, CONVERSATIONS, HTTP_BASE,
    HTTP_STOP, RAW_OUTPUTS, STOP,
};
use self::models::{messages, params};
use crate::adapters::{wit, Adapter, AdapterError};

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It holds.
    Pass,
    /// It does not.
    Fail,
    /// Not applicable to this adapter or model.
    Skip,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        })
    }
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// The outcome.
    pub status: Status,
    /// Why it failed, or what was seen.
    pub detail: String,
    /// Adapter calls it made.
    pub calls: usize,
    /// Wall time of those calls, milliseconds.
    pub millis: f64,
}

/// One output of the adapter, for comparing adapters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Output {
    /// `prompt:<conversation>`, `add-bos:<conversation>`, `response:<n>` or `stream:<n>`;
    /// for an HTTP adapter `request:<conversation>`, `request-stream:roles` or `reply:<n>`.
    pub key: String,
    /// What the adapter produced.
    pub value: String,
}

/// Call timings by kind, milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CallTimes {
    /// `shape-request`: median and slowest.
    pub shape_p50_ms: f64,
    /// Slowest `shape-request`.
    pub shape_max_ms: f64,
    /// `parse-response`: median.
    pub parse_p50_ms: f64,
    /// Slowest `parse-response`.
    pub parse_max_ms: f64,
    /// A whole stream (constructor, every push, finish): median.
    pub stream_p50_ms: f64,
    /// Slowest whole stream.
    pub stream_max_ms: f64,
}

/// What an adapter makes of a request, and so which suite runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A prompt for a local engine.
    Prompt,
    /// An HTTP request for a remote API.
    Http,
}

/// The result of running the suite on one adapter.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The adapter's name.
    pub adapter: String,
    /// Its SHA-256.
    pub sha256: String,
    /// The model whose `model-info` was used.
    pub model: String,
    /// That model's backend.
    pub backend: String,
    /// The suite that ran.
    pub kind: Kind,
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// The prompt of the `roles` conversation; for an HTTP adapter, its request
    /// (method, path, body).
    pub rendered_prompt: Option<String>,
    /// Every prompt and answer produced, in a fixed order.
    pub outputs: Vec<Output>,
    /// Call timings.
    pub times: CallTimes,
    /// Largest linear memory an instance reached, bytes.
    pub peak_memory_bytes: usize,
    /// The adapter's memory limit, bytes.
    pub memory_limit_bytes: usize,
}

impl Report {
    /// Whether no check failed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    /// The failed checks.
    pub fn failures(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| c.status == Status::Fail).collect()
    }

    /// The output recorded under `key`.
    pub fn output(&self, key: &str) -> Option<&str> {
        self.outputs.iter().find(|o| o.key == key).map(|o| o.value.as_str())
    }

    /// A plain-text table: one row per check, then timings and memory.
    pub fn table(&self) -> String {
        let mut out = format!(
            "adapter {} (sha256 {}), model-info of `{}` (backend {})\n",
            self.adapter,
            &self.sha256[..12.min(self.sha256.len())],
            self.model,
            self.backend
        );
        if let Some(prompt) = &self.rendered_prompt {
            let what = match self.kind {
                Kind::Prompt => "rendered prompt",
                Kind::Http => "request",
            };
            out.push_str(&format!("{what} (roles):\n{prompt}\n---\n"));
        }
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(10).max(10);
        out.push_str(&format!(
            "{:width$}  {:6}  {:>6}  {:>10}  DETAIL\n",
            "CHECK", "RESULT", "CALLS", "TIME"
        ));
        for c in &self.checks {
            out.push_str(&format!(
                "{:width$}  {:6}  {:>6}  {:>7.2} ms  {}\n",
                c.name,
                c.status.to_string(),
                c.calls,
                c.millis,
                c.detail
            ));
        }
        let t = &self.times;
        out.push_str(&format!(
            "per call: shape-request p50 {:.3} ms (max {:.3}), parse-response p50 {:.3} ms (max {:.3}), whole stream p50 {:.3} ms (max {:.3})\n",
            t.shape_p50_ms, t.shape_max_ms, t.parse_p50_ms, t.parse_max_ms, t.stream_p50_ms, t.stream_max_ms
        ));
        out.push_str(&format!(
            "peak linear memory {:.1} MiB of {:.0} MiB\n",
            self.peak_memory_bytes as f64 / 1048576.0,
            self.memory_limit_bytes as f64 / 1048576.0
        ));
        let count = |s: Status| self.checks.iter().filter(|c| c.status == s).count();
        out.push_str(&format!(
            "{} passed, {} failed, {} skipped\n",
            count(Status::Pass),
            count(Status::Fail),
            count(Status::Skip)
        ));
        out
    }
}

/// Run the whole suite on `adapter` with `model` (see [`model_for`]): the HTTP
/// suite when `shape-request` makes an HTTP request of the `roles`
/// conversation, the prompt suite otherwise.
pub fn run(adapter: &Adapter, model: &wit::ModelInfo) -> Report {
    let probe = adapter.shape_request(model, &messages(CONVERSATIONS[0].1), &params(&[]));
    let kind = match probe {
        Ok(wit::Request::Http(_)) => Kind::Http,
        _ => Kind::Prompt,
    };
    let mut suite = Suite {
        adapter,
        model,
        checks: Vec::new(),
        outputs: Vec::new(),
        shape: Vec::new(),
        parse: Vec::new(),
        stream: Vec::new(),
        rendered_prompt: None,
    };
    match kind {
        Kind::Prompt => {
            suite.conversations();
            suite.stop_strings();
            suite.responses();
            suite.streaming();
            suite.tool_calls();
            suite.bad_spec();
            suite.missing_template();
        }
        Kind::Http => {
            suite.http_requests();
            suite.http_streaming();
            suite.http_stop_strings();
            suite.http_bad_replies();
            suite.http_bad_events();
            suite.bad_spec();
        }
    }
    suite.limits();
    let times = CallTimes {
        shape_p50_ms: p50(&suite.shape),
        shape_max_ms: max(&suite.shape),
        parse_p50_ms: p50(&suite.parse),
        parse_max_ms: max(&suite.parse),
        stream_p50_ms: p50(&suite.stream),
        stream_max_ms: max(&suite.stream),
    };
    Report {
        adapter: adapter.name().into(),
        sha256: adapter.sha256().into(),
        model: model.name.clone(),
        backend: model.backend.clone(),
        kind,
        checks: suite.checks,
        rendered_prompt: suite.rendered_prompt,
        outputs: suite.outputs,
        times,
        peak_memory_bytes: adapter.peak_memory_bytes(),
        memory_limit_bytes: adapter.limits().memory_bytes,
    }
}

struct Suite<'a> {
    adapter: &'a Adapter,
    model: &'a wit::ModelInfo,
    checks: Vec<Check>,
    outputs: Vec<Output>,
    shape: Vec<Duration>,
    parse: Vec<Duration>,
    stream: Vec<Duration>,
    rendered_prompt: Option<String>,
}

/// Collects the problems and time of one check.
struct Row {
    name: String,
    problems: Vec<String>,
    notes: Vec<String>,
    calls: usize,
    time: Duration,
    skip: Option<String>,
}

impl Row {
    fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            problems: Vec::new(),
            notes: Vec::new(),
            calls: 0,
            time: Duration::ZERO,
            skip: None,
        }
    }
}

fn is_variant(e: &AdapterError) -> bool {
    matches!(e, AdapterError::Refused { .. })
}

fn p50(times: &[Duration]) -> f64 {
    if times.is_empty() {
        return 0.0;
    }
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2].as_secs_f64() * 1000.0
}

fn max(times: &[Duration]) -> f64 {
    times.iter().max().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

impl Suite<'_> {
    fn finish(&mut self, row: Row) {
        let (status, detail) = match (&row.skip, row.problems.is_empty()) {
            (_, false) => (Status::Fail, row.problems.join("; ")),
            (Some(why), true) => (Status::Skip, why.clone()),
            (None, true) => (Status::Pass, row.notes.join("; ")),
        };
        self.checks.push(Check {
            name: row.name,
            status,
            detail,
            calls: row.calls,
            millis: row.time.as_secs_f64() * 1000.0,
        });
    }

    fn output(&mut self, key: String, value: String) {
        self.outputs.push(Output { key, value });
    }

    fn shape(
        &mut self,
        row: &mut Row,
        model: &wit::ModelInfo,
        turns: &[(&str, &str)],
        stop: &[&str],
    ) -> Result<wit::Request, AdapterError> {
        self.shape_with(row, model, turns, &params(stop))
    }

    fn shape_with(
        &mut self,
        row: &mut Row,
        model: &wit::ModelInfo,
        turns: &[(&str, &str)],
        params: &wit::Params,
    ) -> Result<wit::Request, AdapterError> {
        let t = Instant::now();
        let result = self.adapter.shape_request(model, &messages(turns), params);
        let elapsed = t.elapsed();
        self.shape.push(elapsed);
        row.calls += 1;
        row.time += elapsed;
        result
    }

    fn parse(&mut self, row: &mut Row, model: &wit::ModelInfo, raw: &str) -> Result<wit::Completion, AdapterError> {
        let t = Instant::now();
        let result = self
            .adapter
            .parse_response(model, &wit::Params::plain(), &models::unshaped(), raw);
        let elapsed = t.elapsed();
        self.parse.push(elapsed);
        row.calls += 1;
        row.time += elapsed;
        result
    }

    /// Push `chunks` through a fresh stream: (streamed pieces + the rest, final text).
    fn stream(
        &mut self,
        row: &mut Row,
        model: &wit::ModelInfo,
        chunks: &[&str],
    ) -> Result<(String, String), AdapterError> {
        let t = Instant::now();
        let result = (|| {
            let mut stream = self.adapter.stream(model, &wit::Params::plain(), &models::unshaped())?;
            let mut shown = String::new();
            for chunk in chunks {
                shown.push_str(&stream.push(chunk)?.text);
            }
            let (completion, rest) = stream.finish()?;
            shown.push_str(&rest.text);
            Ok((shown, completion.text))
        })();
        let elapsed = t.elapsed();
        self.stream.push(elapsed);
        row.calls += chunks.len() + 2;
        row.time += elapsed;
        result
    }

    fn bad_spec(&mut self) {
        let bad_spec = wit::ModelInfo {
            spec_json: "{ this is not json".into(),
            ..self.model.clone()
        };
        let mut row = Row::new("bad spec-json is an error value");
        let turns = CONVERSATIONS[0].1;
        match self.shape(&mut row, &bad_spec, turns, &[]) {
            Ok(_) => row.notes.push("shape-request accepted it".into()),
            Err(e) if is_variant(&e) => {}
            Err(e) => row.problems.push(format!("shape-request: {e}")),
        }
        match self.parse(&mut row, &bad_spec, "text") {
            Ok(_) => row.notes.push("parse-response accepted it".into()),
            Err(e) if is_variant(&e) => {}
            Err(e) => row.problems.push(format!("parse-response: {e}")),
        }
        match self.stream(&mut row, &bad_spec, &["te", "xt"]) {
            Ok(_) => row.notes.push("the stream accepted it".into()),
            Err(e) if is_variant(&e) => {}
            Err(e) => row.problems.push(format!("stream: {e}")),
        }
        if row.notes.len() == 3 {
            row.problems
                .push("no call reported the malformed registry entry (spec-json is not JSON)".into());
        }
        self.finish(row);
    }

    fn limits(&mut self) {
        let deadline = self.adapter.limits().deadline;
        let slowest = [&self.shape, &self.parse]
            .iter()
            .flat_map(|t| t.iter())
            .max()
            .copied()
            .unwrap_or_default();
        let mut row = Row::new("time within deadline");
        row.notes.push(format!(
            "slowest call {:.3} ms of {:?}; shape p50 {:.3} ms, parse p50 {:.3} ms",
            slowest.as_secs_f64() * 1000.0,
            deadline,
            p50(&self.shape),
            p50(&self.parse)
        ));
        if slowest >= deadline {
            row.problems
                .push(format!("a call took {slowest:?}, at or over the deadline {deadline:?}"));
        }
        self.finish(row);

        let peak = self.adapter.peak_memory_bytes();
        let limit = self.adapter.limits().memory_bytes;
        let mut row = Row::new("memory within limit");
        row.notes.push(format!(
            "peak linear memory {:.1} MiB of {:.0} MiB",
            peak as f64 / 1048576.0,
            limit as f64 / 1048576.0
        ));
        if peak > limit {
            row.problems
                .push(format!("peak {peak} bytes is over the limit {limit}"));
        }
        self.finish(row);
    }
}
