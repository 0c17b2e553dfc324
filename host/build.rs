//! Builds the adapter guests (`../guests`, its own workspace) for `wasm32-wasip2`
//! so the built-in adapters can be embedded in the library and binary, and
//! writes `$OUT_DIR/guests.rs` (the guest tables `src/adapters/builtin.rs`
//! includes) from [`GUESTS`], the one list of guests.
//!
//! The guests get their own target directory beside this build's, and a clean
//! environment: the outer cargo's flags, wrappers (clippy's included) and target
//! dir must not leak into a build for another target.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What a guest is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    /// An adapter compiled into lmhost, found by its registry name.
    Builtin,
    /// A component the host uses itself (not an adapter).
    Internal,
    /// Built for the tests only, never embedded.
    Test,
}

/// Every guest: the workspace member (a folder under `guests/`), the name
/// registries use for it, and its role. The one list: the build checks it
/// against the workspace's members and generates `builtin.rs`'s tables from it.
const GUESTS: &[(&str, &str, Role)] = &[
    ("rust/chat-template", "chat-template", Role::Builtin),
    ("rust/openai-chat", "openai-chat", Role::Builtin),
    ("rust/anthropic-messages", "anthropic-messages", Role::Builtin),
    ("rust/google-gemini", "google-gemini", Role::Builtin),
    ("rust/cohere-chat", "cohere-chat", Role::Builtin),
    ("rust/template-renderer", "template-renderer", Role::Internal),
    ("test/hostile", "hostile", Role::Test),
];

/// Workspace members that are libraries, not components.
const LIBRARIES: &[&str] = &["rust/remote-kit", "rust/chat-formats"];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let guests = root.join("guests");
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!("cargo:rerun-if-changed={}", manifest_dir.join("wit").display());
    println!("cargo:rerun-if-changed={}", guests.join("Cargo.toml").display());
    println!("cargo:rerun-if-changed={}", guests.join("Cargo.lock").display());
    println!("cargo:rerun-if-changed={}", guests.join("rust").display());
    println!("cargo:rerun-if-changed={}", guests.join("test").display());
    println!(
        "cargo:rerun-if-changed={}",
        root.join("host").join("template").display()
    );
    rerun_for_sources(&root.join("host").join("template"));
    rerun_for_sources(&manifest_dir.join("wit"));
    rerun_for_sources(&guests.join("rust"));
    rerun_for_sources(&guests.join("test"));

    check_members(&guests);

    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    // OUT_DIR is <target>/<profile>/build/lmhost-<hash>/out: keep the guest target
    // beside it, stable across changes of this build script's hash.
    let target_dir = out_dir
        .ancestors()
        .nth(3)
        .map(|profile_dir| profile_dir.join("wasm-guests"))
        .unwrap_or_else(|| out_dir.join("wasm-guests"));

    if let Some(profile_dir) = out_dir.ancestors().nth(3) {
        llama_libraries(profile_dir);
    }

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
    for (_, name, _) in GUESTS {
        let path = wasm_dir.join(file_name(name));
        assert!(path.is_file(), "guest build produced no {}", path.display());
    }
    println!("cargo:rustc-env=LMHOST_GUEST_DIR={}", wasm_dir.display());
    let code = guest_table(&wasm_dir);
    std::fs::write(out_dir.join("guests.rs"), code).expect("cannot write guests.rs");
}

/// llama.cpp and ggml are shared libraries (feature `llama`: llama-cpp-sys-2's
/// `dynamic-backends`). They are placed in the profile folder and its `deps/`
/// and `examples/`, beside the binaries, the test binaries and the examples,
/// which find them there (an rpath of `$ORIGIN`; DT_RPATH rather than
/// DT_RUNPATH, so that it also serves the libraries' dependencies on each
/// other), with the CPU backend modules, where `engines/llama/cpu.rs` looks
/// first. (llama-cpp-sys-2 links `libllama.so` and the like there itself, but
/// those are its symlinks to the versioned names the binaries need, which it
/// does not place: its links dangle.) Symlinks are placed as symlinks, files as
/// hard links (a copy across file systems).
fn llama_libraries(profile_dir: &Path) {
    let Ok(modules) = env::var("DEP_LLAMA_BACKENDS_DIR") else {
        return;
    };
    println!("cargo:rerun-if-env-changed=DEP_LLAMA_BACKENDS_DIR");
    for kind in ["bins", "examples"] {
        println!("cargo:rustc-link-arg-{kind}=-Wl,-rpath,$ORIGIN");
        println!("cargo:rustc-link-arg-{kind}=-Wl,--disable-new-dtags");
    }
    let modules = PathBuf::from(modules);
    let libs = modules.parent().map(|out| out.join("lib")).unwrap_or_default();
    let mut files = Vec::new();
    for (dir, prefix) in [(&modules, "libggml-"), (&libs, "lib")] {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read llama.cpp's {}: {e}", dir.display()));
        files.extend(entries.flatten().map(|e| e.path()).filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.starts_with(prefix) && name.contains(".so")
        }));
    }
    assert!(
        files.iter().any(|f| f.starts_with(&modules)),
        "llama.cpp's backend folder {} holds no modules",
        modules.display()
    );
    for dir in [
        profile_dir.to_path_buf(),
        profile_dir.join("deps"),
        profile_dir.join("examples"),
    ] {
        if !dir.is_dir() {
            continue;
        }
        for file in &files {
            let dest = dir.join(file.file_name().unwrap());
            // Replaced every time: a library rebuilt since must not stay stale.
            let _ = std::fs::remove_file(&dest);
            let placed = match std::fs::read_link(file) {
                Ok(target) => std::os::unix::fs::symlink(target, &dest),
                Err(_) => std::fs::hard_link(file, &dest).or_else(|_| std::fs::copy(file, &dest).map(|_| ())),
            };
            placed.unwrap_or_else(|e| panic!("cannot place {} in {}: {e}", file.display(), dir.display()));
        }
    }
}

