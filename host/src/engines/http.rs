//! The HTTP engine: remote APIs (`openai`, `openai_compatible`, `openrouter`,
//! `mistral`, `anthropic`, `google`, `cohere`).
//!
//! The adapter shapes the request (method, a path relative to the base URL,
//! headers, body) and reads the reply; this engine owns everything an adapter
//! must not: the network, the API key and where requests go.
//!
//! - The URL is the entry's base URL (`base_url` in the entry, else in key.json,
//!   else the backend's default) joined with the adapter's path. Absolute URLs,
//!   `//host` paths, dot segments and anything that ends on another scheme, host,
//!   port or outside the base path are refused, as are credential and hop-by-hop
//!   headers. Redirects are not followed.
//! - The key goes in the header the backend uses ([`Auth`]), marked sensitive.
//! - Timeouts: connect (`connect_timeout_s`, default 10), whole call
//!   (`timeout_s`, default 600) and between two chunks of the reply
//!   (`chunk_timeout_s`, default 120).
//! - Retries: connection failures, 408, 429 and 5xx are retried up to
//!   `max_retries` times (default 3) with exponential backoff from
//!   `retry_backoff_ms` (default 1000), or after the server's `Retry-After`.
//!   Once an event of a stream has been handed on, nothing is retried.
//! - A `text/event-stream` reply is framed here ([`super::sse`]); each event's
//!   data goes to the sink as it arrives, `[DONE]` ends it. Other replies are
//!   read whole (at most 64 MiB).
//! - TLS certificates are always verified (rustls, built-in web PKI roots).

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};

/// URLs as the HTTP engine parses them.
pub use reqwest::Url;

use super::sse::SseParser;
use super::{EngineError, EngineInfo, TextSink};
use crate::backends::find_backend;
use crate::credentials::Credential;
use crate::registry::{ModelSpec, RemoteSettings, SettingsError};

/// Largest reply body read (an error body: 1 MiB).
const MAX_BODY: usize = 64 << 20;
const MAX_ERROR_BODY: usize = 1 << 20;

/// Headers an adapter may not set: credentials, routing and framing are the host's
/// (each backend's own credential headers come from the backend table).
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "api-key",
];

/// Whether an adapter may not set header `name` (any case): credentials, routing,
/// framing and every `proxy-` header are the host's.
pub(crate) fn is_reserved_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    RESERVED_HEADERS.contains(&lower.as_str())
        || crate::backends::is_credential_header(&lower)
        || lower.starts_with("proxy-")
}

/// Timeouts and retries of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpPolicy {
    /// Most time to open a connection.
    pub connect_timeout: Duration,
    /// Most time for the whole call, retries and waits included.
    pub timeout: Duration,
    /// Most time between two chunks of a reply.
    pub chunk_timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Wait before the first retry; doubled for each next one.
    pub backoff: Duration,
    /// Longest wait honoured, backoff or `Retry-After`.
    pub max_wait: Duration,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(600),
            chunk_timeout: Duration::from_secs(120),
            max_retries: 3,
            backoff: Duration::from_millis(1000),
            max_wait: Duration::from_secs(120),
        }
    }
}

