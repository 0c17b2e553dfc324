//! Model files from a model hub, through the shared hub cache.
//!
//! Owns everything about downloads given [`HubOptions`] (endpoint, cache folder,
//! token, offline mode; `crate::config` reads them from `HF_ENDPOINT`, `HF_HOME`,
//! `HF_TOKEN`, `HF_HUB_OFFLINE`): matching a registry entry's `filename` / `additional_files`
//! globs against a repository's files, the on-disk cache, and the download itself
//! (resume, verification, atomic completion). [`HubError`] says what went wrong.
//!
//! The cache uses the layout other hub clients write, so files are shared with
//! them:
//!
//! ```text
//! <cache>/models--{org}--{name}/blobs/{etag}                 the content
//!                              /snapshots/{commit}/{file}     → ../../blobs/{etag}
//!                              /refs/{revision}               the commit hash
//! ```
//!
//! A file already in the cache is used without any request. Otherwise the
//! repository's file list at the revision (`GET {endpoint}/api/models/{repo}/revision/{revision}`)
//! gives the commit and the files to match; each file's metadata comes from a
//! `HEAD` of `{endpoint}/{repo}/resolve/{commit}/{file}` (`ETag` or, for large
//! files, `X-Linked-Etag` / `X-Linked-Size`) and its content from a `GET` of the
//! same URL, redirects followed. Content goes to `blobs/{etag}.incomplete` first
//! (resumed with a `Range` request when a partial file exists), its size and,
//! when the etag is a sha256, its hash are checked, and only then is it renamed
//! into place: an interrupted or corrupt download never looks complete.
//!
//! The token goes out as `Authorization: Bearer …` only when one is set, and
//! never appears in an error or a log line.
//!
//! Files: `pattern` (glob matching), `cache` (the layout above, no network),
//! `client` (the HTTP side), `progress` (the terminal progress line).
//!
//! Why not the `hf-hub` crate: its blocking API is built on `ureq` (a second HTTP
//! stack beside `reqwest`) and its async one needs a runtime these synchronous
//! callers do not have; it takes the endpoint, cache and token once per builder
//! (or from the process environment and its token file) rather than from
//! [`HubOptions`] per call; it has no offline switch (`HF_HUB_OFFLINE`), no glob
//! selection of files and no check of a download's sha256 against its
//! `X-Linked-Etag` before it is used; and its errors carry neither the hints
//! below (token needed, refused, gated) nor a guarantee that the token never
//! shows. What it would replace is the few requests in `client`; the cache, the
//! checks and the errors would stay here anyway.

mod cache;
mod client;
mod pattern;
mod progress;

use std::path::PathBuf;
use std::sync::OnceLock;

use regex::Regex;

use cache::{from_cache, write_ref};
use client::Client;
pub use pattern::glob_match;
use pattern::glob_matches;

pub use crate::config::{HubOptions, DEFAULT_ENDPOINT};

