//! A llama-family forward pass on the CPU over quantized GGUF weights, with
//! [`kernels`](super::kernels) doing the matrix products.
//!
//! candle's own quantized path multiplies Q4_1 weights with a scalar loop (its
//! SIMD kernels need AVX2 at compile time) and walks the whole weight matrix once
//! per prompt token; this path is the engine's default for GGUF on the CPU when
//! every matrix is Q4_0, Q4_1 or Q8_0 and the file needs no rope scaling. Anything
//! else runs on candle's `quantized_llama` (see `candle_kernels`).
//!
//! The arithmetic follows llama.cpp's: activations quantized to 8 bits per 32
//! values for each product, RMS norm, rotary embedding over adjacent pairs (the
//! GGUF layout of llama q/k weights), grouped-query attention over an f32 KV
//! cache, SwiGLU feed-forward.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use candle_core::quantized::{gguf_file, GgmlDType};
use candle_core::Device;
use rayon::prelude::*;

use super::kernels::{matmul_many, quantize, Act, Format, Matrix, Simd, BLOCK};

struct Layer {
    attn_norm: Vec<f32>,
    q: Matrix,
    k: Matrix,
    v: Matrix,
    o: Matrix,
    ffn_norm: Vec<f32>,
    gate: Matrix,
    up: Matrix,
    down: Matrix,
}

/// The model and its KV cache (one sequence).
pub(super) struct CpuLlama {
    embed: Matrix,
    /// `None`: the output projection is the embedding (tied weights).
    output: Option<Matrix>,
    norm: Vec<f32>,
    layers: Vec<Layer>,
    dim: usize,
    n_head: usize,
    n_kv: usize,
    head_dim: usize,
    eps: f32,
    /// Rotated pairs of each head, and the factor between two pairs' frequencies.
    rope_pairs: usize,
    rope_step: f32,
    /// Per layer: keys and values of every position so far, `positions × n_kv × head_dim`.
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
}

fn format_of(dtype: GgmlDType) -> Option<Format> {
    match dtype {
        GgmlDType::Q4_0 => Some(Format::Q4_0),
        GgmlDType::Q4_1 => Some(Format::Q4_1),
        GgmlDType::Q8_0 => Some(Format::Q8_0),
        _ => None,
    }
}

/// Why this path cannot run the file (it then runs on candle's), or `None`.
pub(super) fn unsupported(content: &gguf_file::Content) -> Option<String> {
    if content
        .metadata
        .keys()
        .any(|k| k.starts_with("llama.rope.scaling") || k == "llama.expert_count")
    {
        return Some("it uses rope scaling or experts".into());
    }
    if content.tensor_infos.contains_key("rope_freqs.weight") {
        return Some("it carries rope frequency factors".into());
    }
    for (name, info) in &content.tensor_infos {
        let matrix = info.shape.dims().len() == 2;
        if matrix && format_of(info.ggml_dtype).is_none() {
            return Some(format!("`{name}` is {:?}", info.ggml_dtype));
        }
    }
    None
}

