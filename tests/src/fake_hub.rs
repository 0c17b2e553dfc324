//! A loopback HTTP/1.1 server that stands in for the model hub, which tests
//! cannot reach. It serves fake repositories through the endpoints lmhost uses:
//!
//! - `GET /api/models/{repo}/revision/{revision}`: `{"id", "sha", "siblings": [{"rfilename"}]}`;
//! - `HEAD`/`GET /{repo}/resolve/{revision}/{file}`: small files answer `200` with a
//!   weak `ETag`; large ("LFS") files answer `302` to `/cdn/{sha256}` with
//!   `X-Linked-Etag` / `X-Linked-Size`, as the hub does;
//! - `GET /cdn/{sha256}`: the content, with `Range: bytes=N-` support.
//!
//! Every request is recorded (method, path, headers) so tests can count them and
//! check what was sent. [`Fault`]s make the next content request of a file
//! misbehave. Each connection gets one answer and is closed.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// One file of a fake repository.
#[derive(Debug, Clone)]
pub struct FakeFile {
    /// Path in the repository.
    pub name: String,
    /// Content.
    pub content: Vec<u8>,
    /// Served as a large file: redirect to the content host, `X-Linked-Etag` = sha256.
    pub lfs: bool,
}

impl FakeFile {
    /// A large file of `len` pseudo-random bytes derived from `seed`.
    pub fn lfs(name: &str, len: usize, seed: u64) -> Self {
        Self {
            name: name.into(),
            content: pseudo_random(len, seed),
            lfs: true,
        }
    }

    /// A small file with the given text.
    pub fn small(name: &str, text: &str) -> Self {
        Self {
            name: name.into(),
            content: text.as_bytes().to_vec(),
            lfs: false,
        }
    }

    /// sha256 of the content, lowercase hex.
    pub fn sha256(&self) -> String {
        hex(&sha256(&self.content))
    }

    /// The etag lmhost stores the file under (the sha256 for large files).
    pub fn etag(&self) -> String {
        if self.lfs {
            self.sha256()
        } else {
            self.sha256()[..40].to_string()
        }
    }
}

/// A fake repository at one commit.
#[derive(Debug, Clone)]
pub struct FakeRepo {
    /// `org/name`.
    pub id: String,
    /// The commit `main` points at (40 hex digits).
    pub commit: String,
    /// Its files.
    pub files: Vec<FakeFile>,
    /// When set, the repository is private: no token → 401, another token → 403.
    pub token: Option<String>,
}

/// A way the next content request of a file goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Announce the full length, send this many bytes, close the connection.
    CutAfter(usize),
    /// Send the right length, wrong bytes.
    Corrupt,
    /// Send (and announce) only this many bytes.
    Short(usize),
    /// The resolve endpoint answers 404 for the file (listed but gone).
    Gone,
}

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The request target.
    pub path: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
}

impl Recorded {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    repos: Vec<FakeRepo>,
    requests: Vec<Recorded>,
    faults: HashMap<String, VecDeque<Fault>>,
}

/// The running server; stops when dropped.
pub struct FakeHub {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FakeHub {
    /// Serve `repos` on a free port of 127.0.0.1.
    pub fn start(repos: Vec<FakeRepo>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            repos,
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = handle(conn, addr, &s);
                });
            }
        });
        Self { addr, state, stop }
    }

    /// `http://127.0.0.1:{port}`: the value for `HF_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Forget the recorded requests.
    pub fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }

    /// Make the next content request (or, for [`Fault::Gone`], resolve request) of `file` fail.
    pub fn fault_next(&self, file: &str, fault: Fault) {
        self.state
            .lock()
            .unwrap()
            .faults
            .entry(file.into())
            .or_default()
            .push_back(fault);
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Deterministic bytes (xorshift), so tests need no data files.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// SHA-256 (FIPS 180-4), small and slow: enough for fixture files.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
        0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
        0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
        0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
        0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
        0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
        0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            (hh, g, f, e, d, c, b, a) = (g, f, e, d.wrapping_add(t1), c, b, a, t1.wrapping_add(t2));
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Send only this many body bytes, then close (Content-Length stays the full length).
    cut_after: Option<usize>,
}

impl Answer {
    fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            cut_after: None,
        }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn error(status: u16, code: &str) -> Self {
        let mut a = Self::new(status).header("X-Error-Code", code);
        a.body = format!("{{\"error\": \"{code}\"}}").into_bytes();
        a
    }
}

fn handle(mut conn: TcpStream, addr: SocketAddr, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Ok(());
    };
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let request = Recorded {
        method: method.into(),
        path: path.into(),
        headers,
    };
    let answer = {
        let mut state = state.lock().unwrap();
        state.requests.push(request.clone());
        route(&request, addr, &mut state)
    };
    let head = request.method == "HEAD";
    let mut out = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", answer.status);
    let mut has_length = false;
    for (n, v) in &answer.headers {
        has_length |= n.eq_ignore_ascii_case("content-length");
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    if !has_length {
        out.push_str(&format!("Content-Length: {}\r\n", answer.body.len()));
    }
    out.push_str("\r\n");
    conn.write_all(out.as_bytes())?;
    if !head {
        let n = answer.cut_after.unwrap_or(answer.body.len()).min(answer.body.len());
        conn.write_all(&answer.body[..n])?;
    }
    conn.flush()?;
    conn.shutdown(Shutdown::Both)
}

