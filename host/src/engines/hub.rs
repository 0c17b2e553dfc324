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

use std::fs::{self, File, OpenOptions};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::Value;
use sha2::{Digest, Sha256};

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
    let client = Client::new(opts);
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

/// The request served from the cache alone, when every glob has its files there.
fn from_cache(repo_dir: &Path, req: &HubRequest<'_>) -> Result<Option<PathBuf>, HubError> {
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

fn write_ref(repo_dir: &Path, revision: &str, commit: &str) -> Result<(), HubError> {
    let path = repo_dir.join("refs").join(revision);
    if fs::read_to_string(&path).is_ok_and(|c| c.trim() == commit) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| cache_error(parent, e))?;
    }
    fs::write(&path, commit).map_err(|e| cache_error(&path, e))
}

fn cache_error(path: &Path, e: std::io::Error) -> HubError {
    HubError::Cache {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// A full 40-hex commit hash.
fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
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

/// Translate a shell-style glob (`*`, `?`, `[seq]`, `[!seq]`; `*` also matches
/// `/`) to an anchored regex.
fn glob_regex(pattern: &str) -> Result<Regex, HubError> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::from("(?s)^");
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => {
                out.push_str(".*");
                while i < chars.len() && chars[i] == '*' {
                    i += 1;
                }
            }
            '?' => out.push('.'),
            '[' => {
                let mut j = i;
                if j < chars.len() && chars[j] == '!' {
                    j += 1;
                }
                if j < chars.len() && chars[j] == ']' {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    out.push_str(r"\[");
                    continue;
                }
                let mut body = &chars[i..j];
                i = j + 1;
                out.push('[');
                if body.first() == Some(&'!') {
                    out.push('^');
                    body = &body[1..];
                }
                for &ch in body {
                    if ch != '-' && ch.is_ascii_punctuation() {
                        out.push('\\');
                    }
                    out.push(ch);
                }
                out.push(']');
            }
            other => out.push_str(&regex::escape(&other.to_string())),
        }
    }
    out.push('$');
    Regex::new(&out).map_err(|e| invalid("glob", pattern, &e.to_string()))
}

/// The files matching a glob, in the list's order.
fn glob_matches(files: &[String], pattern: &str) -> Result<Vec<String>, HubError> {
    let re = glob_regex(pattern)?;
    Ok(files.iter().filter(|f| re.is_match(f)).cloned().collect())
}

/// Whether `name` matches the shell-style glob `pattern` (as `filename` is matched).
///
/// ```
/// use lmhost::engines::hub::glob_match;
/// assert!(glob_match("*Q4_K_M.gguf", "model.Q4_K_M.gguf"));
/// assert!(glob_match("*-0000[1-3]-of-*.gguf", "m-00002-of-00003.gguf"));
/// assert!(!glob_match("*.gguf", "README.md"));
/// ```
pub fn glob_match(pattern: &str, name: &str) -> bool {
    glob_regex(pattern).is_ok_and(|re| re.is_match(name))
}

/// Percent-encode for a URL path; `/` is kept when `keep_slash`.
fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A repository's files at a revision.
struct Listing {
    commit: String,
    files: Vec<String>,
}

/// What the `HEAD` of a file says.
struct FileMeta {
    etag: String,
    size: Option<u64>,
}

struct Client<'a> {
    opts: &'a HubOptions,
    /// For `HEAD` and the listing: redirects handled by hand.
    plain: ureq::Agent,
    /// For content: redirects followed (the token only to the same host).
    follow: ureq::Agent,
}

