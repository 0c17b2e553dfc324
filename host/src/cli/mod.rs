//! The `lmhost` command line. Each subcommand is a thin layer over the library.
//!
//! This file owns the clap definitions and the dispatch of each subcommand to
//! its file: `adapter.rs` (`adapter new/build/check/info`), `registry.rs`
//! (`registry check`, `register model`), `list.rs` (`list`, `models`), `run.rs`
//! (`run`), `chat.rs` (`chat`), `serve.rs` (`serve`) and `bench.rs` (the
//! `bench` table).
//!
//! The top layer: it may import anything of the library and the tools; the
//! library must not import it (feature `cli`).

mod adapter;
mod bench;
mod chat;
mod list;
mod registry;
mod run;
mod serve;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use self::adapter::adapter_command;
use self::bench::print_bench;
use self::chat::chat;
use self::list::{backends, devices, keys, models};
use self::registry::{register, registry_check};
use self::run::run_prompt;
use self::serve::serve;
use crate::{GenerationParams, Host, HostConfig};

/// Run language models behind one registry and one API.
#[derive(Debug, Parser)]
#[command(name = "lmhost", version, about)]
pub struct Cli {
    /// Registry file consulted before the default layers (repeatable).
    #[arg(long = "registry", global = true, value_name = "FILE")]
    registry: Vec<PathBuf>,

    /// Registry file consulted after the `--registry` ones, whose entries may also send your
    /// API keys to the `base_url` they name (repeatable). Without it, a key goes
    /// only to its backend's default origin, key.json's `base_url` or the
    /// section's `trusted_origins`.
    #[arg(long = "trusted-registry", global = true, value_name = "FILE")]
    trusted_registry: Vec<PathBuf>,

