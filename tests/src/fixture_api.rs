//! A loopback HTTP/1.1 server that STANDS IN for the vendor APIs (OpenAI,
//! Anthropic, Google, Cohere, ...) that tests cannot reach. It is not any of
//! them: it records every request exactly as it arrived (method, path with
//! query, headers, body) so tests can check what lmhost sent, and answers from
//! a script of replies written in the shapes the vendors document, plain or as
//! server-sent events. Every answer carries `X-Stand-In: lmhost test fixture`.
//!
//! One request per connection; the connection is closed after the answer.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A request as it arrived.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `POST`, `GET`, ...
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// Headers, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
    /// When it arrived.
    pub at: Instant,
}

impl Recorded {
    /// The value of a header (first one).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("request body is not JSON ({e}): {}", self.body))
    }
}

/// How an answer's body is sent.
#[derive(Debug, Clone)]
pub enum Body {
    /// All at once, with `Content-Length`.
    Text(String),
    /// `text/event-stream`: each `(event name, data)` as one event, flushed,
    /// `gap` apart; the stream ends by closing the connection.
    Events(Vec<(Option<String>, String)>, Duration),
    /// Send the headers, then nothing for this long, then close.
    Stall(Duration),
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Body::Text(body.to_string()),
        }
    }

    /// A plain-text answer.
    pub fn text(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: Body::Text(body.into()),
        }
    }

    /// Server-sent events with data only (JSON values are serialised, strings sent as is).
    pub fn events(events: &[Value]) -> Self {
        let events = events
            .iter()
            .map(|e| {
                let data = match e {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (None, data)
            })
            .collect();
        Self::named_events(events)
    }

    /// Server-sent events with `event:` names.
    pub fn named_events(events: Vec<(Option<String>, String)>) -> Self {
        Self {
            status: 200,
            headers: vec![("Content-Type".into(), "text/event-stream".into())],
            body: Body::Events(events, Duration::from_millis(5)),
        }
    }

    /// Add a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// The running stand-in.
pub struct FixtureApi {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
}

impl FixtureApi {
    /// Serve `script` in order; the last reply repeats once the script is used up.
    pub fn start(script: Vec<Reply>) -> Self {
        assert!(!script.is_empty(), "a fixture needs at least one reply");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let (reqs, stopped) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let reply = {
                    let mut script = script.lock().unwrap();
                    if script.len() > 1 {
                        script.pop_front().unwrap()
                    } else {
                        script.front().unwrap().clone()
                    }
                };
                let reqs = reqs.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &reqs, reply);
                });
            }
        });
        Self { addr, requests, stop }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// The only request so far (panics unless there is exactly one).
    pub fn only_request(&self) -> Recorded {
        let all = self.requests();
        assert_eq!(all.len(), 1, "expected one request, got {all:#?}");
        all.into_iter().next().unwrap()
    }
}

impl Drop for FixtureApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(stream: TcpStream, requests: &Mutex<Vec<Recorded>>, reply: Reply) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let at = Instant::now();
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = h.trim_end().split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    requests.lock().unwrap().push(Recorded {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at,
    });

    let mut out = stream;
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nConnection: close\r\nX-Stand-In: lmhost test fixture\r\n",
        reply.status,
        reason(reply.status)
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match reply.body {
        Body::Text(text) => {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", text.len()));
            out.write_all(head.as_bytes())?;
            out.write_all(text.as_bytes())?;
        }
        Body::Events(events, gap) => {
            head.push_str("Cache-Control: no-cache\r\n\r\n");
            out.write_all(head.as_bytes())?;
            out.flush()?;
            for (name, data) in events {
                let mut event = String::new();
                if let Some(name) = name {
                    event.push_str(&format!("event: {name}\n"));
                }
                for line in data.split('\n') {
                    event.push_str(&format!("data: {line}\n"));
                }
                event.push('\n');
                out.write_all(event.as_bytes())?;
                out.flush()?;
                std::thread::sleep(gap);
            }
        }
        Body::Stall(time) => {
            head.push_str("Content-Length: 100\r\n\r\n");
            out.write_all(head.as_bytes())?;
            out.flush()?;
            std::thread::sleep(time);
        }
    }
    out.flush()?;
    let _ = out.shutdown(Shutdown::Both);
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