/// What went wrong getting a model file. Messages name the repository, the file
/// and the URL, never the token.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The hub answered with an error status.
    #[error("{what}: HTTP {status} from {url}: {hint}")]
    Status {
        /// The repository or file asked for.
        what: String,
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// What it means and what to do.
        hint: String,
    },
    /// The hub could not be reached, or the connection failed.
    #[error("{what}: cannot reach {url}: {message} (HF_HUB_OFFLINE=1 uses the local cache only)")]
    Unreachable {
        /// The repository or file asked for.
        what: String,
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The hub answered something that is not what a hub answers.
    #[error("{what}: unexpected answer from {url}: {message}")]
    BadResponse {
        /// The repository or file asked for.
        what: String,
        /// The URL.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// No file of the repository matches a glob.
    #[error(
        "no file of `{repo}` (revision `{revision}`) matches `{pattern}`; {}",
        present_gguf(present)
    )]
    NoMatch {
        /// The repository.
        repo: String,
        /// The revision.
        revision: String,
        /// The glob.
        pattern: String,
        /// Every file of the repository.
        present: Vec<String>,
    },
    /// `filename` matches several files.
    #[error(
        "`{pattern}` matches {} files of `{repo}` (revision `{revision}`): {}; make `filename` match exactly one",
        matches.len(),
        quoted(matches)
    )]
    Ambiguous {
        /// The repository.
        repo: String,
        /// The revision.
        revision: String,
        /// The glob.
        pattern: String,
        /// The files it matches.
        matches: Vec<String>,
    },
    /// Offline, and the file is not in the cache.
    #[error(
        "HF_HUB_OFFLINE is set and no file of `{repo}` (revision `{revision}`) matching `{pattern}` is in the cache `{}`; unset HF_HUB_OFFLINE to download it",
        cache.display()
    )]
    NotCached {
        /// The repository.
        repo: String,
        /// The revision.
        revision: String,
        /// The glob.
        pattern: String,
        /// The repository's cache folder.
        cache: PathBuf,
    },
    /// The connection broke during the download; the partial file is kept.
    #[error(
        "download of `{file}` of `{repo}` from {url} was interrupted after {received} of {} bytes ({cause}); the next attempt resumes it",
        expected.map(|n| n.to_string()).unwrap_or_else(|| "?".into())
    )]
    Interrupted {
        /// The repository.
        repo: String,
        /// The file.
        file: String,
        /// The URL.
        url: String,
        /// Bytes on disk.
        received: u64,
        /// The file's size, when known.
        expected: Option<u64>,
        /// Why.
        cause: std::io::ErrorKind,
    },
    /// The downloaded file has the wrong size; it was discarded.
    #[error("`{file}` of `{repo}` from {url}: expected {expected} bytes, got {got}; the download was discarded")]
    SizeMismatch {
        /// The repository.
        repo: String,
        /// The file.
        file: String,
        /// The URL.
        url: String,
        /// Announced size.
        expected: u64,
        /// Received size.
        got: u64,
    },
    /// The downloaded file's sha256 is not its etag; it was discarded.
    #[error("`{file}` of `{repo}` from {url}: sha256 {got} differs from the expected {expected}; the download was discarded")]
    ChecksumMismatch {
        /// The repository.
        repo: String,
        /// The file.
        file: String,
        /// The URL.
        url: String,
        /// The etag.
        expected: String,
        /// The content's hash.
        got: String,
    },
    /// A registry value that cannot name a repository, revision or file.
    #[error("invalid {what} `{value}`: {message}")]
    Invalid {
        /// `huggingface_id`, `revision`, …
        what: &'static str,
        /// The value.
        value: String,
        /// What is wrong.
        message: String,
    },
    /// Reading or writing the cache failed.
    #[error("hub cache `{}`: {message}", path.display())]
    Cache {
        /// The path.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

fn quoted(items: &[String]) -> String {
    items.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
}

fn present_gguf(files: &[String]) -> String {
    let gguf: Vec<String> = files.iter().filter(|f| f.ends_with(".gguf")).cloned().collect();
    if gguf.is_empty() {
        format!("it has no .gguf file ({} files in all)", files.len())
    } else {
        format!("its .gguf files: {}", quoted(&gguf))
    }
}

/// What a registry entry asks of the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRequest<'a> {
    /// `huggingface_id`: `org/name`.
    pub repo: &'a str,
    /// `revision`: a branch, tag or commit (default `main`).
    pub revision: &'a str,
    /// `filename`: a glob that must match exactly one file.
    pub filename: &'a str,
    /// `additional_files`: globs of further files (shards), each matching at least one.
    pub additional_files: &'a [String],
}

/// The local path of the file a request names, from the cache or downloaded
/// (with its additional files) into it. For sharded GGUF this is the first shard,
/// with the others beside it.
pub fn fetch_model_file(opts: &HubOptions, req: &HubRequest<'_>) -> Result<PathBuf, HubError> {
    check_repo(req.repo)?;
    check_revision(req.revision)?;
    let repo_dir = opts.repo_dir(req.repo);
    if let Some(path) = from_cache(&repo_dir, req)? {
        tracing::debug!(repo = req.repo, path = %path.display(), "model file from the hub cache");
        return Ok(path);
    }
    if opts.offline {
        return Err(HubError::NotCached {
            repo: req.repo.into(),
            revision: req.revision.into(),
            pattern: req.filename.into(),
            cache: repo_dir,
        });
    }
    let client = Client::new(opts)?;
    let listing = client.listing(req.repo, req.revision)?;
    let wanted = select(&listing.files, req)?;
    if listing.commit != req.revision {
        write_ref(&repo_dir, req.revision, &listing.commit)?;
    }
    let snapshot = repo_dir.join("snapshots").join(&listing.commit);
    for file in &wanted {
        check_filename(file)?;
        let target = snapshot.join(file);
        if target.is_file() {
            continue;
        }
        client.download(&repo_dir, req.repo, &listing.commit, file)?;
    }
    Ok(snapshot.join(first_shard(&wanted)))
}

/// The files to fetch: `filename`'s single match first, then each additional glob's.
fn select(files: &[String], req: &HubRequest<'_>) -> Result<Vec<String>, HubError> {
    let no_match = |pattern: &str| HubError::NoMatch {
        repo: req.repo.into(),
        revision: req.revision.into(),
        pattern: pattern.into(),
        present: files.to_vec(),
    };
    let mut wanted = match glob_matches(files, req.filename)?.as_slice() {
        [] => return Err(no_match(req.filename)),
        [one] => vec![one.clone()],
        several => {
            return Err(HubError::Ambiguous {
                repo: req.repo.into(),
                revision: req.revision.into(),
                pattern: req.filename.into(),
                matches: several.to_vec(),
            })
        }
    };
    for pattern in req.additional_files {
        let matches = glob_matches(files, pattern)?;
        if matches.is_empty() {
            return Err(no_match(pattern));
        }
        for m in matches {
            if !wanted.contains(&m) {
                wanted.push(m);
            }
        }
    }
    Ok(wanted)
}

