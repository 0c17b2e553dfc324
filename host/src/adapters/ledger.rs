//! What one request's adapter calls cost, counted against fixed caps: every
//! string and list an adapter returns ([`check_request`], [`check_completion`]),
//! its error values ([`quote`]), its log lines ([`RequestLog`]) and the time its
//! calls ran (the request budget, kept by the session).
//!
//! Each limit exists because something downstream is not linear in it: stop
//! strings are matched against every generated token, headers go into a map that
//! panics past 32k entries, and error values and log lines are written to
//! stderr and to HTTP replies whole. Caps are constants, not registry keys: no
//! honest adapter comes near them (OpenAI accepts 4 stop strings).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::{wit, AdapterError};

/// Most stop strings one prompt may carry.
pub const MAX_STOP_STRINGS: usize = 64;
/// Longest stop string, in bytes.
pub const MAX_STOP_BYTES: usize = 1024;
/// Most headers one HTTP request may carry.
pub const MAX_HEADERS: usize = 64;
/// Longest header name plus value, in bytes.
pub const MAX_HEADER_BYTES: usize = 8 << 10;
/// Longest path (with its query), in bytes.
pub const MAX_PATH_BYTES: usize = 8 << 10;
/// Longest HTTP method name, in bytes.
pub const MAX_METHOD_BYTES: usize = 16;
/// Longest finish reason, in bytes.
pub const MAX_FINISH_REASON_BYTES: usize = 64;
/// Most tool calls one completion may carry.
pub const MAX_TOOL_CALLS: usize = 128;
/// Longest tool name or call id, in bytes.
pub const MAX_TOOL_NAME_BYTES: usize = 256;
/// Longest constraint prefix or suffix, in bytes.
pub const MAX_CONSTRAINT_AFFIX_BYTES: usize = 1024;
/// How much of an adapter's error value is kept, in bytes.
pub const MAX_ERROR_BYTES: usize = 1024;
/// Longest log record, in bytes (longer ones are cut, saying how long they were).
pub const MAX_LOG_RECORD_BYTES: usize = 4 << 10;
/// Log bytes one request may write; what is over is dropped and counted.
pub const MAX_LOG_BYTES_PER_REQUEST: usize = 64 << 10;

/// How much of an untrusted value an error message quotes, in characters.
const QUOTE_CHARS: usize = 200;

fn over(adapter: &str, what: &'static str, size: usize, limit: usize) -> AdapterError {
    AdapterError::OutputLimit {
        adapter: adapter.to_string(),
        what,
        size,
        limit,
    }
}

fn at_most(adapter: &str, what: &'static str, size: usize, limit: usize) -> Result<(), AdapterError> {
    if size > limit {
        return Err(over(adapter, what, size, limit));
    }
    Ok(())
}

/// Check everything a `shape-request` returned against the caps (`output_bytes`
/// is the entry's output cap for the prompt or body).
pub fn check_request(adapter: &str, request: &wit::Request, output_bytes: usize) -> Result<(), AdapterError> {
    match request {
        wit::Request::Prompt(p) => {
            at_most(adapter, "bytes of prompt text", p.text.len(), output_bytes)?;
            if let Some(c) = &p.constraint {
                at_most(adapter, "bytes of constraint schema", c.schema.len(), output_bytes)?;
                let affix = c.prefix.len().max(c.suffix.len());
                at_most(
                    adapter,
                    "bytes of constraint prefix or suffix",
                    affix,
                    MAX_CONSTRAINT_AFFIX_BYTES,
                )?;
            }
            at_most(adapter, "stop strings", p.stop.len(), MAX_STOP_STRINGS)?;
            let longest = p.stop.iter().map(String::len).max().unwrap_or(0);
            at_most(adapter, "bytes in one stop string", longest, MAX_STOP_BYTES)
        }
        wit::Request::Http(h) => {
            at_most(adapter, "bytes of HTTP body", h.body.len(), output_bytes)?;
            at_most(adapter, "bytes of HTTP method", h.method.len(), MAX_METHOD_BYTES)?;
            at_most(adapter, "bytes of HTTP path", h.path.len(), MAX_PATH_BYTES)?;
            at_most(adapter, "HTTP headers", h.headers.len(), MAX_HEADERS)?;
            let longest = h.headers.iter().map(|(n, v)| n.len() + v.len()).max().unwrap_or(0);
            at_most(adapter, "bytes in one HTTP header", longest, MAX_HEADER_BYTES)
        }
    }
}

