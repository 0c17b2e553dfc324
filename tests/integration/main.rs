//! lmhost's integration tests: one binary, a module per area.

mod adapters;
mod conformance;
mod golden;
mod hub;
mod llama;
mod registry;