impl CpuLlama {
    /// Load the weights of a llama GGUF whose [`unsupported`] is `None`.
    pub(super) fn load(content: &gguf_file::Content, file: &mut File) -> Result<Self, String> {
        let simd = Simd::get()?;
        tracing::debug!(kernels = simd.name(), "candle engine's integer kernels");
        let md = &content.metadata;
        let int = |key: &str| -> Result<usize, String> {
            md.get(key)
                .and_then(|v| v.to_u32().ok())
                .map(|v| v as usize)
                .ok_or_else(|| format!("the GGUF has no `{key}`"))
        };
        let float = |key: &str, default: f32| md.get(key).and_then(|v| v.to_f32().ok()).unwrap_or(default);
        let dim = int("llama.embedding_length")?;
        let n_head = int("llama.attention.head_count")?;
        let n_kv = int("llama.attention.head_count_kv").unwrap_or(n_head);
        let n_layer = int("llama.block_count")?;
        if n_head == 0 || !dim.is_multiple_of(n_head) || n_kv == 0 || !n_head.is_multiple_of(n_kv) {
            return Err(format!(
                "{n_head} heads, {n_kv} KV heads and width {dim} do not fit together"
            ));
        }
        let head_dim = dim / n_head;
        let rope_dims = int("llama.rope.dimension_count").unwrap_or(head_dim).min(head_dim);
        let base = float("llama.rope.freq_base", 10_000.0);

        let mut matrix = |name: &str| -> Result<Matrix, String> {
            let info = content
                .tensor_infos
                .get(name)
                .ok_or_else(|| format!("the GGUF has no tensor `{name}`"))?;
            let format = format_of(info.ggml_dtype).ok_or_else(|| format!("`{name}` is {:?}", info.ggml_dtype))?;
            let &[rows, cols] = info.shape.dims() else {
                return Err(format!("`{name}` is not a matrix: {:?}", info.shape));
            };
            let mut bytes = vec![0u8; rows * cols / BLOCK * format.block_bytes()];
            file.seek(SeekFrom::Start(content.tensor_data_offset + info.offset))
                .and_then(|_| file.read_exact(&mut bytes))
                .map_err(|e| format!("cannot read `{name}`: {e}"))?;
            Matrix::from_gguf(format, rows, cols, &bytes).map_err(|e| format!("`{name}`: {e}"))
        };
        let embed = matrix("token_embd.weight")?;
        let output = match content.tensor_infos.contains_key("output.weight") {
            true => Some(matrix("output.weight")?),
            false => None,
        };
        let mut layers = Vec::with_capacity(n_layer);
        for l in 0..n_layer {
            let p = format!("blk.{l}");
            layers.push(Layer {
                attn_norm: Vec::new(),
                q: matrix(&format!("{p}.attn_q.weight"))?,
                k: matrix(&format!("{p}.attn_k.weight"))?,
                v: matrix(&format!("{p}.attn_v.weight"))?,
                o: matrix(&format!("{p}.attn_output.weight"))?,
                ffn_norm: Vec::new(),
                gate: matrix(&format!("{p}.ffn_gate.weight"))?,
                up: matrix(&format!("{p}.ffn_up.weight"))?,
                down: matrix(&format!("{p}.ffn_down.weight"))?,
            });
        }
        let mut vector = |name: &str| -> Result<Vec<f32>, String> {
            let info = content
                .tensor_infos
                .get(name)
                .ok_or_else(|| format!("the GGUF has no tensor `{name}`"))?;
            let v = info
                .read(file, content.tensor_data_offset, &Device::Cpu)
                .and_then(|t| t.dequantize(&Device::Cpu))
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(|e| format!("cannot read `{name}`: {e}"))?;
            if v.len() != dim {
                return Err(format!("`{name}` has {} values, expected {dim}", v.len()));
            }
            Ok(v)
        };
        for (l, layer) in layers.iter_mut().enumerate() {
            layer.attn_norm = vector(&format!("blk.{l}.attn_norm.weight"))?;
            layer.ffn_norm = vector(&format!("blk.{l}.ffn_norm.weight"))?;
        }
        let norm = vector("output_norm.weight")?;
        let kv = n_kv * head_dim;
        for layer in &layers {
            let shapes = [
                (&layer.q, dim, dim),
                (&layer.k, kv, dim),
                (&layer.v, kv, dim),
                (&layer.o, dim, dim),
                (&layer.gate, layer.gate.rows(), dim),
                (&layer.up, layer.gate.rows(), dim),
                (&layer.down, dim, layer.gate.rows()),
            ];
            if shapes.iter().any(|(m, r, c)| m.rows() != *r || m.cols() != *c) {
                return Err("a layer's matrices do not have the shapes its metadata gives".into());
            }
        }
        if embed.cols() != dim || output.as_ref().is_some_and(|o| o.cols() != dim) {
            return Err("the embedding or output matrix is not as wide as the model".into());
        }
        Ok(Self {
            embed,
            output,
            norm,
            layers,
            dim,
            n_head,
            n_kv,
            head_dim,
            eps: float("llama.attention.layer_norm_rms_epsilon", 1e-5),
            rope_pairs: rope_dims / 2,
            rope_step: base.powf(-2.0 / rope_dims as f32),
            keys: vec![Vec::new(); n_layer],
            values: vec![Vec::new(); n_layer],
        })
    }

    /// Vocabulary size (rows of the output projection).
    fn vocab(&self) -> usize {
        self.output.as_ref().unwrap_or(&self.embed).rows()
    }

