//! The on-disk hub cache (`models--{org}--{name}/{blobs,snapshots,refs}`): serving
//! a request from it alone, writing refs and snapshot links, hashing blobs. No
//! network here.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::pattern::glob_matches;
use super::{first_shard, HubError, HubRequest};

/// The request served from the cache alone, when every glob has its files there.
pub(super) fn from_cache(repo_dir: &Path, req: &HubRequest<'_>) -> Result<Option<PathBuf>, HubError> {
    let commit = if is_commit(req.revision) {
        req.revision.to_string()
    } else {
        match fs::read_to_string(repo_dir.join("refs").join(req.revision)) {
            Ok(text) => text.trim().to_string(),
            Err(_) => return Ok(None),
        }
    };
    if !is_commit(&commit) {
        return Ok(None);
    }
    let snapshot = repo_dir.join("snapshots").join(&commit);
    let mut files = Vec::new();
    list_files(&snapshot, "", &mut files);
    files.sort();
    let main = glob_matches(&files, req.filename)?;
    if main.len() > 1 {
        return Err(HubError::Ambiguous {
            repo: req.repo.into(),
            revision: req.revision.into(),
            pattern: req.filename.into(),
            matches: main,
        });
    }
    if main.is_empty() {
        return Ok(None);
    }
    let mut wanted = main;
    for pattern in req.additional_files {
        let matches = glob_matches(&files, pattern)?;
        if matches.is_empty() {
            return Ok(None);
        }
        wanted.extend(matches);
    }
    Ok(Some(snapshot.join(first_shard(&wanted))))
}

/// Files (following links; broken links skipped) under `dir`, as `/`-separated relative paths.
fn list_files(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let rel = format!("{prefix}{name}");
        if path.is_dir() {
            list_files(&path, &format!("{rel}/"), out);
        } else if path.is_file() {
            out.push(rel);
        }
    }
}

/// `refs/{revision}` ← `commit`, unless it already says so.
pub(super) fn write_ref(repo_dir: &Path, revision: &str, commit: &str) -> Result<(), HubError> {
    let path = repo_dir.join("refs").join(revision);
    if fs::read_to_string(&path).is_ok_and(|c| c.trim() == commit) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| cache_error(parent, e))?;
    }
    fs::write(&path, commit).map_err(|e| cache_error(&path, e))
}

pub(super) fn cache_error(path: &Path, e: std::io::Error) -> HubError {
    HubError::Cache {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// A full 40-hex commit hash.
pub(super) fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The sha256 of a file, lowercase hex.
pub(super) fn sha256_file(path: &Path) -> Result<String, HubError> {
    let mut file = File::open(path).map_err(|e| cache_error(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| cache_error(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// `snapshots/{commit}/{file}` → `../../blobs/{etag}` (one more `..` per folder in `file`).
pub(super) fn link_snapshot(repo_dir: &Path, commit: &str, file: &str, etag: &str) -> Result<(), HubError> {
    let link = repo_dir.join("snapshots").join(commit).join(file);
    let parent = link.parent().expect("a snapshot file has a folder");
    fs::create_dir_all(parent).map_err(|e| cache_error(parent, e))?;
    if fs::symlink_metadata(&link).is_ok() {
        fs::remove_file(&link).map_err(|e| cache_error(&link, e))?;
    }
    let up = "../".repeat(2 + file.matches('/').count());
    let target = PathBuf::from(format!("{up}blobs/{etag}"));
    #[cfg(unix)]
    let made = std::os::unix::fs::symlink(&target, &link);
    #[cfg(not(unix))]
    let made = fs::copy(parent.join(&target), &link).map(|_| ());
    match made {
        Err(e) if !link.is_file() => Err(cache_error(&link, e)),
        _ => Ok(()),
    }
}
