//! The HTTP suite: requests whose path stays under a base URL, with no
//! credential or hop-by-hop header and a JSON body holding every message;
//! `stream = true` changing the request; stop strings in the request; bad
//! replies and stream events as error values.

use serde_json::Value;

use super::models::{params_with, BAD_REPLIES, BOOM_REPLY, CONVERSATIONS, HTTP_BASE, HTTP_STOP};
use super::{is_variant, Row, Suite};
use crate::adapters::{wit, AdapterError};
#[cfg(feature = "remote")]
use crate::engines::http::{is_reserved_header, join, Url};

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

impl Suite<'_> {
    pub(super) fn http_requests(&mut self) {
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

    pub(super) fn http_streaming(&mut self) {
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

    pub(super) fn http_stop_strings(&mut self) {
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

    pub(super) fn http_bad_replies(&mut self) {
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

    pub(super) fn http_bad_events(&mut self) {
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
