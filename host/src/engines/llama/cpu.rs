//! Which of llama.cpp's CPU backend modules this process runs on.
//!
//! lmhost builds ggml's CPU backend once per x86 variant, each a loadable
//! module (`libggml-cpu-<variant>.so`: llama-cpp-sys-2's `dynamic-backends`,
//! ggml's `GGML_BACKEND_DL` + `GGML_CPU_ALL_VARIANTS`), so one build runs the
//! kernels of the CPU it finds: AVX2 on one machine, AVX-512 with VNNI and BF16
//! on the next, AMX where the OS allows it. The host picks the module itself,
//! once per process, before any model loads:
//!
//! - where: the first folder holding modules of the folder of the loaded
//!   `libggml` (where the build puts them, beside the binary, the test binaries
//!   and the Python package's libraries), the executable's folder, and the
//!   folder the build wrote them to (no environment variable is needed);
//! - which: the most capable variant whose every instruction set this CPU
//!   reports *and the OS lets this process use*, ranked as ggml ranks them.
//!   ggml's own chooser (`ggml_backend_load_best`) reads cpuid alone (its
//!   source says "this does not check for OS support"): on a VM whose CPU
//!   reports AMX but whose kernel has not enabled the tile state, it picks the
//!   AMX module, which dies with SIGILL at its first tile instruction. Here the
//!   AVX and AVX-512 sets come from Rust's `is_x86_feature_detected!` (which
//!   checks the OS's XCR0 too), and AMX counts only when cpuid reports it, XCR0
//!   has the tile state on, and the kernel grants this process the tile data
//!   (`arch_prctl(ARCH_REQ_XCOMP_PERM)`, what ggml's AMX code asks for itself);
//! - override: `LMHOST_LLAMA_CPU=<variant>` (a variant this CPU can run; for
//!   measuring variants against each other, BENCHMARKS.md).
//!
//! Other backend modules in the same folder (a CUDA build's `libggml-cuda.so`)
//! are loaded beside it; one that cannot load (no driver) is skipped.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// An instruction set a ggml variant is compiled for (the names of ggml's
/// `ggml_add_cpu_backend_variant` flags).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Isa {
    Sse42,
    Avx,
    F16c,
    Fma,
    Avx2,
    Bmi2,
    /// AVX-512 F, CD, VL, DQ and BW (ggml's `GGML_AVX512`).
    Avx512,
    Avx512Vbmi,
    Avx512Vnni,
    Avx512Bf16,
    AvxVnni,
    AmxTile,
    AmxInt8,
}

use Isa::*;

/// ggml's x86 variants and what each needs (ggml/src/CMakeLists.txt,
/// `GGML_CPU_ALL_VARIANTS`; a test checks every module the build made is here).
const VARIANTS: &[(&str, &[Isa])] = &[
    ("x64", &[]),
    ("sse42", &[Sse42]),
    ("sandybridge", &[Sse42, Avx]),
    ("ivybridge", &[Sse42, Avx, F16c]),
    ("piledriver", &[Sse42, Avx, F16c, Fma]),
    ("haswell", &[Sse42, Avx, F16c, Fma, Avx2, Bmi2]),
    ("skylakex", &[Sse42, Avx, F16c, Fma, Avx2, Bmi2, Avx512]),
    ("cannonlake", &[Sse42, Avx, F16c, Fma, Avx2, Bmi2, Avx512, Avx512Vbmi]),
    ("cascadelake", &[Sse42, Avx, F16c, Fma, Avx2, Bmi2, Avx512, Avx512Vnni]),
    (
        "icelake",
        &[Sse42, Avx, F16c, Fma, Avx2, Bmi2, Avx512, Avx512Vbmi, Avx512Vnni],
    ),
    (
        "cooperlake",
        &[Sse42, Avx, F16c, Fma, Avx2, Bmi2, Avx512, Avx512Vnni, Avx512Bf16],
    ),
    (
        "zen4",
        &[
            Sse42, Avx, F16c, Fma, Avx2, Bmi2, Avx512, Avx512Vbmi, Avx512Vnni, Avx512Bf16,
        ],
    ),
    ("alderlake", &[Sse42, Avx, F16c, Fma, Avx2, Bmi2, AvxVnni]),
    (
        "sapphirerapids",
        &[
            Sse42, Avx, F16c, Fma, Avx2, Bmi2, Avx512, Avx512Vbmi, Avx512Vnni, Avx512Bf16, AmxTile, AmxInt8,
        ],
    ),
];

