//! The serving forward pass: the same transformer as [`crate::encoder`]'s candle graph, written
//! as one loop over flat buffers around the quantized kernel of [`crate::kernel`].
//!
//! What makes it fast on a small CPU, beyond the kernel:
//! * **no padding**: the token sequences of a batch are concatenated; every matmul runs over all
//!   tokens of the batch at once (each weight row is read once per batch), and attention runs per
//!   sequence, so texts of any lengths share one pass at no cost;
//! * activations are quantized **once per layer input** and shared by Q, K and V, which are one
//!   stacked matrix; bias and GELU are applied as the kernel stores its outputs;
//! * buffers are allocated once per call, not once per operation.

use rayon::prelude::*;

use crate::e5s1::{E5s1, StoredDType, Q4_0_BLOCK_BYTES};
use crate::kernel::{simd, Epilogue, PackedLinear, QuantActs, QK};
use crate::ModelError;

struct Layer {
    qkv: PackedLinear,
    ao: PackedLinear,
    aln: (Vec<f32>, Vec<f32>),
    fi: PackedLinear,
    fo: PackedLinear,
    oln: (Vec<f32>, Vec<f32>),
}

/// multilingual-e5-small with packed Q4_0 weights.
pub struct PackedEncoder {
    /// Word embeddings as stored: Q4_0 rows of `hidden` values.
    word: Vec<u8>,
    pos: Vec<f32>,
    type0: Vec<f32>,
    eln: (Vec<f32>, Vec<f32>),
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    vocab: usize,
    max_positions: usize,
    eps: f32,
}

fn linear(f: &E5s1, name: &str, out: usize, inp: usize) -> Result<PackedLinear, ModelError> {
    let raw = f.raw(&format!("{name}.w"), StoredDType::Q4_0, out * inp)?;
    let bias = f.f32s(&format!("{name}.b"), out)?;
    Ok(PackedLinear::from_q4_0(raw, out, inp, bias))
}

fn norm(f: &E5s1, name: &str, h: usize) -> Result<(Vec<f32>, Vec<f32>), ModelError> {
    Ok((
        f.f32s(&format!("{name}.w"), h)?,
        f.f32s(&format!("{name}.b"), h)?,
    ))
}

/// `x = LayerNorm(x + y)` row by row (`y` absent: `LayerNorm(x)`).
fn add_layernorm(x: &mut [f32], y: Option<&[f32]>, (w, b): &(Vec<f32>, Vec<f32>), eps: f32) {
    let h = w.len();
    let work = |(t, r): (usize, &mut [f32])| {
        simd::with_avx2(|| {
            if let Some(y) = y {
                r.iter_mut()
                    .zip(&y[t * h..(t + 1) * h])
                    .for_each(|(a, b)| *a += b);
            }
            let mean = r.iter().sum::<f32>() / h as f32;
            let var = r.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h as f32;
            let inv = 1.0 / (var + eps).sqrt();
            for ((v, w), b) in r.iter_mut().zip(w).zip(b) {
                *v = (*v - mean) * inv * w + b;
            }
        })
    };
    if x.len() / h >= 8 {
        x.par_chunks_mut(h).enumerate().for_each(work);
    } else {
        x.chunks_mut(h).enumerate().for_each(work);
    }
}

