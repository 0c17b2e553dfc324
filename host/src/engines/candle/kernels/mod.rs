//! Quantized matrix × vector kernels for the CPU path of GGUF llama models.
//!
//! Weights stay quantized as the GGUF stores them (Q4_0, Q4_1, Q8_0; Q4_0 is
//! read as Q4_1 with offset `-8 d`), their f16 scales widened to f32 once at
//! load so the kernels convert nothing. Activations are quantized per 32 values to
//! 8 bits (scale and scaled sum), and each dot product runs on integers, as
//! llama.cpp does: so the results match its arithmetic, and a block of 32 weights
//! costs one 256-bit multiply-add (two AVX2 instructions, or one AVX-512 VNNI
//! `vpdpbusd`). The instruction sets are chosen at run time (the release
//! binary stays portable, [`Simd`]); elsewhere a scalar loop computes the same
//! sums.
//!
//! A matrix product runs over blocks of output rows in parallel (rayon's pool);
//! each weight row is read once for all tokens of a prompt.

use half::f16;
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
use x86::{avx2, vnni};

/// Values per quantization block.
pub(super) const BLOCK: usize = 32;

/// 32 weights: `d * q + m`, `q` in 0..16 (low nibbles are the first 16).
#[derive(Clone, Copy)]
#[repr(C)]
pub(super) struct Q4 {
    d: f32,
    m: f32,
    qs: [u8; 16],
}

/// 32 weights: `d * q`, `q` in -128..128.
#[derive(Clone, Copy)]
#[repr(C)]
pub(super) struct Q8 {
    d: f32,
    qs: [i8; 32],
}

/// 32 activations: `d * q`; `s` is `d * Σq` (for the offset of Q4 weights).
#[derive(Clone, Copy)]
#[repr(C)]
pub(super) struct Act {
    d: f32,
    s: f32,
    qs: [i8; 32],
}

/// A weight matrix, `rows` outputs × `cols` inputs, row-major in blocks.
pub(super) enum Matrix {
    Q4 { rows: usize, cols: usize, blocks: Vec<Q4> },
    Q8 { rows: usize, cols: usize, blocks: Vec<Q8> },
}

/// The GGUF block types this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Q4_0,
    Q4_1,
    Q8_0,
}

impl Format {
    /// Bytes of one block of 32 values in the file.
    pub(super) fn block_bytes(self) -> usize {
        match self {
            Format::Q4_0 => 18,
            Format::Q4_1 => 20,
            Format::Q8_0 => 34,
        }
    }
}

fn f16_bits(bytes: &[u8]) -> u16 {
    u16::from_le_bytes([bytes[0], bytes[1]])
}

