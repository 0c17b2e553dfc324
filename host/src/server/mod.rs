//! The OpenAI-compatible HTTP server behind `lmhost serve`.
//!
//! Endpoints: `POST /v1/chat/completions` and `POST /v1/completions` (whole or
//! streamed as server-sent events), `GET /v1/models` (the registry's servable
//! entries), `GET /health` and `GET /metrics` (Prometheus text).
//!
//! - `model` is a registry name (JSON queries and the `human` backend are not
//!   served: a network client must not define ad-hoc models or read the
//!   server's terminal). Models load on first use and stay loaded.
//! - `/v1/completions` runs its `prompt` as one user message through the
//!   model's adapter (chat template included), not as raw text.
//! - At most [`ServerConfig::max_concurrency`] generations run at once and
//!   [`ServerConfig::max_queue`] more wait; beyond that a request gets 429 with
//!   `Retry-After: 1`. Bodies over [`ServerConfig::max_body_bytes`] get 413.
//! - Errors have OpenAI's shape (see [`ApiError`]); bad input is always a 4xx.
//! - Shutdown (SIGINT/SIGTERM in `lmhost serve`, any future in the library)
//!   stops accepting connections and lets running requests finish.
//!
//! Files: `routes` (the router and handlers), `openai` (request and response
//! bodies), `error` ([`ApiError`]), `metrics` ([`Metrics`]), `admission`
//! (generation slots and the waiting line).
//!
//! Imports the library API (host, model, registry queries, errors); must not
//! import the tools or the command line (feature `server`).

mod admission;
mod error;
mod metrics;
mod openai;
mod routes;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub use error::ApiError;
pub use metrics::{Metrics, LATENCY_BUCKETS};

use crate::error::{Error, Result};
use crate::registry::Query;
use crate::{Host, Model};

/// How to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Address to bind (default `127.0.0.1`).
    pub host: String,
    /// Port to bind (default 8080; 0 picks a free one, see [`Server::local_addr`]).
    pub port: u16,
    /// Generations running at once (default 4).
    pub max_concurrency: usize,
    /// Requests waiting for a generation slot before new ones get 429 (default 64).
    pub max_queue: usize,
    /// Largest accepted request body in bytes (default 8 MiB).
    pub max_body_bytes: usize,
    /// Models to load before accepting requests (the rest load on first use).
    pub preload: Vec<String>,
    /// Clients must send `Authorization: Bearer <api_key>` (compared in constant
    /// time; anything else is a 401 in OpenAI's shape). `/health` stays open.
    /// `None` (the default): no key.
    pub api_key: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            max_concurrency: 4,
            max_queue: 64,
            max_body_bytes: 8 << 20,
            preload: Vec::new(),
            api_key: None,
        }
    }
}

impl ServerConfig {
    /// The defaults, on a free loopback port (for tests and examples).
    ///
    /// ```
    /// let config = lmhost::server::ServerConfig::ephemeral();
    /// assert_eq!((config.host.as_str(), config.port), ("127.0.0.1", 0));
    /// ```
    pub fn ephemeral() -> Self {
        Self {
            port: 0,
            ..Self::default()
        }
    }
}

/// What every handler shares.
pub(crate) struct AppState {
    host: Arc<Host>,
    config: ServerConfig,
    metrics: Arc<Metrics>,
    admission: admission::Admission,
    models: Mutex<HashMap<String, Arc<Model>>>,
    loading: tokio::sync::Mutex<()>,
    started: u64,
}

impl AppState {
    /// The loaded model called `name`, loading it on first use.
    async fn model(&self, name: &str) -> Result<Arc<Model>> {
        if let Some(model) = self.cached(name) {
            return Ok(model);
        }
        let _one_load_at_a_time = self.loading.lock().await;
        if let Some(model) = self.cached(name) {
            return Ok(model);
        }
        let host = Arc::clone(&self.host);
        let query = name.to_string();
        // A panic while loading (a bug, perhaps on untrusted input) fails this
        // request with a 500 naming the model; the server keeps serving.
        let model = tokio::task::spawn_blocking(move || load_servable(&host, query))
            .await
            .map_err(|e| {
                Error::Engine(crate::engines::EngineError::Inference {
                    model: name.into(),
                    message: format!("loading the model failed: {}", join_failure(e)),
                })
            })??;
        let model = Arc::new(model);
        self.models
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), Arc::clone(&model));
        tracing::info!(model = name, "loaded");
        Ok(model)
    }

    fn cached(&self, name: &str) -> Option<Arc<Model>> {
        self.models.lock().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }
}

/// A failed blocking task in words: its panic message (truncated: it may quote
/// untrusted input), or that it was cancelled.
pub(crate) fn join_failure(error: tokio::task::JoinError) -> String {
    if !error.is_panic() {
        return "the task was cancelled".into();
    }
    crate::error::panic_message(error.into_panic())
}

