//! Developer tooling on top of the library: the adapter conformance suite
//! (`lmhost adapter check`), adapter inspection and measurement (`lmhost adapter
//! info`), adapter scaffolds (`lmhost adapter new/build`) and the benchmark
//! (`lmhost bench`).
//!
//! Depends on the library; must not be imported by it (only `cli` uses it).
//! Feature `cli`.

#[cfg(feature = "llama")]
pub mod bench;
pub mod conformance;
pub mod inspect;
pub mod scaffold;
