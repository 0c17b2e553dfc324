//! Golden files: each invalid registry in `tests/fixtures/registry/invalid/`
//! sits beside the exact report it must produce (`NAME.err`), and
//! `registry/schema.json` and `docs/registry-keys.md` are the schema and key
//! reference lmhost generates. Run with `LMHOST_BLESS=1` to rewrite them after an
//! intended change.

use lmhost::registry::{check_registry_text, registry_keys_markdown, registry_schema};
use lmhost_tests::repo_root;

fn bless() -> bool {
    std::env::var_os("LMHOST_BLESS").is_some()
}

#[test]
fn invalid_registries_produce_their_exact_errors() {
    let dir = repo_root().join("tests/fixtures/registry/invalid");
    let mut checked = 0;
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
    files.sort();
    for path in files.iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
        let name = path.strip_prefix(repo_root()).unwrap().display().to_string();
        let text = std::fs::read_to_string(path).unwrap();
        let problems = check_registry_text(&name, &text);
        assert!(!problems.is_empty(), "{name} must have problems");
        let report: String = problems.iter().map(|p| format!("{p}\n")).collect();
        let expected_path = path.with_extension("err");
        if bless() {
            std::fs::write(&expected_path, &report).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{} is missing (LMHOST_BLESS=1 writes it)", expected_path.display()));
        assert_eq!(report, expected, "{name}");
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} fixtures");
}

#[test]
fn schema_file_is_current() {
    let path = repo_root().join("registry/schema.json");
    let generated = serde_json::to_string_pretty(&registry_schema()).unwrap() + "\n";
    if bless() {
        std::fs::write(&path, &generated).unwrap();
    }
    let saved = std::fs::read_to_string(&path).expect("registry/schema.json exists (LMHOST_BLESS=1 writes it)");
    assert_eq!(
        saved, generated,
        "registry/schema.json is stale: run the tests with LMHOST_BLESS=1"
    );
}

#[test]
fn registry_key_reference_is_current() {
    let path = repo_root().join("docs/registry-keys.md");
    let generated = registry_keys_markdown();
    if bless() {
        std::fs::write(&path, &generated).unwrap();
    }
    let saved = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        saved == generated,
        "docs/registry-keys.md is stale: regenerate it with `lmhost registry docs > docs/registry-keys.md` \
         (or run the tests with LMHOST_BLESS=1)"
    );
}

#[test]
fn packaged_registry_has_no_problems() {
    let text = std::fs::read_to_string(repo_root().join("registry/model_registry.json")).unwrap();
    let problems = check_registry_text("registry/model_registry.json", &text);
    assert!(problems.is_empty(), "{problems:?}");
}
