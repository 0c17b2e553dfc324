//! `lmhost adapter info`: what a component is and what it costs to run.
//!
//! This module owns the description of one adapter (size, SHA-256, imports and
//! exports from the component's type, the limits it runs under) and its cost
//! measurements: cold compile, load from the on-disk cache, and the per-request
//! overhead (a fresh instance plus `shape-request`; and one request as a model
//! makes it: a fresh instance, `shape-request`, `parse-response`, the instance freed),
//! as p50/p99 over N iterations, on the model-info the conformance suite picks
//! for the adapter. An HTTP adapter's `parse-response` is measured on a sample
//! reply of its backend's API, and not at all when it refuses that sample.

use std::time::{Duration, Instant};

use serde::Serialize;
use wasmtime::component::types::ComponentItem;

use super::conformance::{model_for, CONVERSATIONS};
use crate::adapters::{wit, Adapter, AdapterError, AdapterRuntime};

/// The limits an adapter runs under.
#[derive(Debug, Clone, Serialize)]
pub struct LimitsInfo {
    /// Per-call deadline, milliseconds.
    pub deadline_ms: u128,
    /// Budget of all the calls of one request, milliseconds.
    pub request_budget_ms: u128,
    /// Memory cap, bytes.
    pub memory_bytes: usize,
    /// Output cap, bytes.
    pub output_bytes: usize,
    /// `render-template` fuel.
    pub template_fuel: u64,
    /// Largest rendered template, bytes.
    pub template_output_bytes: usize,
}

/// Percentiles of one measurement, microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    /// Iterations measured.
    pub iterations: usize,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Mean.
    pub mean_us: f64,
}

impl Percentiles {
    /// From samples (sorted here).
    pub fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        let n = samples.len().max(1);
        let at = |q: f64| {
            samples
                .get(((n as f64 * q).ceil() as usize).saturating_sub(1).min(n - 1))
                .map(|d| d.as_secs_f64() * 1e6)
                .unwrap_or(0.0)
        };
        let mean = samples.iter().map(|d| d.as_secs_f64() * 1e6).sum::<f64>() / n as f64;
        Self {
            iterations: samples.len(),
            p50_us: at(0.5),
            p99_us: at(0.99),
            mean_us: mean,
        }
    }
}

/// Per-request adapter overhead.
#[derive(Debug, Clone, Serialize)]
pub struct Overhead {
    /// The backend of the model-info measured with (`mock` for a prompt adapter).
    pub backend: String,
    /// A fresh instance and one `shape-request`.
    pub shape_request: Percentiles,
    /// One request's adapter work: a fresh instance, `shape-request`,
    /// `parse-response`, and freeing the instance. `None` when the adapter refused the sample
    /// reply, so `parse-response` was not measured.
    pub request: Option<Percentiles>,
    /// Why `request` was not measured.
    pub not_measured: Option<String>,
    /// The same request with a fresh instance for each call (shape, then parse),
    /// measured in the same run, interleaved: what one instance per request saves.
    pub request_instance_per_call: Option<Percentiles>,
}

/// A minimal successful reply of a remote backend's API, for timing `parse-response`.
fn sample_reply(backend: &str) -> Option<&'static str> {
    match backend {
        "openai" | "openai_compatible" | "openrouter" | "mistral" => Some(
            r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"The answer is 4."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5}}"#,
        ),
        "anthropic" => Some(
            r#"{"type":"message","role":"assistant","content":[{"type":"text","text":"The answer is 4."}],"stop_reason":"end_turn","usage":{"input_tokens":12,"output_tokens":5}}"#,
        ),
        "google" => Some(
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"The answer is 4."}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":5}}"#,
        ),
        "cohere" => Some(
            r#"{"message":{"role":"assistant","content":[{"type":"text","text":"The answer is 4."}]},"finish_reason":"COMPLETE","usage":{"tokens":{"input_tokens":12,"output_tokens":5}}}"#,
        ),
        _ => None,
    }
}

/// What `lmhost adapter info` reports.
#[derive(Debug, Clone, Serialize)]
pub struct AdapterInfo {
    /// The name or path it was given.
    pub adapter: String,
    /// `built in` or the file.
    pub source: String,
    /// Component size, bytes.
    pub size_bytes: usize,
    /// SHA-256 of the component.
    pub sha256: String,
    /// Imports, `name: kind`.
    pub imports: Vec<String>,
    /// Exports, `name: kind`.
    pub exports: Vec<String>,
    /// The limits of each call.
    pub limits: LimitsInfo,
    /// Compiling it with cranelift, without any cache, milliseconds (skipped: `None`).
    pub cold_compile_ms: Option<f64>,
    /// Loading it from the on-disk cache (deserialize + link), milliseconds.
    pub cached_load_ms: Option<f64>,
    /// Per-request overhead.
    pub overhead: Overhead,
}

fn kind(item: &ComponentItem) -> &'static str {
    match item {
        ComponentItem::ComponentFunc(_) => "func",
        ComponentItem::CoreFunc(_) => "core func",
        ComponentItem::Module(_) => "module",
        ComponentItem::Component(_) => "component",
        ComponentItem::ComponentInstance(_) => "instance",
        ComponentItem::Type(_) => "type",
        ComponentItem::Resource(_) => "resource",
    }
}

