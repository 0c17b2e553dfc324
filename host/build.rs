//! Builds the adapter guests (`../guests`, its own workspace) for `wasm32-wasip2`
//! so the built-in adapters can be embedded in the library and binary.
//!
//! The guests get their own target directory beside this build's, and a clean
//! environment: the outer cargo's flags, wrappers (clippy's included) and target
//! dir must not leak into a build for another target.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const GUESTS: &[&str] = &[
    "chat_template",
    "template_renderer",
    "hostile",
    "openai_chat",
    "anthropic_messages",
    "google_gemini",
    "cohere_chat",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let guests = root.join("guests");
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!("cargo:rerun-if-changed={}", guests.join("Cargo.toml").display());
    println!("cargo:rerun-if-changed={}", guests.join("Cargo.lock").display());
    println!("cargo:rerun-if-changed={}", guests.join("rust").display());
    println!("cargo:rerun-if-changed={}", guests.join("test").display());
    println!(
        "cargo:rerun-if-changed={}",
        root.join("host").join("template").display()
    );
    rerun_for_sources(&root.join("host").join("template"));
    rerun_for_sources(&guests.join("rust"));
    rerun_for_sources(&guests.join("test"));

    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    // OUT_DIR is <target>/<profile>/build/lmhost-<hash>/out: keep the guest target
    // beside it, stable across changes of this build script's hash.
    let target_dir = out_dir
        .ancestors()
        .nth(3)
        .map(|profile_dir| profile_dir.join("wasm-guests"))
        .unwrap_or_else(|| out_dir.join("wasm-guests"));

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&guests)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target_dir);
    for (key, _) in env::vars() {
        let leaks = key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_NET_OFFLINE";
        if leaks || key.starts_with("RUSTC") || key == "RUSTFLAGS" || key == "RUSTDOC" {
            cmd.env_remove(&key);
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the guests: {e}"));
    if !status.success() {
        panic!(
            "building the adapter guests in {} failed; is the wasm target installed? \
             Run `rustup target add wasm32-wasip2` (or `make setup`).",
            guests.display()
        );
    }
    let wasm_dir = target_dir.join("wasm32-wasip2").join("release");
    for guest in GUESTS {
        let path = wasm_dir.join(format!("{guest}.wasm"));
        assert!(path.is_file(), "guest build produced no {}", path.display());
    }
    println!("cargo:rustc-env=LMHOST_GUEST_DIR={}", wasm_dir.display());
}

fn rerun_for_sources(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rerun_for_sources(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
