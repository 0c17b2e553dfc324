//! Registry files as users have them.

use lmhost::registry::{Registry, SpecSource};

fn compat_file() -> Option<std::path::PathBuf> {
    lmhost_tests::compat_registry()
}

#[test]
fn clemcore_registry_loads_unchanged_and_resolves_first_entry() {
    let Some(file) = compat_file() else {
        eprintln!("skipped: no clemcore registry in ../shared/compat");
        return;
    };
    let mut registry = Registry::new();
    registry.add_file(&file).unwrap();
    let raw: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(registry.entries().len(), raw.len());
    // Every name resolves to its first entry in file order, as clemcore picks.
    for (index, entry) in raw.iter().enumerate() {
        let name = entry["model_name"].as_str().unwrap();
        let first = raw.iter().position(|e| e["model_name"] == name).unwrap();
        let spec = registry.resolve(&name.into()).unwrap();
        assert_eq!(
            spec.source(),
            &SpecSource::File {
                path: file.clone(),
                index: first
            },
            "{name} (entry {index})"
        );
    }
    // Known quirk: the same name under two backends.
    let mixtral = registry.resolve(&"Mixtral-8x7B-Instruct-v0.1".into()).unwrap();
    assert_eq!(mixtral.backend(), "openai_compatible");
    let local = registry
        .resolve(&r#"{"model_name": "Mixtral-8x7B-Instruct-v0.1", "backend": "huggingface_local"}"#.into())
        .unwrap();
    assert_eq!(local.backend(), "huggingface_local");
    // model_config keys are reachable in the flat view.
    assert!(local.get("premade_chat_template").is_some());
}

#[test]
fn malformed_registry_file_error_names_file_line_and_column() {
    let dir = lmhost_tests::TempDir::new("badreg");
    let file = dir.path().join("model_registry.json");
    std::fs::write(
        &file,
        "[\n  {\"model_name\": \"x\", \"backend\": \"mock\"},\n  {\"model_name\": \"y\" \"backend\": \"mock\"}\n]\n",
    )
    .unwrap();
    let err = Registry::new().add_file(&file).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "registry `{}` is not valid JSON: expected `,` or `}}` at line 3, column 22",
            file.display()
        )
    );
}

#[test]
fn clemcore_registry_validates_with_only_unsupported_backend_warnings() {
    use lmhost::registry::{check_registry_text, Severity};
    let Some(file) = compat_file() else {
        eprintln!("skipped: no clemcore registry in ../shared/compat");
        return;
    };
    let text = std::fs::read_to_string(&file).unwrap();
    let problems = check_registry_text("compat.json", &text);
    let errors: Vec<_> = problems.iter().filter(|p| p.severity == Severity::Error).collect();
    assert!(errors.is_empty(), "genuine errors only, found: {errors:#?}");
    // Every warning is an entry whose backend lmhost does not run, and every such
    // entry is warned about.
    let raw: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let unsupported: Vec<usize> = raw
        .iter()
        .enumerate()
        .filter(|(_, e)| lmhost::backends::find_backend(e["backend"].as_str().unwrap()).is_none())
        .map(|(i, _)| i)
        .collect();
    let warned: Vec<usize> = problems.iter().filter_map(|p| p.index).collect();
    assert_eq!(warned, unsupported);
    assert!(problems.iter().all(|p| p.key.as_deref() == Some("backend")));
    assert_eq!(unsupported.len(), 37, "27 multimodal, 5 vllm, 4 alephalpha, 1 slurk");
}
