//! Errors as OpenAI sends them: `{"error": {"message", "type", "param", "code"}}`
//! with a fitting HTTP status, and the mapping from [`crate::Error`].
//!
//! Bad input is always a 4xx: malformed or mistyped JSON, unknown or unservable
//! models, empty messages, unsupported options, context overflow, adapter
//! refusals of the input. A 5xx means the server or its registry is at fault.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::adapters::AdapterError;
use crate::engines::EngineError;
use crate::registry::RegistryError;
use crate::Error;

/// An error response in OpenAI's shape.
///
/// ```
/// use lmhost::server::ApiError;
/// let e = ApiError::invalid_request("`n` must be 1", Some("n"));
/// assert_eq!(e.status.as_u16(), 400);
/// assert_eq!(e.body()["error"]["param"], "n");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Human-readable message.
    pub message: String,
    /// `invalid_request_error`, `not_found_error`, `rate_limit_error`, `server_error`, …
    pub kind: &'static str,
    /// The request field at fault, if any.
    pub param: Option<String>,
    /// A machine-readable code (`model_not_found`, `context_length_exceeded`, …).
    pub code: Option<&'static str>,
}

impl ApiError {
    /// A 400 `invalid_request_error`.
    ///
    /// ```
    /// let e = lmhost::server::ApiError::invalid_request("bad", None);
    /// assert_eq!(e.kind, "invalid_request_error");
    /// ```
    pub fn invalid_request(message: impl Into<String>, param: Option<&str>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.map(str::to_string),
            code: None,
        }
    }

    /// The same error with a `code`.
    ///
    /// ```
    /// let e = lmhost::server::ApiError::invalid_request("bad", None).with_code("invalid_json");
    /// assert_eq!(e.code, Some("invalid_json"));
    /// ```
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// A 500 `server_error`.
    ///
    /// ```
    /// assert_eq!(lmhost::server::ApiError::internal("oops").status.as_u16(), 500);
    /// ```
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            kind: "server_error",
            param: None,
            code: None,
        }
    }

    /// A 404 for a path the server does not have.
    ///
    /// ```
    /// assert_eq!(lmhost::server::ApiError::no_route("/v2/x").status.as_u16(), 404);
    /// ```
    pub fn no_route(path: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: format!("no such endpoint {}; lmhost serves /v1/chat/completions, /v1/completions, /v1/models, /health and /metrics", crate::adapters::ledger::quote(path)),
            kind: "invalid_request_error",
            param: None,
            code: Some("unknown_url"),
        }
    }

    /// The 429 answered when every generation slot and queue place is taken.
    ///
    /// ```
    /// assert_eq!(lmhost::server::ApiError::overloaded(4, 8).status.as_u16(), 429);
    /// ```
    pub fn overloaded(max_concurrency: usize, max_queue: usize) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!(
                "the server is at capacity ({max_concurrency} generations running, {max_queue} waiting); retry shortly"
            ),
            kind: "rate_limit_error",
            param: None,
            code: Some("server_overloaded"),
        }
    }

    /// The 401 for a request without the server's API key, as OpenAI answers it.
    ///
    /// ```
    /// let e = lmhost::server::ApiError::unauthorized();
    /// assert_eq!((e.status.as_u16(), e.code), (401, Some("invalid_api_key")));
    /// ```
    pub fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: "incorrect or missing API key: send the server's key as `Authorization: Bearer <key>`".into(),
            kind: "invalid_request_error",
            param: None,
            code: Some("invalid_api_key"),
        }
    }

    /// The 413 for a body over the limit.
    ///
    /// ```
    /// assert_eq!(lmhost::server::ApiError::too_large(1024).status.as_u16(), 413);
    /// ```
    pub fn too_large(limit: usize) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("the request body is larger than the server's limit of {limit} bytes"),
            kind: "invalid_request_error",
            param: None,
            code: Some("request_too_large"),
        }
    }

    /// The JSON body.
    ///
    /// ```
    /// let body = lmhost::server::ApiError::internal("oops").body();
    /// assert_eq!(body["error"]["message"], "oops");
    /// assert!(body["error"]["code"].is_null());
    /// ```
    pub fn body(&self) -> serde_json::Value {
        json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }

    /// The error from a failed call for `model` (the name the client asked for).
    ///
    /// ```
    /// use lmhost::engines::EngineError;
    /// let e = lmhost::server::ApiError::from_error(
    ///     EngineError::ContextOverflow { model: "m".into(), prompt_tokens: 10, max_tokens: 9000, context: 8192 }.into(),
    /// );
    /// assert_eq!((e.status.as_u16(), e.code), (400, Some("context_length_exceeded")));
    /// ```
    pub fn from_error(error: Error) -> Self {
        let message = error.to_string();
        let bad = |param: Option<&str>, code: Option<&'static str>| Self {
            code,
            ..Self::invalid_request(message.clone(), param)
        };
        match &error {
            Error::Registry(RegistryError::NoMatch { query, close }) => Self {
                status: StatusCode::NOT_FOUND,
                // The registry's hint about JSON queries does not apply here.
                message: if close.is_empty() {
                    format!("no registry entry matches {query}; GET /v1/models lists the served models")
                } else {
                    message
                },
                kind: "not_found_error",
                param: Some("model".into()),
                code: Some("model_not_found"),
            },
            Error::Registry(RegistryError::InvalidQuery { .. }) => bad(Some("model"), Some("invalid_model")),
            Error::Registry(_) => Self::internal(message),
            Error::Engine(EngineError::ContextOverflow { .. }) => {
                bad(Some("messages"), Some("context_length_exceeded"))
            }
            Error::Engine(EngineError::InvalidParams { .. }) => bad(None, Some("invalid_parameter")),
            Error::Engine(EngineError::ResponseFormat { .. }) => {
                bad(Some("response_format"), Some("invalid_parameter"))
            }
            Error::Engine(EngineError::UnsupportedBackend { .. }) => bad(Some("model"), Some("model_not_supported")),
            // A remote API's answer: rate limits pass through, a refused request
            // is the client's, the rest is the upstream's fault.
            Error::Engine(EngineError::Provider { status: 429, .. }) => Self {
                status: StatusCode::TOO_MANY_REQUESTS,
                kind: "rate_limit_error",
                ..Self::internal(message)
            },
            Error::Engine(EngineError::Provider {
                status: 400 | 413 | 422,
                ..
            }) => bad(None, Some("upstream_rejected")),
            Error::Engine(EngineError::Provider { .. } | EngineError::Http { .. }) => Self {
                status: StatusCode::BAD_GATEWAY,
                ..Self::internal(message)
            },
            Error::Engine(_) => Self::internal(message),
            Error::Adapter(AdapterError::Refused { kind, .. }) if *kind == "upstream" => Self {
                status: StatusCode::BAD_GATEWAY,
                ..Self::internal(message)
            },
            Error::Adapter(AdapterError::Refused { .. }) => bad(Some("messages"), Some("invalid_input")),
            Error::Adapter(_) => Self::internal(message),
            Error::InvalidRequest { .. } => bad(None, None),
            Error::Io { .. } => Self::internal(message),
        }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        Self::from_error(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), "{}", self.message);
        } else {
            tracing::debug!(status = self.status.as_u16(), "{}", self.message);
        }
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response.extensions_mut().insert(ErrorKind(self.kind));
        response
    }
}

/// The error type of a response, for the metrics middleware.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorKind(pub &'static str);