fn f32_of(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

impl Matrix {
    /// A matrix from GGUF block bytes (`rows * cols / 32` blocks).
    pub(super) fn from_gguf(format: Format, rows: usize, cols: usize, bytes: &[u8]) -> Result<Self, String> {
        if !cols.is_multiple_of(BLOCK) {
            return Err(format!(
                "a row of {cols} values is not a whole number of {BLOCK}-value blocks"
            ));
        }
        let n = rows * cols / BLOCK;
        if bytes.len() != n * format.block_bytes() {
            return Err(format!(
                "{} bytes for {rows}×{cols} {format:?} values, expected {}",
                bytes.len(),
                n * format.block_bytes()
            ));
        }
        let chunks = bytes.chunks_exact(format.block_bytes());
        Ok(match format {
            Format::Q4_0 => Matrix::Q4 {
                rows,
                cols,
                // (q - 8) * d is d * q + (-8 d): the Q4_1 form.
                blocks: chunks
                    .map(|b| Q4 {
                        d: f32_of(f16_bits(b)),
                        m: -8.0 * f32_of(f16_bits(b)),
                        qs: b[2..18].try_into().expect("16 bytes"),
                    })
                    .collect(),
            },
            Format::Q4_1 => Matrix::Q4 {
                rows,
                cols,
                blocks: chunks
                    .map(|b| Q4 {
                        d: f32_of(f16_bits(b)),
                        m: f32_of(f16_bits(&b[2..])),
                        qs: b[4..20].try_into().expect("16 bytes"),
                    })
                    .collect(),
            },
            Format::Q8_0 => Matrix::Q8 {
                rows,
                cols,
                blocks: chunks
                    .map(|b| Q8 {
                        d: f32_of(f16_bits(b)),
                        qs: std::array::from_fn(|i| b[2 + i] as i8),
                    })
                    .collect(),
            },
        })
    }

    /// Output rows.
    pub(super) fn rows(&self) -> usize {
        match self {
            Matrix::Q4 { rows, .. } | Matrix::Q8 { rows, .. } => *rows,
        }
    }

    /// Input columns.
    pub(super) fn cols(&self) -> usize {
        match self {
            Matrix::Q4 { cols, .. } | Matrix::Q8 { cols, .. } => *cols,
        }
    }

    /// Row `r` as f32 values (an embedding lookup).
    pub(super) fn row(&self, r: usize, out: &mut [f32]) {
        let per_row = self.cols() / BLOCK;
        match self {
            Matrix::Q4 { blocks, .. } => {
                for (b, out) in blocks[r * per_row..(r + 1) * per_row]
                    .iter()
                    .zip(out.chunks_exact_mut(BLOCK))
                {
                    let (d, m) = (b.d, b.m);
                    for j in 0..16 {
                        out[j] = d * f32::from(b.qs[j] & 0x0f) + m;
                        out[j + 16] = d * f32::from(b.qs[j] >> 4) + m;
                    }
                }
            }
            Matrix::Q8 { blocks, .. } => {
                for (b, out) in blocks[r * per_row..(r + 1) * per_row]
                    .iter()
                    .zip(out.chunks_exact_mut(BLOCK))
                {
                    let d = b.d;
                    for (o, q) in out.iter_mut().zip(b.qs) {
                        *o = d * f32::from(q);
                    }
                }
            }
        }
    }

    /// `out[t][r] = Σ_c self[r][c] · x[t][c]` for each token `t` of `x`
    /// (quantized with [`quantize`]).
    pub(super) fn matmul(&self, x: &[Act], out: &mut [f32]) {
        matmul_many(x, &mut [(self, out)]);
    }

    /// Rows `first..first + out.len()` times one token's blocks.
    fn rows_times(&self, first: usize, x: &[Act], out: &mut [f32], simd: Simd) {
        let per_row = self.cols() / BLOCK;
        for (r, o) in (first..).zip(out) {
            *o = match self {
                Matrix::Q4 { blocks, .. } => dot_q4(&blocks[r * per_row..(r + 1) * per_row], x, simd),
                Matrix::Q8 { blocks, .. } => dot_q8(&blocks[r * per_row..(r + 1) * per_row], x, simd),
            };
        }
    }
}

impl Matrix {
    /// Row `r` times every token of `x`: four tokens at a time, so each weight
    /// block is loaded and unpacked once for four dot products.
    fn row_times_tokens(&self, r: usize, x: &[Act], out: &mut [f32], simd: Simd) {
        let per_row = self.cols() / BLOCK;
        let token = |t: usize| &x[t * per_row..(t + 1) * per_row];
        let mut t = 0;
        #[cfg(target_arch = "x86_64")]
        if simd != Simd::Scalar {
            let row = r * per_row..(r + 1) * per_row;
            while t + 4 <= out.len() {
                let xs = [token(t), token(t + 1), token(t + 2), token(t + 3)];
                // SAFETY: `simd` is a level this CPU and OS support (`Simd::get`).
                let four = unsafe {
                    match (self, simd) {
                        (Matrix::Q4 { blocks, .. }, Simd::Vnni) => vnni::dot4_q4(&blocks[row.clone()], xs),
                        (Matrix::Q8 { blocks, .. }, Simd::Vnni) => vnni::dot4_q8(&blocks[row.clone()], xs),
                        (Matrix::Q4 { blocks, .. }, _) => avx2::dot4_q4(&blocks[row.clone()], xs),
                        (Matrix::Q8 { blocks, .. }, _) => avx2::dot4_q8(&blocks[row.clone()], xs),
                    }
                };
                out[t..t + 4].copy_from_slice(&four);
                t += 4;
            }
        }
        for (t, o) in out.iter_mut().enumerate().skip(t) {
            self.rows_times(r, token(t), std::slice::from_mut(o), simd);
        }
    }
}

/// Output rows per parallel task.
const TASK_ROWS: usize = 32;

/// Several products of the same input at once (one parallel pass: q, k and v;
/// gate and up), each `(matrix, out)` as in [`Matrix::matmul`]. Each task takes
/// a few rows of one matrix for every token, so a prompt reads each weight once.
pub(super) fn matmul_many(x: &[Act], jobs: &mut [(&Matrix, &mut [f32])]) {
    matmul_many_with(Simd::get().unwrap_or(Simd::Scalar), x, jobs);
}

/// [`matmul_many`] on the kernels of `simd` (one this CPU supports).
fn matmul_many_with(simd: Simd, x: &[Act], jobs: &mut [(&Matrix, &mut [f32])]) {
    let Some(cols) = jobs.first().map(|(m, _)| m.cols()) else {
        return;
    };
    let per_row = cols / BLOCK;
    let tokens = x.len() / per_row;
    if tokens == 1 {
        let tasks: Vec<(&Matrix, usize, &mut [f32])> = jobs
            .iter_mut()
            .flat_map(|(m, out)| {
                debug_assert_eq!((m.cols(), out.len()), (cols, m.rows()));
                let m: &Matrix = m;
                out.chunks_mut(TASK_ROWS)
                    .enumerate()
                    .map(move |(c, o)| (m, c * TASK_ROWS, o))
            })
            .collect();
        tasks
            .into_par_iter()
            .for_each(|(m, first, out)| m.rows_times(first, x, out, simd));
        return;
    }
    // Several tokens: results land row-major ([row][token]) and are transposed after.
    let mut by_row: Vec<Vec<f32>> = jobs.iter().map(|(m, _)| vec![0.0; m.rows() * tokens]).collect();
    let tasks: Vec<(&Matrix, usize, &mut [f32])> = jobs
        .iter()
        .zip(by_row.iter_mut())
        .flat_map(|((m, _), buf)| {
            let m: &Matrix = m;
            buf.chunks_mut(TASK_ROWS * tokens)
                .enumerate()
                .map(move |(c, o)| (m, c * TASK_ROWS, o))
        })
        .collect();
    tasks.into_par_iter().for_each(|(m, first, out)| {
        for (r, out) in (first..).zip(out.chunks_exact_mut(tokens)) {
            m.row_times_tokens(r, x, out, simd);
        }
    });
    for ((m, out), buf) in jobs.iter_mut().zip(&by_row) {
        let rows = m.rows();
        for (r, values) in buf.chunks_exact(tokens).enumerate() {
            for (t, v) in values.iter().enumerate() {
                out[t * rows + r] = *v;
            }
        }
    }
}

/// Quantize rows of `x` (each a multiple of 32 long) to 8-bit blocks into `out`
/// (in parallel for a prompt's worth).
pub(super) fn quantize(x: &[f32], out: &mut Vec<Act>) {
    out.clear();
    out.resize(
        x.len() / BLOCK,
        Act {
            d: 0.0,
            s: 0.0,
            qs: [0; 32],
        },
    );
    if out.len() >= 1024 {
        out.par_iter_mut()
            .zip(x.par_chunks_exact(BLOCK))
            .for_each(|(o, v)| *o = quantize_block(v));
    } else {
        for (o, v) in out.iter_mut().zip(x.chunks_exact(BLOCK)) {
            *o = quantize_block(v);
        }
    }
}

fn quantize_block(v: &[f32]) -> Act {
    let amax = v.iter().fold(0.0f32, |a, x| a.max(x.abs()));
    let d = amax / 127.0;
    let id = if amax > 0.0 { 127.0 / amax } else { 0.0 };
    let qs: [i8; 32] = std::array::from_fn(|i| (v[i] * id).round_ties_even() as i8);
    let sum: i32 = qs.iter().map(|&q| i32::from(q)).sum();
    // Scales are stored as f16, as llama.cpp's 8-bit blocks keep them.
    Act {
        d: f16::from_f32(d).to_f32(),
        s: f16::from_f32(d * sum as f32).to_f32(),
        qs,
    }
}

/// The instruction sets the kernels use, chosen once per process: the most
/// capable this CPU and OS support, or `LMHOST_CANDLE_SIMD` (`vnni`,
/// `avx2`, `scalar`) for comparing them (BENCHMARKS.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Simd {
    Scalar,
    /// AVX2 and FMA.
    Avx2,
    /// AVX-512 VNNI on 256-bit vectors (with AVX2 and FMA).
    Vnni,
}