impl PackedEncoder {
    /// Copy and pack the weights out of a parsed E5S1 file.
    pub fn load(f: &E5s1) -> Result<Self, ModelError> {
        let h = f.header;
        let (hd, ff) = (h.hidden, h.ffn);
        if hd % QK != 0 || ff % QK != 0 || h.heads == 0 || hd % h.heads != 0 {
            return Err(ModelError::Format(format!(
                "unsupported shape: hidden {hd}, ffn {ff}, heads {}",
                h.heads
            )));
        }
        let word = f.raw("emb.word", StoredDType::Q4_0, h.vocab * hd)?.to_vec();
        let types = f.f32s("emb.type", h.type_vocab * hd)?;
        let mut layers = Vec::with_capacity(h.layers);
        for l in 0..h.layers {
            let n = |s: &str| format!("l{l}.{s}");
            layers.push(Layer {
                qkv: PackedLinear::concat(vec![
                    linear(f, &n("q"), hd, hd)?,
                    linear(f, &n("k"), hd, hd)?,
                    linear(f, &n("v"), hd, hd)?,
                ]),
                ao: linear(f, &n("ao"), hd, hd)?,
                aln: norm(f, &n("aln"), hd)?,
                fi: linear(f, &n("fi"), ff, hd)?,
                fo: linear(f, &n("fo"), hd, ff)?,
                oln: norm(f, &n("oln"), hd)?,
            });
        }
        Ok(Self {
            word,
            pos: f.f32s("emb.pos", h.max_positions * hd)?,
            type0: types[..hd].to_vec(),
            eln: norm(f, "emb.ln", hd)?,
            layers,
            hidden: hd,
            heads: h.heads,
            vocab: h.vocab,
            max_positions: h.max_positions,
            eps: h.eps as f32,
        })
    }

