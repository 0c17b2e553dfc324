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
            match (&self.withheld, &self.key_source) {
                (Some(why), _) => message.push_str(&format!("; no API key was sent: {why}")),
                (None, Some(source)) => message.push_str(&format!("; check the API key (from {source})")),
                (None, None) => message.push_str("; no API key was sent"),
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

    /// A URL for messages: never with a query (some APIs take keys there), and
    /// truncated (its path is the adapter's).
    pub(super) fn shown(&self, url: &Url) -> String {
        let mut url = url.clone();
        url.set_query(None);
        clipped(url.as_str())
    }
}

/// How many characters of a value from an adapter or a registry entry a message
/// quotes: enough to recognise it, never its whole (a path can be 100 MiB).
const QUOTED_CHARS: usize = 200;

/// `text` for a message, quoted and escaped (`{:?}`): whole when short, else its
/// first [`QUOTED_CHARS`] characters and its length.
pub(crate) fn quoted(text: &str) -> String {
    match text.char_indices().nth(QUOTED_CHARS) {
        Some((cut, _)) => format!("{:?}… ({} bytes in all)", &text[..cut], text.len()),
        None => format!("{text:?}"),
    }
}

/// Like [`quoted`], without the quotes (for a URL that the host built).
fn clipped(text: &str) -> String {
    match text.char_indices().nth(QUOTED_CHARS) {
        Some((cut, _)) => format!("{}… ({} bytes in all)", &text[..cut], text.len()),
        None => text.to_string(),
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

    #[test]
    fn quoted_values_are_truncated() {
        assert_eq!(quoted("a\nb"), "\"a\\nb\"");
        let long = "é".repeat(1 << 20);
        let q = quoted(&long);
        assert!(
            q.len() < 600 && q.ends_with(&format!("({} bytes in all)", long.len())),
            "{q}"
        );
    }
}