impl Simd {
    const ALL: [(Simd, &'static str); 3] = [(Simd::Vnni, "vnni"), (Simd::Avx2, "avx2"), (Simd::Scalar, "scalar")];

    /// Whether this process may use it (`is_x86_feature_detected!` checks
    /// the OS's saved-state bits too).
    fn usable(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Simd::Scalar => true,
                Simd::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
                Simd::Vnni => {
                    Simd::Avx2.usable()
                        && is_x86_feature_detected!("avx512f")
                        && is_x86_feature_detected!("avx512vl")
                        && is_x86_feature_detected!("avx512vnni")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Simd::Scalar
        }
    }

    /// The level for this process, or why `LMHOST_CANDLE_SIMD` cannot be had.
    pub(super) fn get() -> Result<Simd, &'static str> {
        static LEVEL: std::sync::OnceLock<Result<Simd, String>> = std::sync::OnceLock::new();
        let level = LEVEL.get_or_init(|| match crate::config::candle_simd() {
            None => Ok(Simd::ALL
                .iter()
                .map(|(s, _)| *s)
                .find(|s| s.usable())
                .unwrap_or(Simd::Scalar)),
            Some(name) => match Simd::ALL.iter().find(|(_, n)| *n == name) {
                Some((s, _)) if s.usable() => Ok(*s),
                Some(_) => Err(format!(
                    "LMHOST_CANDLE_SIMD is `{name}`, which this CPU or OS does not support"
                )),
                None => Err(format!(
                    "LMHOST_CANDLE_SIMD is `{name}`; it may be vnni, avx2 or scalar"
                )),
            },
        });
        level.as_ref().map(|s| *s).map_err(String::as_str)
    }

    /// Its name, as `LMHOST_CANDLE_SIMD` spells it.
    pub(super) fn name(self) -> &'static str {
        Simd::ALL.iter().find(|(s, _)| *s == self).map_or("scalar", |(_, n)| n)
    }
}

