//! The incremental reader of a model's output: [`Parser`] turns chunks into
//! [`Event`]s, waiting only as long as a marker or a call may still be cut.

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::Value;

use crate::{Call, Event, ReasoningTags, ToolFormat};

/// Longest names a Mistral v11 call may have (`name[ARGS]`), in bytes.
const MAX_NAME_BYTES: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Before anything but whitespace: reasoning may open here.
    Start,
    Reasoning,
    Text,
    /// Inside a call; `marker` is the text that opened it (kept for a malformed report).
    Call,
}

/// Reads a model's output, chunk by chunk, into [`Event`]s.
#[derive(Clone, Debug)]
pub struct Parser {
    format: Option<ToolFormat>,
    reasoning: Option<ReasoningTags>,
    mode: Mode,
    /// Output not yet turned into events.
    buf: String,
    /// The marker that opened the current call ("" for a bare Llama 3 object).
    marker: String,
    /// Any reasoning emitted yet (leading whitespace of reasoning is dropped).
    reasoning_started: bool,
    /// Only whitespace since the start of the output or the last call: a bare
    /// Llama 3 object here is a call.
    call_may_start: bool,
}

impl Parser {
    /// A parser for `format` (`None`: no tool calls) and `reasoning` tags;
    /// `in_reasoning` when the prompt already opened the reasoning.
    pub fn new(format: Option<ToolFormat>, reasoning: Option<ReasoningTags>, in_reasoning: bool) -> Self {
        let mode = match &reasoning {
            Some(_) if in_reasoning => Mode::Reasoning,
            Some(_) => Mode::Start,
            None => Mode::Text,
        };
        Self {
            format,
            reasoning,
            mode,
            buf: String::new(),
            marker: String::new(),
            reasoning_started: false,
            call_may_start: true,
        }
    }

    /// The events `chunk` completes.
    pub fn push(&mut self, chunk: &str) -> Vec<Event> {
        self.buf.push_str(chunk);
        let mut out = Vec::new();
        while self.step(&mut out, false) {}
        out
    }

    /// The events left at the end of the output.
    pub fn finish(mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while self.step(&mut out, true) {}
        out
    }

    /// One step of progress; false when more output is needed (or, at `end`,
    /// when everything was emitted).
    fn step(&mut self, out: &mut Vec<Event>, end: bool) -> bool {
        match self.mode {
            Mode::Start => self.step_start(end),
            Mode::Reasoning => self.step_reasoning(out, end),
            Mode::Text => self.step_text(out, end),
            Mode::Call => self.step_call(out, end),
        }
    }

    fn step_start(&mut self, end: bool) -> bool {
        let start = &self.reasoning.as_ref().expect("Start mode needs tags").start;
        let rest = self.buf.trim_start();
        if let Some(after) = rest.strip_prefix(start.as_str()) {
            self.buf = after.to_string();
            self.mode = Mode::Reasoning;
            true
        } else if start.starts_with(rest) && !end {
            false
        } else {
            self.mode = Mode::Text;
            true
        }
    }

    fn step_reasoning(&mut self, out: &mut Vec<Event>, end: bool) -> bool {
        let tag = self.reasoning.as_ref().expect("Reasoning mode needs tags").end.clone();
        if let Some(at) = self.buf.find(tag.as_str()) {
            let piece = self.buf[..at].to_string();
            self.emit_reasoning(out, piece.trim_end());
            self.buf.drain(..at + tag.len());
            self.mode = Mode::Text;
            self.call_may_start = true;
            return true;
        }
        if end {
            let piece = std::mem::take(&mut self.buf);
            self.emit_reasoning(out, piece.trim_end());
            return false;
        }
        let safe = self.buf.len() - partial_suffix(&self.buf, &tag);
        // Trailing whitespace waits: the reasoning's end is trimmed.
        let upto = self.buf[..safe].trim_end().len();
        if upto == 0 {
            return false;
        }
        let piece: String = self.buf.drain(..upto).collect();
        self.emit_reasoning(out, &piece)
    }

    /// Emits reasoning without its leading whitespace; true if anything was emitted.
    fn emit_reasoning(&mut self, out: &mut Vec<Event>, piece: &str) -> bool {
        let piece = if self.reasoning_started {
            piece
        } else {
            piece.trim_start()
        };
        if piece.is_empty() {
            return false;
        }
        self.reasoning_started = true;
        out.push(Event::Reasoning(piece.to_string()));
        true
    }

