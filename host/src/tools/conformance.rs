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
//! template, and time and memory within the adapter's limits.
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

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::adapters::{wit, Adapter, AdapterError};
use crate::backends::{Backend, BackendKind, BACKENDS};
#[cfg(feature = "remote")]
use crate::engines::http::{is_reserved_header, join, Url};

/// The ChatML template of the fixed model: writes the BOS token itself, so a
/// conforming adapter must not ask for a second one.
pub const CHATML_TEMPLATE: &str = "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// The `model-info` the suite uses when no model is given.
pub fn fixed_model_info() -> wit::ModelInfo {
    wit::ModelInfo {
        name: "conformance".into(),
        backend: "mock".into(),
        spec_json: json!({
            "model_name": "conformance",
            "backend": "mock",
            "premade_chat_template": true,
            "eos_to_cull": "<\\|im_end\\|>",
        })
        .to_string(),
        builtin_template: Some(CHATML_TEMPLATE.into()),
        bos_token: Some("<s>".into()),
        eos_token: Some("<|im_end|>".into()),
        add_bos: true,
        context_length: Some(4096),
    }
}

/// The `model-info` of a remote entry of `backend`, as the suite uses it for
/// adapters that shape HTTP requests: no template, no BOS/EOS, no credentials.
pub fn remote_model_info(backend: &str) -> wit::ModelInfo {
    wit::ModelInfo {
        name: "conformance".into(),
        backend: backend.into(),
        spec_json: json!({
            "model_name": "conformance",
            "backend": backend,
            "model_id": "conformance-model",
            "call_name": "conformance-model",
        })
        .to_string(),
        builtin_template: None,
        bos_token: None,
        eos_token: None,
        add_bos: false,
        context_length: None,
    }
}

/// The `model-info` to check `adapter` with when no model is given: the fixed
/// one ([`fixed_model_info`]) when the adapter makes a prompt of it, else the
/// first remote backend's ([`remote_model_info`]) on which it shapes an HTTP
/// request, else the fixed one again (the prompt suite then says what is
/// wrong). Remote backends are tried in [`BACKENDS`] order, those whose default
/// adapter has the adapter's name first (an adapter that takes any backend is
/// then checked on its own).
pub fn model_for(adapter: &Adapter) -> wit::ModelInfo {
    let fixed = fixed_model_info();
    let turns = messages(CONVERSATIONS[0].1);
    if let Ok(wit::Request::Prompt(_)) = adapter.shape_request(&fixed, &turns, &params(&[])) {
        return fixed;
    }
    let remote = || BACKENDS.iter().filter(|b| b.kind == BackendKind::Remote);
    let own = |b: &&Backend| b.default_adapter == adapter.name();
    remote()
        .filter(own)
        .chain(remote().filter(|b| !own(b)))
        .map(|b| remote_model_info(b.name))
        .find(|model| {
            matches!(
                adapter.shape_request(model, &turns, &params(&[])),
                Ok(wit::Request::Http(_))
            )
        })
        .unwrap_or(fixed)
}

/// The conversations every adapter must render.
pub const CONVERSATIONS: &[(&str, &[(&str, &str)])] = &[
    ("roles", &[("system", "You are terse."), ("user", "What is 2+2?")]),
    (
        "multi-turn",
        &[
            ("system", "Be brief."),
            ("user", "Hi"),
            ("assistant", "Hello! How can I help?"),
            ("user", "Name a colour."),
        ],
    ),
    ("empty-content", &[("user", "")]),
    (
        "unicode",
        &[(
            "user",
            "Grüße, 世界! 🌍 «ünïcödé» \"quotes\", \\back\\slash, {{ not a tag }} and a\nnew line",
        )],
    ),
];

/// Stop strings the adapter must pass through.
pub const STOP: &[&str] = &["\nUser:", "</s>"];

/// Stop strings an HTTP adapter must put in its request body.
pub const HTTP_STOP: &[&str] = &["STOP-1", "STOP-2"];

/// The base URL an HTTP adapter's paths are joined to.
pub const HTTP_BASE: &str = "https://api.example.invalid/v1";

/// Replies no provider sends: each must be read as an error value or a completion.
pub const BAD_REPLIES: &[&str] = &["", "not json", "{}", "[]", BOOM_REPLY];

/// A provider's error object: `parse-response` must turn it into an error naming `boom`.
pub const BOOM_REPLY: &str = "{\"error\": {\"message\": \"boom\"}}";

