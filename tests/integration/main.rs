//! lmhost's integration tests: one binary, a module per area.

mod adapters;
mod candle;
mod conformance;
mod fuzz;
mod golden;
mod hub;
mod layers;
mod llama;
mod registry;
mod remote;
