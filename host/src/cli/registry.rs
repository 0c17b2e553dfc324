//! `lmhost registry check` (every problem of the registry files in use) and
//! `lmhost register model` (add or replace an entry in a registry file).

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::Cli;
use crate::HostConfig;

pub(super) fn registry_check(cli: &Cli, files: &[PathBuf]) -> Result<()> {
    use crate::registry::{check_registry_text, Severity, PACKAGED_REGISTRY};
    let mut sources: Vec<(String, String)> = Vec::new();
    let explicit: Vec<PathBuf> = if files.is_empty() {
        cli.registry.iter().chain(&cli.trusted_registry).cloned().collect()
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

pub(super) fn register(name: &str, values: &[String], cwd: bool) -> Result<()> {
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