/// Raw engine outputs, `{eos}` standing for the model's EOS token.
pub const RAW_OUTPUTS: &[&str] = &[
    "  The answer is 4.{eos}",
    "Grüße 🌍 aus Köln.{eos}\n",
    "no end token here",
    "one{eos} two{eos}",
    "",
];

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

fn params(stop: &[&str]) -> wit::Params {
    params_with(stop, false)
}

fn params_with(stop: &[&str], stream: bool) -> wit::Params {
    let greedy = crate::GenerationParams {
        stop: stop.iter().map(|s| s.to_string()).collect(),
        ..crate::GenerationParams::greedy(64)
    };
    wit::Params {
        stream,
        ..wit::Params::from(&greedy)
    }
}

fn messages(turns: &[(&str, &str)]) -> Vec<wit::Message> {
    turns
        .iter()
        .map(|(role, content)| wit::Message {
            role: role.to_string(),
            content: content.to_string(),
        })
        .collect()
}

fn spec_of(model: &wit::ModelInfo) -> Map<String, Value> {
    match serde_json::from_str(&model.spec_json) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fn spec_str<'a>(spec: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    spec.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The template the `chat-template` contract picks for `model`.
fn reference_template(model: &wit::ModelInfo) -> Option<String> {
    let spec = spec_of(model);
    let custom = spec.get("custom_chat_template").and_then(Value::as_str);
    let premade = spec
        .get("premade_chat_template")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    match (premade, custom, model.builtin_template.as_deref()) {
        (false, Some(custom), _) => Some(custom.into()),
        (_, _, Some(builtin)) => Some(builtin.into()),
        (_, custom, None) => custom.map(str::to_string),
    }
}

/// The prompt the host renders for `turns`, with the `chat-template` context.
fn reference_prompt(adapter: &Adapter, model: &wit::ModelInfo, turns: &[(&str, &str)]) -> Option<String> {
    let template = reference_template(model)?;
    let context = json!({
        "messages": turns.iter().map(|(r, c)| json!({"role": r, "content": c})).collect::<Vec<_>>(),
        "add_generation_prompt": true,
        "bos_token": model.bos_token.clone().unwrap_or_default(),
        "eos_token": model.eos_token.clone().unwrap_or_default(),
    });
    adapter.render_template(&template, &context.to_string()).ok()
}

/// clembench's output rules, in Rust: strip, split prefix, cot tag, `eos_to_cull`.
fn reference_answer(model: &wit::ModelInfo, raw: &str) -> Option<String> {
    let spec = spec_of(model);
    let mut text = raw.trim();
    if let Some(prefix) = spec_str(&spec, "output_split_prefix") {
        if let Some((_, after)) = text.rsplit_once(prefix) {
            text = after;
        }
    }
    if let Some(tag) = spec_str(&spec, "cot_end_tag") {
        if let Some((_, after)) = text.rsplit_once(tag) {
            text = after.trim();
        }
    }
    match spec_str(&spec, "eos_to_cull") {
        Some(pattern) => Some(regex::Regex::new(pattern).ok()?.replace_all(text, "").into_owned()),
        None => Some(text.to_string()),
    }
}

fn raw_output(model: &wit::ModelInfo, template: &str) -> String {
    let eos = model
        .eos_token
        .as_deref()
        .filter(|e| !e.is_empty())
        .unwrap_or("<|im_end|>");
    template.replace("{eos}", eos)
}

/// The ways a raw output is cut into chunks for streaming: whole, per character,
/// pairs of characters, thirds, and runs of seven bytes (rounded to characters).
fn chunkings(raw: &str) -> Vec<(&'static str, Vec<&str>)> {
    let chars: Vec<(usize, char)> = raw.char_indices().collect();
    let by_chars = |n: usize| -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        for (i, (at, _)) in chars.iter().enumerate() {
            if i > 0 && i % n == 0 {
                out.push(&raw[start..*at]);
                start = *at;
            }
        }
        out.push(&raw[start..]);
        out
    };
    let by_bytes = |n: usize| -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        while start < raw.len() {
            let mut end = (start + n).min(raw.len());
            while !raw.is_char_boundary(end) {
                end += 1;
            }
            out.push(&raw[start..end]);
            start = end;
        }
        out
    };
    let third = (raw.len() / 3).max(1);
    vec![
        ("whole", vec![raw]),
        ("chars", by_chars(1)),
        ("pairs", by_chars(2)),
        ("thirds", by_bytes(third)),
        ("7-byte", by_bytes(7)),
    ]
}

/// Every string in a JSON value, keys left out.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// `text` as it appears inside a JSON string (escaped, without the quotes).
fn json_escaped(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap_or_default();
    quoted.trim_start_matches('"').trim_end_matches('"').to_string()
}

