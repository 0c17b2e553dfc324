//! The hub's HTTP side, on `reqwest`'s blocking client: the file list, a file's
//! metadata (`HEAD`), and the download of its content into the cache (resume,
//! size and sha256 checks, atomic rename). Callers are synchronous: the engine
//! loaders, and `spawn_blocking` threads in the server, never an async task
//! (the blocking client runs its own runtime on a thread of its own).

use std::error::Error as _;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use reqwest::header::{HeaderMap, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_LENGTH, RANGE};
use reqwest::redirect::Policy;
use serde_json::Value;

use super::cache::{cache_error, is_commit, link_snapshot, sha256_file};
use super::progress::Progress;
use super::{HubError, HubOptions};

/// What stays as it is in a URL path segment: letters, digits and `-._~`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
/// The same, `/` kept: a path of segments.
const PATH: &AsciiSet = &SEGMENT.remove(b'/');

/// Percent-encode for a URL path; `/` is kept when `keep_slash`.
pub(super) fn encode(s: &str, keep_slash: bool) -> String {
    utf8_percent_encode(s, if keep_slash { PATH } else { SEGMENT }).to_string()
}

/// A repository's files at a revision.
pub(super) struct Listing {
    pub(super) commit: String,
    pub(super) files: Vec<String>,
}

/// What the `HEAD` of a file says.
struct FileMeta {
    etag: String,
    size: Option<u64>,
}

pub(super) struct Client<'a> {
    opts: &'a HubOptions,
    /// For `HEAD`: redirects handled by hand.
    plain: Http,
    /// For the listing and content: redirects followed (`reqwest` drops the
    /// token when a redirect leaves the host).
    follow: Http,
}

impl<'a> Client<'a> {
    pub(super) fn new(opts: &'a HubOptions) -> Result<Self, HubError> {
        let loopback = is_loopback(&opts.endpoint);
        let build = |policy: Policy| {
            let mut builder = Http::builder()
                .connect_timeout(Duration::from_secs(10))
                // The blocking client's timeout bounds each wait: for the answer, then for each read.
                .timeout(Duration::from_secs(60))
                .user_agent(concat!("lmhost/", env!("CARGO_PKG_VERSION")))
                .redirect(policy);
            if loopback {
                // A proxy from the environment cannot reach this machine's loopback.
                builder = builder.no_proxy();
            }
            builder.build().map_err(|e| HubError::Unreachable {
                what: "the hub client".into(),
                url: opts.endpoint.clone(),
                message: error_chain(&e),
            })
        };
        Ok(Self {
            opts,
            plain: build(Policy::none())?,
            follow: build(Policy::limited(10))?,
        })
    }

    fn request(&self, http: &Http, method: reqwest::Method, url: &str) -> RequestBuilder {
        let req = http.request(method, url).header(ACCEPT_ENCODING, "identity");
        match &self.opts.token {
            Some(token) if !token.expose().is_empty() => {
                req.header(AUTHORIZATION, format!("Bearer {}", token.expose()))
            }
            _ => req,
        }
    }

    /// Send; an error status becomes [`HubError::Status`] with a hint.
    fn send(&self, req: RequestBuilder, what: &str, url: &str, missing: &str) -> Result<Response, HubError> {
        let resp = req.send().map_err(|e| HubError::Unreachable {
            what: what.into(),
            url: url.into(),
            message: error_chain(&e),
        })?;
        let status = resp.status().as_u16();
        if status >= 400 {
            return Err(HubError::Status {
                what: what.into(),
                url: url.into(),
                status,
                hint: self.hint(status, resp.headers(), missing),
            });
        }
        Ok(resp)
    }

    fn hint(&self, status: u16, headers: &HeaderMap, missing: &str) -> String {
        let has_token = self.opts.token.is_some();
        let code = header(headers, "x-error-code").unwrap_or_default();
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
        if let Some(message) = header(headers, "x-error-message") {
            let message: String = message.chars().take(200).collect();
            hint.push_str(&format!(" (the hub says: {message})"));
        }
        hint
    }

