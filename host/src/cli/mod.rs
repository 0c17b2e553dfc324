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
        Command::Run(args) => run_prompt(&host(&cli)?, args),
        Command::Adapter(command) => adapter_command(&cli, command),
        Command::Bench {
            model,
            max_tokens,
            runs,
            concurrency,
            threads,
            candle,
            json,
        } => {
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
        Command::Chat(args) => chat(&host(&cli)?, args.clone()),
        Command::Serve(args) => serve(host(&cli)?, args.clone()),
    }
}

fn adapter_command(cli: &Cli, command: &AdapterCommand) -> Result<()> {
    use crate::tools::{conformance, inspect, scaffold};
    match command {
        AdapterCommand::New { lang, name, dir } => {
            let root = scaffold::new_project(*lang, name, dir)?;
            println!("created {}", root.display());
            println!(
                "next: lmhost adapter build {0} && lmhost adapter check {0}/{1}.wasm",
                root.display(),
                name
            );
            Ok(())
        }
        AdapterCommand::Build { dir } => {
            let wasm = scaffold::build(dir)?;
            println!("built {}", wasm.display());
            Ok(())
        }
        AdapterCommand::Check { adapter, model, json } => {
            let host = host(cli)?;
            let limits = host.config().adapter_limits;
            let loaded = host.adapters().load(adapter, None, limits)?;
            let info = match model {
                Some(m) => host.load(m.as_str())?.model_info().clone(),
                None => conformance::model_for(&loaded),
            };
            let report = conformance::run(&loaded, &info);
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
            let failures = report.failures().len();
            if failures > 0 {
                anyhow::bail!("adapter `{adapter}` failed {failures} conformance checks");
            }
            Ok(())
        }
        AdapterCommand::Info {
            adapters,
            iterations,
            no_cold,
            json,
        } => {
            let host = host(cli)?;
            let limits = host.config().adapter_limits;
            let mut infos = Vec::new();
            for adapter in adapters {
                let info = inspect::info(host.adapters(), adapter, limits, !*no_cold, *iterations)?;
                if !*json {
                    print_adapter_info(&info);
                }
                infos.push(info);
            }
            if *json {
                println!("{}", serde_json::to_string_pretty(&infos)?);
            }
            Ok(())
        }
    }
}

fn print_adapter_info(i: &crate::tools::inspect::AdapterInfo) {
    println!("adapter   {} ({})", i.adapter, i.source);
    println!(
        "size      {} bytes ({:.1} MiB)",
        i.size_bytes,
        i.size_bytes as f64 / 1048576.0
    );
    println!("sha256    {}", i.sha256);
    println!("imports   {}", i.imports.join(", "));
    println!("exports   {}", i.exports.join(", "));
    let l = &i.limits;
    println!(
        "limits    deadline {} ms, memory {} MiB, output {} MiB, template fuel {}, template output {} MiB",
        l.deadline_ms,
        l.memory_bytes >> 20,
        l.output_bytes >> 20,
        l.template_fuel,
        l.template_output_bytes >> 20
    );
    let ms = |v: Option<f64>| v.map(|v| format!("{v:.1} ms")).unwrap_or_else(|| "-".into());
    println!(
        "compile   cold {}, from the disk cache {}",
        ms(i.cold_compile_ms),
        ms(i.cached_load_ms)
    );
    let o = &i.overhead;
    println!(
        "per call  instance + shape-request: p50 {:.1} µs, p99 {:.1} µs",
        o.shape_request.p50_us, o.shape_request.p99_us
    );
    match (&o.request, &o.not_measured) {
        (Some(r), _) => {
            println!(
                "request   instance + shape-request + parse-response: p50 {:.1} µs, p99 {:.1} µs, mean {:.1} µs ({} iterations, backend {})",
                r.p50_us, r.p99_us, r.mean_us, r.iterations, o.backend
            );
            if let Some(c) = &o.request_instance_per_call {
                println!(
                    "          (an instance per call instead: p50 {:.1} µs, p99 {:.1} µs, same run)",
                    c.p50_us, c.p99_us
                );
            }
        }
        (None, why) => println!(
            "request   parse-response not measured: {}",
            why.as_deref().unwrap_or("no sample reply")
        ),
    }
    println!();
}

