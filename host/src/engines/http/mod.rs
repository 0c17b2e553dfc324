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
//! - The key goes in the header the backend uses ([`Auth`]), marked sensitive,
//!   and only to an origin the user bound it to (`origin.rs`): a registry entry
//!   naming another host gets no key.
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
//!
//! Files: `url.rs` (base URL checks, [`join`], headers an adapter may not set),
//! `origin.rs` (where a key may go), `policy.rs` ([`HttpPolicy`], backoff, `Retry-After`), `send.rs` (the attempts
//! and reading the reply) and `errors.rs` (provider and transfer errors).

mod errors;
mod origin;
mod policy;
mod send;
mod url;

use std::sync::OnceLock;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::Method;

/// URLs as the HTTP engine parses them.
pub use reqwest::Url;

use self::errors::{chain, quoted};
use self::origin::{withheld_message, BaseFrom};
pub use self::policy::HttpPolicy;
pub(crate) use self::url::is_reserved_header;
pub use self::url::join;
use self::url::{is_loopback, parse_base};
use super::{EngineError, EngineInfo, TextSink};
use crate::backends::find_backend;
use crate::credentials::Credential;
use crate::registry::{ModelSpec, RemoteSettings};

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
    /// Why a configured key is not sent (its origin is not one the user bound it to).
    withheld: Option<String>,
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
            Some(url) => (url, BaseFrom::Entry),
            None => match (&credential.base_url, backend.default_base_url) {
                (Some(url), _) => (url.clone(), BaseFrom::KeyFile),
                (None, Some(url)) => (url.to_string(), BaseFrom::Default),
                (None, None) => {
                    return Err(invalid(format!(
                    "backend `{}` has no default URL: set `base_url` in the entry, or in the `{}` section of key.json",
                    backend.name,
                    backend.key_section().unwrap_or(backend.name)
                )))
                }
            },
        };
        let base = parse_base(&base).map_err(|e| {
            let from = match from {
                BaseFrom::Entry => "`base_url` of the entry",
                BaseFrom::KeyFile => "`base_url` in key.json",
                BaseFrom::Default => "the backend's default base URL",
            };
            invalid(format!("{from} {} {e}", quoted(&base)))
        })?;
        let policy = HttpPolicy::from_spec(spec)?;

        let withheld = withheld_message(spec, backend, credential, &base, from);
        let (api_key, organization) = match &withheld {
            None => (&credential.api_key, &credential.organization),
            Some(why) if backend.key_required => {
                return Err(EngineError::KeyWithheld {
                    model,
                    message: why.clone(),
                })
            }
            Some(why) => {
                // The key is optional here (a local server): go on without it.
                tracing::warn!(model = model.as_str(), "sending without a key: {why}");
                (&None, &None)
            }
        };
        let mut auth = HeaderMap::new();
        match (api_key, backend.auth.header()) {
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
        if let (Some(org), Some(header)) = (organization, backend.organization_header) {
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
            withheld,
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
            _ => return Err(refuse(format!("method {} (only POST and GET)", quoted(input.method)))),
        };
        let url = join(&self.base, input.path).map_err(refuse)?;
        // The adapter layer bounds what an adapter returns; this bound keeps the
        // engine itself from building a map the HTTP stack would refuse (or
        // panic on) whoever calls it.
        if input.headers.len() > MAX_HEADERS {
            return Err(refuse(format!(
                "{} headers, more than the {MAX_HEADERS} the host sends",
                input.headers.len()
            )));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in input.headers {
            let lower = name.to_ascii_lowercase();
            if is_reserved_header(&lower) || Some(lower.as_str()) == self.auth_header {
                return Err(refuse(format!(
                    "header {}: credentials, routing and connection headers are set by the host",
                    header_shown(name)
                )));
            }
            let name = HeaderName::from_bytes(lower.as_bytes())
                .map_err(|_| refuse(format!("header name {} is not a valid HTTP header name", quoted(name))))?;
            let value = HeaderValue::from_str(value).map_err(|_| {
                refuse(format!(
                    "the value of header {} is not a valid HTTP header value",
                    quoted(name.as_str())
                ))
            })?;
            headers
                .try_append(name, value)
                .map_err(|_| refuse("too many headers for one request".into()))?;
        }
        if !headers.contains_key(CONTENT_TYPE) && !input.body.is_empty() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        headers.extend(self.auth.clone());
        Ok((method, url, headers))
    }
}

/// A header name for a message: in backticks when short and printable, else
/// quoted and truncated.
fn header_shown(name: &str) -> String {
    if name.len() <= 200 && name.bytes().all(|b| b.is_ascii_graphic()) {
        format!("`{name}`")
    } else {
        quoted(name)
    }
}

/// Most headers an adapter's request may carry (the backends' adapters send
/// two or three).
const MAX_HEADERS: usize = 256;

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