fn dot_q4(w: &[Q4], x: &[Act], simd: Simd) -> f32 {
    // SAFETY: `simd` is a level this CPU and OS support (`Simd::get`).
    #[cfg(target_arch = "x86_64")]
    match simd {
        Simd::Vnni => return unsafe { vnni::dot_q4(w, x) },
        Simd::Avx2 => return unsafe { avx2::dot_q4(w, x) },
        Simd::Scalar => {}
    }
    let _ = simd;
    dot_q4_scalar(w, x)
}

fn dot_q8(w: &[Q8], x: &[Act], simd: Simd) -> f32 {
    // SAFETY: `simd` is a level this CPU and OS support (`Simd::get`).
    #[cfg(target_arch = "x86_64")]
    match simd {
        Simd::Vnni => return unsafe { vnni::dot_q8(w, x) },
        Simd::Avx2 => return unsafe { avx2::dot_q8(w, x) },
        Simd::Scalar => {}
    }
    let _ = simd;
    dot_q8_scalar(w, x)
}

fn dot_q4_scalar(w: &[Q4], x: &[Act]) -> f32 {
    w.iter()
        .zip(x)
        .map(|(w, x)| {
            let mut sum = 0i32;
            for j in 0..16 {
                sum += i32::from(w.qs[j] & 0x0f) * i32::from(x.qs[j]);
                sum += i32::from(w.qs[j] >> 4) * i32::from(x.qs[j + 16]);
            }
            w.d * x.d * sum as f32 + w.m * x.s
        })
        .sum()
}

