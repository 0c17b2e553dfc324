//! Timeouts and retries: [`HttpPolicy`] (the entry's keys on top of the
//! defaults), the backoff between attempts, which replies are retried and the
//! server's `Retry-After`.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

use crate::registry::{ModelSpec, RemoteSettings, SettingsError};

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

    pub(super) fn backoff_for(&self, retry: u32) -> Duration {
        self.backoff
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
            .min(self.max_wait)
    }
}

pub(super) fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT || status.is_server_error()
}

/// `Retry-After` as seconds or an HTTP date.
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds >= 0.0 && seconds.is_finite()).then(|| Duration::from_secs_f64(seconds.min(1e6)));
    }
    let when = httpdate::parse_http_date(text).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

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
