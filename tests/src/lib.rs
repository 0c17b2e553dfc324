//! Helpers shared by the integration tests: the real model, temporary homes,
//! hosts, the `lmhost` binary ([`lmhost_command`]), test guests, and loopback
//! stand-ins for the model hub ([`fake_hub`]) and for vendor APIs ([`fixture_api`]).
//!
//! A test that needs the SmolLM2 GGUF is skipped with a message when the file is
//! missing, and fails instead when `CI` is set: CI must run everything.

pub mod fake_hub;
pub mod fixture_api;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use lmhost::{Host, HostConfig};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The real clemcore registry in `../shared/compat`, when it is there.
pub fn compat_registry() -> Option<PathBuf> {
    let dir = repo_root().parent()?.join("shared").join("compat");
    std::fs::read_dir(&dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
}

/// A binary the repo's scripts build outside `make` (llama.cpp's server, the
/// CUDA build): the file `var` names, else `cached` under `~/.cache/lmhost/`,
/// where the scripts put it; `None` when it is not there.
pub fn script_build(var: &str, cached: &str) -> Option<PathBuf> {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        home.join(".cache/lmhost").join(cached)
    });
    path.is_file().then_some(path)
}

/// The default model's file name.
pub const SMOLLM_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The SmolLM2 GGUF, or `None` (test skipped) when absent outside CI.
pub fn smollm() -> Option<PathBuf> {
    let path = repo_root().join("models").join(SMOLLM_FILE);
    if path.is_file() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!("{} is missing; CI must run `make model` first", path.display());
    }
    eprintln!("skipped: {} is missing (run `make model`)", path.display());
    None
}

/// The `lmhost` command line at `exe`, as a user runs it: `lmhost` as `argv[0]`,
/// from the repository root.
///
/// The integration tests pass their `lmhost-under-test` binary (see
/// tests/Cargo.toml): a test gets `CARGO_BIN_EXE_*` only for binaries of its own
/// package, and `cargo test --workspace` builds another package's binary only for
/// that package's own tests, so this package compiles host/src/main.rs (the
/// `lmhost` binary's whole source) itself, and cargo rebuilds it with the library.
pub fn lmhost_command(exe: &str) -> Command {
    assert!(
        Path::new(exe).is_file(),
        "{exe} is missing: run the tests through cargo (`cargo test --release --workspace`), which builds it"
    );
    let mut command = Command::new(exe);
    command.arg0("lmhost").current_dir(repo_root());
    command
}

/// A temporary folder removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty folder under the system temp dir.
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("lmhost-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A host with a private home, the repository's `models/` to find weights, and
/// `registry_json` (if any) as a registry file consulted first.
pub fn host(registry_json: Option<&str>) -> (Host, TempDir) {
    let home = TempDir::new("home");
    let mut config = HostConfig::with_home(home.path().to_path_buf());
    config.model_dirs = vec![repo_root().join("models")];
    if let Some(json) = registry_json {
        let file = home.path().join("test_registry.json");
        std::fs::write(&file, json).unwrap();
        config.registry_files.push(file);
    }
    (Host::with_config(config).expect("host starts"), home)
}

/// One host with the repository's models, shared by every test of the binary
/// that needs the real model (it loads once); `None` (skipped) without the SmolLM2 GGUF.
pub fn smollm_host() -> Option<&'static Host> {
    static HOST: std::sync::OnceLock<Option<(Host, TempDir)>> = std::sync::OnceLock::new();
    HOST.get_or_init(|| smollm().map(|_| host(None)))
        .as_ref()
        .map(|(h, _)| h)
}

/// A test guest built by host/build.rs (e.g. `hostile`).
pub fn guest(name: &str) -> PathBuf {
    Path::new(lmhost::adapters::GUEST_DIR).join(format!("{name}.wasm"))
}

/// ChatML, written out by hand: what SmolLM2's template must render.
pub fn chatml(messages: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (role, content) in messages {
        out.push_str(&format!("<|im_start|>{role}\n{content}<|im_end|>\n"));
    }
    out.push_str("<|im_start|>assistant\n");
    out
}

/// Run `command` to the end like [`Command::output`], and also return its own
/// peak resident memory in KiB: its `VmHWM`, read from `/proc` every 2 ms until
/// it exits (the high-water mark only grows, so the last reading holds every
/// peak but one in its last 2 ms). Not `wait4`'s or `RUSAGE_CHILDREN`'s
/// `ru_maxrss`: Linux carries the spawning process's own peak into a child's
/// at `exec`, so a test process holding a model makes every child look big.
pub fn output_and_peak_rss(command: &mut Command) -> (std::process::Output, i64) {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).expect("the pipe reads");
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = std::fs::read_to_string(&status_file).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        }) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().expect("the child is waited on") {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    let output = std::process::Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    (output, peak)
}
