//! The x86 kernels, one body instantiated per instruction set:
//!
//! - [`avx2`] (AVX2 + FMA): a block's 32 byte products summed into eight
//!   32-bit lanes in two steps (`vpmaddubsw` to 16-bit pairs, `vpmaddwd`);
//! - [`vnni`] (AVX-512 VNNI on 256-bit vectors, `avx512vl`): the same sums in
//!   one `vpdpbusd`. 256 bits, not 512: on CPUs that split 512-bit work into
//!   two halves the wider form only added packing (measured: prompts 10 %
//!   slower than AVX2; BENCHMARKS.md, "candle kernels").
//!
//! The integer sums are identical (no 16-bit step saturates: Q4 is 0..16 and
//! Q8's `|w|` at most 128, times activations in -127..=127), so both give the
//! scalar loop's results up to the order of f32 additions.

use std::arch::x86_64::*;

/// A block's 32 products of unsigned `qw` and signed `qx` bytes, each four
/// summed into one of eight 32-bit lanes: AVX2.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn sums_avx2(qw: __m256i, qx: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(qw, qx), _mm256_set1_epi16(1))
}

/// The same with one VNNI instruction.
#[inline]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512vnni")]
fn sums_vnni(qw: __m256i, qx: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), qw, qx)
}

macro_rules! kernels {
    ($name:ident, $features:literal, $sums:ident) => {
        pub(super) mod $name {
            use std::arch::x86_64::*;

            use super::super::{Act, Q4, Q8};

            #[inline]
            #[target_feature(enable = $features)]
            fn hsum(v: __m256) -> f32 {
                let s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
                _mm_cvtss_f32(s)
            }

            /// A Q4 block's 32 weights as bytes 0..16 (low nibbles are
            /// values 0..16, high nibbles 16..32).
            #[inline]
            #[target_feature(enable = $features)]
            fn nibbles(w: &Q4) -> __m256i {
                // SAFETY: `qs` holds 16 bytes; an unaligned load.
                let packed = unsafe { _mm_loadu_si128(w.qs.as_ptr().cast()) };
                _mm256_and_si256(
                    _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed),
                    _mm256_set1_epi8(0x0f),
                )
            }

            #[inline]
            #[target_feature(enable = $features)]
            fn bytes(qs: &[i8; 32]) -> __m256i {
                // SAFETY: 32 bytes; an unaligned load.
                unsafe { _mm256_loadu_si256(qs.as_ptr().cast()) }
            }

            /// Unsigned weights `qw` times a block of activations, as f32 lanes.
            #[inline]
            #[target_feature(enable = $features)]
            fn products(qw: __m256i, x: &Act) -> __m256 {
                _mm256_cvtepi32_ps(super::$sums(qw, bytes(&x.qs)))
            }

            /// Signed Q8 weights times activations: `|w|` times `x` with
            /// `w`'s sign, an unsigned × signed product.
            #[inline]
            #[target_feature(enable = $features)]
            fn products_q8(qw: __m256i, x: &Act) -> __m256 {
                let qx = bytes(&x.qs);
                _mm256_cvtepi32_ps(super::$sums(_mm256_sign_epi8(qw, qw), _mm256_sign_epi8(qx, qw)))
            }

            /// One weight row times four tokens: each block unpacked once.
            #[target_feature(enable = $features)]
            pub(in super::super) fn dot4_q4(w: &[Q4], x: [&[Act]; 4]) -> [f32; 4] {
                let mut acc = [_mm256_setzero_ps(); 4];
                let mut off = [0.0f32; 4];
                for (b, w) in w.iter().enumerate() {
                    let qw = nibbles(w);
                    for k in 0..4 {
                        let x = &x[k][b];
                        acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(w.d * x.d), products(qw, x), acc[k]);
                        off[k] += w.m * x.s;
                    }
                }
                let mut out = off;
                for (o, acc) in out.iter_mut().zip(acc) {
                    *o += hsum(acc);
                }
                out
            }

            /// One weight row times four tokens.
            #[target_feature(enable = $features)]
            pub(in super::super) fn dot4_q8(w: &[Q8], x: [&[Act]; 4]) -> [f32; 4] {
                let mut acc = [_mm256_setzero_ps(); 4];
                for (b, w) in w.iter().enumerate() {
                    let qw = bytes(&w.qs);
                    for k in 0..4 {
                        let x = &x[k][b];
                        acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(w.d * x.d), products_q8(qw, x), acc[k]);
                    }
                }
                acc.map(|a| hsum(a))
            }

            // Two blocks per step into two accumulators: one chain of dependent
            // multiply-adds would wait on its own latency every block.

            /// Σ over blocks of `d_w d_x Σ q_w q_x + m_w s_x`.
            #[target_feature(enable = $features)]
            pub(in super::super) fn dot_q4(w: &[Q4], x: &[Act]) -> f32 {
                let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
                let (mut off0, mut off1) = (0.0f32, 0.0f32);
                let (wp, xp) = (w.chunks_exact(2), x.chunks_exact(2));
                let tail = wp.remainder().iter().zip(xp.remainder());
                for (w, x) in wp.zip(xp) {
                    acc0 = _mm256_fmadd_ps(
                        _mm256_set1_ps(w[0].d * x[0].d),
                        products(nibbles(&w[0]), &x[0]),
                        acc0,
                    );
                    acc1 = _mm256_fmadd_ps(
                        _mm256_set1_ps(w[1].d * x[1].d),
                        products(nibbles(&w[1]), &x[1]),
                        acc1,
                    );
                    off0 += w[0].m * x[0].s;
                    off1 += w[1].m * x[1].s;
                }
                for (w, x) in tail {
                    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(w.d * x.d), products(nibbles(w), x), acc0);
                    off0 += w.m * x.s;
                }
                hsum(_mm256_add_ps(acc0, acc1)) + (off0 + off1)
            }

            /// Σ over blocks of `d_w d_x Σ q_w q_x`.
            #[target_feature(enable = $features)]
            pub(in super::super) fn dot_q8(w: &[Q8], x: &[Act]) -> f32 {
                let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
                let (wp, xp) = (w.chunks_exact(2), x.chunks_exact(2));
                let tail = wp.remainder().iter().zip(xp.remainder());
                for (w, x) in wp.zip(xp) {
                    acc0 = _mm256_fmadd_ps(
                        _mm256_set1_ps(w[0].d * x[0].d),
                        products_q8(bytes(&w[0].qs), &x[0]),
                        acc0,
                    );
                    acc1 = _mm256_fmadd_ps(
                        _mm256_set1_ps(w[1].d * x[1].d),
                        products_q8(bytes(&w[1].qs), &x[1]),
                        acc1,
                    );
                }
                for (w, x) in tail {
                    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(w.d * x.d), products_q8(bytes(&w.qs), x), acc0);
                }
                hsum(_mm256_add_ps(acc0, acc1))
            }
        }
    };
}

kernels!(avx2, "avx2,fma", sums_avx2);
kernels!(vnni, "avx2,fma,avx512f,avx512vl,avx512vnni", sums_vnni);
