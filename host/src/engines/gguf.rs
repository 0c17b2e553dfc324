//! A bounded walk over a GGUF file's header (metadata and tensor table) before
//! an engine parses it.
//!
//! A GGUF file may come from a model hub, so its header is untrusted. candle's
//! reader allocates every string and array at the length the file states, and
//! reads nested arrays by recursion: a 1 KB file claiming a 2⁶⁰-byte string, or
//! arrays nested a million deep, aborts the host (allocation failure, stack
//! overflow), not an error. This walk reads the same header with every length
//! checked against the bytes left in the file and a per-item limit, and nesting
//! bounded, without allocating anything the file asks for. Pure std; the
//! `lmhost-fuzz` crate compiles this file as a fuzz target.

use std::io::{BufRead, BufReader, Read, Seek};

/// Longest metadata string (a chat template or a token; real files stay under
/// 100 KB).
pub const MAX_STRING_BYTES: u64 = 16 << 20;

/// Most elements of one metadata array (vocabularies and merges: under 10⁶).
pub const MAX_ARRAY_LEN: u64 = 1 << 26;

/// Deepest nesting of arrays in arrays.
pub const MAX_ARRAY_DEPTH: usize = 2;

/// Most dimensions of a tensor (ggml has 4).
pub const MAX_TENSOR_DIMS: u32 = 4;

/// Check the header of the GGUF file `reader` (of `len` bytes) against the
/// bounds above; the reader is left at an unspecified position.
pub fn check_header<R: Read + Seek>(reader: R, len: u64) -> Result<(), String> {
    let mut w = Walk {
        reader: BufReader::new(reader),
        left: len,
        wide: true,
    };
    let magic = w.bytes::<4>()?;
    if &magic != b"GGUF" {
        return Err("not a GGUF file (no `GGUF` magic)".into());
    }
    let version = w.u32()?;
    if !(1..=3).contains(&version) {
        return Err(format!("GGUF version {version} is not one lmhost reads (1 to 3)"));
    }
    // Version 1 has 32-bit counts and lengths.
    w.wide = version > 1;
    let tensors = w.count()?;
    let entries = w.count()?;
    for _ in 0..entries {
        let key = w.string_len()?;
        w.skip(key)?;
        let kind = w.u32()?;
        w.value(kind, 0)?;
    }
    for _ in 0..tensors {
        let name = w.string_len()?;
        w.skip(name)?;
        let dims = w.u32()?;
        if dims > MAX_TENSOR_DIMS {
            return Err(format!(
                "a tensor has {dims} dimensions, over the limit of {MAX_TENSOR_DIMS}"
            ));
        }
        w.skip(u64::from(dims) * if w.wide { 8 } else { 4 })?;
        w.skip(4 + 8)?; // type, offset
    }
    Ok(())
}

struct Walk<R> {
    reader: BufReader<R>,
    /// Bytes of the file not read yet.
    left: u64,
    /// Counts and lengths are u64 (version 2 and later), not u32.
    wide: bool,
}

impl<R: Read + Seek> Walk<R> {
    fn truncated() -> String {
        "the GGUF header is truncated or states a length past the end of the file".into()
    }

    fn skip(&mut self, n: u64) -> Result<(), String> {
        if n > self.left {
            return Err(Self::truncated());
        }
        self.left -= n;
        let n = i64::try_from(n).map_err(|_| Self::truncated())?;
        // Within the buffer, a seek is a cursor move.
        if usize::try_from(n).is_ok_and(|n| n <= self.reader.buffer().len()) {
            self.reader.consume(n as usize);
            return Ok(());
        }
        self.reader.seek_relative(n).map_err(|e| e.to_string())
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], String> {
        if (N as u64) > self.left {
            return Err(Self::truncated());
        }
        let mut out = [0u8; N];
        self.reader.read_exact(&mut out).map_err(|_| Self::truncated())?;
        self.left -= N as u64;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }

    fn count(&mut self) -> Result<u64, String> {
        if self.wide {
            Ok(u64::from_le_bytes(self.bytes()?))
        } else {
            Ok(u64::from(self.u32()?))
        }
    }

    fn string_len(&mut self) -> Result<u64, String> {
        let len = self.count()?;
        if len > MAX_STRING_BYTES {
            return Err(format!(
                "a GGUF string of {len} bytes is over the limit of {MAX_STRING_BYTES} bytes"
            ));
        }
        if len > self.left {
            return Err(Self::truncated());
        }
        Ok(len)
    }