impl HttpPolicy {
    /// The defaults with the entry's `connect_timeout_s`, `timeout_s`,
    /// `chunk_timeout_s`, `max_retries` and `retry_backoff_ms` on top.
    pub fn from_spec(spec: &ModelSpec) -> Result<Self, SettingsError> {
        let settings: RemoteSettings = spec.settings()?;
        let mut policy = Self::default();
        let seconds = |key: &str, value: Option<f64>, into: &mut Duration| -> Result<(), SettingsError> {
            if let Some(s) = value {
                if !(s > 0.0 && s <= 86_400.0) {
                    return Err(SettingsError::key(
                        spec,
                        key,
                        format!("must be a number of seconds in (0, 86400], found {s}"),
                    ));
                }
                *into = Duration::from_secs_f64(s);
            }
            Ok(())
        };
        seconds(
            "connect_timeout_s",
            settings.connect_timeout_s,
            &mut policy.connect_timeout,
        )?;
        seconds("timeout_s", settings.timeout_s, &mut policy.timeout)?;
        seconds("chunk_timeout_s", settings.chunk_timeout_s, &mut policy.chunk_timeout)?;
        if let Some(n) = settings.max_retries {
            if n > 20 {
                return Err(SettingsError::key(
                    spec,
                    "max_retries",
                    format!("must be at most 20, found {n}"),
                ));
            }
            policy.max_retries = n as u32;
        }
        if let Some(ms) = settings.retry_backoff_ms {
            policy.backoff = Duration::from_millis(ms.min(60_000));
        }
        Ok(policy)
    }

    fn backoff_for(&self, retry: u32) -> Duration {
        self.backoff
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
            .min(self.max_wait)
    }
}

/// What an adapter asked to send.
#[derive(Debug, Clone, Copy)]
pub struct HttpInput<'a> {
    /// `POST` or `GET`.
    pub method: &'a str,
    /// Path (and query) relative to the base URL.
    pub path: &'a str,
    /// Extra headers.
    pub headers: &'a [(String, String)],
    /// The body.
    pub body: &'a str,
}

/// What came back.
#[derive(Debug, Clone, Default)]
pub struct HttpOutput {
    /// The whole body, for a reply that is not an event stream.
    pub body: String,
    /// The reply was `text/event-stream`.
    pub event_stream: bool,
    /// The data of each event, in order (`[DONE]` left out).
    pub events: Vec<String>,
    /// The sink asked to stop.
    pub cancelled: bool,
    /// Attempts made (1 = no retry).
    pub attempts: u32,
    /// From the start of the call to the reply's headers (last attempt).
    pub time_to_headers: Duration,
    /// From the start of the call to the first event.
    pub time_to_first_event: Option<Duration>,
    /// The whole call.
    pub total: Duration,
}

/// A remote API.
pub struct HttpEngine {
    model: String,
    backend: String,
    base: Url,
    auth: HeaderMap,
    auth_header: Option<&'static str>,
    key_source: Option<String>,
    client: reqwest::Client,
    policy: HttpPolicy,
    info: EngineInfo,
}

