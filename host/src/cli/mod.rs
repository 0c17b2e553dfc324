//! The `lmhost` command line. Each subcommand is a thin layer over the library.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::{GenerationParams, Host, HostConfig, Message};

/// Run language models behind one registry and one API.
#[derive(Debug, Parser)]
#[command(name = "lmhost", version, about)]
pub struct Cli {
    /// Registry file consulted before the default layers (repeatable).
    #[arg(long = "registry", global = true, value_name = "FILE")]
    registry: Vec<PathBuf>,

    /// More log output (-v info, -vv debug); `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the models of the layered registry, in lookup order.
    Models {
        /// Print JSON: one object per entry, with its source.
        #[arg(long)]
        json: bool,
    },
    /// Answer one prompt.
    Run(RunArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Model: a registry name, or a JSON object to unify with the registry.
    #[arg(short, long, default_value = "SmolLM2-135M-Instruct")]
    model: String,
    /// System prompt.
    #[arg(long)]
    system: Option<String>,
    /// Temperature (0 = greedy).
    #[arg(short = 't', long)]
    temperature: Option<f32>,
    /// Most tokens to generate.
    #[arg(short = 'l', long = "max-tokens")]
    max_tokens: Option<u32>,
    /// Sampling seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Stop string (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Print the whole Generation (prompt, response, response_text, usage, timings) as JSON.
    #[arg(long)]
    json: bool,
    /// The prompt; `-` or nothing reads standard input.
    prompt: Option<String>,
}

/// Parse the command line and run it; the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
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
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn host(cli: &Cli) -> Result<Host> {
    let mut config = HostConfig::from_env();
    config.registry_files = cli.registry.clone();
    Ok(Host::with_config(config)?)
}

fn run(cli: Cli) -> Result<()> {
    let host = host(&cli)?;
    match cli.command {
        Command::Models { json } => models(&host, json),
        Command::Run(args) => run_prompt(&host, args),
    }
}

fn models(host: &Host, as_json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if as_json {
        let list: Vec<_> = host
            .registry()
            .entries()
            .iter()
            .map(|s| json!({"model_name": s.model_name(), "backend": s.backend(), "source": s.source().to_string()}))
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        return Ok(());
    }
    let width = host
        .registry()
        .entries()
        .iter()
        .map(|s| s.model_name().len())
        .max()
        .unwrap_or(10)
        .max(10);
    writeln!(out, "{:width$}  {:20}  SOURCE", "MODEL", "BACKEND")?;
    for s in host.registry().entries() {
        writeln!(out, "{:width$}  {:20}  {}", s.model_name(), s.backend(), s.source())?;
    }
    Ok(())
}

fn run_prompt(host: &Host, args: RunArgs) -> Result<()> {
    let prompt = match args.prompt.as_deref() {
        Some(p) if p != "-" => p.to_string(),
        _ => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the prompt from standard input")?;
            s
        }
    };
    let mut messages = Vec::new();
    if let Some(system) = args.system {
        messages.push(Message::system(system));
    }
    messages.push(Message::user(prompt.trim_end_matches('\n')));
    let params = GenerationParams {
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        seed: args.seed,
        stop: args.stop,
        ..GenerationParams::default()
    };
    let model = host.load(args.model.as_str())?;
    if args.json {
        let generation = model.generate(&messages, &params)?;
        println!("{}", serde_json::to_string_pretty(&generation)?);
        return Ok(());
    }
    let mut stdout = std::io::stdout();
    let generation = model.generate_stream(&messages, &params, |piece| {
        let _ = stdout.write_all(piece.as_bytes());
        let _ = stdout.flush();
    })?;
    println!();
    tracing::info!(
        tokens = generation.usage.completion_tokens,
        tokens_per_second = format!("{:.1}", generation.tokens_per_second()),
        finish_reason = generation.finish_reason,
        "done"
    );
    Ok(())
}