    /// Skip one value of type `kind`, `depth` arrays deep.
    fn value(&mut self, kind: u32, depth: usize) -> Result<(), String> {
        if let Some(size) = fixed_size(kind) {
            return self.skip(size);
        }
        match kind {
            8 => {
                let len = self.string_len()?;
                self.skip(len)
            }
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(format!("GGUF arrays nested more than {MAX_ARRAY_DEPTH} deep"));
                }
                let inner = self.u32()?;
                let len = self.count()?;
                if len > MAX_ARRAY_LEN {
                    return Err(format!(
                        "a GGUF array of {len} elements is over the limit of {MAX_ARRAY_LEN}"
                    ));
                }
                if let Some(size) = fixed_size(inner) {
                    return self.skip(len.checked_mul(size).ok_or_else(Self::truncated)?);
                }
                // Every element takes at least 4 bytes: a length that cannot
                // fit is refused before looping over it.
                if len.saturating_mul(4) > self.left {
                    return Err(Self::truncated());
                }
                for _ in 0..len {
                    self.value(inner, depth + 1)?;
                }
                Ok(())
            }
            other => Err(format!("unknown GGUF value type {other}")),
        }
    }
}

/// Bytes of a fixed-size GGUF value type.
fn fixed_size(kind: u32) -> Option<u64> {
    Some(match kind {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn header(kvs: &[u8], n_kv: u64, n_tensors: u64) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend(n_tensors.to_le_bytes());
        out.extend(n_kv.to_le_bytes());
        out.extend(kvs);
        out
    }

    fn string(s: &str) -> Vec<u8> {
        let mut out = (s.len() as u64).to_le_bytes().to_vec();
        out.extend(s.as_bytes());
        out
    }

    fn check(bytes: &[u8]) -> Result<(), String> {
        check_header(Cursor::new(bytes), bytes.len() as u64)
    }

    #[test]
    fn a_well_formed_header_passes() {
        let mut kv = string("general.architecture");
        kv.extend(8u32.to_le_bytes());
        kv.extend(string("llama"));
        kv.extend(string("tokenizer.ggml.tokens"));
        kv.extend(9u32.to_le_bytes());
        kv.extend(8u32.to_le_bytes());
        kv.extend(2u64.to_le_bytes());
        kv.extend(string("a"));
        kv.extend(string("b"));
        kv.extend(string("t"));
        kv.extend(2u32.to_le_bytes());
        kv.extend([1u64.to_le_bytes(), 2u64.to_le_bytes()].concat());
        kv.extend([0u8; 12]);
        check(&header(&kv, 2, 1)).unwrap();
    }

    #[test]
    fn lengths_past_the_file_or_the_limits_are_refused_without_allocating() {
        let mut kv = string("k");
        kv.extend(8u32.to_le_bytes());
        kv.extend((1u64 << 60).to_le_bytes());
        assert!(check(&header(&kv, 1, 0)).unwrap_err().contains("over the limit"));
        let mut kv = string("k");
        kv.extend(8u32.to_le_bytes());
        kv.extend(1000u64.to_le_bytes());
        assert!(check(&header(&kv, 1, 0)).unwrap_err().contains("truncated"));
        let mut kv = string("k");
        kv.extend(9u32.to_le_bytes());
        kv.extend(10u32.to_le_bytes());
        kv.extend(u64::MAX.to_le_bytes());
        assert!(check(&header(&kv, 1, 0)).unwrap_err().contains("over the limit"));
        // A billion entries claimed by a 40-byte file.
        assert!(check(&header(&[], 1 << 30, 0)).unwrap_err().contains("truncated"));
        let mut t = string("t");
        t.extend(u32::MAX.to_le_bytes());
        assert!(check(&header(&t, 0, 1)).unwrap_err().contains("dimensions"));
    }

    #[test]
    fn arrays_nested_a_million_deep_are_refused_at_the_limit() {
        let mut kv = string("k");
        kv.extend(9u32.to_le_bytes());
        for _ in 0..1_000_000 {
            kv.extend(9u32.to_le_bytes());
            kv.extend(1u64.to_le_bytes());
        }
        let err = check(&header(&kv, 1, 0)).unwrap_err();
        assert!(err.contains("nested more than"), "{err}");
    }

    #[test]
    fn the_default_model_passes() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
        let Ok(file) = std::fs::File::open(&path) else {
            return;
        };
        let len = file.metadata().unwrap().len();
        check_header(file, len).unwrap();
    }
}
