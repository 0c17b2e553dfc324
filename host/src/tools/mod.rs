//! Developer tooling on top of the library: the adapter conformance suite
//! (`lmhost adapter check`), adapter inspection and measurement (`lmhost adapter
//! info`), adapter scaffolds (`lmhost adapter new/build`) and the benchmark
//! (`lmhost bench`).
//!
//! Depends on the library; nothing in the library imports it.

#[cfg(feature = "llama")]
pub mod bench;
pub mod conformance;
pub mod inspect;
pub mod scaffold;
