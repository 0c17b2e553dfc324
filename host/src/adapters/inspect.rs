//! `lmhost adapter info`: what a component is and what it costs to run.
//!
//! This module owns the description of one adapter (size, SHA-256, imports and
//! exports from the component's type, the limits it runs under) and its cost
//! measurements: cold compile, load from the on-disk cache, and the per-request
//! overhead (a fresh instance plus `shape-request`, and a fresh instance each for
//! `shape-request` and `parse-response`, as one request through a model costs),
//! as p50/p99 over N iterations.

use std::time::{Duration, Instant};

use serde::Serialize;
use wasmtime::component::types::ComponentItem;

use super::conformance::{fixed_model_info, CONVERSATIONS};
use super::{wit, Adapter, AdapterError, AdapterRuntime};

/// The limits an adapter runs under.
#[derive(Debug, Clone, Serialize)]
pub struct LimitsInfo {
    /// Per-call deadline, milliseconds.
    pub deadline_ms: u128,
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
    /// A fresh instance and one `shape-request`.
    pub shape_request: Percentiles,
    /// One request's adapter work: a fresh instance + `shape-request`, and a fresh
    /// instance + `parse-response`.
    pub request: Percentiles,
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
/// short warm-up), with the conformance suite's fixed model and `roles` conversation.
pub fn overhead(adapter: &Adapter, iterations: usize) -> Result<Overhead, AdapterError> {
    let model = fixed_model_info();
    let messages: Vec<wit::Message> = CONVERSATIONS[0]
        .1
        .iter()
        .map(|(r, c)| wit::Message {
            role: r.to_string(),
            content: c.to_string(),
        })
        .collect();
    let params = wit::Params::from(&crate::GenerationParams::greedy(64));
    let raw = "  The answer is 4.<|im_end|>";
    let iterations = iterations.max(1);
    for _ in 0..iterations.min(20) {
        adapter.shape_request(&model, &messages, &params)?;
        adapter.parse_response(&model, raw)?;
    }
    let mut shape = Vec::with_capacity(iterations);
    let mut request = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        adapter.shape_request(&model, &messages, &params)?;
        let shaped = t.elapsed();
        adapter.parse_response(&model, raw)?;
        request.push(t.elapsed());
        shape.push(shaped);
    }
    Ok(Overhead {
        shape_request: Percentiles::of(shape),
        request: Percentiles::of(request),
    })
}

/// Everything `lmhost adapter info` shows. `cold` also compiles the component
/// from scratch (seconds for an interpreter-sized one).
pub fn info(
    runtime: &AdapterRuntime,
    reference: &str,
    limits: super::AdapterLimits,
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
            super::AdapterSource::Builtin(_) => "built in".into(),
            super::AdapterSource::File(p) => p.display().to_string(),
        },
        size_bytes: bytes.len(),
        sha256: adapter.sha256().into(),
        imports,
        exports,
        limits: LimitsInfo {
            deadline_ms: l.deadline.as_millis(),
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