fn print_bench(r: &crate::tools::bench::BenchReport) {
    println!("model {} ({}), {} threads, {} runs", r.model, r.file, r.threads, r.runs);
    println!(
        "prompt {} tokens, generation {} tokens (greedy)",
        r.prompt_tokens, r.completion_tokens
    );
    println!("{:28} {:>12} {:>12}", "", "prompt t/s", "gen t/s");
    println!(
        "{:28} {:>12.1} {:>12.1}",
        "bare llama-cpp-2 loop", r.bare.prompt_tps, r.bare.generation_tps
    );
    println!(
        "{:28} {:>12.1} {:>12.1}",
        "lmhost (adapter + engine)", r.lmhost.prompt_tps, r.lmhost.generation_tps
    );
    println!(
        "{:28} {:>12.3} {:>12.3}",
        "lmhost / bare", r.prompt_ratio, r.generation_ratio
    );
    if let (Some(c), Some(gen), Some(prompt)) = (r.candle, r.candle_generation_ratio, r.candle_prompt_ratio) {
        println!(
            "{:28} {:>12.1} {:>12.1}",
            "candle engine (lmhost)", c.prompt_tps, c.generation_tps
        );
        println!("{:28} {:>12.3} {:>12.3}", "candle / llama.cpp", prompt, gen);
    }
    if let (Some(c), Some(gen)) = (r.candle_own_kernels, r.candle_own_kernels_generation_ratio) {
        println!(
            "{:28} {:>12.1} {:>12.1}",
            "  on candle's kernels", c.prompt_tps, c.generation_tps
        );
        println!(
            "{:28} {:>12.3} {:>12.3}",
            "  that / llama.cpp",
            c.prompt_tps / r.lmhost.prompt_tps,
            gen
        );
    }
    println!(
        "{} requests: sequential {:.1} t/s, concurrent {:.1} t/s, ratio {:.2}",
        r.concurrency, r.sequential_tps, r.concurrent_tps, r.concurrency_ratio
    );
}

fn registry_check(cli: &Cli, files: &[PathBuf]) -> Result<()> {
    use crate::registry::{check_registry_text, Severity, PACKAGED_REGISTRY};
    let mut sources: Vec<(String, String)> = Vec::new();
    let explicit: Vec<PathBuf> = if files.is_empty() {
        cli.registry.clone()
    } else {
        files.to_vec()
    };
    let mut paths = explicit.clone();
    if files.is_empty() {
        let home = HostConfig::from_env().home;
        for p in [PathBuf::from("model_registry.json"), home.join("model_registry.json")] {
            if p.is_file() && !paths.contains(&p) {
                paths.push(p);
            }
        }
    }
    for path in &paths {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read registry `{}`", path.display()))?;
        sources.push((path.display().to_string(), text));
    }
    if files.is_empty() {
        sources.push((
            "<packaged>/registry/model_registry.json".into(),
            PACKAGED_REGISTRY.into(),
        ));
    }
    let (mut errors, mut warnings, mut entries) = (0, 0, 0);
    for (name, text) in &sources {
        entries += serde_json::from_str::<Vec<serde_json::Value>>(text)
            .map(|v| v.len())
            .unwrap_or(0);
        for problem in check_registry_text(name, text) {
            match problem.severity {
                Severity::Error => errors += 1,
                Severity::Warning => warnings += 1,
            }
            println!("{problem}");
        }
    }
    println!(
        "{errors} errors, {warnings} warnings in {entries} entries of {} files",
        sources.len()
    );
    if errors > 0 {
        anyhow::bail!("the registry has {errors} errors");
    }
    Ok(())
}

fn register(name: &str, values: &[String], cwd: bool) -> Result<()> {
    use crate::registry::{parse_assignments, register_entry, Registered};
    let mut entry = serde_json::Map::new();
    entry.insert("model_name".into(), name.into());
    let assigned = parse_assignments(values).map_err(|e| anyhow::anyhow!("invalid --values: {e}"))?;
    if !assigned.contains_key("backend") {
        anyhow::bail!("--values must set `backend` (e.g. -v backend=llamacpp,model_path=/models/x.gguf)");
    }
    entry.extend(assigned);
    let file = if cwd {
        PathBuf::from("model_registry.json")
    } else {
        HostConfig::from_env().home.join("model_registry.json")
    };
    match register_entry(&file, entry)? {
        Registered::Added(i) => println!("added `{name}` to {} as entry {i}", file.display()),
        Registered::Replaced(i) => println!("replaced entry {i} (`{name}`) in {}", file.display()),
    }
    Ok(())
}

fn devices(as_json: bool) -> Result<()> {
    let rows: Vec<_> = crate::engines::devices()
        .into_iter()
        .map(|(backend, name, description, kind, memory)| {
            json!({"backend": backend, "name": name, "description": description, "kind": kind, "memory_bytes": memory})
        })
        .collect();
    if as_json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for r in &rows {
            println!(
                "{:6} {:12} {:10} {:>8} MiB  {}",
                r["kind"].as_str().unwrap_or_default(),
                r["name"].as_str().unwrap_or_default(),
                r["backend"].as_str().unwrap_or_default(),
                r["memory_bytes"].as_u64().unwrap_or(0) >> 20,
                r["description"].as_str().unwrap_or_default()
            );
        }
    }
    Ok(())
}

