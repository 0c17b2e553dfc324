//! The server's counters and gauges, and their Prometheus text exposition
//! (`GET /metrics`), written by hand.
//!
//! - `lmhost_requests_total{endpoint, status}`: finished requests;
//! - `lmhost_request_errors_total{endpoint, type}`: error responses by OpenAI error type;
//! - `lmhost_prompt_tokens_total{model}`, `lmhost_completion_tokens_total{model}`;
//! - `lmhost_request_duration_seconds{endpoint}`: histogram, until the whole
//!   response is produced (for streams: until the last chunk);
//! - `lmhost_queue_depth`: requests waiting for a generation slot;
//! - `lmhost_requests_in_flight`: generations running.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram's buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: BTreeMap<(String, u16), u64>,
    errors: BTreeMap<(String, String), u64>,
    prompt_tokens: BTreeMap<String, u64>,
    completion_tokens: BTreeMap<String, u64>,
    latency: BTreeMap<String, Histogram>,
}

/// The server's metrics. Cheap to update from any thread.
///
/// ```
/// use std::time::Duration;
/// let m = lmhost::server::Metrics::default();
/// m.record_request("/v1/chat/completions", 200);
/// m.observe_latency("/v1/chat/completions", Duration::from_millis(30));
/// m.record_tokens("mock", 5, 2);
/// let text = m.render();
/// assert!(text.contains("lmhost_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"} 1\n"));
/// assert!(text.contains("lmhost_completion_tokens_total{model=\"mock\"} 2\n"));
/// assert!(text.contains("lmhost_request_duration_seconds_bucket{endpoint=\"/v1/chat/completions\",le=\"0.05\"} 1\n"));
/// ```
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
    queue_depth: AtomicI64,
    in_flight: AtomicI64,
}

impl Metrics {
    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count a finished request.
    ///
    /// ```
    /// let m = lmhost::server::Metrics::default();
    /// m.record_request("/health", 200);
    /// assert!(m.render().contains("endpoint=\"/health\",status=\"200\"} 1"));
    /// ```
    pub fn record_request(&self, endpoint: &str, status: u16) {
        *self.counters().requests.entry((endpoint.into(), status)).or_default() += 1;
    }

    /// Count an error response of OpenAI error type `kind`.
    ///
    /// ```
    /// let m = lmhost::server::Metrics::default();
    /// m.record_error("/v1/models", "server_error");
    /// assert!(m.render().contains("lmhost_request_errors_total{endpoint=\"/v1/models\",type=\"server_error\"} 1"));
    /// ```
    pub fn record_error(&self, endpoint: &str, kind: &str) {
        *self
            .counters()
            .errors
            .entry((endpoint.into(), kind.into()))
            .or_default() += 1;
    }

    /// Add a generation's token counts.
    ///
    /// ```
    /// let m = lmhost::server::Metrics::default();
    /// m.record_tokens("m", 3, 4);
    /// m.record_tokens("m", 1, 1);
    /// assert!(m.render().contains("lmhost_prompt_tokens_total{model=\"m\"} 4\n"));
    /// ```
    pub fn record_tokens(&self, model: &str, prompt: u32, completion: u32) {
        let mut c = self.counters();
        *c.prompt_tokens.entry(model.into()).or_default() += u64::from(prompt);
        *c.completion_tokens.entry(model.into()).or_default() += u64::from(completion);
    }

    /// Add a request's latency to the histogram.
    ///
    /// ```
    /// let m = lmhost::server::Metrics::default();
    /// m.observe_latency("/health", std::time::Duration::from_secs(100));
    /// assert!(m.render().contains("lmhost_request_duration_seconds_bucket{endpoint=\"/health\",le=\"30\"} 0\n"));
    /// assert!(m.render().contains("lmhost_request_duration_seconds_bucket{endpoint=\"/health\",le=\"+Inf\"} 1\n"));
    /// ```
    pub fn observe_latency(&self, endpoint: &str, latency: Duration) {
        let seconds = latency.as_secs_f64();
        let mut c = self.counters();
        let h = c.latency.entry(endpoint.into()).or_default();
        for (bound, count) in LATENCY_BUCKETS.iter().zip(h.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// Move the queue-depth gauge by `delta`.
    ///
    /// ```
    /// let m = lmhost::server::Metrics::default();
    /// m.add_queue_depth(2);
    /// m.add_queue_depth(-1);
    /// assert!(m.render().contains("lmhost_queue_depth 1\n"));
    /// ```
    pub fn add_queue_depth(&self, delta: i64) {
        self.queue_depth.fetch_add(delta, Ordering::Relaxed);
    }

    /// Move the in-flight gauge by `delta`.
    ///
    /// ```
    /// let m = lmhost::server::Metrics::default();
    /// m.add_in_flight(1);
    /// assert!(m.render().contains("lmhost_requests_in_flight 1\n"));
    /// ```
    pub fn add_in_flight(&self, delta: i64) {
        self.in_flight.fetch_add(delta, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4).
    ///
    /// ```
    /// let text = lmhost::server::Metrics::default().render();
    /// assert!(text.contains("# TYPE lmhost_requests_total counter\n"));
    /// ```
    pub fn render(&self) -> String {
        let c = self.counters();
        let mut out = String::new();
        let mut lines = Vec::new();
        let name = family(&mut out, "lmhost_requests_total", "counter", "Finished HTTP requests.");
        for ((endpoint, status), n) in &c.requests {
            lines.push(format!(
                "{name}{{endpoint=\"{}\",status=\"{status}\"}} {n}",
                escape(endpoint)
            ));
        }
        flush(&mut out, &mut lines);
        let name = family(
            &mut out,
            "lmhost_request_errors_total",
            "counter",
            "Error responses, by OpenAI error type.",
        );
        for ((endpoint, kind), n) in &c.errors {
            lines.push(format!(
                "{name}{{endpoint=\"{}\",type=\"{}\"}} {n}",
                escape(endpoint),
                escape(kind)
            ));
        }
        flush(&mut out, &mut lines);
        for (name, help, map) in [
            (
                "lmhost_prompt_tokens_total",
                "Prompt tokens of finished generations.",
                &c.prompt_tokens,
            ),
            (
                "lmhost_completion_tokens_total",
                "Generated tokens of finished generations.",
                &c.completion_tokens,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (model, n) in map {
                let _ = writeln!(out, "{name}{{model=\"{}\"}} {n}", escape(model));
            }
        }
        let name = "lmhost_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Request latency until the whole response is produced.\n# TYPE {name} histogram"
        );
        for (endpoint, h) in &c.latency {
            let endpoint = escape(endpoint);
            for (bound, count) in LATENCY_BUCKETS.iter().zip(h.counts.iter()) {
                let _ = writeln!(out, "{name}_bucket{{endpoint=\"{endpoint}\",le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(out, "{name}_bucket{{endpoint=\"{endpoint}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{name}_sum{{endpoint=\"{endpoint}\"}} {}", h.sum);
            let _ = writeln!(out, "{name}_count{{endpoint=\"{endpoint}\"}} {}", h.count);
        }
        let _ = writeln!(
            out,
            "# HELP lmhost_queue_depth Requests waiting for a generation slot.\n# TYPE lmhost_queue_depth gauge\nlmhost_queue_depth {}",
            self.queue_depth.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP lmhost_requests_in_flight Generations running.\n# TYPE lmhost_requests_in_flight gauge\nlmhost_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) -> String {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    name.to_string()
}

fn flush(out: &mut String, lines: &mut Vec<String>) {
    for line in lines.drain(..) {
        out.push_str(&line);
        out.push('\n');
    }
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
