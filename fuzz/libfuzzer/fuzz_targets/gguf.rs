//! Coverage-guided driver of `lmhost_fuzz::gguf`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lmhost_fuzz::gguf(data));
