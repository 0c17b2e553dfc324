//! The shape of the library: its top-level modules form layers, and a module
//! imports only from the layers below it (no cycle); each says in its `//!`
//! docs what it owns and what it must not import; no source file grows past
//! the size a reader can hold.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lmhost_tests::repo_root;

/// The top-level modules of `host/src`, bottom layer first. A module may use
/// only modules that come before it here.
const LAYERS: &[&str] = &[
    "backends",
    "credentials",
    "adapters",
    "registry",
    "config",
    "generation",
    "engines",
    "error",
    "model",
    "host",
    "async_api",
    "chat",
    "server",
    "tools",
    "cli",
];

/// What the crate root re-exports, and from where (`crate::Host` is `crate::host`).
const ROOT_ITEMS: &[(&str, &str)] = &[
    ("Host", "host"),
    ("Model", "model"),
    ("Error", "error"),
    ("Result", "error"),
    ("HostConfig", "config"),
    ("Chat", "chat"),
    ("StreamEvent", "async_api"),
    ("Generation", "generation"),
    ("GenerationParams", "generation"),
    ("Message", "generation"),
    ("ResponseFormat", "generation"),
    ("StreamDelta", "generation"),
    ("Tool", "generation"),
    ("ToolCall", "generation"),
    ("ToolChoice", "generation"),
    ("Timings", "generation"),
    ("Usage", "generation"),
    ("DEFAULT_MAX_TOKENS", "generation"),
];

/// Longest source file, in lines, outside test suites.
const MAX_LINES: usize = 650;

fn src() -> PathBuf {
    repo_root().join("host").join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`engines/llama/mod.rs` → `engines`).
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// The top-level modules a source text names through `crate::`, with the line.
fn uses(text: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                group[..end].split(',').map(str::trim).collect()
            } else {
                vec![rest]
            };
            for name in names {
                let ident: String = name.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                let module = ROOT_ITEMS
                    .iter()
                    .find(|(item, _)| *item == ident)
                    .map(|(_, m)| m.to_string())
                    .unwrap_or(ident);
                if !module.is_empty() {
                    out.push((module, n + 1));
                }
            }
        }
    }
    out
}

#[test]
fn every_module_imports_only_from_the_layers_below_it() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let mut wrong = Vec::new();
    let mut seen = BTreeMap::new();
    for file in &files {
        let Some(module) = module_of(file) else { continue };
        let Some(own) = rank(&module) else {
            wrong.push(format!("{}: module `{module}` is not in LAYERS", file.display()));
            continue;
        };
        seen.insert(module.clone(), ());
        let text = std::fs::read_to_string(file).unwrap();
        for (used, line) in uses(&text) {
            match rank(&used) {
                Some(r) if r < own || used == module => {}
                Some(_) => wrong.push(format!(
                    "{}:{line}: `{module}` imports `{used}`, which sits above it",
                    file.display()
                )),
                None => wrong.push(format!("{}:{line}: unknown module `crate::{used}`", file.display())),
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
    for layer in LAYERS {
        assert!(
            seen.contains_key(*layer),
            "LAYERS names `{layer}`, which has no source file"
        );
    }
}

#[test]
fn every_top_level_module_says_what_it_owns_and_must_not_import() {
    let mut missing = Vec::new();
    for layer in LAYERS {
        let file = [format!("{layer}.rs"), format!("{layer}/mod.rs")]
            .into_iter()
            .map(|f| src().join(f))
            .find(|p| p.is_file())
            .unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let docs: String = text
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .flat_map(|l| l.trim_start_matches("//!").split_whitespace())
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        if docs.is_empty() || !docs.contains("must not") {
            missing.push(file.display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "module docs without what the module must not import: {missing:?}"
    );
}

#[test]
fn no_source_file_is_longer_than_a_reader_can_hold() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).unwrap().lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "files over {MAX_LINES} lines: {long:?}");
}

#[test]
fn the_layer_check_sees_imports() {
    let found = uses("use crate::engines::{Engine};\nlet x = crate::Host::new();\n// crate::cli\nuse crate::{Error, registry::Query};");
    let names: Vec<&str> = found.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(names, ["engines", "host", "error", "registry"]);
}