/// Check a completion (`parse-response`, a stream's `finish`).
pub fn check_completion(adapter: &str, c: &wit::Completion, output_bytes: usize) -> Result<(), AdapterError> {
    let reasoning = c.reasoning.as_deref().map_or(0, str::len);
    let arguments: usize = c.tool_calls.iter().map(|t| t.arguments.len()).sum();
    let total = c.text.len().saturating_add(reasoning).saturating_add(arguments);
    at_most(
        adapter,
        "bytes of completion text, reasoning and tool arguments",
        total,
        output_bytes,
    )?;
    check_calls(adapter, &c.tool_calls, 0)?;
    let reason = c.finish_reason.as_deref().map_or(0, str::len);
    at_most(adapter, "bytes of finish reason", reason, MAX_FINISH_REASON_BYTES)
}

/// Check one streamed piece, with what was emitted before it.
pub fn check_delta(
    adapter: &str,
    emitted: &wit::Delta,
    d: &wit::Delta,
    output_bytes: usize,
) -> Result<(), AdapterError> {
    let size = |d: &wit::Delta| {
        let arguments: usize = d.tool_calls.iter().map(|t| t.arguments.len()).sum();
        d.text.len().saturating_add(d.reasoning.len()).saturating_add(arguments)
    };
    let total = size(emitted).saturating_add(size(d));
    at_most(
        adapter,
        "bytes of streamed text, reasoning and tool arguments",
        total,
        output_bytes,
    )?;
    check_calls(adapter, &d.tool_calls, emitted.tool_calls.len())
}

fn check_calls(adapter: &str, calls: &[wit::ToolCall], before: usize) -> Result<(), AdapterError> {
    at_most(
        adapter,
        "tool calls",
        before.saturating_add(calls.len()),
        MAX_TOOL_CALLS,
    )?;
    let longest = calls.iter().map(|t| t.name.len().max(t.id.len())).max().unwrap_or(0);
    at_most(
        adapter,
        "bytes in one tool name or call id",
        longest,
        MAX_TOOL_NAME_BYTES,
    )
}

/// An untrusted value for an error message: at most 200 characters, control
/// characters escaped, and the whole length when cut.
pub fn quote(value: &str) -> String {
    let mut out = String::from("\"");
    for (shown, c) in value.chars().enumerate() {
        if shown == QUOTE_CHARS {
            let _ = write!(out, "\"… ({} bytes in all)", value.len());
            return out;
        }
        push_escaped(&mut out, c);
    }
    out.push('"');
    out
}

/// An adapter's error value, cut to [`MAX_ERROR_BYTES`] (saying so) and with
/// control characters escaped, so that it cannot flood a log or forge lines.
pub fn error_text(message: &str) -> String {
    let (kept, cut) = cut_at(message, MAX_ERROR_BYTES);
    let mut out = escape(kept);
    if cut {
        let _ = write!(out, "… ({} bytes in all)", message.len());
    }
    out
}