fn backends(as_json: bool) -> Result<()> {
    use crate::backends::BACKENDS;
    let rows: Vec<_> = BACKENDS
        .iter()
        .map(|b| {
            json!({
                "backend": b.name,
                "aliases": b.aliases,
                "kind": b.kind.as_str(),
                "runnable": b.runnable(),
                "key_env": b.key_env(),
                "key_section": b.key_section(),
                "default_base_url": b.default_base_url,
            })
        })
        .collect();
    if as_json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:18}  {:8}  {:8}  {:26}  ALIASES",
        "BACKEND", "KIND", "RUNNABLE", "KEY (ENV)"
    );
    for r in &rows {
        println!(
            "{:18}  {:8}  {:8}  {:26}  {}",
            r["backend"].as_str().unwrap_or_default(),
            r["kind"].as_str().unwrap_or_default(),
            if r["runnable"] == true { "yes" } else { "no" },
            r["key_env"].as_str().unwrap_or("-"),
            r["aliases"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        );
    }
    Ok(())
}

fn keys(as_json: bool) -> Result<()> {
    use crate::backends::BACKENDS;
    use crate::credentials::mask;
    let store = HostConfig::from_env().key_store()?;
    let rows: Vec<_> = BACKENDS
        .iter()
        .filter(|b| b.key.is_some())
        .map(|b| {
            let cred = store.for_backend(b.name);
            json!({
                "backend": b.name,
                "api_key": mask(cred.api_key.as_ref().map(|k| k.expose())),
                "source": cred.source,
                "organization": cred.organization,
                "base_url": cred.base_url,
            })
        })
        .collect();
    if as_json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("{:18}  {:16}  SOURCE", "BACKEND", "API KEY");
    for r in &rows {
        println!(
            "{:18}  {:16}  {}",
            r["backend"].as_str().unwrap_or_default(),
            r["api_key"].as_str().unwrap_or_default(),
            r["source"].as_str().unwrap_or("-")
        );
    }
    Ok(())
}

fn models(host: &Host, as_json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if as_json {
        let list: Vec<_> = host
            .registry()
            .entries()
            .iter()
            .map(|s| {
                json!({
                    "model_name": s.model_name(),
                    "backend": s.backend(),
                    "runnable": crate::backends::runnable_backend_names().contains(&s.backend()),
                    "context_size": s.get("context_size"),
                    "source": s.source().to_string(),
                })
            })
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

fn run_prompt(host: &Host, args: &RunArgs) -> Result<()> {
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
    if let Some(system) = &args.gen.system {
        messages.push(Message::system(system.as_str()));
    }
    messages.push(Message::user(prompt.trim_end_matches('\n')));
    let params = GenerationParams {
        stop: args.stop.clone(),
        ..args.gen.params()
    };
    let model = host.load(args.gen.model.as_str())?;
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

const CHAT_HELP: &str = "commands: /reset (forget the turns so far), /system TEXT (set the system prompt), /exit";

/// The chat REPL. Interactive on a terminal (prompt and notes on stderr); with
/// piped input it reads one turn per line and stops at end of input.
fn chat(host: &Host, args: ChatArgs) -> Result<()> {
    use std::io::{BufRead, IsTerminal};
    let model = host.load(args.gen.model.as_str())?;
    let mut chat = model.chat();
    *chat.params_mut() = args.gen.params();
    if let Some(system) = args.gen.system {
        chat.system(system);
    }
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!("chatting with `{}`; {CHAT_HELP}", model.name());
    }
    let mut failed = 0;
    let mut lines = std::io::stdin().lock().lines();
    loop {
        if interactive {
            eprint!("> ");
            let _ = std::io::stderr().flush();
        }
        let Some(line) = lines.next() else { break };
        let line = line.context("reading standard input")?;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        if let Some(command) = line.strip_prefix('/') {
            let (name, rest) = command.split_once(char::is_whitespace).unwrap_or((command, ""));
            match name {
                "exit" | "quit" => break,
                "reset" => {
                    chat.clear_history();
                    eprintln!("(history cleared)");
                }
                "system" if !rest.trim().is_empty() => {
                    chat.system(rest.trim());
                    eprintln!("(system prompt set)");
                }
                _ => eprintln!("unknown command `/{name}`; {CHAT_HELP}"),
            }
            continue;
        }
        let mut stdout = std::io::stdout();
        match chat.say_stream(line, |piece| {
            let _ = stdout.write_all(piece.as_bytes());
            let _ = stdout.flush();
        }) {
            Ok(generation) => {
                println!();
                tracing::info!(
                    tokens = generation.usage.completion_tokens,
                    tokens_per_second = format!("{:.1}", generation.tokens_per_second()),
                    "turn done"
                );
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    if failed > 0 && !interactive {
        anyhow::bail!("{failed} turns failed");
    }
    Ok(())
}

fn serve(host: Host, args: ServeArgs) -> Result<()> {
    use crate::server::{shutdown_signal, Server, ServerConfig};
    let config = ServerConfig {
        host: args.host,
        port: args.port,
        max_concurrency: args.max_concurrency,
        max_queue: args.max_queue,
        max_body_bytes: args.max_body_bytes,
        preload: args.model,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let server = Server::bind(std::sync::Arc::new(host), config).await?;
        eprintln!("lmhost: serving on http://{}", server.local_addr());
        server.run(shutdown_signal()).await?;
        eprintln!("lmhost: stopped");
        Ok::<(), anyhow::Error>(())
    })
}