    fn step_text(&mut self, out: &mut Vec<Event>, end: bool) -> bool {
        let Some(format) = self.format else {
            return self.emit_text(out, self.buf.len());
        };
        if format == ToolFormat::Llama3 && self.call_may_start {
            let rest = self.buf.trim_start();
            let ws = self.buf.len() - rest.len();
            if rest.starts_with('{') {
                self.emit_text(out, ws);
                self.marker.clear();
                self.mode = Mode::Call;
                return true;
            }
            if rest.is_empty() {
                // Whitespace only: a call may still come.
                return self.emit_text(out, ws) && !end;
            }
        }
        let marker = match format {
            ToolFormat::Llama3 => "<|python_tag|>",
            other => other.call_marker().expect("Hermes and Mistral have markers"),
        };
        if let Some(at) = self.buf.find(marker) {
            self.emit_text(out, at);
            self.buf.drain(..marker.len());
            self.marker = marker.to_string();
            self.mode = Mode::Call;
            return true;
        }
        let safe = if end {
            self.buf.len()
        } else {
            self.buf.len() - partial_suffix(&self.buf, marker)
        };
        self.emit_text(out, safe)
    }

    /// Emits the first `upto` bytes of the buffer as text; true if any.
    fn emit_text(&mut self, out: &mut Vec<Event>, upto: usize) -> bool {
        if upto == 0 {
            return false;
        }
        let piece: String = self.buf.drain(..upto).collect();
        if !piece.trim().is_empty() {
            self.call_may_start = false;
        }
        out.push(Event::Text(piece));
        true
    }

    fn step_call(&mut self, out: &mut Vec<Event>, end: bool) -> bool {
        let format = self.format.expect("Call mode needs a format");
        let outcome = match format {
            ToolFormat::Hermes => self.hermes_call(end),
            ToolFormat::Llama3 => self.json_call(end, |v| llama3_call(v).map(|c| vec![c])),
            ToolFormat::Mistral => self.mistral_call(end),
        };
        match outcome {
            Outcome::Wait => false,
            Outcome::Calls(calls, used) => {
                self.buf.drain(..used);
                out.extend(calls.into_iter().map(Event::Call));
                self.mode = Mode::Text;
                self.call_may_start = true;
                true
            }
            Outcome::NotACall(used) => {
                // A bare JSON object that is no call: the answer's text.
                self.mode = Mode::Text;
                self.call_may_start = false;
                self.emit_text(out, used);
                true
            }
            Outcome::Malformed(used, reason) => {
                let raw = format!("{}{}", self.marker, &self.buf[..used]);
                self.buf.drain(..used);
                out.push(Event::Malformed { raw, reason });
                self.mode = Mode::Text;
                self.call_may_start = false;
                true
            }
        }
    }

    fn hermes_call(&self, end: bool) -> Outcome {
        const CLOSE: &str = "</tool_call>";
        let (body, used) = match self.buf.find(CLOSE) {
            Some(at) => (&self.buf[..at], at + CLOSE.len()),
            // A call cut by a stop string or the end of generation, taken if it parses.
            None if end => (self.buf.as_str(), self.buf.len()),
            None => return Outcome::Wait,
        };
        match serde_json::from_str::<Value>(body.trim()) {
            Ok(value) => match named_call(&value, &["arguments", "parameters"]) {
                Ok(call) => Outcome::Calls(vec![call], used),
                Err(reason) => Outcome::Malformed(used, reason),
            },
            Err(e) if self.buf.find(CLOSE).is_none() => {
                Outcome::Malformed(used, format!("unterminated <tool_call> ({e})"))
            }
            Err(e) => Outcome::Malformed(used, format!("not JSON: {e}")),
        }
    }

    /// A call that is one JSON value at the start of the buffer.
    fn json_call(&self, end: bool, read: impl Fn(&Value) -> Result<Vec<Call>, String>) -> Outcome {
        let lead = self.buf.len() - self.buf.trim_start().len();
        let mut values = serde_json::Deserializer::from_str(&self.buf[lead..]).into_iter::<Value>();
        match values.next() {
            None if end => Outcome::Malformed(self.buf.len(), "nothing after the call marker".into()),
            None => Outcome::Wait,
            Some(Ok(value)) => {
                let used = lead + values.byte_offset();
                match read(&value) {
                    Ok(calls) => Outcome::Calls(calls, used),
                    Err(_) if self.marker.is_empty() => Outcome::NotACall(used),
                    Err(reason) => Outcome::Malformed(used, reason),
                }
            }
            Some(Err(e)) if e.is_eof() && !end => Outcome::Wait,
            Some(Err(e)) if e.is_eof() => Outcome::Malformed(self.buf.len(), format!("unterminated call: {e}")),
            Some(Err(e)) => {
                let at = lead + error_offset(&self.buf[lead..], e.line(), e.column());
                if self.marker.is_empty() {
                    Outcome::NotACall(at)
                } else {
                    Outcome::Malformed(at, format!("not JSON: {e}"))
                }
            }
        }
    }

