//! Coverage-guided driver of `lmhost_fuzz::sse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lmhost_fuzz::sse(data));
