//! Finding a model's weights on disk.

use std::path::{Path, PathBuf};

use super::EngineError;
use crate::registry::{ModelSpec, SpecSource};

/// The weights file of a spec: `model_path` as given when absolute; otherwise
/// looked up relative to the current directory, the registry file's folder, and
/// each of `model_dirs` in order. The error lists every place tried.
pub fn resolve_model_file(spec: &ModelSpec, model_dirs: &[PathBuf]) -> Result<PathBuf, EngineError> {
    let model = spec.model_name().to_string();
    let invalid = |message: String| EngineError::InvalidSpec {
        model: model.clone(),
        message,
    };
    let Some(given) = spec.get_str("model_path").map_err(invalid)? else {
        let hint = match (
            spec.get_str("huggingface_id").ok().flatten(),
            spec.get_str("filename").ok().flatten(),
        ) {
            (Some(repo), Some(file)) => {
                format!(" (it names `{repo}` / `{file}`: download that file and set `model_path` to it)")
            }
            _ => String::new(),
        };
        return Err(invalid(format!("the entry sets no `model_path`{hint}")));
    };
    let given = PathBuf::from(given);
    let mut tried = Vec::new();
    let mut candidates = vec![given.clone()];
    if given.is_relative() {
        if let SpecSource::File { path, .. } = spec.source() {
            if let Some(dir) = path.parent() {
                candidates.push(dir.join(&given));
            }
        }
        candidates.extend(model_dirs.iter().map(|d| d.join(&given)));
    }
    for candidate in candidates {
        if candidate.is_file() {
            return Ok(candidate);
        }
        if !tried.contains(&candidate) {
            tried.push(candidate);
        }
    }
    Err(EngineError::ModelFileNotFound { model, tried })
}

/// Display a list of paths for an error message.
pub(crate) fn list_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| format!("`{}`", display(p)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
