//! lmhost's integration tests: one binary, a module per area.

mod adapters;
mod backend_modules;
mod candle;
mod cli;
mod conformance;
mod fuzz;
mod golden;
mod hostile;
mod hub;
mod key_origins;
mod layers;
mod llama;
mod openai_client;
mod outgoing;
mod registry;
mod remote;
mod server;
mod structured;
mod templates;
mod third_party;
mod tools;
mod untrusted;

/// The `lmhost` binary, built by cargo for these tests (see [`lmhost_tests::lmhost_command`]).
pub fn lmhost_command() -> std::process::Command {
    lmhost_tests::lmhost_command(env!("CARGO_BIN_EXE_lmhost-under-test"))
}