impl Isa {
    /// ggml's score for the set (`ggml_backend_cpu_x86_score`): a variant
    /// ranks by the sum of its sets' bits, so AVX-512 outranks AVX-VNNI and
    /// AMX everything.
    fn score(self) -> u32 {
        match self {
            Fma => 1,
            F16c => 1 << 1,
            Sse42 => 1 << 2,
            Bmi2 => 1 << 3,
            Avx => 1 << 4,
            Avx2 => 1 << 5,
            AvxVnni => 1 << 6,
            Avx512 => 1 << 7,
            Avx512Vbmi => 1 << 8,
            Avx512Bf16 => 1 << 9,
            Avx512Vnni => 1 << 10,
            // AMX_INT8 scores; AMX_TILE goes with it.
            AmxInt8 => 1 << 11,
            AmxTile => 0,
        }
    }

    /// The name Rust (and /proc/cpuinfo, mostly) gives the set.
    fn name(self) -> &'static str {
        match self {
            Sse42 => "sse4.2",
            Avx => "avx",
            F16c => "f16c",
            Fma => "fma",
            Avx2 => "avx2",
            Bmi2 => "bmi2",
            Avx512 => "avx512f/cd/vl/dq/bw",
            Avx512Vbmi => "avx512vbmi",
            Avx512Vnni => "avx512vnni",
            Avx512Bf16 => "avx512bf16",
            AvxVnni => "avxvnni",
            AmxTile => "amx-tile",
            AmxInt8 => "amx-int8",
        }
    }

    /// Whether this process may run the set's instructions.
    #[cfg(target_arch = "x86_64")]
    fn usable(self) -> bool {
        use std::is_x86_feature_detected as has;
        match self {
            Sse42 => has!("sse4.2"),
            Avx => has!("avx"),
            F16c => has!("f16c"),
            Fma => has!("fma"),
            Avx2 => has!("avx2"),
            Bmi2 => has!("bmi2"),
            Avx512 => has!("avx512f") && has!("avx512cd") && has!("avx512vl") && has!("avx512dq") && has!("avx512bw"),
            Avx512Vbmi => has!("avx512vbmi"),
            Avx512Vnni => has!("avx512vnni"),
            Avx512Bf16 => has!("avx512bf16"),
            AvxVnni => has!("avxvnni"),
            AmxTile | AmxInt8 => amx_usable(),
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn usable(self) -> bool {
        false
    }
}

/// AMX (tile and int8) as this process may use it: cpuid reports both, the OS
/// has the tile state on in XCR0 (bits 17 and 18), and the kernel grants the
/// process the tile data (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`).
/// Asked once. `is_x86_feature_detected!("amx-tile")` is not stable Rust yet.
#[cfg(target_arch = "x86_64")]
fn amx_usable() -> bool {
    static USABLE: OnceLock<bool> = OnceLock::new();
    *USABLE.get_or_init(|| {
        use std::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv};
        // Leaf 7 is read only when leaf 0 says it exists.
        let (leaf7, osxsave) = (__cpuid(0).eax >= 7, __cpuid(1).ecx & (1 << 27) != 0);
        if !leaf7 || !osxsave {
            return false;
        }
        let edx = __cpuid_count(7, 0).edx;
        if edx & (1 << 24) == 0 || edx & (1 << 25) == 0 {
            return false;
        }
        #[target_feature(enable = "xsave")]
        unsafe fn xcr0() -> u64 {
            _xgetbv(0)
        }
        // SAFETY: OSXSAVE is set, so xgetbv may be executed.
        if unsafe { xcr0() } & (0b11 << 17) != 0b11 << 17 {
            return false;
        }
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: a plain syscall with two integer arguments.
        unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
    })
}

