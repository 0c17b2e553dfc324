//! llama.cpp's non-CPU backend modules (a CUDA build's `libggml-cuda.so`),
//! found beside the CPU variants: one that cannot load is reported with the
//! loader's reason and the CPU answers; a model that asks for the GPU is told
//! why there is none.
//!
//! The CUDA build itself (`scripts/build-cuda.sh`, the toolkit from PyPI,
//! about an hour on 2 cores) is checked by an `#[ignore]`d test that `make
//! test` runs when the build is there (`LMHOST_CUDA_BUILD` names another
//! one): on a machine without the NVIDIA driver its module does not load, and
//! the binary runs on the CPU.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lmhost_tests::{smollm, TempDir};

/// The question the SmolLM2 tests ask (the answer names Paris).
const QUESTION: &str = "What is the capital of France? Answer in one sentence.";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `binary` (a copy or link of an lmhost binary, with its libraries beside
/// it) run with a fresh home, no library path and no CPU override.
fn lmhost_at(binary: &Path, home: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .current_dir(lmhost_tests::repo_root())
        .env("LMHOST_HOME", home)
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("LMHOST_LLAMA_CPU");
    command
}

fn devices(binary: &Path, home: &Path) -> (Output, serde_json::Value) {
    let out = lmhost_at(binary, home)
        .args(["list", "devices", "--json"])
        .output()
        .expect("lmhost runs");
    let rows = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out, rows)
}

fn cpu_row(rows: &serde_json::Value) -> &serde_json::Value {
    rows.as_array()
        .and_then(|r| r.iter().find(|d| d["kind"] == "cpu"))
        .unwrap_or_else(|| panic!("no cpu device in {rows}"))
}

/// The test build's binary in a folder of its own: the binary copied (its
/// RPATH is `$ORIGIN`, the folder it is in), llama.cpp's libraries and
/// modules linked beside it.
fn install_copy(dir: &Path) -> PathBuf {
    let exe = Path::new(env!("CARGO_BIN_EXE_lmhost-under-test"));
    let binary = dir.join("lmhost");
    if std::fs::hard_link(exe, &binary).is_err() {
        std::fs::copy(exe, &binary).unwrap();
    }
    for entry in std::fs::read_dir(exe.parent().unwrap()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("lib") && name.contains(".so") {
            std::os::unix::fs::symlink(entry.path(), dir.join(&name)).unwrap();
        }
    }
    binary
}

/// The default SmolLM2 entry (on the CPU) answers the question.
fn answers_on_the_cpu(binary: &Path, home: &Path) {
    let out = lmhost_at(binary, home)
        .args(["run", "-m", "SmolLM2-135M-Instruct", "-l", "12", QUESTION])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Paris"), "{}", text(&out.stdout));
}

#[test]
fn a_backend_module_that_cannot_load_is_reported_and_the_cpu_answers() {
    let tmp = TempDir::new("backend-modules");
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let binary = install_copy(&bin);
    // Not a shared library at all: the loader refuses it, as it refuses a
    // CUDA module whose driver is missing.
    std::fs::write(bin.join("libggml-cuda.so"), "not a module\n").unwrap();
    let (out, rows) = devices(&binary, tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cpu = cpu_row(&rows);
    assert_eq!(Path::new(cpu["module"].as_str().unwrap()).parent(), Some(bin.as_path()));
    let modules = cpu["modules"]
        .as_array()
        .unwrap_or_else(|| panic!("no modules in {cpu}"));
    assert_eq!(modules.len(), 1, "{modules:?}");
    let cuda = &modules[0];
    assert_eq!(
        (cuda["backend"].as_str(), cuda["loaded"].as_bool()),
        (Some("cuda"), Some(false))
    );
    let error = cuda["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("libggml-cuda.so"),
        "the loader's reason names the file: {cuda}"
    );
    assert!(rows.as_array().unwrap().iter().all(|d| d["kind"] != "gpu"), "{rows}");
    // The text listing gives the same reason.
    let out = lmhost_at(&binary, tmp.path())
        .args(["list", "devices"])
        .output()
        .unwrap();
    let listing = text(&out.stdout);
    assert!(
        listing.contains("backend module cuda: not loaded (") && listing.contains(error),
        "{listing}"
    );

    if smollm().is_none() {
        return;
    }
    answers_on_the_cpu(&binary, tmp.path());
    // Asking for the GPU names the module and why it did not load.
    let out = lmhost_at(&binary, tmp.path())
        .args([
            "run",
            "-m",
            r#"{"model_name": "SmolLM2-135M-Instruct", "execute_on": "gpu"}"#,
            "hi",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("the cuda module") && err.contains("did not load") && err.contains("execute_on: cpu"),
        "{err}"
    );
}

/// Where `scripts/build-cuda.sh` puts its build.
fn cuda_build() -> Option<PathBuf> {
    lmhost_tests::script_build("LMHOST_CUDA_BUILD", "target-cuda/release/lmhost")
}

/// Whether this machine has the NVIDIA driver's library where the loader finds it.
fn has_nvidia_driver() -> bool {
    [
        "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
        "/usr/lib64/libcuda.so.1",
        "/usr/lib/libcuda.so.1",
    ]
    .iter()
    .any(|p| Path::new(p).exists())
}

#[test]
#[ignore = "needs scripts/build-cuda.sh's build (about an hour); `make test` runs it when present"]
fn the_cuda_build_runs_on_the_cpu_where_there_is_no_gpu() {
    let binary = cuda_build().expect("no CUDA build: run scripts/build-cuda.sh, or set LMHOST_CUDA_BUILD");
    let tmp = TempDir::new("cuda-build");
    let (out, rows) = devices(&binary, tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cpu = cpu_row(&rows);
    let modules = cpu["modules"]
        .as_array()
        .unwrap_or_else(|| panic!("no modules in {cpu}"));
    let cuda = modules
        .iter()
        .find(|m| m["backend"] == "cuda")
        .unwrap_or_else(|| panic!("the CUDA build has no cuda module beside its CPU modules: {cpu}"));
    let gpus = rows.as_array().unwrap().iter().filter(|d| d["kind"] == "gpu").count();
    if has_nvidia_driver() {
        // With the driver the module loads; the GPUs it finds are devices.
        assert_eq!(cuda["loaded"], true, "{cuda}");
        eprintln!("CUDA module loaded, {gpus} GPU device(s)");
    } else {
        assert_eq!(cuda["loaded"], false, "{cuda}");
        assert!(cuda["error"].as_str().unwrap().contains("libcuda.so.1"), "{cuda}");
        assert_eq!(gpus, 0, "{rows}");
    }
    if smollm().is_none() {
        return;
    }
    answers_on_the_cpu(&binary, tmp.path());
}