    /// Mean-pooled (not normalised) embeddings of token-id sequences, all in one pass.
    pub fn forward(&self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, ModelError> {
        // Run the whole pass on a pool thread: the ~50 parallel steps inside then fork from a
        // worker (work stealing) instead of each one handing off from the caller's thread and
        // sleeping until it is done.
        rayon::scope(|_| self.forward_in_pool(batch))
    }

    fn forward_in_pool(&self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, ModelError> {
        let hd = self.hidden;
        let mut starts = Vec::with_capacity(batch.len() + 1);
        starts.push(0usize);
        for s in batch {
            if s.is_empty() || s.len() > self.max_positions {
                return Err(ModelError::Input(format!(
                    "sequence length {} outside 1..={}",
                    s.len(),
                    self.max_positions
                )));
            }
            if let Some(&id) = s.iter().find(|&&id| id as usize >= self.vocab) {
                return Err(ModelError::Input(format!(
                    "token id {id} ≥ vocabulary size"
                )));
            }
            starts.push(starts.last().copied().unwrap_or(0) + s.len());
        }
        let t = *starts.last().unwrap_or(&0);
        if t == 0 {
            return Ok(Vec::new());
        }
        // Segment bounds of every token, for attention.
        let mut seg = Vec::with_capacity(t);
        for w in starts.windows(2) {
            seg.extend(std::iter::repeat_n((w[0], w[1]), w[1] - w[0]));
        }

        // Embeddings: dequantized word row + position + token type 0, then LayerNorm.
        let mut x = vec![0f32; t * hd];
        let row_bytes = hd / QK * Q4_0_BLOCK_BYTES;
        let ids = batch.iter().flat_map(|s| s.iter().enumerate());
        for ((p, &id), r) in ids.zip(x.chunks_exact_mut(hd)) {
            let src = &self.word[id as usize * row_bytes..][..row_bytes];
            for (blk, out) in src
                .chunks_exact(Q4_0_BLOCK_BYTES)
                .zip(r.chunks_exact_mut(QK))
            {
                let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                for j in 0..16 {
                    out[j] = ((blk[2 + j] & 0x0F) as f32 - 8.0) * d;
                    out[j + 16] = ((blk[2 + j] >> 4) as f32 - 8.0) * d;
                }
            }
            let pos = &self.pos[p * hd..(p + 1) * hd];
            for ((v, a), b) in r.iter_mut().zip(pos).zip(&self.type0) {
                *v += a + b;
            }
        }
        add_layernorm(&mut x, None, &self.eln, self.eps);

        let first = &self.layers[0];
        let (mut a_h, mut a_ff): (QuantActs, QuantActs) = (first.qkv.acts(), first.fo.acts());
        let (mut qkv, mut ctx, mut tmp, mut mid, mut kt) = (
            Vec::new(),
            vec![0f32; t * hd],
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        for ly in &self.layers {
            ly.qkv.quantize(&x, &mut a_h);
            ly.qkv.forward(&a_h, &mut qkv, Epilogue::None);
            self.attention(&qkv, &seg, &mut kt, &mut ctx);
            ly.ao.quantize(&ctx, &mut a_h);
            ly.ao.forward(&a_h, &mut tmp, Epilogue::None);
            add_layernorm(&mut x, Some(&tmp), &ly.aln, self.eps);
            ly.fi.quantize(&x, &mut a_h);
            ly.fi.forward(&a_h, &mut mid, Epilogue::Gelu);
            ly.fo.quantize(&mid, &mut a_ff);
            ly.fo.forward(&a_ff, &mut tmp, Epilogue::None);
            add_layernorm(&mut x, Some(&tmp), &ly.oln, self.eps);
        }
        // Mean pooling over every token of each sequence (special tokens included).
        Ok(starts
            .windows(2)
            .map(|w| {
                let mut o = vec![0f32; hd];
                for r in x[w[0] * hd..w[1] * hd].chunks_exact(hd) {
                    o.iter_mut().zip(r).for_each(|(a, b)| *a += b);
                }
                let inv = 1.0 / (w[1] - w[0]) as f32;
                o.iter_mut().for_each(|v| *v *= inv);
                o
            })
            .collect())
    }

    /// Scaled dot-product attention of every token over its own sequence; `qkv` is
    /// `[tokens][q | k | v]`, `ctx` receives `[tokens][hidden]`. Keys are first transposed to
    /// `[hidden][tokens]` so each query's scores are one vectorized loop over its sequence.
    fn attention(&self, qkv: &[f32], seg: &[(usize, usize)], kt: &mut Vec<f32>, ctx: &mut [f32]) {
        let (hd, nh) = (self.hidden, self.heads);
        let dh = hd / nh;
        let t = seg.len();
        let stride = 3 * hd;
        let scale = 1.0 / (dh as f32).sqrt();
        // Per sequence [s0, s1): its keys transposed at kt[s0·hd ..], element (e, s) at
        // e·len + (s − s0) — a block that stays in cache while it is written.
        kt.resize(hd * t, 0.0);
        for (s, row) in qkv.chunks_exact(stride).enumerate() {
            let (s0, s1) = seg[s];
            let (base, len) = (s0 * hd, s1 - s0);
            for (e, &k) in row[hd..2 * hd].iter().enumerate() {
                kt[base + e * len + (s - s0)] = k;
            }
        }
        let kt = &kt[..];
        let work = |prob: &mut Vec<f32>, (tok, out): (usize, &mut [f32])| {
            simd::with_avx2(|| {
                let (s0, s1) = seg[tok];
                prob.resize(s1 - s0, 0.0);
                for h in 0..nh {
                    let q = &qkv[tok * stride + h * dh..][..dh];
                    prob.fill(0.0);
                    for (e, &qe) in q.iter().enumerate() {
                        let qe = qe * scale;
                        let at = s0 * hd + (h * dh + e) * (s1 - s0);
                        let k = &kt[at..at + (s1 - s0)];
                        prob.iter_mut().zip(k).for_each(|(p, k)| *p += qe * k);
                    }
                    let mx = prob.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                    prob.iter_mut()
                        .for_each(|p| *p = crate::kernel::exp(*p - mx));
                    let inv = 1.0 / prob.iter().sum::<f32>();
                    let o = &mut out[h * dh..(h + 1) * dh];
                    o.fill(0.0);
                    for (s, p) in (s0..s1).zip(prob.iter()) {
                        let v = &qkv[s * stride + 2 * hd + h * dh..][..dh];
                        let p = p * inv;
                        o.iter_mut().zip(v).for_each(|(a, b)| *a += p * b);
                    }
                }
            })
        };
        if t >= 8 {
            ctx.par_chunks_mut(hd)
                .enumerate()
                .with_min_len(4)
                .for_each_init(Vec::new, work);
        } else {
            let mut prob = Vec::new();
            ctx.chunks_mut(hd)
                .enumerate()
                .for_each(|x| work(&mut prob, x));
        }
    }
}