/// The CPU module this process runs on, and what it was chosen from.
#[derive(Clone, Debug)]
pub struct CpuChoice {
    /// The variant loaded (`haswell`, `zen4`, ...).
    pub variant: String,
    /// Its module file.
    pub module: PathBuf,
    /// Every variant found, with the instruction sets this process lacks for
    /// it (empty: usable here), most capable first.
    pub candidates: Vec<(String, Vec<&'static str>)>,
    /// Why it is this one: `best` (the most capable usable) or `LMHOST_LLAMA_CPU`.
    pub reason: &'static str,
    /// Other backend modules found beside it (`cuda`), loaded or not.
    pub others: Vec<BackendModule>,
}

/// A backend module other than the CPU's, found beside the CPU modules.
#[derive(Clone, Debug)]
pub struct BackendModule {
    /// The backend (`cuda`).
    pub name: String,
    /// The module file.
    pub path: PathBuf,
    /// Registered with llama.cpp, or why not: the loader's own words (a CUDA
    /// module on a machine without the NVIDIA driver: `libcuda.so.1: cannot
    /// open shared object file`).
    pub loaded: Result<(), String>,
}

/// The variant's rank (ggml's score) and the sets it needs that are missing here.
fn assess(isas: &[Isa]) -> (u32, Vec<&'static str>) {
    let score = 1 + isas.iter().map(|i| i.score()).sum::<u32>();
    let missing = isas.iter().filter(|i| !i.usable()).map(|i| i.name()).collect();
    (score, missing)
}

/// The variant a module file is (`libggml-cpu-haswell.so` → `haswell`).
fn variant_of(file: &str) -> Option<&str> {
    file.strip_prefix("libggml-cpu-")?.strip_suffix(".so")
}

/// Other backends' modules (`libggml-cuda.so` → `cuda`); not the CPU's, not
/// ggml's own libraries.
fn other_backend_of(file: &str) -> Option<&str> {
    let name = file.strip_prefix("libggml-")?.strip_suffix(".so")?;
    (!name.starts_with("cpu") && name != "base").then_some(name)
}

/// Folders that may hold the modules, in the order they are tried.
fn search_folders() -> Vec<PathBuf> {
    let mut folders = Vec::new();
    if let Some(dir) = ggml_library_folder() {
        folders.push(dir);
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        folders.push(dir);
    }
    if let Some(dir) = llama_cpp_sys_2::BACKENDS_DIR {
        folders.push(PathBuf::from(dir));
    }
    folders.dedup();
    folders
}

/// The folder of the `libggml` this process has loaded (`dladdr` of one of
/// its functions): the modules were built to sit beside it.
fn ggml_library_folder() -> Option<PathBuf> {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    let symbol = llama_cpp_sys_2::ggml_backend_load as *const libc::c_void;
    // SAFETY: dladdr only reads the loader's tables and fills `info`.
    if unsafe { libc::dladdr(symbol, info.as_mut_ptr()) } == 0 {
        return None;
    }
    // SAFETY: dladdr succeeded, so `info` is filled in.
    let info = unsafe { info.assume_init() };
    if info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated path owned by the loader.
    let path = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    let path = Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(
        path.to_bytes(),
    ));
    path.parent().map(Path::to_path_buf)
}

/// Module files by name: (variant or backend, path).
type Modules = Vec<(String, PathBuf)>;

/// The module files of one folder: (CPU variants, other backends).
fn modules_in(dir: &Path) -> (Modules, Modules) {
    let (mut cpus, mut others) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        if let Some(v) = variant_of(file) {
            cpus.push((v.to_string(), entry.path()));
        } else if let Some(b) = other_backend_of(file) {
            others.push((b.to_string(), entry.path()));
        }
    }
    cpus.sort();
    others.sort();
    (cpus, others)
}

/// A module found, ranked.
struct Ranked {
    score: u32,
    variant: String,
    module: PathBuf,
    /// What this process lacks for it (empty: usable).
    missing: Vec<&'static str>,
}