    fn mistral_call(&self, end: bool) -> Outcome {
        let rest = self.buf.trim_start();
        if rest.is_empty() {
            return if end {
                Outcome::Malformed(self.buf.len(), "nothing after [TOOL_CALLS]".into())
            } else {
                Outcome::Wait
            };
        }
        if rest.starts_with('[') {
            return self.json_call(end, |value| match value {
                Value::Array(items) if !items.is_empty() => {
                    items.iter().map(|item| named_call(item, &["arguments"])).collect()
                }
                _ => Err("[TOOL_CALLS] is not followed by a list of calls".into()),
            });
        }
        // v11: `name[ARGS]{…}`.
        const ARGS: &str = "[ARGS]";
        let lead = self.buf.len() - rest.len();
        let name_end = rest.find(|c: char| !(c.is_alphanumeric() || "_-.".contains(c)));
        let malformed_name = |used| {
            Outcome::Malformed(
                used,
                "[TOOL_CALLS] is followed by neither a list nor `name[ARGS]`".into(),
            )
        };
        let Some(name_end) = name_end else {
            return if end || rest.len() > MAX_NAME_BYTES {
                malformed_name(self.buf.len())
            } else {
                Outcome::Wait
            };
        };
        let after = &rest[name_end..];
        if !after.starts_with(ARGS) {
            if ARGS.starts_with(after) && !end {
                return Outcome::Wait;
            }
            return malformed_name(lead + name_end);
        }
        if name_end == 0 || name_end > MAX_NAME_BYTES {
            return malformed_name(lead + name_end + ARGS.len());
        }
        let name = rest[..name_end].to_string();
        let args_at = lead + name_end + ARGS.len();
        let tail = &self.buf[args_at..];
        let tail_lead = tail.len() - tail.trim_start().len();
        let mut values = serde_json::Deserializer::from_str(tail.trim_start()).into_iter::<Box<RawValue>>();
        match values.next() {
            None | Some(Err(_)) if !end && values_eof(tail) => Outcome::Wait,
            Some(Ok(raw)) if raw.get().starts_with('{') => {
                let used = args_at + tail_lead + values.byte_offset();
                Outcome::Calls(
                    vec![Call {
                        id: None,
                        name,
                        arguments: raw.get().to_string(),
                    }],
                    used,
                )
            }
            Some(Ok(_)) => Outcome::Malformed(
                args_at + tail_lead + values.byte_offset(),
                "[ARGS] is not a JSON object".into(),
            ),
            Some(Err(e)) if !e.is_eof() => {
                let at = args_at + tail_lead + error_offset(tail.trim_start(), e.line(), e.column());
                Outcome::Malformed(at, format!("not JSON: {e}"))
            }
            _ => Outcome::Malformed(self.buf.len(), "unterminated [ARGS]".into()),
        }
    }
}

/// Whether `text` is empty or the start of a JSON value that is not finished.
fn values_eof(text: &str) -> bool {
    let text = text.trim_start();
    if text.is_empty() {
        return true;
    }
    match serde_json::Deserializer::from_str(text).into_iter::<Value>().next() {
        Some(Err(e)) => e.is_eof(),
        _ => false,
    }
}

enum Outcome {
    Wait,
    /// Calls read from the first `usize` bytes of the buffer.
    Calls(Vec<Call>, usize),
    /// The first bytes are a JSON value that is not a call (text).
    NotACall(usize),
    Malformed(usize, String),
}

/// `{"name": …, <args_key>: {…}, "id"?: …}` as a call.
fn named_call(value: &Value, args_keys: &[&str]) -> Result<Call, String> {
    let Value::Object(map) = value else {
        return Err("a call must be a JSON object".into());
    };
    let name = match map.get("name") {
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        _ => return Err("a call needs a `name` string".into()),
    };
    let arguments = match args_keys.iter().find_map(|key| map.get(*key)) {
        Some(args @ Value::Object(_)) => args.to_string(),
        // Some models write the arguments as a string of JSON, as OpenAI's API does.
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(args @ Value::Object(_)) => args.to_string(),
            _ => return Err(format!("the arguments of `{name}` are not a JSON object")),
        },
        None => "{}".to_string(),
        Some(_) => return Err(format!("the arguments of `{name}` are not a JSON object")),
    };
    let id = match map.get("id") {
        Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
        _ => None,
    };
    Ok(Call { id, name, arguments })
}

/// A Llama 3 call: exactly a name and its parameters (anything else is an answer).
fn llama3_call(value: &Value) -> Result<Call, String> {
    let Value::Object(map) = value else {
        return Err("not an object".into());
    };
    let keys: BTreeMap<&str, ()> = map.keys().map(|k| (k.as_str(), ())).collect();
    let shaped = keys.contains_key("name")
        && (keys.contains_key("parameters") || keys.contains_key("arguments"))
        && keys.len() == 2;
    if !shaped {
        return Err("not a call object".into());
    }
    named_call(value, &["parameters", "arguments"])
}

/// The byte offset just past serde_json's error position (1-based line, column).
fn error_offset(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let mut at = (line_start + column).min(text.len());
    while !text.is_char_boundary(at) {
        at += 1;
    }
    at.max(1).min(text.len())
}

/// The length of the longest suffix of `text` that is a proper prefix of `tag`.
fn partial_suffix(text: &str, tag: &str) -> usize {
    (1..tag.len().min(text.len() + 1))
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n) && tag.as_bytes().starts_with(&text.as_bytes()[text.len() - n..])
        })
        .unwrap_or(0)
}
