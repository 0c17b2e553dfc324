//! The fuzz targets of the parsers the host runs on untrusted text, as plain
//! functions: each takes arbitrary bytes, runs the parser, and panics (or
//! overflows its stack) only on a bug.
//!
//! - [`template`] runs `lmhost_template::check` (the host's registry validation)
//!   and `render` (the renderer guest's code), on a thread with a 1 MiB stack,
//!   half the host's worker threads, so a shape that slips past the shape bound
//!   and nests deep shows up as a crash long before it could hurt the host.
//! - [`sse`] runs the event-stream framing of remote replies; the events must not
//!   depend on where the bytes were cut.
//! - [`gguf`] runs the bounded walk over a GGUF header that runs before an engine
//!   parses a model file.
//!
//! Two drivers: `tests/replay.rs` runs every file of `fuzz/corpus/<target>/`
//! through them in `cargo test` (stable, CI), and `fuzz/libfuzzer/` runs them
//! coverage-guided (`make fuzz`, nightly). The SSE parser and the GGUF walk are
//! compiled here from the host's own source files: building the whole `lmhost` crate with coverage
//! instrumentation (wasmtime, cranelift, rustls) would cost far more than the
//! fuzzing itself.

use std::thread;

/// The host's SSE parser, from its own source (see the crate doc).
#[path = "../../host/src/engines/sse.rs"]
#[allow(dead_code)]
pub mod host_sse;

/// The host's GGUF header walk, from its own source (see the crate doc).
#[path = "../../host/src/engines/gguf.rs"]
#[allow(dead_code)]
pub mod host_gguf;

/// Stack of the thread a template is checked and rendered on.
pub const TEMPLATE_STACK_BYTES: usize = 1 << 20;

/// Input: a template, optionally followed by a NUL byte and a JSON context
/// for the render.
pub fn template(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (source, context) = text.split_once('\0').unwrap_or((text, "{}"));
    let (source, context) = (source.to_string(), context.to_string());
    thread::Builder::new()
        .stack_size(TEMPLATE_STACK_BYTES)
        .spawn(move || {
            if lmhost_template::check(&source).is_err() {
                return;
            }
            // Small budgets: the fuzzer looks for crashes, not for long renders
            // (those are the renderer sandbox's deadline and memory cap).
            let budget = lmhost_template::Budget {
                fuel: 20_000,
                max_template_bytes: 1 << 20,
                max_output_bytes: 1 << 16,
            };
            let _ = lmhost_template::render(&source, &context, &budget);
        })
        .expect("a thread starts")
        .join()
        .expect("checking or rendering a template panicked");
}

/// Input: an event stream, its first byte choosing where to cut it in two.
pub fn sse(data: &[u8]) {
    use host_sse::SseParser;
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let whole = {
        let mut p = SseParser::new();
        p.feed(stream).and_then(|mut events| {
            events.extend(p.finish()?);
            Ok(events)
        })
    };
    let cut = usize::from(cut).min(stream.len());
    let split = {
        let mut p = SseParser::new();
        p.feed(&stream[..cut]).and_then(|mut events| {
            events.extend(p.feed(&stream[cut..])?);
            events.extend(p.finish()?);
            Ok(events)
        })
    };
    assert_eq!(whole, split, "the events depend on where the stream was cut (at {cut})");
    if let Ok(events) = whole {
        let total: usize = events.iter().map(String::len).sum();
        assert!(total <= stream.len(), "more event data than input");
    }
}

/// Input: a GGUF file (or its first bytes).
pub fn gguf(data: &[u8]) {
    let _ = host_gguf::check_header(std::io::Cursor::new(data), data.len() as u64);
}

/// A fuzz target: arbitrary bytes in, a panic only on a bug.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus folder.
pub const TARGETS: &[(&str, Target)] = &[("template", template), ("sse", sse), ("gguf", gguf)];