/// Whether a JSON body holds `text`: inside one of its strings, or written as the
/// suite's JSON writer escapes it.
fn body_holds(body: &str, parsed: Option<&Value>, text: &str) -> bool {
    if body.contains(&json_escaped(text)) {
        return true;
    }
    let mut all = Vec::new();
    if let Some(v) = parsed {
        strings(v, &mut all);
    }
    all.iter().any(|s| s.contains(text))
}

/// What is wrong with an HTTP request shaped for `turns`: method, path (joined
/// to [`HTTP_BASE`]), headers, and a JSON body that holds every message.
fn request_problems(req: &wit::HttpRequest, turns: &[(&str, &str)]) -> Vec<String> {
    let mut problems = Vec::new();
    if !matches!(req.method.to_ascii_uppercase().as_str(), "POST" | "GET") {
        problems.push(format!("method {:?} (only POST and GET)", req.method));
    }
    let base = Url::parse(HTTP_BASE).expect("the base URL parses");
    if let Err(why) = join(&base, &req.path) {
        problems.push(why);
    }
    for (name, value) in &req.headers {
        if is_reserved_header(name) {
            problems.push(format!(
                "header `{name}`: credentials and connection headers are set by the host"
            ));
        }
        let lower = value.trim_start().to_ascii_lowercase();
        if lower.starts_with("bearer ") || lower.starts_with("basic ") {
            problems.push(format!(
                "header `{name}` carries what looks like a credential; the host adds the key"
            ));
        }
    }
    if req.body.is_empty() {
        return problems;
    }
    let parsed = match serde_json::from_str::<Value>(&req.body) {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(format!(
                "the body is not JSON ({e}): {:?}",
                crate::adapters::truncate(&req.body)
            ));
            None
        }
    };
    for (role, content) in turns {
        if !body_holds(&req.body, parsed.as_ref(), content) {
            problems.push(format!("the body lacks the {role} message {content:?}"));
        }
    }
    problems
}