impl std::fmt::Debug for HttpEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpEngine")
            .field("model", &self.model)
            .field("backend", &self.backend)
            .field("base", &self.base.as_str())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl HttpEngine {
    /// For a remote entry, with the backend's credentials.
    pub fn from_spec(spec: &ModelSpec, credential: &Credential) -> Result<Self, EngineError> {
        let model = spec.model_name().to_string();
        let invalid = |message: String| EngineError::InvalidSpec {
            model: model.clone(),
            message,
        };
        let backend = find_backend(spec.backend()).ok_or_else(|| EngineError::UnsupportedBackend {
            model: model.clone(),
            backend: spec.backend().into(),
        })?;
        let (base, from) = match spec.settings::<RemoteSettings>()?.base_url {
            Some(url) => (url, "`base_url` of the entry"),
            None => match (&credential.base_url, backend.default_base_url) {
                (Some(url), _) => (url.clone(), "`base_url` in key.json"),
                (None, Some(url)) => (url.to_string(), "the backend's default base URL"),
                (None, None) => {
                    return Err(invalid(format!(
                    "backend `{}` has no default URL: set `base_url` in the entry, or in the `{}` section of key.json",
                    backend.name,
                    backend.key_section().unwrap_or(backend.name)
                )))
                }
            },
        };
        let base = parse_base(&base).map_err(|e| invalid(format!("{from} {base:?} {e}")))?;
        let policy = HttpPolicy::from_spec(spec)?;

        let mut auth = HeaderMap::new();
        match (&credential.api_key, backend.auth.header()) {
            (Some(key), Some(header)) => {
                let value = if header == "authorization" {
                    format!("Bearer {}", key.expose())
                } else {
                    key.expose().to_string()
                };
                let mut value = HeaderValue::from_str(&value).map_err(|_| {
                    invalid(format!(
                        "the API key of backend `{}` (from {}) holds characters a header cannot carry",
                        backend.name,
                        credential.source.as_deref().unwrap_or("key.json")
                    ))
                })?;
                value.set_sensitive(true);
                auth.insert(HeaderName::from_static(header), value);
            }
            (None, _) if !backend.key_required => {}
            (None, Some(_)) => {
                return Err(EngineError::MissingKey {
                    model,
                    backend: backend.name.into(),
                    env: backend.key_env().unwrap_or("-"),
                    section: backend.key_section().unwrap_or(backend.name),
                })
            }
            (_, None) => {}
        }
        if let (Some(org), Some(header)) = (&credential.organization, backend.organization_header) {
            if let Ok(value) = HeaderValue::from_str(org) {
                auth.insert(HeaderName::from_static(header), value);
            }
        }

        let mut builder = reqwest::Client::builder()
            .connect_timeout(policy.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("lmhost/", env!("CARGO_PKG_VERSION")));
        if is_loopback(&base) {
            // A proxy from the environment cannot reach this machine's loopback.
            builder = builder.no_proxy();
        }
        let client = builder
            .build()
            .map_err(|e| invalid(format!("cannot set up an HTTP client: {}", chain(&e))))?;
        Ok(Self {
            model,
            backend: backend.name.into(),
            base,
            auth,
            auth_header: backend.auth.header(),
            key_source: credential.source.clone(),
            client,
            policy,
            info: EngineInfo::default(),
        })
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// Its timeouts and retries.
    pub fn policy(&self) -> HttpPolicy {
        self.policy
    }

    /// Send what the adapter shaped; the data of each event of a streamed reply
    /// goes to `on_event` as it arrives (`false` stops reading).
    pub fn send(&self, input: &HttpInput<'_>, on_event: TextSink<'_>) -> Result<HttpOutput, EngineError> {
        let (method, url, headers) = self.prepare(input)?;
        let runtime = runtime().map_err(|message| self.failed(message))?;
        runtime.block_on(self.send_async(method, url, headers, input.body, on_event))
    }

    /// Check and build the request: the adapter's method, path and headers.
    fn prepare(&self, input: &HttpInput<'_>) -> Result<(Method, Url, HeaderMap), EngineError> {
        let refuse = |message: String| EngineError::Refused {
            model: self.model.clone(),
            message,
        };
        let method = match input.method.to_ascii_uppercase().as_str() {
            "POST" => Method::POST,
            "GET" => Method::GET,
            other => return Err(refuse(format!("method `{other}` (only POST and GET)"))),
        };
        let url = join(&self.base, input.path).map_err(refuse)?;
        let mut headers = HeaderMap::new();
        for (name, value) in input.headers {
            let lower = name.to_ascii_lowercase();
            if is_reserved_header(&lower) || Some(lower.as_str()) == self.auth_header {
                return Err(refuse(format!(
                    "header `{name}`: credentials and connection headers are set by the host"
                )));
            }
            let name = HeaderName::from_bytes(lower.as_bytes())
                .map_err(|_| refuse(format!("header name {name:?} is not a valid HTTP header name")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| refuse(format!("the value of header `{name}` is not a valid HTTP header value")))?;
            headers.append(name, value);
        }
        if !headers.contains_key(CONTENT_TYPE) && !input.body.is_empty() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        headers.extend(self.auth.clone());
        Ok((method, url, headers))
    }

    async fn send_async(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: &str,
        on_event: TextSink<'_>,
    ) -> Result<HttpOutput, EngineError> {
        let started = Instant::now();
        let deadline = started + self.policy.timeout;
        let mut attempts = 0u32;
        let response = loop {
            attempts += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let request = self
                .client
                .request(method.clone(), url.clone())
                .headers(headers.clone())
                .body(body.to_owned())
                .send();
            let retry_in = match tokio::time::timeout(remaining, request).await {
                Err(_) => return Err(self.timed_out(attempts)),
                Ok(Ok(response)) if response.status().is_success() => break response,
                Ok(Ok(response)) => {
                    let status = response.status();
                    let retry_after = retry_after(response.headers());
                    let text = self.read_error_body(response, deadline).await;
                    if !retryable(status) || attempts > self.policy.max_retries {
                        return Err(self.provider_error(status, &text, attempts));
                    }
                    let wait = retry_after.unwrap_or_else(|| self.policy.backoff_for(attempts));
                    if wait > self.policy.max_wait {
                        let mut err = self.provider_error(status, &text, attempts);
                        if let EngineError::Provider { message, .. } = &mut err {
                            message.push_str(&format!(
                                "; it asked to retry after {} s, longer than lmhost waits ({} s)",
                                wait.as_secs(),
                                self.policy.max_wait.as_secs()
                            ));
                        }
                        return Err(err);
                    }
                    tracing::warn!(
                        model = self.model,
                        status = status.as_u16(),
                        "retrying in {:.1} s (attempt {attempts})",
                        wait.as_secs_f64()
                    );
                    wait
                }
                Ok(Err(e)) => {
                    let transient = e.is_connect() || e.is_timeout() || e.is_request();
                    if !transient || attempts > self.policy.max_retries {
                        return Err(self.failed(format!(
                            "request to {} failed{}: {}",
                            self.shown(&url),
                            after(attempts),
                            chain(&e)
                        )));
                    }
                    tracing::warn!(model = self.model, "request failed, retrying: {}", chain(&e));
                    self.policy.backoff_for(attempts)
                }
            };
            if Instant::now() + retry_in >= deadline {
                return Err(self.timed_out(attempts));
            }
            tokio::time::sleep(retry_in).await;
        };

        let time_to_headers = started.elapsed();
        let event_stream = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/event-stream"));
        let mut output = HttpOutput {
            event_stream,
            attempts,
            time_to_headers,
            ..HttpOutput::default()
        };
        let mut response = response;
        let mut raw = Vec::new();
        let mut parser = SseParser::new();
        'read: loop {
            let Some(chunk) = self.next_chunk(&mut response, deadline).await? else {
                break;
            };
            if !event_stream {
                if raw.len() + chunk.len() > MAX_BODY {
                    return Err(self.failed(format!("the reply is over the limit of {MAX_BODY} bytes")));
                }
                raw.extend_from_slice(&chunk);
                continue;
            }
            let events = parser
                .feed(&chunk)
                .map_err(|e| self.failed(format!("reading the reply: {e}")))?;
            for event in events {
                if !self.event(event, &mut output, started, on_event) {
                    break 'read;
                }
            }
        }
        if event_stream && !output.cancelled {
            let last = parser
                .finish()
                .map_err(|e| self.failed(format!("reading the reply: {e}")))?;
            if let Some(event) = last {
                self.event(event, &mut output, started, on_event);
            }
        }
        if !event_stream {
            output.body = String::from_utf8(raw).map_err(|e| {
                self.failed(format!(
                    "the reply is not valid UTF-8 (at byte {})",
                    e.utf8_error().valid_up_to()
                ))
            })?;
        }
        output.total = started.elapsed();
        Ok(output)
    }

    /// Hand one event on; `false` when reading should stop.
    fn event(&self, event: String, output: &mut HttpOutput, started: Instant, on_event: TextSink<'_>) -> bool {
        if output.cancelled || event.trim() == "[DONE]" {
            return false;
        }
        output.time_to_first_event.get_or_insert_with(|| started.elapsed());
        let go_on = on_event(&event);
        output.events.push(event);
        if !go_on {
            output.cancelled = true;
        }
        go_on
    }

    async fn next_chunk(
        &self,
        response: &mut reqwest::Response,
        deadline: Instant,
    ) -> Result<Option<bytes::Bytes>, EngineError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let wait = remaining.min(self.policy.chunk_timeout);
        match tokio::time::timeout(wait, response.chunk()).await {
            Ok(Ok(chunk)) => Ok(chunk),
            Ok(Err(e)) => Err(self.failed(format!("reading the reply failed: {}", chain(&e)))),
            Err(_) if wait < self.policy.chunk_timeout => Err(self.timed_out(1)),
            Err(_) => Err(self.failed(format!(
                "the reply stalled: nothing arrived for {} s (`chunk_timeout_s`)",
                self.policy.chunk_timeout.as_secs_f64()
            ))),
        }
    }

    async fn read_error_body(&self, mut response: reqwest::Response, deadline: Instant) -> String {
        let mut raw = Vec::new();
        while raw.len() < MAX_ERROR_BODY {
            match self.next_chunk(&mut response, deadline).await {
                Ok(Some(chunk)) => raw.extend_from_slice(&chunk),
                _ => break,
            }
        }
        String::from_utf8_lossy(&raw).into_owned()
    }

    fn provider_error(&self, status: StatusCode, body: &str, attempts: u32) -> EngineError {
        let mut message = provider_message(body);
        message.push_str(&after(attempts));
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            match &self.key_source {
                Some(source) => message.push_str(&format!("; check the API key (from {source})")),
                None => message.push_str("; no API key was sent"),
            }
        }
        EngineError::Provider {
            model: self.model.clone(),
            backend: self.backend.clone(),
            status: status.as_u16(),
            message,
        }
    }

    fn timed_out(&self, attempts: u32) -> EngineError {
        self.failed(format!(
            "no complete reply within {} s (`timeout_s`){}",
            self.policy.timeout.as_secs_f64(),
            after(attempts)
        ))
    }

    fn failed(&self, message: String) -> EngineError {
        EngineError::Http {
            model: self.model.clone(),
            message,
        }
    }

    /// A URL for messages: never with a query (some APIs take keys there).
    fn shown(&self, url: &Url) -> String {
        let mut url = url.clone();
        url.set_query(None);
        url.to_string()
    }
}

