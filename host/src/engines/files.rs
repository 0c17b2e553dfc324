//! Finding a model's weights on disk.

use std::path::{Path, PathBuf};

use super::hub::{fetch_model_file, HubOptions, HubRequest};
use super::EngineError;
use crate::registry::{FileSettings, ModelSpec, SpecSource};

/// The weights file of a spec: `model_path` as given when absolute; otherwise
/// looked up relative to the current directory, the registry file's folder, and
/// each of `model_dirs` in order. When the entry has no `model_path`, or it is
/// not found, but it names `huggingface_id` + `filename`, the file comes from the
/// hub cache, downloaded first if needed (see [`super::hub`]). The error lists
/// every place tried. For `huggingface_local` the weights may be a checkpoint
/// folder (`config.json`, `tokenizer.json`, `*.safetensors`): a `model_path`
/// folder is taken as is, and an entry with `huggingface_id` but no `filename`
/// gets the repository's `config.json`, `tokenizer.json`, `tokenizer_config.json`
/// and `*.safetensors` from the hub, and resolves to their folder.
pub fn resolve_model_file(spec: &ModelSpec, model_dirs: &[PathBuf], hub: &HubOptions) -> Result<PathBuf, EngineError> {
    let model = spec.model_name().to_string();
    let invalid = |message: String| EngineError::InvalidSpec {
        model: model.clone(),
        message,
    };
    let settings: FileSettings = spec.settings()?;
    let repo = settings.huggingface_id.as_deref();
    let filename = settings.filename.as_deref();
    let checkpoint = spec.backend() == "huggingface_local";
    let filename = match filename {
        None if checkpoint && repo.is_some() => Some("config.json"),
        other => other,
    };
    let from_hub = |repo: &str, filename: &str, tried: Vec<PathBuf>| -> Result<PathBuf, EngineError> {
        let revision = settings.revision.as_deref().unwrap_or("main");
        let mut additional_files = settings.additional_files.clone().unwrap_or_default();
        let folder = checkpoint && filename == "config.json";
        if folder {
            for f in ["tokenizer.json", "tokenizer_config.json", "*.safetensors"] {
                if !additional_files.iter().any(|a| a == f) {
                    additional_files.push(f.to_string());
                }
            }
        }
        let request = HubRequest {
            repo,
            revision,
            filename,
            additional_files: &additional_files,
        };
        let file = fetch_model_file(hub, &request).map_err(|error| EngineError::Hub {
            model: model.clone(),
            error: Box::new(error),
            tried,
        })?;
        Ok(match (folder, file.parent()) {
            (true, Some(dir)) => dir.to_path_buf(),
            _ => file,
        })
    };
    let Some(given) = settings.model_path.as_deref() else {
        return match (repo, filename) {
            (Some(repo), Some(filename)) => from_hub(repo, filename, Vec::new()),
            _ => Err(invalid("the entry sets no `model_path`".into())),
        };
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
        if candidate.is_file() || (checkpoint && candidate.is_dir()) {
            return Ok(candidate);
        }
        if !tried.contains(&candidate) {
            tried.push(candidate);
        }
    }
    if let (Some(repo), Some(filename)) = (repo, filename) {
        tracing::debug!(model = %model, "`model_path` not found; trying `{repo}` on the hub");
        return from_hub(repo, filename, tried);
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