/// Choose among `found` (variant, module): the override if given and usable,
/// else the most capable usable variant.
fn choose(found: Modules, forced: Option<&str>) -> Result<CpuChoice, String> {
    let mut ranked = Vec::new();
    for (variant, module) in found {
        // A module the table does not know (a newer llama.cpp) is not guessed at.
        let Some((_, isas)) = VARIANTS.iter().find(|(v, _)| *v == variant) else {
            tracing::debug!(%variant, "unknown llama.cpp CPU variant skipped");
            continue;
        };
        let (score, missing) = assess(isas);
        ranked.push(Ranked {
            score,
            variant,
            module,
            missing,
        });
    }
    ranked.sort_by(|a, b| b.score.cmp(&a.score).then(a.variant.cmp(&b.variant)));
    let (pick, reason) = match forced {
        Some(name) => {
            let Some(entry) = ranked.iter().find(|r| r.variant == name) else {
                let known: Vec<_> = ranked.iter().map(|r| r.variant.as_str()).collect();
                return Err(format!(
                    "LMHOST_LLAMA_CPU is `{name}`, but no such llama.cpp CPU module was built (variants: {})",
                    known.join(", ")
                ));
            };
            if !entry.missing.is_empty() {
                return Err(format!(
                    "LMHOST_LLAMA_CPU is `{name}`, but this CPU or OS lacks {} for it",
                    entry.missing.join(", ")
                ));
            }
            (entry, "LMHOST_LLAMA_CPU")
        }
        None => match ranked.iter().find(|r| r.missing.is_empty()) {
            Some(entry) => (entry, "best"),
            None => return Err("no llama.cpp CPU module is usable on this CPU".into()),
        },
    };
    Ok(CpuChoice {
        variant: pick.variant.clone(),
        module: pick.module.clone(),
        candidates: ranked.iter().map(|r| (r.variant.clone(), r.missing.clone())).collect(),
        reason,
        others: Vec::new(),
    })
}

/// Find, choose and load the CPU module (and other backends beside it), once
/// per process. Called by [`super::backend`] after llama.cpp's initialisation.
pub(super) fn load() -> &'static Result<CpuChoice, String> {
    static CHOICE: OnceLock<Result<CpuChoice, String>> = OnceLock::new();
    CHOICE.get_or_init(|| {
        let folders = search_folders();
        let Some((dir, (cpus, others))) = folders
            .iter()
            .map(|d| (d, modules_in(d)))
            .find(|(_, (cpus, _))| !cpus.is_empty())
        else {
            let searched: Vec<_> = folders.iter().map(|d| d.display().to_string()).collect();
            return Err(format!(
                "llama.cpp's CPU backend: no module (libggml-cpu-*.so) in {}",
                searched.join(", ")
            ));
        };
        let forced = crate::config::llama_cpu_variant();
        let mut choice = choose(cpus, forced.as_deref())?;
        register(&choice.module).map_err(|e| format!("{e} ({})", dir.display()))?;
        for (name, path) in others {
            let loaded = open_other(&path);
            match &loaded {
                Ok(()) => tracing::debug!(backend = %name, module = %path.display(), "llama.cpp backend module loaded"),
                Err(e) => tracing::debug!(backend = %name, module = %path.display(), error = %e, "llama.cpp backend module not loaded"),
            }
            choice.others.push(BackendModule { name, path, loaded });
        }
        tracing::debug!(variant = %choice.variant, module = %choice.module.display(), reason = choice.reason, "llama.cpp CPU backend");
        Ok(choice)
    })
}

/// Register a non-CPU module, or say why it cannot be. ggml's loader only
/// logs the reason (and llama.cpp's log is silenced), so the module is opened
/// here first to keep the loader's message: a GPU module that cannot find its
/// driver or runtime is the common case, not an error, on a CPU-only machine.
fn open_other(module: &Path) -> Result<(), String> {
    let path = CString::new(module.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("a NUL byte in the path {}", module.display()))?;
    // SAFETY: a NUL-terminated path; the same flags ggml's loader uses, so the
    // module is resolved and initialised exactly once, here or there.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns this thread's last loader message (or null),
        // a NUL-terminated string valid until the next loader call.
        let message = unsafe { libc::dlerror() };
        let message = if message.is_null() {
            "the loader gave no reason".to_string()
        } else {
            // SAFETY: non-null, so a NUL-terminated string of the loader's.
            unsafe { std::ffi::CStr::from_ptr(message) }
                .to_string_lossy()
                .into_owned()
        };
        return Err(message);
    }
    let registered = register(module);
    // SAFETY: the handle opened above; ggml holds its own reference when it
    // registered the module, so this only drops ours.
    unsafe { libc::dlclose(handle) };
    registered
}

