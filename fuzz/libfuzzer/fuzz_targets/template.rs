//! Coverage-guided driver of `lmhost_fuzz::template`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lmhost_fuzz::template(data));