/// The request as the report shows it: method, path, then the body.
fn show_request(req: &wit::HttpRequest) -> String {
    format!("{} {}\n{}", req.method, req.path, req.body)
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
        let result = self.adapter.parse_response(model, raw);
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
            let mut stream = self.adapter.stream(model)?;
            let mut shown = String::new();
            for chunk in chunks {
                shown.push_str(&stream.push(chunk)?);
            }
            let (completion, rest) = stream.finish()?;
            shown.push_str(&rest);
            Ok((shown, completion.text))
        })();
        let elapsed = t.elapsed();
        self.stream.push(elapsed);
        row.calls += chunks.len() + 2;
        row.time += elapsed;
        result
    }

    fn conversations(&mut self) {
        let model = self.model;
        let mut bos_row = Row::new("add-bos not doubled");
        for (name, turns) in CONVERSATIONS {
            let mut row = Row::new(format!("prompt: {name}"));
            match self.shape(&mut row, model, turns, &[]) {
                Err(e) => row.problems.push(format!("shape-request failed: {e}")),
                Ok(wit::Request::Http(_)) => row.skip = Some("the adapter shapes HTTP requests".into()),
                Ok(wit::Request::Prompt(prompt)) => {
                    let mut at = 0;
                    for (_, content) in turns.iter() {
                        match prompt.text[at..].find(content) {
                            Some(i) => at += i + content.len(),
                            None => row
                                .problems
                                .push(format!("the prompt lacks (or misorders) {content:?}")),
                        }
                    }
                    match reference_prompt(self.adapter, model, turns) {
                        Some(expected) if expected != prompt.text => row.problems.push(format!(
                            "the prompt differs from the template's rendering: got {:?}, expected {:?}",
                            crate::adapters::truncate(&prompt.text),
                            crate::adapters::truncate(&expected)
                        )),
                        Some(_) => row
                            .notes
                            .push(format!("{} chars, = template rendering", prompt.text.len())),
                        None => row.notes.push(format!("{} chars", prompt.text.len())),
                    }
                    let bos = model.bos_token.as_deref().filter(|b| !b.is_empty());
                    let starts_with_bos = bos.is_some_and(|b| prompt.text.starts_with(b));
                    let expected_bos = model.add_bos && !starts_with_bos;
                    if prompt.add_bos != expected_bos {
                        bos_row.problems.push(format!(
                            "{name}: add-bos is {} but should be {expected_bos} (model add-bos {}, the prompt starts with BOS: {starts_with_bos})",
                            prompt.add_bos, model.add_bos
                        ));
                    }
                    if *name == "roles" {
                        self.rendered_prompt = Some(prompt.text.clone());
                    }
                    self.output(format!("prompt:{name}"), prompt.text);
                    self.output(format!("add-bos:{name}"), prompt.add_bos.to_string());
                }
            }
            self.finish(row);
        }
        self.finish(bos_row);
    }

    fn stop_strings(&mut self) {
        let mut row = Row::new("stop strings passed through");
        match self.shape(&mut row, self.model, CONVERSATIONS[0].1, STOP) {
            Err(e) => row.problems.push(format!("shape-request failed: {e}")),
            Ok(wit::Request::Http(_)) => row.skip = Some("the adapter shapes HTTP requests".into()),
            Ok(wit::Request::Prompt(prompt)) => {
                for s in STOP {
                    if !prompt.stop.iter().any(|p| p == s) {
                        row.problems
                            .push(format!("stop {s:?} is missing from {:?}", prompt.stop));
                    }
                }
            }
        }
        self.finish(row);
    }

    fn responses(&mut self) {
        let model = self.model;
        let mut row = Row::new("parse-response culls eos");
        for (i, template) in RAW_OUTPUTS.iter().enumerate() {
            let raw = raw_output(model, template);
            match self.parse(&mut row, model, &raw) {
                Err(e) => row.problems.push(format!("raw {raw:?}: {e}")),
                Ok(completion) => {
                    if let Some(expected) = reference_answer(model, &raw) {
                        if completion.text != expected {
                            row.problems
                                .push(format!("raw {raw:?} gave {:?}, expected {expected:?}", completion.text));
                        }
                    }
                    self.output(format!("response:{i}"), completion.text);
                }
            }
        }
        if spec_str(&spec_of(model), "eos_to_cull").is_none() {
            row.notes
                .push("the entry sets no eos_to_cull: answers are only trimmed".into());
        }
        self.finish(row);
    }

    fn streaming(&mut self) {
        let model = self.model;
        let mut row = Row::new("stream pieces = final text");
        for (i, template) in RAW_OUTPUTS.iter().enumerate() {
            let raw = raw_output(model, template);
            let whole = match self.parse(&mut row, model, &raw) {
                Ok(c) => c.text,
                Err(e) => {
                    row.problems.push(format!("raw {raw:?}: parse-response failed: {e}"));
                    continue;
                }
            };
            for (how, chunks) in chunkings(&raw) {
                match self.stream(&mut row, model, &chunks) {
                    Err(e) => row.problems.push(format!("raw {raw:?} in {how} chunks: {e}")),
                    Ok((shown, text)) => {
                        if shown != text {
                            row.problems
                                .push(format!("{how} chunks: shown {shown:?} but final text {text:?}"));
                        }
                        if text != whole {
                            row.problems.push(format!(
                                "{how} chunks of {raw:?}: stream gave {text:?}, parse-response {whole:?}"
                            ));
                        }
                        if how == "chars" {
                            self.output(format!("stream:{i}"), text);
                        }
                    }
                }
            }
        }
        self.finish(row);
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

    fn missing_template(&mut self) {
        let turns = CONVERSATIONS[0].1;
        let mut spec = spec_of(self.model);
        spec.remove("custom_chat_template");
        spec.insert("premade_chat_template".into(), Value::Bool(true));
        let no_template = wit::ModelInfo {
            spec_json: Value::Object(spec).to_string(),
            builtin_template: None,
            ..self.model.clone()
        };
        let mut row = Row::new("missing template is an error value");
        match self.shape(&mut row, &no_template, turns, &[]) {
            Ok(wit::Request::Http(_)) => row.skip = Some("the adapter shapes HTTP requests".into()),
            Ok(wit::Request::Prompt(p)) => row.problems.push(format!(
                "shape-request made a prompt without any template: {:?}",
                crate::adapters::truncate(&p.text)
            )),
            Err(e) if is_variant(&e) => row.notes.push(e.to_string()),
            Err(e) => row.problems.push(format!("shape-request: {e}")),
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

    fn http_requests(&mut self) {
        let model = self.model;
        let mut row = Row::new("request is HTTP");
        for (name, turns) in CONVERSATIONS {
            match self.shape(&mut row, model, turns, &[]) {
                Err(e) => row.problems.push(format!("{name}: shape-request failed: {e}")),
                Ok(wit::Request::Prompt(_)) => row
                    .problems
                    .push(format!("{name}: shape-request made a prompt, not an HTTP request")),
                Ok(wit::Request::Http(req)) => {
                    let problems = request_problems(&req, turns);
                    row.problems
                        .extend(problems.into_iter().map(|p| format!("{name}: {p}")));
                    if *name == "roles" {
                        self.rendered_prompt = Some(show_request(&req));
                        row.notes.push(format!("{} {}", req.method, req.path));
                    }
                    self.output(format!("request:{name}"), show_request(&req));
                }
            }
        }
        self.finish(row);
    }

    fn http_streaming(&mut self) {
        let model = self.model;
        let turns = CONVERSATIONS[0].1;
        let mut row = Row::new("streaming changes the request");
        let plain = self.shape_with(&mut row, model, turns, &params_with(&[], false));
        let streamed = self.shape_with(&mut row, model, turns, &params_with(&[], true));
        match (plain, streamed) {
            (Ok(wit::Request::Http(plain)), Ok(wit::Request::Http(streamed))) => {
                // What is wrong with the streamed request only; the rest is the first check's.
                let known = request_problems(&plain, turns);
                row.problems.extend(
                    request_problems(&streamed, turns)
                        .into_iter()
                        .filter(|p| !known.contains(p))
                        .map(|p| format!("streamed: {p}")),
                );
                if plain.method == streamed.method
                    && plain.path == streamed.path
                    && plain.headers == streamed.headers
                    && plain.body == streamed.body
                {
                    row.problems.push(
                        "the request with stream = true is the one with stream = false: the provider would not stream"
                            .into(),
                    );
                } else if plain.path != streamed.path {
                    row.notes
                        .push(format!("streamed: {} {}", streamed.method, streamed.path));
                }
                self.output("request-stream:roles".into(), show_request(&streamed));
            }
            (
                _,
                Err(AdapterError::Refused {
                    kind: "unsupported",
                    message,
                    ..
                }),
            ) => row.skip = Some(format!("the adapter does not stream: {message}")),
            (_, Err(e)) => row
                .problems
                .push(format!("shape-request with stream = true failed: {e}")),
            (Err(e), _) => row.problems.push(format!("shape-request failed: {e}")),
            _ => row
                .problems
                .push("shape-request made a prompt, not an HTTP request".into()),
        }
        self.finish(row);
    }

    fn http_stop_strings(&mut self) {
        let turns = CONVERSATIONS[0].1;
        let mut row = Row::new("stop strings reach the request");
        match self.shape(&mut row, self.model, turns, HTTP_STOP) {
            Err(e) => row.problems.push(format!("shape-request failed: {e}")),
            Ok(wit::Request::Prompt(_)) => row
                .problems
                .push("shape-request made a prompt, not an HTTP request".into()),
            Ok(wit::Request::Http(req)) => {
                let parsed = serde_json::from_str::<Value>(&req.body).ok();
                for stop in HTTP_STOP {
                    if !body_holds(&req.body, parsed.as_ref(), stop) && !req.path.contains(stop) {
                        row.problems.push(format!("stop {stop:?} is not in the request"));
                    }
                }
            }
        }
        self.finish(row);
    }

    fn http_bad_replies(&mut self) {
        let model = self.model;
        let mut row = Row::new("bad replies are error values");
        for (i, raw) in BAD_REPLIES.iter().enumerate() {
            let result = self.parse(&mut row, model, raw);
            let shown = match &result {
                Ok(c) => format!("completion {:?}", c.text),
                Err(e) => e.to_string(),
            };
            match result {
                Err(e) if !is_variant(&e) => row.problems.push(format!("reply {raw:?}: {e}")),
                Ok(c) if *raw == BOOM_REPLY => row.problems.push(format!(
                    "reply {raw:?}: the provider's error was read as the answer {:?}",
                    c.text
                )),
                Err(e) if *raw == BOOM_REPLY && !e.to_string().contains("boom") => row.problems.push(format!(
                    "reply {raw:?}: the error does not carry the provider's message `boom`: {e}"
                )),
                _ => {}
            }
            self.output(format!("reply:{i}"), shown);
        }
        self.finish(row);
    }

    fn http_bad_events(&mut self) {
        let model = self.model;
        let mut row = Row::new("stream: bad events are error values");
        match self.stream(&mut row, model, &["not json"]) {
            Ok((_, text)) => row.notes.push(format!("read as the answer {text:?}")),
            Err(e) if is_variant(&e) => row.notes.push(e.to_string()),
            Err(e) => row.problems.push(format!("event \"not json\": {e}")),
        }
        self.finish(row);
    }
}