impl HttpEngine {
    /// Facts about the model for the adapter (a remote model has no template or tokens here).
    pub fn info(&self) -> &EngineInfo {
        &self.info
    }
}

/// The runtime every HTTP engine's I/O runs on (its callers block on it, from
/// their own threads).
fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("lmhost-http")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the HTTP runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn parse_base(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("must be http or https, not `{}`", url.scheme()));
    }
    if url.host_str().is_none() || url.query().is_some() || url.fragment().is_some() {
        return Err("must be scheme://host[:port][/path], without query or fragment".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; put the key in key.json or the environment".into());
    }
    Ok(url)
}

/// The base URL joined with an adapter's path, or why not: the result always
/// keeps the base's scheme, host, port and path prefix.
///
/// ```
/// use lmhost::engines::http::join;
/// let base = lmhost::engines::http::Url::parse("https://api.example.com/v1").unwrap();
/// assert_eq!(join(&base, "/chat/completions").unwrap().as_str(), "https://api.example.com/v1/chat/completions");
/// assert!(join(&base, "https://elsewhere.example/v1/chat").is_err());
/// ```
pub fn join(base: &Url, path: &str) -> Result<Url, String> {
    let refuse = |why: &str| Err(format!("path {path:?}: {why}"));
    if !path.starts_with('/') || path.starts_with("//") {
        return refuse("must start with a single `/`, relative to the base URL (absolute URLs are refused)");
    }
    if path
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\' || c == '#')
    {
        return refuse("holds whitespace, control characters, `\\` or `#`");
    }
    let route = path.split('?').next().unwrap_or_default();
    if route.split('/').any(|segment| {
        let s = segment.to_ascii_lowercase();
        matches!(s.as_str(), "." | ".." | "%2e" | ".%2e" | "%2e." | "%2e%2e")
    }) {
        return refuse("dot segments are refused");
    }
    let joined = format!("{}{}", base.as_str().trim_end_matches('/'), path);
    let url = Url::parse(&joined).map_err(|e| format!("path {path:?}: not a valid URL path: {e}"))?;
    let base_path = base.path().trim_end_matches('/');
    let same_origin = url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default();
    if !same_origin || !url.path().starts_with(base_path) || !url.username().is_empty() {
        return refuse("leaves the base URL");
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT || status.is_server_error()
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds >= 0.0 && seconds.is_finite()).then(|| Duration::from_secs_f64(seconds.min(1e6)));
    }
    let when = httpdate::parse_http_date(text).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// The message of a provider's error body, in the shapes APIs use
