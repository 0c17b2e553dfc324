//! One call of [`HttpEngine::send`]: the attempts (retries, backoff,
//! `Retry-After`, the whole-call deadline) and reading the reply, whole or as
//! server-sent events handed on one by one.

use std::time::Instant;

use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::Method;

use super::errors::{after, chain};
use super::policy::{retry_after, retryable};
use super::{HttpEngine, HttpOutput, Url};
use crate::engines::sse::SseParser;
use crate::engines::{EngineError, TextSink};

/// Largest reply body read (an error body: 1 MiB).
const MAX_BODY: usize = 64 << 20;
const MAX_ERROR_BODY: usize = 1 << 20;

impl HttpEngine {
    pub(super) async fn send_async(
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
                            chain(&e.without_url())
                        )));
                    }
                    tracing::warn!(
                        model = self.model,
                        "request failed, retrying: {}",
                        chain(&e.without_url())
                    );
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
            Ok(Err(e)) => Err(self.failed(format!("reading the reply failed: {}", chain(&e.without_url())))),
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
}