impl<'a> Client<'a> {
    fn new(opts: &'a HubOptions) -> Self {
        let builder = || {
            ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(10))
                .timeout_read(Duration::from_secs(60))
                .user_agent(concat!("lmhost/", env!("CARGO_PKG_VERSION")))
        };
        Self {
            opts,
            plain: builder().redirects(0).build(),
            follow: builder()
                .redirects(10)
                .redirect_auth_headers(ureq::RedirectAuthHeaders::SameHost)
                .build(),
        }
    }

    fn request(&self, agent: &ureq::Agent, method: &str, url: &str) -> ureq::Request {
        let req = agent.request(method, url).set("Accept-Encoding", "identity");
        match &self.opts.token {
            Some(token) if !token.expose().is_empty() => {
                req.set("Authorization", &format!("Bearer {}", token.expose()))
            }
            _ => req,
        }
    }

    /// Send; an error status becomes [`HubError::Status`] with a hint.
    fn send(&self, req: ureq::Request, what: &str, url: &str, missing: &str) -> Result<ureq::Response, HubError> {
        match req.call() {
            Ok(resp) => Ok(resp),
            Err(ureq::Error::Status(status, resp)) => Err(HubError::Status {
                what: what.into(),
                url: url.into(),
                status,
                hint: self.hint(status, &resp, missing),
            }),
            Err(ureq::Error::Transport(t)) => Err(HubError::Unreachable {
                what: what.into(),
                url: url.into(),
                message: transport_message(&t),
            }),
        }
    }

    fn hint(&self, status: u16, resp: &ureq::Response, missing: &str) -> String {
        let has_token = self.opts.token.is_some();
        let code = resp.header("x-error-code").unwrap_or_default();
        let mut hint = match (status, has_token) {
            (401, false) => "a token is needed (the repository may be private or gated, or not exist): set HF_TOKEN or the `huggingface` section of key.json".to_string(),
            (401, true) => "the token was refused (check HF_TOKEN or the `huggingface` section of key.json)".to_string(),
            (403, false) => "access denied: a token with access to the repository is needed (HF_TOKEN or the `huggingface` section of key.json)".to_string(),
            (403, true) => "the token was refused for this repository (for a gated one, accept its conditions on the hub first)".to_string(),
            (404, _) => match code {
                "RepoNotFound" => "repository not found".to_string(),
                "RevisionNotFound" => "revision not found".to_string(),
                "EntryNotFound" => "file not found in the repository".to_string(),
                _ => missing.to_string(),
            },
            _ => format!("the hub answered {status}"),
        };
        if let Some(message) = resp.header("x-error-message") {
            let message: String = message.chars().take(200).collect();
            hint.push_str(&format!(" (the hub says: {message})"));
        }
        hint
    }

    fn listing(&self, repo: &str, revision: &str) -> Result<Listing, HubError> {
        let url = format!(
            "{}/api/models/{repo}/revision/{}",
            self.opts.endpoint,
            encode(revision, false)
        );
        let what = format!("repository `{repo}` (revision `{revision}`)");
        let missing = format!("repository `{repo}` or its revision `{revision}` not found");
        let resp = self.send(self.request(&self.follow, "GET", &url), &what, &url, &missing)?;
        let bad = |message: String| HubError::BadResponse {
            what: what.clone(),
            url: url.clone(),
            message,
        };
        let mut body = String::new();
        resp.into_reader()
            .take(64 << 20)
            .read_to_string(&mut body)
            .map_err(|e| bad(e.to_string()))?;
        let json: Value = serde_json::from_str(&body).map_err(|e| bad(format!("not JSON: {e}")))?;
        let commit = json
            .get("sha")
            .and_then(Value::as_str)
            .filter(|s| is_commit(s))
            .ok_or_else(|| bad("no commit hash (`sha`)".into()))?
            .to_string();
        let files = json
            .get("siblings")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no file list (`siblings`)".into()))?
            .iter()
            .filter_map(|s| s.get("rfilename").and_then(Value::as_str).map(str::to_string))
            .collect();
        Ok(Listing { commit, files })
    }

    /// `HEAD` the file, following redirects within the hub (renamed repositories)
    /// but not to a content host, whose answer would lack the metadata.
    fn head(&self, url: &str, what: &str, file: &str, commit: &str) -> Result<FileMeta, HubError> {
        let missing = format!("file not found in the repository at commit {commit}");
        let mut current = url.to_string();
        let mut resp = None;
        for _ in 0..5 {
            let r = self.send(self.request(&self.plain, "HEAD", &current), what, &current, &missing)?;
            let relative = (300..400)
                .contains(&r.status())
                .then(|| r.header("location").filter(|l| l.starts_with('/')).map(str::to_string))
                .flatten();
            match relative {
                Some(location) => current = format!("{}{location}", origin(&current)),
                None => {
                    resp = Some(r);
                    break;
                }
            }
        }
        let bad = |message: String| HubError::BadResponse {
            what: what.into(),
            url: current.clone(),
            message,
        };
        let resp = resp.ok_or_else(|| bad("too many redirects".into()))?;
        if let Some(answered) = resp.header("x-repo-commit") {
            if answered != commit {
                return Err(bad(format!("answered for commit {answered}, not {commit}")));
            }
        }
        let etag = resp
            .header("x-linked-etag")
            .or_else(|| resp.header("etag"))
            .map(normalize_etag)
            .ok_or_else(|| bad(format!("no ETag for `{file}` (is the endpoint a model hub?)")))?;
        if etag.is_empty()
            || !etag.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            || etag.starts_with('.')
        {
            return Err(bad(format!("unusable ETag `{etag}`")));
        }
        let size = match resp.header("x-linked-size") {
            Some(s) => Some(s.trim().parse().map_err(|_| bad(format!("bad X-Linked-Size `{s}`")))?),
            None if resp.status() == 200 => resp.header("content-length").and_then(|s| s.trim().parse().ok()),
            None => None,
        };
        Ok(FileMeta { etag, size })
    }

    /// Bring one file of `commit` into the cache: blob, then snapshot link.
    fn download(&self, repo_dir: &Path, repo: &str, commit: &str, file: &str) -> Result<(), HubError> {
        let url = format!("{}/{repo}/resolve/{commit}/{}", self.opts.endpoint, encode(file, true));
        let what = format!("file `{file}` of `{repo}`");
        let meta = self.head(&url, &what, file, commit)?;
        let blobs = repo_dir.join("blobs");
        let blob = blobs.join(&meta.etag);
        if !blob.is_file() {
            tracing::info!(repo, file, size = meta.size, "downloading into the hub cache");
            fs::create_dir_all(&blobs).map_err(|e| cache_error(&blobs, e))?;
            self.fetch_blob(&url, &what, repo, file, &meta, &blob)?;
        }
        link_snapshot(repo_dir, commit, file, &meta.etag)
    }

    /// Download into `<blob>.incomplete` (resuming it), verify, rename to `blob`.
    fn fetch_blob(
        &self,
        url: &str,
        what: &str,
        repo: &str,
        file: &str,
        meta: &FileMeta,
        blob: &Path,
    ) -> Result<(), HubError> {
        let partial = blob.with_file_name(format!("{}.incomplete", meta.etag));
        let mut offset = fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        if meta.size.is_some_and(|size| offset > size) {
            offset = 0;
        }
        let missing = "file not found in the repository".to_string();
        let mut expected = meta.size;
        let complete_already = offset > 0 && meta.size == Some(offset);
        if !complete_already {
            let mut req = self.request(&self.follow, "GET", url);
            if offset > 0 {
                req = req.set("Range", &format!("bytes={offset}-"));
            }
            let resp = match self.send(req, what, url, &missing) {
                Err(HubError::Status { status: 416, .. }) if offset > 0 => {
                    // The partial file does not fit the content: start over.
                    fs::remove_file(&partial).map_err(|e| cache_error(&partial, e))?;
                    offset = 0;
                    self.send(self.request(&self.follow, "GET", url), what, url, &missing)?
                }
                other => other?,
            };
            if offset > 0 && resp.status() != 206 {
                offset = 0; // The server sent the whole file.
            }
            if offset > 0 {
                let range = resp.header("content-range").unwrap_or_default();
                if !range.starts_with(&format!("bytes {offset}-")) {
                    return Err(HubError::BadResponse {
                        what: what.into(),
                        url: url.into(),
                        message: format!("asked for bytes from {offset}, got range `{range}`"),
                    });
                }
            }
            let length: Option<u64> = resp.header("content-length").and_then(|s| s.trim().parse().ok());
            if expected.is_none() {
                expected = length.map(|n| n + offset);
            }
            let mut out = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(offset == 0)
                .append(offset > 0)
                .open(&partial)
                .map_err(|e| cache_error(&partial, e))?;
            let mut progress = Progress::new(file, offset, expected);
            let mut reader = resp.into_reader();
            let mut buf = vec![0u8; 1 << 20];
            let mut received = offset;
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = out.flush();
                        progress.finish();
                        return Err(HubError::Interrupted {
                            repo: repo.into(),
                            file: file.into(),
                            url: url.into(),
                            received,
                            expected,
                            cause: e.kind(),
                        });
                    }
                };
                out.write_all(&buf[..n]).map_err(|e| cache_error(&partial, e))?;
                received += n as u64;
                progress.update(received);
            }
            progress.finish();
            out.sync_all().map_err(|e| cache_error(&partial, e))?;
        }
        let discard = |err: HubError| {
            let _ = fs::remove_file(&partial);
            Err(err)
        };
        let got = fs::metadata(&partial).map_err(|e| cache_error(&partial, e))?.len();
        if let Some(expected) = expected.filter(|e| *e != got) {
            return discard(HubError::SizeMismatch {
                repo: repo.into(),
                file: file.into(),
                url: url.into(),
                expected,
                got,
            });
        }
        if meta.etag.len() == 64 && meta.etag.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hash = sha256_file(&partial)?;
            if !hash.eq_ignore_ascii_case(&meta.etag) {
                return discard(HubError::ChecksumMismatch {
                    repo: repo.into(),
                    file: file.into(),
                    url: url.into(),
                    expected: meta.etag.clone(),
                    got: hash,
                });
            }
        }
        fs::rename(&partial, blob).map_err(|e| cache_error(blob, e))
    }
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let start = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[start..].find('/') {
        Some(i) => &url[..start + i],
        None => url,
    }
}

