//! `lmhost adapter`: scaffold, build, check (the conformance suite) and
//! describe adapters, and the plain-text form of `adapter info`.

use anyhow::Result;

use super::{host, AdapterCommand, Cli};

pub(super) fn adapter_command(cli: &Cli, command: &AdapterCommand) -> Result<()> {
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
        "limits    deadline {} ms, request budget {} ms, memory {} MiB, output {} MiB, template fuel {}, template output {} MiB",
        l.deadline_ms,
        l.request_budget_ms,
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