/// `ggml_backend_load`: open a module and register its backend.
fn register(module: &Path) -> Result<(), String> {
    let fail = || format!("llama.cpp could not load the backend module {}", module.display());
    let path = CString::new(module.as_os_str().as_encoded_bytes()).map_err(|_| fail())?;
    // SAFETY: a NUL-terminated path; ggml opens the library and registers it,
    // or returns null.
    let reg = unsafe { llama_cpp_sys_2::ggml_backend_load(path.as_ptr()) };
    if reg.is_null() {
        Err(fail())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(names: &[&str]) -> Modules {
        names
            .iter()
            .map(|n| (n.to_string(), PathBuf::from(format!("libggml-cpu-{n}.so"))))
            .collect()
    }

    #[test]
    fn ranks_follow_ggml_scores() {
        let score = |v: &str| assess(VARIANTS.iter().find(|(n, _)| *n == v).unwrap().1).0;
        assert!(score("x64") < score("sse42"));
        assert!(score("haswell") < score("alderlake"));
        assert!(score("alderlake") < score("skylakex"));
        assert!(score("icelake") < score("zen4"));
        assert!(score("zen4") < score("sapphirerapids"));
    }

    #[test]
    fn the_choice_is_the_most_capable_usable_variant() {
        let all: Vec<_> = VARIANTS.iter().map(|(v, _)| *v).collect();
        let choice = choose(found(&all), None).unwrap();
        assert_eq!(choice.reason, "best");
        let (_, missing) = choice.candidates.iter().find(|(v, _)| *v == choice.variant).unwrap();
        assert!(missing.is_empty());
        // Nothing usable ranks above it.
        for (v, missing) in &choice.candidates {
            if v == &choice.variant {
                break;
            }
            assert!(!missing.is_empty(), "{v} is usable and ranks above {}", choice.variant);
        }
        // x64 needs nothing: always usable.
        assert!(choice.candidates.iter().any(|(v, m)| v == "x64" && m.is_empty()));
    }

    #[test]
    fn an_override_must_exist_and_be_usable() {
        let choice = choose(found(&["x64", "haswell"]), Some("x64")).unwrap();
        assert_eq!((choice.variant.as_str(), choice.reason), ("x64", "LMHOST_LLAMA_CPU"));
        let err = choose(found(&["x64"]), Some("zen9")).unwrap_err();
        assert!(err.contains("zen9") && err.contains("x64"), "{err}");
        // AMX is never granted on a CPU without it, so sapphirerapids is refused
        // wherever cpuid lacks AMX (this test's assumption is checked first).
        if !Isa::AmxInt8.usable() {
            let err = choose(found(&["x64", "sapphirerapids"]), Some("sapphirerapids")).unwrap_err();
            assert!(err.contains("amx"), "{err}");
        }
    }

    #[test]
    fn unknown_variants_are_skipped_and_none_usable_is_an_error() {
        let choice = choose(found(&["x64", "zen9"]), None).unwrap();
        assert_eq!(choice.candidates.len(), 1);
        assert!(choose(found(&["zen9"]), None).is_err());
    }

    #[test]
    fn module_names() {
        assert_eq!(variant_of("libggml-cpu-haswell.so"), Some("haswell"));
        assert_eq!(variant_of("libggml-base.so"), None);
        assert_eq!(other_backend_of("libggml-cuda.so"), Some("cuda"));
        assert_eq!(other_backend_of("libggml-cpu-zen4.so"), None);
        assert_eq!(other_backend_of("libggml-base.so"), None);
        assert_eq!(other_backend_of("libggml.so"), None);
    }

    /// Every module the build made is a variant this table knows.
    #[test]
    fn the_table_knows_every_module_built() {
        let dir = llama_cpp_sys_2::BACKENDS_DIR.expect("built with dynamic-backends");
        let (cpus, _) = modules_in(Path::new(dir));
        assert!(!cpus.is_empty(), "no CPU modules in {dir}");
        for (v, _) in cpus {
            assert!(VARIANTS.iter().any(|(n, _)| *n == v), "{v} is not in VARIANTS");
        }
    }
}