/// A transport error's message, without the URL (given separately).
fn transport_message(t: &ureq::Transport) -> String {
    let mut message = t.kind().to_string();
    if let Some(detail) = t.message() {
        message.push_str(&format!(": {detail}"));
    }
    message
}

/// `W/"abc"` → `abc`.
fn normalize_etag(etag: &str) -> String {
    etag.trim().trim_start_matches("W/").trim_matches('"').to_string()
}

fn sha256_file(path: &Path) -> Result<String, HubError> {
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
fn link_snapshot(repo_dir: &Path, commit: &str, file: &str, etag: &str) -> Result<(), HubError> {
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

/// A one-line progress display on stderr, only when stderr is a terminal.
struct Progress<'a> {
    file: &'a str,
    total: Option<u64>,
    enabled: bool,
    last: Instant,
    shown: bool,
}

impl<'a> Progress<'a> {
    fn new(file: &'a str, start: u64, total: Option<u64>) -> Self {
        let mut p = Self {
            file,
            total,
            enabled: std::io::stderr().is_terminal(),
            last: Instant::now(),
            shown: false,
        };
        p.draw(start);
        p
    }

    fn update(&mut self, done: u64) {
        if self.last.elapsed() >= Duration::from_millis(200) {
            self.draw(done);
        }
    }

    fn draw(&mut self, done: u64) {
        if !self.enabled {
            return;
        }
        self.last = Instant::now();
        self.shown = true;
        let mib = |n: u64| n as f64 / (1024.0 * 1024.0);
        let line = match self.total {
            Some(total) if total > 0 => {
                let pct = (done as f64 / total as f64 * 100.0).min(100.0);
                let filled = (pct / 5.0) as usize;
                format!(
                    "{} [{}{}] {:.1}/{:.1} MiB {pct:.0}%",
                    self.file,
                    "#".repeat(filled),
                    " ".repeat(20 - filled.min(20)),
                    mib(done),
                    mib(total)
                )
            }
            _ => format!("{} {:.1} MiB", self.file, mib(done)),
        };
        let _ = write!(std::io::stderr(), "\r\x1b[2K{line}");
    }

    fn finish(&mut self) {
        if self.shown {
            let _ = writeln!(std::io::stderr());
            self.shown = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::Secret;

    #[test]
    fn globs_follow_shell_rules() {
        assert!(glob_match("*.gguf", "dir/model.gguf"));
        assert!(glob_match("model.Q4_?.gguf", "model.Q4_1.gguf"));
        assert!(!glob_match("model.Q4_?.gguf", "model.Q4_K_M.gguf"));
        assert!(glob_match("m[!x].gguf", "m1.gguf"));
        assert!(!glob_match("m[!x].gguf", "mx.gguf"));
        assert!(glob_match("m[.+].gguf", "m+.gguf"));
        assert!(glob_match("a[b", "a[b"));
        assert!(glob_match("x.(1)+.gguf", "x.(1)+.gguf"));
        assert!(!glob_match("*.GGUF", "a.gguf"));
    }

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
