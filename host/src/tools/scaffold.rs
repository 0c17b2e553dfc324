//! `lmhost adapter new` and `lmhost adapter build`: adapter projects in Rust,
//! Python and JavaScript.
//!
//! A new project is lmhost's own chat-template adapter in that language, the
//! reference adapter in `guests/` compiled in with `include_str!`: only its first
//! line names the project and its build settings become standalone (see
//! [`Lang::files`]), so a scaffold cannot drift from its reference. Around it come
//! a `build.sh` and a README (the templates under `scaffold/`) and a copy of
//! the contract the references implement, `wit/0.2/adapter.wit`. The Rust
//! project carries the `chat-formats` library the reference uses, as a path
//! dependency; the Python one its `calls.py`. Building a project runs its language's toolchain: cargo
//! (`wasm32-wasip2`), componentize-py or componentize-js, and writes
//! `<folder>/<name>.wasm`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

const WIT: &str = include_str!("../../../wit/0.2/adapter.wit");
/// The guests' lock file: a Rust project starts from the versions lmhost's own adapters use.
const CARGO_LOCK: &str = include_str!("../../../guests/Cargo.lock");
/// The guests' workspace manifest: the versions and release profile the Rust
/// reference inherits, written out in a standalone project.
const GUESTS_MANIFEST: &str = include_str!("../../../guests/Cargo.toml");
const README: &str = include_str!("scaffold/README.md");

