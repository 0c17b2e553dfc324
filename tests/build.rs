//! The test binaries (`lmhost-under-test`, `integration`) find llama.cpp's
//! shared libraries beside themselves, as the `lmhost` binary does
//! (host/build.rs): no `LD_LIBRARY_PATH` needed, which the CLI tests check by
//! running the binary without one.

fn main() {
    for kind in ["bins", "tests"] {
        println!("cargo:rustc-link-arg-{kind}=-Wl,-rpath,$ORIGIN");
        println!("cargo:rustc-link-arg-{kind}=-Wl,--disable-new-dtags");
    }
}
