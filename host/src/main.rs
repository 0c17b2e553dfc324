//! The `lmhost` binary; everything lives in the library's `cli` module.

fn main() {
    std::process::exit(lmhost::cli::main());
}