/// A file of a new project.
#[derive(Clone, Copy)]
enum Source {
    /// A template of the scaffold's own (`{{name}}` and the like filled in).
    Template(&'static str),
    /// A reference adapter's file, with `edits` (each `(from, to)` must occur;
    /// `to` is filled in like a template).
    Reference {
        path: &'static str,
        text: &'static str,
        edits: &'static [(&'static str, &'static str)],
    },
    /// The Rust reference's `Cargo.toml`, standalone.
    RustManifest,
    /// The `Cargo.toml` of the `chat-formats` library, as a path dependency of it.
    FormatsManifest,
    /// Copied as it is.
    Verbatim(&'static str),
}

const RUST_REFERENCE_MANIFEST: &str = include_str!("../../../guests/rust/chat-template/Cargo.toml");
const FORMATS_MANIFEST: &str = include_str!("../../../guests/rust/chat-formats/Cargo.toml");

const RUST: &[(&str, Source)] = &[
    ("Cargo.toml", Source::RustManifest),
    (
        "src/lib.rs",
        Source::Reference {
            path: "guests/rust/chat-template/src/lib.rs",
            text: include_str!("../../../guests/rust/chat-template/src/lib.rs"),
            edits: &[
                (
                    "//! `chat-template`: the adapter for local models, with clembench's semantics,\n\
                     //! and tool calls and reasoning as each model family writes them.\n",
                    "//! `{{name}}`: an lmhost adapter, scaffolded by `lmhost adapter new --lang rust` from\n\
                     //! lmhost's `chat-template`, the adapter for local models, with clembench's semantics,\n\
                     //! and tool calls and reasoning as each model family writes them.\n\
                     //! Change what you need, then `lmhost adapter build` and `lmhost adapter check {{name}}.wasm`.\n",
                ),
                ("    path: \"../../../wit/0.2\",\n", "    path: \"wit\",\n"),
            ],
        },
    ),
    (
        "src/context.rs",
        Source::Reference {
            path: "guests/rust/chat-template/src/context.rs",
            text: include_str!("../../../guests/rust/chat-template/src/context.rs"),
            edits: &[],
        },
    ),
    (
        "src/post.rs",
        Source::Reference {
            path: "guests/rust/chat-template/src/post.rs",
            text: include_str!("../../../guests/rust/chat-template/src/post.rs"),
            edits: &[],
        },
    ),
    ("chat-formats/Cargo.toml", Source::FormatsManifest),
    (
        "chat-formats/src/lib.rs",
        Source::Reference {
            path: "guests/rust/chat-formats/src/lib.rs",
            text: include_str!("../../../guests/rust/chat-formats/src/lib.rs"),
            edits: &[],
        },
    ),
    (
        "chat-formats/src/parser.rs",
        Source::Reference {
            path: "guests/rust/chat-formats/src/parser.rs",
            text: include_str!("../../../guests/rust/chat-formats/src/parser.rs"),
            edits: &[],
        },
    ),
    (
        "chat-formats/src/tests.rs",
        Source::Reference {
            path: "guests/rust/chat-formats/src/tests.rs",
            text: include_str!("../../../guests/rust/chat-formats/src/tests.rs"),
            edits: &[],
        },
    ),
    ("build.sh", Source::Template(include_str!("scaffold/rust/build.sh"))),
    ("Cargo.lock", Source::Verbatim(CARGO_LOCK)),
];
const PYTHON: &[(&str, Source)] = &[
    (
        "app.py",
        Source::Reference {
            path: "guests/python/chat-template-py/app.py",
            text: include_str!("../../../guests/python/chat-template-py/app.py"),
            edits: &[(
                "\"\"\"`chat-template` in Python: the lmhost adapter for local models, clembench's semantics.\n",
                "\"\"\"`{{name}}`: an lmhost adapter, scaffolded by `lmhost adapter new --lang python` from\n\
                 lmhost's `chat-template` in Python, the adapter for local models, clembench's semantics.\n\
                 Change what you need, then `lmhost adapter build` and `lmhost adapter check {{name}}.wasm`.\n",
            )],
        },
    ),
    (
        "model_adapter.py",
        Source::Reference {
            path: "guests/python/chat-template-py/model_adapter.py",
            text: include_str!("../../../guests/python/chat-template-py/model_adapter.py"),
            edits: &[],
        },
    ),
    (
        "calls.py",
        Source::Reference {
            path: "guests/python/chat-template-py/calls.py",
            text: include_str!("../../../guests/python/chat-template-py/calls.py"),
            edits: &[],
        },
    ),
    (
        "requirements.txt",
        Source::Reference {
            path: "guests/python/requirements.txt",
            text: include_str!("../../../guests/python/requirements.txt"),
            edits: &[],
        },
    ),
    ("build.sh", Source::Template(include_str!("scaffold/python/build.sh"))),
];
const JS: &[(&str, Source)] = &[
    (
        "adapter.js",
        Source::Reference {
            path: "guests/js/chat-template-js/chat-template.js",
            text: include_str!("../../../guests/js/chat-template-js/chat-template.js"),
            edits: &[(
                "// `chat-template` in JavaScript: the lmhost adapter for local models, clembench's semantics.\n",
                "// `{{name}}`: an lmhost adapter, scaffolded by `lmhost adapter new --lang js` from lmhost's\n\
                 // `chat-template` in JavaScript, the adapter for local models, clembench's semantics.\n\
                 // Change what you need, then `lmhost adapter build` and `lmhost adapter check {{name}}.wasm`.\n",
            )],
        },
    ),
    (
        "package.json",
        Source::Reference {
            path: "guests/js/chat-template-js/package.json",
            text: include_str!("../../../guests/js/chat-template-js/package.json"),
            edits: &[
                ("\"name\": \"chat-template-js\",", "\"name\": \"{{name}}\","),
                (
                    "\"description\": \"lmhost adapter: the chat-template adapter in JavaScript (componentize-js).\",",
                    "\"description\": \"An lmhost adapter (a WebAssembly component built with componentize-js).\",",
                ),
                ("  \"license\": \"MIT OR Apache-2.0\",\n", ""),
            ],
        },
    ),
    ("build.sh", Source::Template(include_str!("scaffold/js/build.sh"))),
];

/// Where a scaffold's sources come from: `(file in the project, file in the
/// lmhost repository)` for each file taken from a reference adapter.
pub fn reference_files(lang: Lang) -> Vec<(&'static str, &'static str)> {
    lang.files()
        .iter()
        .filter_map(|(file, source)| match source {
            Source::Reference { path, .. } => Some((*file, *path)),
            Source::RustManifest => Some((*file, "guests/rust/chat-template/Cargo.toml")),
            _ => None,
        })
        .collect()
}

/// The Rust reference's manifest as a standalone project's: the package named
/// `name`, what it inherits from the guests' workspace written out (its license
/// left out: the project is the author's), the workspace's release profile.
fn rust_manifest(name: &str) -> Result<String> {
    let mut out = standalone(RUST_REFERENCE_MANIFEST, Some(name))?.replace(
        "chat-formats = { path = \"../chat-formats\" }",
        "chat-formats = { path = \"chat-formats\" }",
    );
    let profile = GUESTS_MANIFEST
        .find("[profile.release]")
        .map(|at| &GUESTS_MANIFEST[at..])
        .context("guests/Cargo.toml has no release profile for the Rust scaffold")?;
    let profile = profile[1..].find("\n[").map_or(profile, |end| &profile[..end + 2]);
    out.push('\n');
    out.push_str(profile.trim_end());
    out.push_str("\n\n# Standalone: not a member of any enclosing workspace.\n[workspace]\n");
    Ok(out)
}

/// A guest manifest without the guests' workspace: what it inherits written
/// out (`key.workspace = true`, `key = { workspace = true, … }`), the license
/// left out (the project is the author's), the package renamed to `name`.
fn standalone(manifest: &str, name: Option<&str>) -> Result<String> {
    let inherited = |key: &str| {
        GUESTS_MANIFEST
            .lines()
            .find(|l| l.split('=').next().is_some_and(|k| k.trim() == key))
            .map(str::to_string)
            .with_context(|| format!("guests/Cargo.toml sets no `{key}` for the Rust scaffold"))
    };
    let mut out = String::new();
    for line in manifest.lines() {
        let line = match name {
            Some(name) if line.starts_with("name = ") => format!("name = \"{name}\""),
            _ if line.starts_with("license") => continue,
            _ => match line.strip_suffix(".workspace = true") {
                Some(key) => inherited(key)?,
                None => match line.split_once(" = { workspace = true") {
                    Some((key, rest)) => {
                        let value = inherited(key)?;
                        let version = value.split_once('=').map_or("", |(_, v)| v.trim());
                        format!("{key} = {{ version = {version}{rest}")
                    }
                    None => line.to_string(),
                },
            },
        };
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

/// The language of an adapter project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Rust with wit-bindgen, built by cargo for `wasm32-wasip2`.
    Rust,
    /// Python, built by componentize-py.
    Python,
    /// JavaScript, built by componentize-js.
    Js,
}

impl std::str::FromStr for Lang {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rust" | "rs" => Ok(Self::Rust),
            "python" | "py" => Ok(Self::Python),
            "js" | "javascript" => Ok(Self::Js),
            other => Err(format!("unknown language `{other}`: rust, python or js")),
        }
    }
}

impl Lang {
    /// The project's files, each from a template, a reference adapter or as it is.
    fn files(self) -> &'static [(&'static str, Source)] {
        match self {
            Self::Rust => RUST,
            Self::Python => PYTHON,
            Self::Js => JS,
        }
    }

    fn describe(self) -> (&'static str, &'static str) {
        match self {
            Self::Rust => (
                "Rust",
                "cargo with the `wasm32-wasip2` target (`rustup target add wasm32-wasip2`).",
            ),
            Self::Python => ("Python", "componentize-py 0.25.1 (`pip install -r requirements.txt`)."),
            Self::Js => (
                "JavaScript",
                "componentize-js 0.23.0 (`npm install`; exact pins in package.json).",
            ),
        }
    }
}

