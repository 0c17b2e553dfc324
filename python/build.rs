//! The extension module finds llama.cpp's shared libraries in `_native/`
//! beside itself, where `make python` places them with the CPU backend modules
//! (the Makefile and host/build.rs explain the scheme). DT_RPATH rather than
//! DT_RUNPATH, so that it also serves the libraries' dependencies on each other.

fn main() {
    println!("cargo:rustc-link-arg-cdylib=-Wl,-rpath,$ORIGIN/_native");
    println!("cargo:rustc-link-arg-cdylib=-Wl,--disable-new-dtags");
}