    /// Feed `tokens` at positions `position..`, dropping any cached positions
    /// from `position` on; returns the logits after the last token.
    pub(super) fn forward(&mut self, tokens: &[u32], position: usize) -> Result<Vec<f32>, String> {
        let (dim, hd) = (self.dim, self.head_dim);
        let kv = self.n_kv * hd;
        let m = tokens.len();
        if m == 0 {
            return Err("no tokens to feed".into());
        }
        if self.keys[0].len() < position * kv {
            return Err(format!("position {position} is past the cached sequence"));
        }
        let vocab = self.vocab();
        let mut x = vec![0.0f32; m * dim];
        for (t, &token) in tokens.iter().enumerate() {
            if token as usize >= self.embed.rows() {
                return Err(format!("token id {token} is outside the vocabulary of {vocab}"));
            }
            self.embed.row(token as usize, &mut x[t * dim..(t + 1) * dim]);
        }
        let ff = self.layers.first().map_or(0, |l| l.gate.rows());
        let turns: Vec<_> = (0..m)
            .map(|t| turns(self.rope_pairs, self.rope_step, position + t))
            .collect();
        let mut h = vec![0.0f32; m * dim];
        let mut acts: Vec<Act> = Vec::new();
        let (mut q, mut k, mut v) = (vec![0.0f32; m * dim], vec![0.0f32; m * kv], vec![0.0f32; m * kv]);
        let (mut attn, mut proj) = (vec![0.0f32; m * dim], vec![0.0f32; m * dim]);
        let (mut gate, mut up) = (vec![0.0f32; m * ff], vec![0.0f32; m * ff]);
        for (l, layer) in self.layers.iter().enumerate() {
            rms_norm(&x, &layer.attn_norm, self.eps, &mut h);
            quantize(&h, &mut acts);
            matmul_many(&acts, &mut [(&layer.q, &mut q), (&layer.k, &mut k), (&layer.v, &mut v)]);
            for (t, turns) in turns.iter().enumerate() {
                rope(&mut q[t * dim..(t + 1) * dim], hd, turns);
                rope(&mut k[t * kv..(t + 1) * kv], hd, turns);
            }
            // llama.cpp keeps keys and values (and multiplies queries) in f16.
            for v in q.iter_mut().chain(k.iter_mut()).chain(v.iter_mut()) {
                *v = half::f16::from_f32(*v).to_f32();
            }
            let (keys, values) = (&mut self.keys[l], &mut self.values[l]);
            keys.truncate(position * kv);
            values.truncate(position * kv);
            keys.extend_from_slice(&k);
            values.extend_from_slice(&v);
            attention(&q, keys, values, (self.n_head, self.n_kv, hd), position, &mut attn);
            quantize(&attn, &mut acts);
            layer.o.matmul(&acts, &mut proj);
            add(&mut x, &proj);

            rms_norm(&x, &layer.ffn_norm, self.eps, &mut h);
            quantize(&h, &mut acts);
            matmul_many(&acts, &mut [(&layer.gate, &mut gate), (&layer.up, &mut up)]);
            let swiglu = |(g, u): (&mut [f32], &[f32])| {
                for (g, u) in g.iter_mut().zip(u) {
                    *g = *g / (1.0 + (-*g).exp()) * u;
                }
            };
            if m > 1 {
                gate.par_chunks_mut(ff).zip(up.par_chunks(ff)).for_each(swiglu);
            } else {
                swiglu((&mut gate, &up));
            }
            quantize(&gate, &mut acts);
            layer.down.matmul(&acts, &mut proj);
            add(&mut x, &proj);
        }
        let last = &x[(m - 1) * dim..];
        rms_norm(last, &self.norm, self.eps, &mut h[..dim]);
        quantize(&h[..dim], &mut acts);
        let mut logits = vec![0.0f32; vocab];
        self.output.as_ref().unwrap_or(&self.embed).matmul(&acts, &mut logits);
        Ok(logits)
    }
}

/// `out = x / rms(x) * weight`, per row of `weight.len()` values.
fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let n = weight.len();
    for (row, out) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        // Squares summed in f64, as llama.cpp does.
        let mean = (row.iter().map(|v| f64::from(v * v)).sum::<f64>() / n as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for ((o, v), w) in out.iter_mut().zip(row).zip(weight) {
            *o = v * scale * w;
        }
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    for (x, y) in x.iter_mut().zip(y) {
        *x += y;
    }
}

