//! `lmhost list` and `lmhost models`: the registry's models, the backend
//! table, the credentials found (masked) and the llama.cpp devices.

use std::io::Write;

use anyhow::Result;
use serde_json::json;

use crate::{Host, HostConfig};

pub(super) fn devices(as_json: bool) -> Result<()> {
    // The CPU module chosen for this CPU (engines/llama/cpu.rs), on the CPU row.
    let cpu = crate::engines::cpu_backend();
    let rows: Vec<_> = crate::engines::devices()
        .into_iter()
        .map(|(backend, name, description, kind, memory)| {
            let mut row = json!({"backend": backend, "name": name, "description": description, "kind": kind, "memory_bytes": memory});
            if let (Ok(c), "cpu") = (&cpu, kind) {
                row["variant"] = json!(c.variant);
                row["module"] = json!(c.module.display().to_string());
                row["variant_reason"] = json!(c.reason);
                row["variants"] = c
                    .candidates
                    .iter()
                    .map(|(v, missing)| json!({"variant": v, "usable": missing.is_empty(), "missing": missing}))
                    .collect();
                row["modules"] = c
                    .others
                    .iter()
                    .map(|m| {
                        json!({"backend": m.name, "module": m.path.display().to_string(),
                               "loaded": m.loaded.is_ok(), "error": m.loaded.as_ref().err()})
                    })
                    .collect();
            }
            row
        })
        .collect();
    if as_json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
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
    match cpu {
        Ok(c) => {
            let usable: Vec<_> = c
                .candidates
                .iter()
                .filter(|(_, m)| m.is_empty())
                .map(|(v, _)| v.as_str())
                .collect();
            let not: Vec<_> = c
                .candidates
                .iter()
                .filter(|(_, m)| !m.is_empty())
                .map(|(v, m)| format!("{v} ({})", m.join(", ")))
                .collect();
            let why = if c.reason == "best" {
                "the most capable usable here"
            } else {
                "set by LMHOST_LLAMA_CPU"
            };
            println!("\nllama.cpp CPU variant: {} ({why}), {}", c.variant, c.module.display());
            println!("  usable here: {}", usable.join(" "));
            if !not.is_empty() {
                println!("  not usable here: {}", not.join(", "));
            }
            for m in &c.others {
                match &m.loaded {
                    Ok(()) => println!("  backend module {}: loaded, {}", m.name, m.path.display()),
                    // The loader's message names the file.
                    Err(e) => println!("  backend module {}: not loaded ({e})", m.name),
                }
            }
        }
        Err(e) => println!("\nllama.cpp CPU variant: none ({e})"),
    }
    Ok(())
}

pub(super) fn backends(as_json: bool) -> Result<()> {
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

pub(super) fn keys(as_json: bool) -> Result<()> {
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
                "trusted_origins": cred.trusted_origins,
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

pub(super) fn models(host: &Host, as_json: bool) -> Result<()> {
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