/// The component file cargo writes for the package `name`.
fn file_name(name: &str) -> String {
    format!("{}.wasm", name.replace('-', "_"))
}

/// Panics unless the guests workspace lists exactly the members of [`GUESTS`]
/// and [`LIBRARIES`]: a guest added in one place and not the other is a build error.
fn check_members(guests: &Path) {
    let manifest = std::fs::read_to_string(guests.join("Cargo.toml")).expect("cannot read guests/Cargo.toml");
    let start = manifest.find("members").expect("guests/Cargo.toml lists no members");
    let list = &manifest[start..];
    let list = &list[list.find('[').unwrap() + 1..list.find(']').unwrap()];
    let mut members: Vec<&str> = list
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        .collect();
    let mut known: Vec<&str> = GUESTS
        .iter()
        .map(|(m, _, _)| *m)
        .chain(LIBRARIES.iter().copied())
        .collect();
    members.sort_unstable();
    known.sort_unstable();
    assert_eq!(
        members, known,
        "guests/Cargo.toml's members differ from host/build.rs's GUESTS and LIBRARIES: keep them in step"
    );
    for (member, name, _) in GUESTS {
        let package = std::fs::read_to_string(guests.join(member).join("Cargo.toml"))
            .unwrap_or_else(|e| panic!("cannot read the manifest of {member}: {e}"));
        assert!(
            package.contains(&format!("name = \"{name}\"")),
            "guests/{member} is not the package `{name}`"
        );
    }
}

/// `guests.rs`, included by `host/src/adapters/builtin.rs`: the built-in
/// adapters, the renderer and every guest's file, from [`GUESTS`].
fn guest_table(wasm_dir: &Path) -> String {
    let mut code = String::from("// Generated by host/build.rs from its GUESTS table.\n\n");
    code.push_str("/// Every guest the build made, test guests included: (name, file name, role).\n");
    code.push_str("#[doc(hidden)]\npub const GUESTS: &[(&str, &str, GuestRole)] = &[\n");
    for (_, name, role) in GUESTS {
        code.push_str(&format!(
            "    ({name:?}, {:?}, GuestRole::{role:?}),\n",
            file_name(name)
        ));
    }
    code.push_str("];\n\n/// Names of the built-in adapters, as registries name them.\n");
    code.push_str("pub const BUILTIN_ADAPTERS: &[&str] = &[\n");
    for (_, name, _) in GUESTS.iter().filter(|g| g.2 == Role::Builtin) {
        code.push_str(&format!("    {name:?},\n"));
    }
    code.push_str("];\n\n/// The component bytes of a built-in adapter.\n");
    code.push_str("pub fn builtin_adapter(name: &str) -> Option<&'static [u8]> {\n    match name {\n");
    for (_, name, _) in GUESTS.iter().filter(|g| g.2 == Role::Builtin) {
        let path = wasm_dir.join(file_name(name));
        code.push_str(&format!(
            "        {name:?} => Some(include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    code.push_str("        _ => None,\n    }\n}\n\n");
    let renderer = GUESTS
        .iter()
        .find(|g| g.2 == Role::Internal && g.1 == "template-renderer")
        .expect("GUESTS has no template-renderer");
    code.push_str("/// The host-internal template renderer (see `template.rs`).\n");
    code.push_str(&format!(
        "pub(crate) const TEMPLATE_RENDERER: &[u8] = include_bytes!({:?});\n",
        wasm_dir.join(file_name(renderer.1)).display().to_string()
    ));
    code
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