/// The (sin, cos) of each rotated pair at `position`: pair `i` turns by
/// `position · step^i` (`step` = `base^(-2/dims)`), the angle multiplied pair by
/// pair as llama.cpp computes it.
fn turns(pairs: usize, step: f32, position: usize) -> Vec<(f32, f32)> {
    let mut theta = position as f32;
    (0..pairs)
        .map(|_| {
            let turn = theta.sin_cos();
            theta *= step;
            turn
        })
        .collect()
}

/// Rotate adjacent pairs of each head's first `2 * turns.len()` values.
fn rope(x: &mut [f32], head_dim: usize, turns: &[(f32, f32)]) {
    for head in x.chunks_exact_mut(head_dim) {
        for (i, &(sin, cos)) in turns.iter().enumerate() {
            let (a, b) = (head[2 * i], head[2 * i + 1]);
            head[2 * i] = a * cos - b * sin;
            head[2 * i + 1] = a * sin + b * cos;
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight running sums, so the loop vectorizes.
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Causal grouped-query attention of the `q` rows (positions `position..`)
/// over every cached key and value up to each row's own position.
fn attention(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    (n_head, n_kv, hd): (usize, usize, usize),
    position: usize,
    out: &mut [f32],
) {
    let kv = n_kv * hd;
    let group = n_head / n_kv;
    let scale = 1.0 / (hd as f32).sqrt();
    out.par_chunks_mut(hd).enumerate().for_each(|(i, out)| {
        let (t, head) = (i / n_head, i % n_head);
        let kv_head = head / group;
        let qh = &q[i * hd..(i + 1) * hd];
        let seen = position + t + 1;
        let mut scores: Vec<f32> = (0..seen)
            .map(|p| dot(qh, &keys[p * kv + kv_head * hd..][..hd]) * scale)
            .collect();
        let max = scores.iter().fold(f32::NEG_INFINITY, |a, &s| a.max(s));
        let mut total = 0.0;
        for s in &mut scores {
            *s = (*s - max).exp();
            total += *s;
        }
        out.fill(0.0);
        for (p, s) in scores.iter().enumerate() {
            let w = s / total;
            for (o, v) in out.iter_mut().zip(&values[p * kv + kv_head * hd..][..hd]) {
                *o += w * v;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_turns_pairs_by_position_times_frequency() {
        let mut x = vec![1.0, 0.0, 0.0, 2.0];
        rope(&mut x, 4, &turns(2, 0.5, 2));
        let close = |a: f32, b: f32| (a - b).abs() < 1e-5;
        assert!(close(x[0], 2f32.cos()) && close(x[1], 2f32.sin()));
        assert!(close(x[2], -2.0 * 1f32.sin()) && close(x[3], 2.0 * 1f32.cos()));
        let mut still = vec![3.0, 4.0];
        rope(&mut still, 2, &turns(1, 1.0, 0));
        assert_eq!(still, [3.0, 4.0]);
    }

    #[test]
    fn attention_of_one_position_is_its_value_and_later_rows_see_earlier_ones() {
        // One head of width 2; two positions fed at once.
        let q = [1.0, 0.0, 1.0, 0.0];
        let keys = [1.0, 0.0, -1.0, 0.0];
        let values = [5.0, 6.0, 7.0, 8.0];
        let mut out = [0.0; 4];
        attention(&q, &keys, &values, (1, 1, 2), 0, &mut out);
        assert_eq!(&out[..2], &[5.0, 6.0]);
        // Row 2 weighs value 1 by e^(1/√2) and value 2 by e^(-1/√2).
        let (a, b) = ((1.0f32 / 2f32.sqrt()).exp(), (-1.0f32 / 2f32.sqrt()).exp());
        let want = (5.0 * a + 7.0 * b) / (a + b);
        assert!((out[2] - want).abs() < 1e-5, "{} vs {want}", out[2]);
    }

    #[test]
    fn rms_norm_scales_each_row_to_unit_rms_times_weight() {
        let mut out = [0.0; 4];
        rms_norm(&[3.0, 4.0, 0.0, 0.0], &[1.0, 2.0], 1e-6, &mut out);
        let rms = (12.5f32).sqrt();
        assert!((out[0] - 3.0 / rms).abs() < 1e-5 && (out[1] - 8.0 / rms).abs() < 1e-5);
        assert_eq!(&out[2..], &[0.0, 0.0]);
    }
}