fn route(req: &Recorded, addr: SocketAddr, state: &mut State) -> Answer {
    let path = req.path.split('?').next().unwrap_or_default();
    if let Some(rest) = path.strip_prefix("/cdn/") {
        return content(req, rest, state);
    }
    if let Some(rest) = path.strip_prefix("/api/models/") {
        let Some((repo_id, revision)) = rest.split_once("/revision/") else {
            return Answer::error(404, "RepoNotFound");
        };
        let revision = percent_decode(revision);
        let Some(repo) = state.repos.iter().find(|r| r.id == repo_id) else {
            return unknown_repo(req);
        };
        if let Some(denied) = authorize(req, repo) {
            return denied;
        }
        if revision != "main" && revision != repo.commit {
            return Answer::error(404, "RevisionNotFound");
        }
        let siblings: Vec<_> = repo
            .files
            .iter()
            .map(|f| serde_json::json!({"rfilename": f.name}))
            .collect();
        let mut a = Answer::new(200).header("Content-Type", "application/json");
        a.body = serde_json::json!({"id": repo.id, "sha": repo.commit, "siblings": siblings})
            .to_string()
            .into_bytes();
        return a;
    }
    let Some(repo) = state
        .repos
        .iter()
        .find(|r| path.starts_with(&format!("/{}/resolve/", r.id)))
        .cloned()
    else {
        return unknown_repo(req);
    };
    if let Some(denied) = authorize(req, &repo) {
        return denied;
    }
    let rest = &path[format!("/{}/resolve/", repo.id).len()..];
    let Some((revision, file)) = rest.split_once('/') else {
        return Answer::error(404, "EntryNotFound");
    };
    let (revision, file) = (percent_decode(revision), percent_decode(file));
    if revision != "main" && revision != repo.commit {
        return Answer::error(404, "RevisionNotFound");
    }
    let Some(f) = repo.files.iter().find(|f| f.name == file) else {
        return Answer::error(404, "EntryNotFound");
    };
    if let Some(queue) = state.faults.get_mut(&file) {
        if queue.front() == Some(&Fault::Gone) {
            queue.pop_front();
            return Answer::error(404, "EntryNotFound");
        }
    }
    if f.lfs {
        Answer::new(302)
            .header("Location", format!("http://{addr}/cdn/{}", f.sha256()))
            .header("X-Repo-Commit", repo.commit.clone())
            .header("ETag", format!("\"{}\"", &f.sha256()[24..]))
            .header("X-Linked-Etag", format!("\"{}\"", f.sha256()))
            .header("X-Linked-Size", f.content.len().to_string())
    } else {
        let mut a = serve(req, f, state).header("X-Repo-Commit", repo.commit.clone());
        a.headers.push(("ETag".into(), format!("W/\"{}\"", f.etag())));
        a
    }
}

/// As the hub: 401 without a token (it might be private), 404 with one.
fn unknown_repo(req: &Recorded) -> Answer {
    match req.header("authorization") {
        None => Answer::error(401, "RepoNotFound"),
        Some(_) => Answer::error(404, "RepoNotFound"),
    }
}

fn authorize(req: &Recorded, repo: &FakeRepo) -> Option<Answer> {
    let needed = repo.token.as_ref()?;
    match req.header("authorization") {
        None => Some(Answer::error(401, "RepoNotFound")),
        Some(v) if v == format!("Bearer {needed}") => None,
        Some(_) => Some(Answer::error(403, "GatedRepo")),
    }
}

fn content(req: &Recorded, sha: &str, state: &mut State) -> Answer {
    let file = state
        .repos
        .iter()
        .flat_map(|r| r.files.iter())
        .find(|f| f.lfs && f.sha256() == sha)
        .cloned();
    match file {
        Some(f) => serve(req, &f, state),
        None => Answer::error(404, "EntryNotFound"),
    }
}

/// The file's content, honouring `Range: bytes=N-` and any pending fault.
fn serve(req: &Recorded, f: &FakeFile, state: &mut State) -> Answer {
    let mut body = f.content.clone();
    let fault = if req.method == "GET" {
        state.faults.get_mut(&f.name).and_then(VecDeque::pop_front)
    } else {
        None
    };
    match fault {
        Some(Fault::Corrupt) => body.iter_mut().step_by(97).for_each(|b| *b ^= 0xff),
        Some(Fault::Short(n)) => body.truncate(n),
        _ => {}
    }
    let total = body.len();
    let range = req
        .header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse::<usize>().ok());
    let mut a = match range {
        Some(start) if start >= total => {
            return Answer::new(416).header("Content-Range", format!("bytes */{total}"));
        }
        Some(start) => {
            let mut a = Answer::new(206).header("Content-Range", format!("bytes {start}-{}/{total}", total - 1));
            a.body = body[start..].to_vec();
            a
        }
        None => {
            let mut a = Answer::new(200);
            a.body = body;
            a
        }
    };
    a = a.header("Content-Type", "application/octet-stream");
    if let Some(Fault::CutAfter(n)) = fault {
        a.cut_after = Some(n);
    }
    a
}

/// A host with a private home (no models folder), `registry` as its registry
/// file, downloading from `hub` into `<home>/hf/hub`.
pub fn host_with_hub(hub: &FakeHub, registry: &serde_json::Value, tag: &str) -> (lmhost::Host, crate::TempDir) {
    let home = crate::TempDir::new(tag);
    let file = home.path().join("registry.json");
    std::fs::write(&file, registry.to_string()).unwrap();
    let mut config = lmhost::HostConfig::with_home(home.path().to_path_buf());
    config.model_dirs = vec![];
    config.registry_files = vec![file];
    config.hub = lmhost::engines::hub::HubOptions {
        endpoint: hub.endpoint(),
        cache_dir: home.path().join("hf/hub"),
        token: None,
        offline: false,
    };
    (lmhost::Host::with_config(config).unwrap(), home)
}