fn load_servable(host: &Host, name: String) -> Result<Model> {
    if name.trim_start().starts_with('{') {
        return Err(Error::InvalidRequest {
            model: name,
            message: "`model` must be a registry name; the server does not take JSON queries".into(),
        });
    }
    let spec = host.resolve(Query::Name(name))?;
    if crate::backends::find_backend(spec.backend()).is_some_and(|b| !b.servable) {
        return Err(Error::InvalidRequest {
            model: spec.model_name().into(),
            message: format!(
                "the `{}` backend reads the server's own terminal and is not served over HTTP",
                spec.backend()
            ),
        });
    }
    host.load_spec(spec)
}

/// A bound server, not yet serving: learn its address, then [`run`](Server::run) it.
///
/// ```
/// # #[tokio::main] async fn main() -> lmhost::Result<()> {
/// use std::sync::Arc;
/// use lmhost::server::{Server, ServerConfig};
/// let host = Arc::new(lmhost::Host::new()?);
/// let server = Server::bind(host, ServerConfig { preload: vec!["mock".into()], ..ServerConfig::ephemeral() }).await?;
/// let addr = server.local_addr();
/// assert!(addr.port() > 0);
/// // Serve until the future resolves (here: at once), finishing running requests.
/// server.run(async {}).await?;
/// # Ok(()) }
/// ```
pub struct Server {
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.listener.local_addr().ok())
            .field("config", &self.state.config)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Bind `config.host:config.port` and load `config.preload`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> lmhost::Result<()> {
    /// let host = std::sync::Arc::new(lmhost::Host::new()?);
    /// let config = lmhost::server::ServerConfig { preload: vec!["no-such-model".into()], ..lmhost::server::ServerConfig::ephemeral() };
    /// assert!(lmhost::server::Server::bind(host, config).await.is_err());
    /// # Ok(()) }
    /// ```
    pub async fn bind(host: Arc<Host>, config: ServerConfig) -> Result<Server> {
        let address = format!("{}:{}", config.host, config.port);
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .map_err(|source| Error::Io {
                context: format!("cannot listen on {address}"),
                source,
            })?;
        let metrics = Arc::new(Metrics::default());
        let state = Arc::new(AppState {
            admission: admission::Admission::new(config.max_concurrency, config.max_queue, Arc::clone(&metrics)),
            host,
            metrics,
            models: Mutex::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default(),
            config,
        });
        for name in &state.config.preload {
            state.model(name).await?;
        }
        Ok(Server { listener, state })
    }

    /// The bound address (with the real port when the config asked for port 0).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> lmhost::Result<()> {
    /// # let host = std::sync::Arc::new(lmhost::Host::new()?);
    /// let server = lmhost::server::Server::bind(host, lmhost::server::ServerConfig::ephemeral()).await?;
    /// assert!(server.local_addr().ip().is_loopback());
    /// # Ok(()) }
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound TCP listener has an address")
    }

    /// The server's metrics (also served at `GET /metrics`).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> lmhost::Result<()> {
    /// # let host = std::sync::Arc::new(lmhost::Host::new()?);
    /// let server = lmhost::server::Server::bind(host, lmhost::server::ServerConfig::ephemeral()).await?;
    /// assert!(server.metrics().render().contains("lmhost_queue_depth 0"));
    /// # Ok(()) }
    /// ```
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.state.metrics)
    }

    /// Serve until `shutdown` resolves, then stop accepting connections and
    /// return once the requests already running have finished.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> lmhost::Result<()> {
    /// # let host = std::sync::Arc::new(lmhost::Host::new()?);
    /// let server = lmhost::server::Server::bind(host, Default::default()).await?;
    /// server.run(lmhost::server::shutdown_signal()).await
    /// # }
    /// ```
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let addr = self.local_addr();
        let app = routes::router(Arc::clone(&self.state));
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|source| Error::Io {
                context: format!("serving on {addr}"),
                source,
            })
    }
}

/// Bind, then serve until `shutdown` resolves (see [`Server`] to learn the
/// address first, e.g. with port 0).
///
/// ```no_run
/// # #[tokio::main] async fn main() -> lmhost::Result<()> {
/// use std::sync::Arc;
/// use lmhost::server::{serve, shutdown_signal, ServerConfig};
/// let host = Arc::new(lmhost::Host::new()?);
/// serve(host, ServerConfig { port: 8080, ..ServerConfig::default() }, shutdown_signal()).await
/// # }
/// ```
pub async fn serve(
    host: Arc<Host>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    Server::bind(host, config).await?.run(shutdown).await
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
///
/// ```no_run
/// # #[tokio::main] async fn main() {
/// lmhost::server::shutdown_signal().await;
/// eprintln!("shutting down");
/// # }
/// ```
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}