/// The file llama.cpp opens: `filename`'s match, or the first shard
/// (`…-00001-of-000NN.gguf`) of its set when that was fetched too.
fn first_shard(wanted: &[String]) -> &str {
    static SHARD: OnceLock<Regex> = OnceLock::new();
    let shard = SHARD.get_or_init(|| Regex::new(r"^(.*)-(\d{5})-of-(\d{5})\.gguf$").expect("valid regex"));
    let main = &wanted[0];
    if let Some(c) = shard.captures(main) {
        let first = format!("{}-00001-of-{}.gguf", &c[1], &c[3]);
        if let Some(found) = wanted.iter().find(|w| **w == first) {
            return found;
        }
    }
    main
}

fn invalid(what: &'static str, value: &str, message: &str) -> HubError {
    HubError::Invalid {
        what,
        value: value.into(),
        message: message.into(),
    }
}

fn check_repo(repo: &str) -> Result<(), HubError> {
    let parts: Vec<&str> = repo.split('/').collect();
    let name_ok = |p: &&str| {
        !p.is_empty() && *p != "." && *p != ".." && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    if parts.len() > 2 || !parts.iter().all(name_ok) {
        return Err(invalid(
            "huggingface_id",
            repo,
            "expected `org/name` (letters, digits, `-`, `_`, `.`)",
        ));
    }
    Ok(())
}

fn safe_segments(s: &str) -> bool {
    !s.is_empty() && !s.contains('\\') && s.split('/').all(|p| !p.is_empty() && p != "." && p != "..")
}

fn check_revision(revision: &str) -> Result<(), HubError> {
    if !safe_segments(revision) {
        return Err(invalid("revision", revision, "expected a branch, tag or commit hash"));
    }
    Ok(())
}

fn check_filename(file: &str) -> Result<(), HubError> {
    if !safe_segments(file) {
        return Err(invalid("file name", file, "it would leave the cache folder"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::client::{encode, normalize_etag, origin};
    use super::*;
    use crate::credentials::Secret;

    #[test]
    fn etags_and_urls() {
        assert_eq!(normalize_etag("W/\"abc\""), "abc");
        assert_eq!(normalize_etag("\"abc\""), "abc");
        assert_eq!(encode("refs/pr/1", false), "refs%2Fpr%2F1");
        assert_eq!(encode("a b/c.gguf", true), "a%20b/c.gguf");
        assert_eq!(origin("http://127.0.0.1:80/a/b"), "http://127.0.0.1:80");
    }

    #[test]
    fn first_shard_is_given_to_the_engine() {
        let files = vec!["m-00002-of-00002.gguf".to_string(), "m-00001-of-00002.gguf".to_string()];
        assert_eq!(first_shard(&files), "m-00001-of-00002.gguf");
        assert_eq!(first_shard(&["one.gguf".to_string()]), "one.gguf");
    }

    #[test]
    fn repo_ids_and_revisions_cannot_escape_the_cache() {
        assert!(check_repo("org/name-1.0_x").is_ok());
        assert!(check_repo("gpt2").is_ok());
        for bad in ["../x", "a/b/c", "a/..", "", "a b/c"] {
            assert!(check_repo(bad).is_err(), "{bad}");
        }
        assert!(check_revision("refs/pr/1").is_ok());
        assert!(check_revision("../main").is_err());
        assert!(check_filename("sub/../../x").is_err());
    }

    #[test]
    fn options_from_a_lookup() {
        let home = std::env::temp_dir().join(format!("lmhost-hub-opts-{}", std::process::id()));
        let opts = HubOptions::from_lookup(&home, |name| match name {
            "HF_HOME" => Some("/hf".into()),
            "HF_ENDPOINT" => Some("http://127.0.0.1:9/".into()),
            "HF_HUB_OFFLINE" => Some("1".into()),
            "HF_TOKEN" => Some("hf_secret_token".into()),
            "HOME" => Some(home.display().to_string()),
            _ => None,
        });
        assert_eq!(opts.endpoint, "http://127.0.0.1:9");
        assert_eq!(opts.cache_dir, PathBuf::from("/hf/hub"));
        assert!(opts.offline);
        assert_eq!(opts.token.as_ref().map(Secret::expose), Some("hf_secret_token"));
        assert!(!format!("{opts:?}").contains("hf_secret_token"));
        let opts = HubOptions::from_lookup(&home, |name| (name == "HOME").then(|| "/u".to_string()));
        assert_eq!(opts.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(opts.cache_dir, PathBuf::from("/u/.cache/huggingface/hub"));
        assert!(!opts.offline && opts.token.is_none());
        assert_eq!(
            opts.repo_dir("org/name"),
            PathBuf::from("/u/.cache/huggingface/hub/models--org--name")
        );
    }
}