/// Whether `name` can name an adapter: a letter, then letters, digits, `-`, `_`.
fn valid_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Create `<dir>/<name>/`, a buildable adapter project in `lang`. Refuses to
/// write into a non-empty folder. Returns the project folder.
pub fn new_project(lang: Lang, name: &str, dir: &Path) -> Result<PathBuf> {
    if !valid_name(name) {
        bail!("`{name}` cannot name an adapter: use a letter, then letters, digits, `-` or `_`");
    }
    let root = dir.join(name);
    if root.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        bail!("{} already exists and is not empty", root.display());
    }
    let (language, toolchain) = lang.describe();
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{language}}", language)
            .replace("{{toolchain}}", toolchain)
    };
    let mut files: Vec<(&str, String)> = Vec::new();
    for (file, source) in lang.files() {
        let text = match source {
            Source::Template(text) => fill(text),
            Source::Verbatim(text) => text.to_string(),
            Source::RustManifest => rust_manifest(name)?,
            Source::FormatsManifest => standalone(FORMATS_MANIFEST, None)?,
            Source::Reference { path, text, edits } => {
                let mut text = text.to_string();
                for (from, to) in *edits {
                    if !text.contains(from) {
                        bail!("lmhost's {path} no longer has {from:?}: the scaffold is out of step with it");
                    }
                    text = text.replacen(from, &fill(to), 1);
                }
                text
            }
        };
        files.push((file, text));
    }
    files.push(("wit/adapter.wit", WIT.to_string()));
    files.push(("README.md", fill(README)));
    files.push((".gitignore", "/target/\n/node_modules/\n__pycache__/\n*.wasm\n".into()));
    for (path, text) in files {
        let path = root.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        #[cfg(unix)]
        if path.extension().is_some_and(|e| e == "sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(root)
}

/// The language of the project in `dir`, from its files.
pub fn detect(dir: &Path) -> Result<Lang> {
    if dir.join("Cargo.toml").is_file() {
        Ok(Lang::Rust)
    } else if dir.join("app.py").is_file() {
        Ok(Lang::Python)
    } else if dir.join("package.json").is_file() {
        Ok(Lang::Js)
    } else {
        bail!(
            "{} is not an adapter project: no Cargo.toml (rust), app.py (python) or package.json (js)",
            dir.display()
        )
    }
}

/// The adapter's name: the Rust package name, else the folder's name.
fn project_name(dir: &Path, lang: Lang) -> Result<String> {
    if lang == Lang::Rust {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))?;
        if let Some(name) = manifest
            .lines()
            .filter_map(|l| l.trim().strip_prefix("name"))
            .filter_map(|rest| rest.trim().strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_string())
            .next()
        {
            return Ok(name);
        }
    }
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .context("the project folder has no name")
}