    /// More log output (-v info, -vv debug); `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the models of the layered registry, in lookup order (= `list models`).
    Models {
        /// Print JSON: one object per entry, with its source.
        #[arg(long)]
        json: bool,
    },
    /// List models, backends or credentials.
    List {
        /// What to list.
        #[arg(value_enum)]
        what: ListWhat,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Work with registry files.
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Add entries to a registry file.
    #[command(subcommand)]
    Register(RegisterCommand),
    /// Answer one prompt.
    Run(RunArgs),
    /// Write, build, check and measure adapters.
    #[command(subcommand)]
    Adapter(AdapterCommand),
    /// Measure a llamacpp model: lmhost vs a bare llama-cpp-2 loop, and N concurrent vs sequential.
    Bench {
        /// The model (name or JSON query).
        #[arg(short, long, default_value = "SmolLM2-135M-Instruct")]
        model: String,
        /// Tokens to generate per request.
        #[arg(short = 'l', long = "max-tokens", default_value_t = 128)]
        max_tokens: u32,
        /// Interleaved runs per side.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Requests in the concurrency comparison.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// CPU threads (default: all cores).
        #[arg(long)]
        threads: Option<u32>,
        /// Also run the candle engine on the same GGUF and report candle ÷ llama.cpp.
        #[arg(long)]
        candle: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Internal: run the bare llama-cpp-2 loop on this GGUF for a parent `lmhost bench`.
        #[arg(long, hide = true)]
        bare_worker: Option<std::path::PathBuf>,
    },
    /// Talk with a model: one turn per line, answers streamed, history kept.
    Chat(ChatArgs),
    /// Serve the registry's models over an OpenAI-compatible HTTP API.
    Serve(ServeArgs),
}

/// The model and generation options `run` and `chat` share.
#[derive(Debug, Clone, Args)]
struct GenArgs {
    /// Model: a registry name, or a JSON object to unify with the registry.
    #[arg(short, long, default_value = "SmolLM2-135M-Instruct")]
    model: String,
    /// System prompt (in `chat`, `/system TEXT` changes it).
    #[arg(long)]
    system: Option<String>,
    /// Temperature (0 = greedy).
    #[arg(short = 't', long)]
    temperature: Option<f32>,
    /// Most tokens to generate per answer.
    #[arg(short = 'l', long = "max-tokens")]
    max_tokens: Option<u32>,
    /// Sampling seed.
    #[arg(long)]
    seed: Option<u64>,
    /// CPU threads for local models, over the registry's `threads`.
    #[arg(long)]
    threads: Option<u32>,
}

impl GenArgs {
    fn params(&self) -> GenerationParams {
        GenerationParams {
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            seed: self.seed,
            ..GenerationParams::default()
        }
    }
}

#[derive(Debug, Clone, Args)]
struct ChatArgs {
    #[command(flatten)]
    gen: GenArgs,
}

#[derive(Debug, Clone, Args)]
struct ServeArgs {
    /// Models to load at start (repeatable); any registry model loads on first use.
    #[arg(short, long = "model")]
    model: Vec<String>,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to bind (0: a free one; the address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Generations running at once.
    #[arg(long, default_value_t = 4)]
    max_concurrency: usize,
    /// Requests waiting for a slot before new ones get 429.
    #[arg(long, default_value_t = 64)]
    max_queue: usize,
    /// Largest request body in bytes (larger gets 413).
    #[arg(long, default_value_t = 8 << 20)]
    max_body_bytes: usize,
    /// Require `Authorization: Bearer KEY` on every path but /health (401 otherwise).
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// CPU threads for every local model served, over the registry's `threads`.
    #[arg(long)]
    threads: Option<u32>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ListWhat {
    Models,
    Backends,
    Keys,
    Devices,
}

#[derive(Debug, Subcommand)]
enum RegistryCommand {
    /// Check registry files (default: every layer in use) and report every problem; exits 1 on errors.
    Check {
        /// Files to check.
        files: Vec<PathBuf>,
    },
    /// Print the JSON schema of registry files.
    Schema,
    /// Print the registry key reference in markdown (`docs/registry-keys.md`).
    Docs,
}

#[derive(Debug, Subcommand)]
enum RegisterCommand {
    /// Add (or replace, same name and backend) a model entry in the user registry.
    Model {
        /// The model's name.
        #[arg(short = 'n', long = "name")]
        name: String,
        /// `key=value` pairs, comma-separated or repeated; `backend` is required.
        #[arg(short = 'v', long = "values", required = true)]
        values: Vec<String>,
        /// Write `./model_registry.json` instead of `$LMHOST_HOME/model_registry.json`.
        #[arg(long)]
        cwd: bool,
    },
}

#[derive(Debug, Subcommand)]
enum AdapterCommand {
    /// Scaffold a buildable adapter project in `<dir>/<name>/`.
    New {
        /// Language: rust, python or js.
        #[arg(long, default_value = "rust")]
        lang: crate::tools::scaffold::Lang,
        /// The adapter's name (also its folder's).
        name: String,
        /// Where to create the project folder.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Build an adapter project with its toolchain (cargo, componentize-py, componentize-js).
    Build {
        /// The project folder.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Run the conformance suite on an adapter (a .wasm or a name); exit 1 on any failure.
    Check {
        /// The adapter: a built-in name, a name in the adapter folders, or a .wasm file.
        adapter: String,
        /// Take model-info from this registry model (loads it) instead of a fixed one (the mock model, or a
        /// remote one for an adapter that shapes HTTP requests).
        #[arg(short, long)]
        model: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Describe adapters: size, sha256, imports/exports, limits, compile and per-request cost.
    Info {
        /// Adapters: built-in names, names in the adapter folders, or .wasm files.
        #[arg(required = true)]
        adapters: Vec<String>,
        /// Requests to measure.
        #[arg(short = 'n', long, default_value_t = 2000)]
        iterations: usize,
        /// Skip the cold (uncached) compile.
        #[arg(long)]
        no_cold: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    gen: GenArgs,
    /// Stop string (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Print the whole Generation (prompt, response, response_text, usage, timings) as JSON.
    #[arg(long)]
    json: bool,
    /// A JSON schema file: the answer is JSON valid against it, enforced while
    /// decoding (llamacpp entries).
    #[arg(long, value_name = "FILE")]
    json_schema: Option<std::path::PathBuf>,
    /// The prompt; `-` or nothing reads standard input.
    prompt: Option<String>,
}

/// Parse the command line and run it; the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    // A panic is a bug, perhaps on untrusted input: end with an error line and
    // exit status 1 like any other failure (the panic hook has printed where).
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(cli))) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("error: {e:#}");
            1
        }
        Err(payload) => {
            eprintln!(
                "error: internal error (a bug): {}",
                crate::error::panic_message(payload)
            );
            1
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only on a terminal: a log piped to a file or a collector stays plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn host(cli: &Cli) -> Result<Host> {
    host_with_threads(cli, None)
}

/// The host, with `--threads` over every local entry's `threads`.
fn host_with_threads(cli: &Cli, threads: Option<u32>) -> Result<Host> {
    let mut config = HostConfig::from_env();
    config.registry_files = cli.registry.iter().chain(&cli.trusted_registry).cloned().collect();
    config.trusted_registries.extend(cli.trusted_registry.iter().cloned());
    config.threads = threads;
    Ok(Host::with_config(config)?)
}

fn run(cli: Cli) -> Result<()> {
    // Commands that need no host (no registry load, no wasm engine) run without one.
    match &cli.command {
        Command::Registry(RegistryCommand::Check { files }) => registry_check(&cli, files),
        Command::Registry(RegistryCommand::Schema) => {
            println!("{}", serde_json::to_string_pretty(&crate::registry::registry_schema())?);
            Ok(())
        }
        Command::Registry(RegistryCommand::Docs) => {
            print!("{}", crate::registry::registry_keys_markdown());
            Ok(())
        }
        Command::Register(RegisterCommand::Model { name, values, cwd }) => register(name, values, *cwd),
        Command::List { what, json } => match what {
            ListWhat::Models => models(&host(&cli)?, *json),
            ListWhat::Backends => backends(*json),
            ListWhat::Keys => keys(*json),
            ListWhat::Devices => devices(*json),
        },
        Command::Models { json } => models(&host(&cli)?, *json),
        Command::Run(args) => run_prompt(&host_with_threads(&cli, args.gen.threads)?, args),
        Command::Adapter(command) => adapter_command(&cli, command),
        Command::Bench {
            model,
            max_tokens,
            runs,
            concurrency,
            threads,
            candle,
            json,
            bare_worker,
        } => {
            if let Some(path) = bare_worker {
                return crate::tools::bench::bare_worker(path, threads.unwrap_or(1), *max_tokens)
                    .map_err(anyhow::Error::msg);
            }
            let threads = threads.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get() as u32)
                    .unwrap_or(2)
            });
            let config = crate::tools::bench::BenchConfig {
                model: model.clone(),
                max_tokens: *max_tokens,
                runs: *runs,
                concurrency: *concurrency,
                threads,
                candle: *candle,
            };
            let report = crate::tools::bench::run_bench(&host(&cli)?, &config)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_bench(&report);
            }
            Ok(())
        }
        Command::Chat(args) => chat(&host_with_threads(&cli, args.gen.threads)?, args.clone()),
        Command::Serve(args) => serve(host_with_threads(&cli, args.threads)?, args.clone()),
    }
}