/// (`{"error": {"message"}}`, `{"error": "…"}`, `{"message"}`, `{"detail"}`),
/// else the body itself.
pub(crate) fn provider_message(body: &str) -> String {
    let trimmed = body.trim();
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(trimmed) {
        let error = value.get("error");
        let found = error
            .and_then(|e| e.get("message"))
            .or_else(|| error.filter(|e| e.is_string()))
            .or_else(|| value.get("message"))
            .or_else(|| value.get("detail"));
        if let Some(found) = found {
            return match found.as_str() {
                Some(s) => s.to_string(),
                None => found.to_string(),
            };
        }
    }
    if trimmed.is_empty() {
        return "(empty body)".into();
    }
    const SHOWN: usize = 2000;
    match trimmed.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}… ({} bytes in all)", &trimmed[..cut], trimmed.len()),
        None => trimmed.to_string(),
    }
}

fn after(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

/// An error with its causes, for messages.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let shown = cause.to_string();
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_paths_stay_under_the_base_url() {
        let base = Url::parse("https://api.example.com/v1").unwrap();
        let ok = join(&base, "/chat/completions").unwrap();
        assert_eq!(ok.as_str(), "https://api.example.com/v1/chat/completions");
        let q = join(&base, "/models/m:streamGenerateContent?alt=sse").unwrap();
        assert_eq!(
            q.as_str(),
            "https://api.example.com/v1/models/m:streamGenerateContent?alt=sse"
        );
        for bad in [
            "https://evil.example/x",
            "//evil.example/x",
            "chat",
            "/../admin",
            "/%2e%2e/admin",
            "/a/./b",
            "/x\\y",
            "/x y",
            "/x#frag",
            "/\r\nHost: evil",
        ] {
            assert!(join(&base, bad).is_err(), "{bad} was accepted");
        }
        // `@` in a path is a path character, not userinfo.
        assert_eq!(
            join(&base, "/@evil.example").unwrap().host_str(),
            Some("api.example.com")
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(d > Duration::from_secs(25) && d <= Duration::from_secs(30), "{d:?}");
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn provider_messages_come_out_of_the_usual_error_shapes() {
        assert_eq!(
            provider_message(r#"{"error": {"message": "bad key", "type": "auth"}}"#),
            "bad key"
        );
        assert_eq!(
            provider_message(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#),
            "Overloaded"
        );
        assert_eq!(provider_message(r#"{"message": "invalid model"}"#), "invalid model");
        assert_eq!(provider_message("  upstream down \n"), "upstream down");
        assert_eq!(provider_message(""), "(empty body)");
        let long = "x".repeat(5000);
        assert!(provider_message(&long).ends_with("(5000 bytes in all)"));
    }

    #[test]
    fn backoff_doubles_up_to_the_most_wait() {
        let p = HttpPolicy {
            backoff: Duration::from_millis(100),
            max_wait: Duration::from_millis(350),
            ..HttpPolicy::default()
        };
        let waits: Vec<u128> = (1..=4).map(|n| p.backoff_for(n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 350, 350]);
    }
}
