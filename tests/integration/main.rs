//! lmhost's integration tests: one binary, a module per area.

mod adapters;
mod llama;
mod registry;
