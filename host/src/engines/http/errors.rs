//! The HTTP engine's errors: a provider's error reply (its message out of the
//! usual JSON shapes), time-outs and failed transfers, with URLs shown without
//! their query.

use reqwest::StatusCode;

use super::{HttpEngine, Url};
use crate::engines::EngineError;

impl HttpEngine {
    pub(super) fn provider_error(&self, status: StatusCode, body: &str, attempts: u32) -> EngineError {
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

    pub(super) fn timed_out(&self, attempts: u32) -> EngineError {
        self.failed(format!(
            "no complete reply within {} s (`timeout_s`){}",
            self.policy.timeout.as_secs_f64(),
            after(attempts)
        ))
    }

    pub(super) fn failed(&self, message: String) -> EngineError {
        EngineError::Http {
            model: self.model.clone(),
            message,
        }
    }

    /// A URL for messages: never with a query (some APIs take keys there).
    pub(super) fn shown(&self, url: &Url) -> String {
        let mut url = url.clone();
        url.set_query(None);
        url.to_string()
    }
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

pub(super) fn after(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

/// An error with its causes, for messages.
pub(super) fn chain(error: &dyn std::error::Error) -> String {
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
}