fn dot_q8_scalar(w: &[Q8], x: &[Act]) -> f32 {
    w.iter()
        .zip(x)
        .map(|(w, x)| {
            let sum: i32 = w.qs.iter().zip(&x.qs).map(|(&a, &b)| i32::from(a) * i32::from(b)).sum();
            w.d * x.d * sum as f32
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reproducible stream of values in -1..1.
    fn values(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn bytes(format: Format, seed: u64, blocks: usize) -> Vec<u8> {
        let raw = values(seed, blocks * format.block_bytes());
        let mut out = Vec::new();
        for (i, chunk) in raw.chunks_exact(format.block_bytes()).enumerate() {
            let scale = f16::from_f32(0.01 + 0.001 * (i % 7) as f32).to_le_bytes();
            let offset = f16::from_f32(-0.05 * chunk[0]).to_le_bytes();
            let header = match format {
                Format::Q4_1 => [scale, offset].concat(),
                _ => scale.to_vec(),
            };
            out.extend_from_slice(&header);
            out.extend(chunk[header.len()..].iter().map(|v| ((v + 1.0) * 127.9) as u8));
        }
        out
    }

    /// The reference: dequantize both sides and multiply in f64.
    fn reference(m: &Matrix, x: &[Act], tokens: usize) -> Vec<f32> {
        let (rows, cols) = (m.rows(), m.cols());
        let mut out = vec![0.0; rows * tokens];
        let mut w = vec![0.0; cols];
        for r in 0..rows {
            m.row(r, &mut w);
            for t in 0..tokens {
                let mut sum = 0.0f64;
                for (c, w) in w.iter().enumerate() {
                    let a = &x[t * cols / BLOCK + c / BLOCK];
                    sum += f64::from(*w) * f64::from(a.d) * f64::from(a.qs[c % BLOCK]);
                }
                out[t * rows + r] = sum as f32;
            }
        }
        out
    }

    #[test]
    fn every_format_multiplies_like_its_dequantized_values_on_every_kernel() {
        let levels: Vec<Simd> = Simd::ALL.iter().map(|(s, _)| *s).filter(|s| s.usable()).collect();
        eprintln!("kernels tested here: {levels:?}");
        let rows = 70;
        // 3 and 7 blocks a row: every tail of the two- and four-block loops.
        for cols in [96, 224] {
            for format in [Format::Q4_0, Format::Q4_1, Format::Q8_0] {
                let m = Matrix::from_gguf(format, rows, cols, &bytes(format, 7, rows * cols / BLOCK)).unwrap();
                // 6 tokens: four at a time, then two alone.
                for tokens in [1, 3, 6] {
                    let mut x = Vec::new();
                    quantize(&values(11, tokens * cols), &mut x);
                    let want = reference(&m, &x, tokens);
                    let mut scalar = vec![0.0; rows * tokens];
                    matmul_many_with(Simd::Scalar, &x, &mut [(&m, &mut scalar)]);
                    for &simd in &levels {
                        let mut out = vec![0.0; rows * tokens];
                        matmul_many_with(simd, &x, &mut [(&m, &mut out)]);
                        for ((got, want), exact) in out.iter().zip(&want).zip(&scalar) {
                            // Q4 offsets use the f16-rounded scaled sum (as llama.cpp
                            // does): about 5e-4 of each block's offset term. A wrong
                            // nibble order or scale is off by whole units.
                            assert!(
                                (got - want).abs() <= 1e-2 * want.abs().max(1.0),
                                "{simd:?} {format:?}: {got} vs {want}"
                            );
                            // Every kernel computes the scalar loop's integer sums;
                            // only the order of the f32 additions differs.
                            assert!(
                                (got - exact).abs() <= 1e-4 * exact.abs().max(1.0),
                                "{simd:?} {format:?} {cols} cols, {tokens} tokens: {got} vs scalar {exact}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn quantized_activations_round_trip_within_half_a_step() {
        let v = values(3, 64);
        let mut x = Vec::new();
        quantize(&v, &mut x);
        for (block, values) in x.iter().zip(v.chunks_exact(BLOCK)) {
            for (q, v) in block.qs.iter().zip(values) {
                assert!((block.d * f32::from(*q) - v).abs() <= block.d * 0.51 + 1e-3);
            }
        }
        let mut zeros = Vec::new();
        quantize(&[0.0; 32], &mut zeros);
        assert_eq!((zeros[0].d, zeros[0].s, zeros[0].qs), (0.0, 0.0, [0; 32]));
    }

    #[test]
    fn a_ragged_row_or_short_data_is_an_error() {
        assert!(Matrix::from_gguf(Format::Q8_0, 2, 40, &[0; 68])
            .err()
            .unwrap()
            .contains("40 values"));
        assert!(Matrix::from_gguf(Format::Q4_1, 2, 32, &[0; 39])
            .err()
            .unwrap()
            .contains("expected 40"));
    }
}
