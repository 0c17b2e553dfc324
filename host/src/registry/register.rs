//! `lmhost register model`: add or replace an entry in a registry file, safely.

use std::path::Path;

use serde_json::{Map, Value};

use super::validate::{validate_spec, Severity};
use super::{ModelSpec, RegistryError, SpecSource};

/// What [`register_entry`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// Appended as entry `index`.
    Added(usize),
    /// Replaced entry `index` (same `model_name` and `backend`).
    Replaced(usize),
}

/// Parse `k=v` assignments. Several may share one argument, separated by commas
/// that start a new `key=`; a value that parses as JSON (`true`, `3`, `"x"`,
/// `[…]`) is that value, anything else is a string.
///
/// ```
/// use lmhost::registry::parse_assignments;
/// let m = parse_assignments(&["backend=llamacpp,n_ctx=2048".into(), "stop=[\"a,b\"]".into()]).unwrap();
/// assert_eq!(m["backend"], "llamacpp");
/// assert_eq!(m["n_ctx"], 2048);
/// assert_eq!(m["stop"], serde_json::json!(["a,b"]));
/// ```
pub fn parse_assignments(items: &[String]) -> Result<Map<String, Value>, String> {
    let start = regex::Regex::new(r",\s*[A-Za-z_][A-Za-z0-9_]*=").expect("valid regex");
    let mut out = Map::new();
    for item in items {
        let mut pieces = Vec::new();
        let mut last = 0;
        for m in start.find_iter(item) {
            pieces.push(&item[last..m.start()]);
            last = m.start() + 1;
        }
        pieces.push(&item[last..]);
        for piece in pieces {
            let piece = piece.trim();
            let Some((key, raw)) = piece.split_once('=') else {
                return Err(format!("`{piece}` is not a `key=value` assignment"));
            };
            let key = key.trim();
            if key.is_empty() {
                return Err(format!("`{piece}` has an empty key"));
            }
            let value = serde_json::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
            out.insert(key.to_string(), value);
        }
    }
    Ok(out)
}

/// Add `entry` to the registry `file` (created if absent), or replace the entry
/// with the same `model_name` and `backend`. The entry is validated first; the
/// file is written to a temporary file and renamed, so existing entries are never
/// lost, and a file that is not a valid registry is left untouched.
pub fn register_entry(file: &Path, entry: Map<String, Value>) -> Result<Registered, RegistryError> {
    let name = file.display().to_string();
    let spec = ModelSpec::from_entry(&entry, SpecSource::Query).map_err(|e| RegistryError::Entry {
        path: name.clone(),
        index: 0,
        name: entry.get("model_name").and_then(Value::as_str).map(str::to_string),
        reason: e.to_string(),
    })?;
    let problems: Vec<String> = validate_spec(&spec)
        .into_iter()
        .filter(|(s, _, _)| *s == Severity::Error)
        .map(|(_, key, message)| key.map(|k| format!("`{k}` {message}")).unwrap_or(message))
        .collect();
    if !problems.is_empty() {
        return Err(RegistryError::InvalidEntry {
            model: spec.model_name().into(),
            source_desc: "the new entry".into(),
            problems,
        });
    }
    let mut entries: Vec<Value> = if file.exists() {
        let text = std::fs::read_to_string(file).map_err(|source| RegistryError::Read {
            path: file.into(),
            source,
        })?;
        // Refuse to rewrite a file that does not load as it is.
        super::Registry::new().add_json(&name, &text, |index| SpecSource::Packaged { index })?;
        serde_json::from_str(&text).expect("checked just above")
    } else {
        Vec::new()
    };
    let same = |e: &Value| {
        e.get("model_name").and_then(Value::as_str) == Some(spec.model_name())
            && e.get("backend").and_then(Value::as_str) == Some(spec.backend())
    };
    let outcome = match entries.iter().position(same) {
        Some(index) => {
            entries[index] = Value::Object(entry);
            Registered::Replaced(index)
        }
        None => {
            entries.push(Value::Object(entry));
            Registered::Added(entries.len() - 1)
        }
    };
    let text = serde_json::to_string_pretty(&entries).expect("JSON values serialize") + "\n";
    let write = || -> std::io::Result<()> {
        let dir = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            file.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, file)
    };
    write().map_err(|source| RegistryError::Read {
        path: file.into(),
        source,
    })?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_split_only_where_a_new_key_starts() {
        let m = parse_assignments(&["custom_chat_template={{ a, b }},eos_to_cull=</s>".into()]).unwrap();
        assert_eq!(m["custom_chat_template"], "{{ a, b }}");
        assert_eq!(m["eos_to_cull"], "</s>");
        assert!(parse_assignments(&["novalue".into()]).is_err());
    }

    #[test]
    fn adds_replaces_and_never_loses_entries() {
        let dir = std::env::temp_dir().join(format!("lmhost-register-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let file = dir.join("model_registry.json");
        let entry = |v: Value| v.as_object().unwrap().clone();
        let a = entry(serde_json::json!({"model_name": "a", "backend": "mock", "reply": "1"}));
        assert_eq!(register_entry(&file, a).unwrap(), Registered::Added(0));
        let b = entry(serde_json::json!({"model_name": "b", "backend": "mock"}));
        assert_eq!(register_entry(&file, b).unwrap(), Registered::Added(1));
        let a2 = entry(serde_json::json!({"model_name": "a", "backend": "mock", "reply": "2"}));
        assert_eq!(register_entry(&file, a2).unwrap(), Registered::Replaced(0));
        let saved: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(saved.len(), 2);
        assert_eq!(saved[0]["reply"], "2");
        // An invalid entry is refused and the file is unchanged.
        let before = std::fs::read_to_string(&file).unwrap();
        let bad = entry(serde_json::json!({"model_name": "c", "backend": "llamacpp"}));
        let err = register_entry(&file, bad).unwrap_err().to_string();
        assert!(err.contains("backend `llamacpp` needs `model_path`"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
        // A broken file is never overwritten.
        std::fs::write(&file, "[{").unwrap();
        let c = entry(serde_json::json!({"model_name": "c", "backend": "mock"}));
        assert!(register_entry(&file, c).is_err());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "[{");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