/// The longest prefix of `s` of at most `max` bytes, on a character boundary,
/// and whether anything was cut.
fn cut_at(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

/// `s` on one line: every control character (C0, DEL, C1), line and paragraph
/// separator and bidirectional override escaped, so that text an adapter logs
/// can neither start a line of its own nor reorder the line it is on.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\\' => out.push_str("\\\\"),
        '"' => out.push_str("\\\""),
        c if c.is_control() || is_layout_control(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// Format characters that change how a terminal or viewer lays out a line.
fn is_layout_control(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// One request's log budget, shared by the session and every instance it made.
/// When the last holder drops it, a request that went over the budget leaves one
/// line saying how much was dropped.
#[derive(Debug)]
pub struct RequestLog {
    adapter: Arc<str>,
    written: AtomicUsize,
    dropped_bytes: AtomicUsize,
    dropped_records: AtomicUsize,
}

impl RequestLog {
    /// A fresh budget for one request of `adapter`.
    pub fn new(adapter: Arc<str>) -> Arc<Self> {
        Arc::new(Self {
            adapter,
            written: AtomicUsize::new(0),
            dropped_bytes: AtomicUsize::new(0),
            dropped_records: AtomicUsize::new(0),
        })
    }

    /// The record as it may be written (one line, escaped, cut to
    /// [`MAX_LOG_RECORD_BYTES`]), or `None` once the request's budget is spent.
    pub fn admit(&self, message: &str) -> Option<String> {
        let (kept, cut) = cut_at(message, MAX_LOG_RECORD_BYTES);
        let mut line = escape(kept);
        if cut {
            let _ = write!(line, "… ({} bytes in all)", message.len());
        }
        let before = self.written.fetch_add(line.len(), Ordering::Relaxed);
        if before + line.len() > MAX_LOG_BYTES_PER_REQUEST {
            self.written.fetch_sub(line.len(), Ordering::Relaxed);
            self.dropped_bytes.fetch_add(message.len(), Ordering::Relaxed);
            self.dropped_records.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(line)
    }

    /// Bytes and records dropped so far.
    pub fn dropped(&self) -> (usize, usize) {
        (
            self.dropped_bytes.load(Ordering::Relaxed),
            self.dropped_records.load(Ordering::Relaxed),
        )
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        let (bytes, records) = self.dropped();
        if records > 0 {
            tracing::warn!(
                adapter = &*self.adapter,
                "{bytes} bytes in {records} log records dropped: over the log limit of {MAX_LOG_BYTES_PER_REQUEST} bytes per request"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_a_record_on_one_line() {
        let forged = "ok\n2026-12-01T00:00:00Z ERROR lmhost: fake\r\u{1b}[2J\u{85}\u{2028}\u{202e}x\"\\";
        let line = escape(forged);
        assert!(!line.chars().any(|c| c.is_control() || is_layout_control(c)), "{line}");
        assert_eq!(
            line,
            "ok\\n2026-12-01T00:00:00Z ERROR lmhost: fake\\r\\u{1b}[2J\\u{85}\\u{2028}\\u{202e}x\\\"\\\\"
        );
    }

    #[test]
    fn quotes_are_cut_with_the_length() {
        let long = "é".repeat(100_000);
        let q = quote(&long);
        assert_eq!(
            q.chars().count(),
            200 + 2 + " (200000 bytes in all)".chars().count() + 1
        );
        assert!(q.ends_with("… (200000 bytes in all)"), "{q}");
        assert_eq!(quote("a\nb"), "\"a\\nb\"");
    }

    #[test]
    fn error_values_are_cut_on_a_character_boundary() {
        let long = "日".repeat(1000);
        let text = error_text(&long);
        assert!(text.len() < MAX_ERROR_BYTES + 40, "{}", text.len());
        assert!(text.ends_with("… (3000 bytes in all)"), "{text}");
        assert_eq!(error_text("short"), "short");
    }

    #[test]
    fn the_log_budget_is_per_request_and_counts_what_it_drops() {
        let log = RequestLog::new("a".into());
        let record = "x".repeat(1000);
        let admitted = (0..200).filter(|_| log.admit(&record).is_some()).count();
        assert_eq!(admitted, MAX_LOG_BYTES_PER_REQUEST / 1000);
        assert_eq!(log.dropped(), ((200 - admitted) * 1000, 200 - admitted));
        let huge = "y".repeat(1 << 20);
        let fresh = RequestLog::new("a".into());
        let line = fresh.admit(&huge).unwrap();
        assert!(line.len() < MAX_LOG_RECORD_BYTES + 40 && line.ends_with("(1048576 bytes in all)"));
    }

    fn prompt(stop: Vec<String>) -> wit::Request {
        wit::Request::Prompt(wit::Prompt {
            text: "p".into(),
            stop,
            add_bos: false,
            constraint: None,
        })
    }

    fn http(path: &str, headers: Vec<(String, String)>) -> wit::Request {
        wit::Request::Http(wit::HttpRequest {
            method: "POST".into(),
            path: path.into(),
            headers,
            body: "{}".into(),
        })
    }

    #[test]
    fn counts_and_sizes_of_everything_returned_are_capped() {
        let ok = |r: &wit::Request| check_request("a", r, 1 << 20);
        assert!(ok(&prompt(vec!["s".into(); MAX_STOP_STRINGS])).is_ok());
        let err = ok(&prompt(vec!["s".into(); MAX_STOP_STRINGS + 1])).unwrap_err();
        assert!(
            matches!(
                err,
                AdapterError::OutputLimit {
                    what: "stop strings",
                    size: 65,
                    limit: 64,
                    ..
                }
            ),
            "{err}"
        );
        assert!(ok(&prompt(vec!["s".repeat(MAX_STOP_BYTES + 1)])).is_err());
        let headers = |n: usize| (0..n).map(|i| (format!("x-h{i}"), "v".into())).collect::<Vec<_>>();
        assert!(ok(&http("/v1", headers(MAX_HEADERS))).is_ok());
        let err = ok(&http("/v1", headers(30_000))).unwrap_err();
        assert!(err.to_string().contains("30000 HTTP headers"), "{err}");
        assert!(ok(&http("/v1", vec![("x".into(), "v".repeat(MAX_HEADER_BYTES))])).is_err());
        assert!(ok(&http(&"/a".repeat(MAX_PATH_BYTES), Vec::new())).is_err());
        let c = |reason: &str| wit::Completion {
            finish_reason: Some(reason.into()),
            ..wit::Completion::text("t")
        };
        assert!(check_completion("a", &c("stop"), 10).is_ok());
        assert!(check_completion("a", &c(&"r".repeat(65)), 10).is_err());
        // Reasoning and tool arguments count against the output cap with the text,
        // calls against their own count, names and ids against their length.
        let call = |name: &str, arguments: &str| wit::ToolCall {
            id: String::new(),
            name: name.into(),
            arguments: arguments.into(),
        };
        let with = |reasoning: &str, calls: Vec<wit::ToolCall>| wit::Completion {
            reasoning: Some(reasoning.into()),
            tool_calls: calls,
            ..wit::Completion::text("t")
        };
        assert!(check_completion("a", &with("rrrr", vec![call("f", "{}")]), 10).is_ok());
        assert!(check_completion("a", &with("rrrr", vec![call("f", "{\"a\":1}")]), 10).is_err());
        let many = vec![call("f", ""); MAX_TOOL_CALLS + 1];
        let err = check_completion("a", &with("", many), 1 << 20).unwrap_err();
        assert!(err.to_string().contains("129 tool calls"), "{err}");
        let long = vec![call(&"n".repeat(MAX_TOOL_NAME_BYTES + 1), "")];
        assert!(check_completion("a", &with("", long), 1 << 20).is_err());
        let emitted = wit::Delta {
            tool_calls: vec![call("f", ""); MAX_TOOL_CALLS],
            ..wit::Delta::empty()
        };
        let one_more = wit::Delta {
            tool_calls: vec![call("f", "")],
            ..wit::Delta::empty()
        };
        assert!(check_delta("a", &emitted, &one_more, 1 << 20).is_err());
        assert!(check_delta("a", &wit::Delta::empty(), &one_more, 1 << 20).is_ok());
    }
}