/// Find a program: an explicit path from `env`, else the first of `candidates`
/// that exists (a bare name is looked up in `PATH`).
fn find_tool(env: &str, candidates: &[PathBuf]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    for candidate in candidates {
        if candidate.components().count() > 1 {
            if candidate.is_file() {
                return Some(candidate.clone());
            }
        } else if let Some(paths) = std::env::var_os("PATH") {
            if let Some(found) = std::env::split_paths(&paths)
                .map(|p| p.join(candidate))
                .find(|p| p.is_file())
            {
                return Some(found);
            }
        }
    }
    None
}

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn run(mut cmd: Command, what: &str) -> Result<()> {
    let output = cmd
        .output()
        .with_context(|| format!("cannot run {what} ({:?})", cmd.get_program()))?;
    if !output.status.success() {
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        let tail: Vec<&str> = text.lines().rev().take(25).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{what} failed ({}):\n{}", output.status, tail.join("\n"));
    }
    Ok(())
}

/// Build the project in `dir` with its toolchain; returns the `.wasm` written
/// (`<dir>/<name>.wasm`). A Rust project builds into `$LMHOST_ADAPTER_TARGET_DIR`
/// when set, else `<dir>/target`.
pub fn build(dir: &Path) -> Result<PathBuf> {
    build_with(dir, std::env::var_os("LMHOST_ADAPTER_TARGET_DIR").map(PathBuf::from))
}

/// [`build`], a Rust project building into `rust_target` (default `<dir>/target`).
pub fn build_with(dir: &Path, rust_target: Option<PathBuf>) -> Result<PathBuf> {
    let lang = detect(dir)?;
    let name = project_name(dir, lang)?;
    let dir = std::fs::canonicalize(dir).with_context(|| format!("cannot open {}", dir.display()))?;
    let out = dir.join(format!("{name}.wasm"));
    match lang {
        Lang::Rust => {
            let cargo = find_tool("CARGO", &[PathBuf::from("cargo")]).context(
                "cargo not found: install Rust (rustup) and the wasm target (`rustup target add wasm32-wasip2`)",
            )?;
            let target = rust_target.unwrap_or_else(|| dir.join("target"));
            let mut cmd = Command::new(cargo);
            cmd.current_dir(&dir)
                .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
                .arg(&target);
            // The project's own settings, not those of a cargo that may have started us.
            for (key, _) in std::env::vars() {
                if key == "CARGO_TARGET_DIR" || key == "CARGO_BUILD_TARGET" || key.starts_with("CARGO_PRIMARY") {
                    cmd.env_remove(&key);
                }
            }
            run(
                cmd,
                "cargo build --target wasm32-wasip2 (is the target installed? `rustup target add wasm32-wasip2`)",
            )?;
            let built = target
                .join("wasm32-wasip2/release")
                .join(format!("{}.wasm", name.replace('-', "_")));
            std::fs::copy(&built, &out).with_context(|| format!("cannot copy {}", built.display()))?;
        }
        Lang::Python => {
            let tool = find_tool(
                "COMPONENTIZE_PY",
                &[
                    PathBuf::from("componentize-py"),
                    repo_path(".venv-adapters/bin/componentize-py"),
                ],
            )
            .context(
                "componentize-py not found: `pip install componentize-py==0.25.1` (or `make adapters` in an \
                 lmhost checkout), or set COMPONENTIZE_PY to its path",
            )?;
            let mut cmd = Command::new(tool);
            cmd.current_dir(&dir)
                .args(["-d", "wit", "-w", "adapter", "componentize", "-p", ".", "app", "-o"])
                .arg(&out);
            run(cmd, "componentize-py")?;
        }
        Lang::Js => {
            let tool = find_tool(
                "COMPONENTIZE_JS",
                &[
                    dir.join("node_modules/.bin/componentize-js"),
                    repo_path("guests/js/chat-template-js/node_modules/.bin/componentize-js"),
                    PathBuf::from("componentize-js"),
                ],
            )
            .context(
                "componentize-js not found: run `npm install` in the project (exact pins in package.json), \
                 or set COMPONENTIZE_JS to its path",
            )?;
            let mut cmd = Command::new(tool);
            cmd.current_dir(&dir)
                .args([
                    "--wit",
                    "wit",
                    "--world-name",
                    "adapter",
                    "-d",
                    "http",
                    "fetch-event",
                    "-o",
                ])
                .arg(&out)
                .arg("adapter.js");
            run(cmd, "componentize-js")?;
        }
    }
    Ok(out)
}