/// Imports and exports of a loaded adapter, `name: kind`.
pub fn imports_exports(adapter: &Adapter) -> (Vec<String>, Vec<String>) {
    let ty = adapter.component().component_type();
    let engine = adapter.engine();
    let imports = ty
        .imports(engine)
        .map(|(n, i)| format!("{n}: {}", kind(&i.ty)))
        .collect();
    let exports = ty
        .exports(engine)
        .map(|(n, i)| format!("{n}: {}", kind(&i.ty)))
        .collect();
    (imports, exports)
}

/// Measure the per-request overhead of `adapter` over `iterations` (after a
/// short warm-up), with the conformance suite's model ([`model_for`]) and
/// `roles` conversation.
pub fn overhead(adapter: &Adapter, iterations: usize) -> Result<Overhead, AdapterError> {
    let model = model_for(adapter);
    let messages: Vec<wit::Message> = CONVERSATIONS[0]
        .1
        .iter()
        .map(|(r, c)| wit::Message::new(*r, *c))
        .collect();
    let params = wit::Params::from(&crate::GenerationParams::greedy(64));
    let iterations = iterations.max(1);
    let shaped = adapter.shape_request(&model, &messages, &params)?;
    let raw = match &shaped {
        wit::Request::Prompt(_) => Some("  The answer is 4.<|im_end|>"),
        wit::Request::Http(_) => sample_reply(&model.backend),
    };
    let mut not_measured = None;
    let raw = match raw.map(|raw| (raw, adapter.parse_response(&model, &params, &shaped, raw))) {
        Some((raw, Ok(_))) => Some(raw),
        Some((_, Err(AdapterError::Refused { message, .. }))) => {
            not_measured = Some(format!(
                "the adapter refused a sample `{}` reply: {message}",
                model.backend
            ));
            None
        }
        Some((_, Err(e))) => return Err(e),
        None => {
            not_measured = Some(format!("no sample reply for backend `{}`", model.backend));
            None
        }
    };
    for _ in 0..iterations.min(20) {
        let mut session = adapter.session();
        session.shape_request(&model, &messages, &params)?;
        if let Some(raw) = raw {
            session.parse_response(&model, &params, &shaped, raw)?;
        }
    }
    let mut shape = Vec::with_capacity(iterations);
    let mut request = Vec::with_capacity(iterations);
    let mut per_call = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        if let Some(raw) = raw {
            let t = Instant::now();
            adapter.shape_request(&model, &messages, &params)?;
            adapter.parse_response(&model, &params, &shaped, raw)?;
            per_call.push(t.elapsed());
        }
        let t = Instant::now();
        let mut session = adapter.session();
        session.shape_request(&model, &messages, &params)?;
        shape.push(t.elapsed());
        if let Some(raw) = raw {
            session.parse_response(&model, &params, &shaped, raw)?;
            drop(session);
            request.push(t.elapsed());
        }
    }
    Ok(Overhead {
        backend: model.backend,
        shape_request: Percentiles::of(shape),
        request: raw.map(|_| Percentiles::of(request)),
        not_measured,
        request_instance_per_call: raw.map(|_| Percentiles::of(per_call)),
    })
}

/// Everything `lmhost adapter info` shows. `cold` also compiles the component
/// from scratch (seconds for an interpreter-sized one).
pub fn info(
    runtime: &AdapterRuntime,
    reference: &str,
    limits: crate::adapters::AdapterLimits,
    cold: bool,
    iterations: usize,
) -> Result<AdapterInfo, AdapterError> {
    let source = runtime.locate(reference, None)?;
    let bytes = source.bytes(reference)?;
    let cold_compile_ms = if cold {
        let t = Instant::now();
        runtime.precompile(reference, &bytes)?;
        Some(t.elapsed().as_secs_f64() * 1000.0)
    } else {
        None
    };
    let adapter = runtime.load_bytes(reference, &bytes, limits)?;
    let cached_load_ms = runtime
        .time_cached_load(reference, &bytes)?
        .map(|d| d.as_secs_f64() * 1000.0);
    let (imports, exports) = imports_exports(&adapter);
    let l = adapter.limits();
    Ok(AdapterInfo {
        adapter: reference.into(),
        source: match &source {
            crate::adapters::AdapterSource::Builtin(_) => "built in".into(),
            crate::adapters::AdapterSource::File(p) => p.display().to_string(),
        },
        size_bytes: bytes.len(),
        sha256: adapter.sha256().into(),
        imports,
        exports,
        limits: LimitsInfo {
            deadline_ms: l.deadline.as_millis(),
            request_budget_ms: l.request_budget.as_millis(),
            memory_bytes: l.memory_bytes,
            output_bytes: l.output_bytes,
            template_fuel: l.template.fuel,
            template_output_bytes: l.template.max_output_bytes,
        },
        cold_compile_ms,
        cached_load_ms,
        overhead: overhead(&adapter, iterations)?,
    })
}