    pub(super) fn listing(&self, repo: &str, revision: &str) -> Result<Listing, HubError> {
        let url = format!(
            "{}/api/models/{repo}/revision/{}",
            self.opts.endpoint,
            encode(revision, false)
        );
        let what = format!("repository `{repo}` (revision `{revision}`)");
        let missing = format!("repository `{repo}` or its revision `{revision}` not found");
        let resp = self.send(
            self.request(&self.follow, reqwest::Method::GET, &url),
            &what,
            &url,
            &missing,
        )?;
        let bad = |message: String| HubError::BadResponse {
            what: what.clone(),
            url: url.clone(),
            message,
        };
        let mut body = String::new();
        resp.take(64 << 20)
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
            let r = self.send(
                self.request(&self.plain, reqwest::Method::HEAD, &current),
                what,
                &current,
                &missing,
            )?;
            let relative = r
                .status()
                .is_redirection()
                .then(|| header(r.headers(), "location").filter(|l| l.starts_with('/')))
                .flatten()
                .map(str::to_string);
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
        let headers = resp.headers();
        if let Some(answered) = header(headers, "x-repo-commit") {
            if answered != commit {
                return Err(bad(format!("answered for commit {answered}, not {commit}")));
            }
        }
        let etag = header(headers, "x-linked-etag")
            .or_else(|| header(headers, "etag"))
            .map(normalize_etag)
            .ok_or_else(|| bad(format!("no ETag for `{file}` (is the endpoint a model hub?)")))?;
        if etag.is_empty()
            || !etag.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            || etag.starts_with('.')
        {
            return Err(bad(format!("unusable ETag `{etag}`")));
        }
        let size = match header(headers, "x-linked-size") {
            Some(s) => Some(s.trim().parse().map_err(|_| bad(format!("bad X-Linked-Size `{s}`")))?),
            None if resp.status() == 200 => header(headers, "content-length").and_then(|s| s.trim().parse().ok()),
            None => None,
        };
        Ok(FileMeta { etag, size })
    }

    /// Bring one file of `commit` into the cache: blob, then snapshot link.
    pub(super) fn download(&self, repo_dir: &Path, repo: &str, commit: &str, file: &str) -> Result<(), HubError> {
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
            let get = || self.request(&self.follow, reqwest::Method::GET, url);
            let req = if offset > 0 {
                get().header(RANGE, format!("bytes={offset}-"))
            } else {
                get()
            };
            let resp = match self.send(req, what, url, &missing) {
                Err(HubError::Status { status: 416, .. }) if offset > 0 => {
                    // The partial file does not fit the content: start over.
                    fs::remove_file(&partial).map_err(|e| cache_error(&partial, e))?;
                    offset = 0;
                    self.send(get(), what, url, &missing)?
                }
                other => other?,
            };
            if offset > 0 && resp.status() != 206 {
                offset = 0; // The server sent the whole file.
            }
            if offset > 0 {
                let range = header(resp.headers(), "content-range").unwrap_or_default();
                if !range.starts_with(&format!("bytes {offset}-")) {
                    return Err(HubError::BadResponse {
                        what: what.into(),
                        url: url.into(),
                        message: format!("asked for bytes from {offset}, got range `{range}`"),
                    });
                }
            }
            let length: Option<u64> =
                header(resp.headers(), CONTENT_LENGTH.as_str()).and_then(|s| s.trim().parse().ok());
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
            let progress = Progress::new(file, offset, expected);
            let mut reader = resp;
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
                            cause: read_error_kind(&e),
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

/// A header's value, when it is text.
fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `scheme://host[:port]` of a URL.
pub(super) fn origin(url: &str) -> &str {
    let start = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[start..].find('/') {
        Some(i) => &url[..start + i],
        None => url,
    }
}

/// Whether the endpoint is this machine (`localhost`, `127.0.0.0/8`, `::1`).
fn is_loopback(endpoint: &str) -> bool {
    let Some(url) = reqwest::Url::parse(endpoint).ok() else {
        return false;
    };
    match url.host_str() {
        Some(host) if host.eq_ignore_ascii_case("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// A transport error and its causes, without the URL (given separately).
fn error_chain(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    if let Some(url) = e.url() {
        message = message.replace(&format!(" for url ({url})"), "");
    }
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

/// Why a read of the content failed: the I/O kind underneath, a timeout, or
/// (a connection closed before the announced length) an unexpected end.
fn read_error_kind(e: &std::io::Error) -> std::io::ErrorKind {
    if e.kind() != std::io::ErrorKind::Other {
        return e.kind();
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|inner| inner as _);
    while let Some(cause) = source {
        if let Some(re) = cause.downcast_ref::<reqwest::Error>() {
            if re.is_timeout() {
                return std::io::ErrorKind::TimedOut;
            }
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() != std::io::ErrorKind::Other {
                return io.kind();
            }
        }
        source = cause.source();
    }
    std::io::ErrorKind::UnexpectedEof
}

/// `W/"abc"` → `abc`.
pub(super) fn normalize_etag(etag: &str) -> String {
    etag.trim().trim_start_matches("W/").trim_matches('"').to_string()
}
