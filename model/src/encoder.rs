//! The XLM-R (BERT-style) encoder of multilingual-e5-small on candle.
//!
//! Three paths over the same stored weights:
//! * [`Precision::Q4`] (serving): [`crate::packed`], 4-bit weights × 8-bit activations in the
//!   lane-packed kernel of [`crate::kernel`], no padding, fused epilogues.
//! * [`Precision::CandleQ4`]: the candle graph below with the 4-bit blocks as candle `Q4_0`
//!   tensors (`QMatMul`, activations quantized to Q8_0 inside candle, as in GGML) — the first
//!   implementation, kept as a second quantized path to compare with (it measured ~3× slower
//!   than the wheel's C engine, see README "Encoder speed").
//! * [`Precision::F32`]: every matrix dequantized once at load and run as plain f32 matmuls in
//!   the same candle graph — the path used to check the quantized ones.

use std::borrow::Cow;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{DType, Device, Module, Tensor};

use crate::e5s1::{E5s1, StoredDType, Q4_0_BLOCK_BYTES};
use crate::packed::PackedEncoder;
use crate::ModelError;

/// How linear layers compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// 4-bit weights × 8-bit activations in the packed kernel (the serving path).
    #[default]
    Q4,
    /// 4-bit weights as candle `QMatMul`s in the candle graph.
    CandleQ4,
    /// Weights dequantized to f32 once (reference path; ~7× the weight memory).
    F32,
}

struct Linear {
    w: QMatMul,
    b: Tensor,
}

impl Linear {
    fn load(
        f: &E5s1,
        name: &str,
        out: usize,
        inp: usize,
        p: Precision,
    ) -> Result<Self, ModelError> {
        let w = qtensor(f, &format!("{name}.w"), out, inp)?;
        let w = match p {
            Precision::Q4 | Precision::CandleQ4 => QMatMul::from_arc(Arc::new(w))?,
            Precision::F32 => QMatMul::Tensor(w.dequantize(&Device::Cpu)?),
        };
        let b = Tensor::from_vec(f.f32s(&format!("{name}.b"), out)?, out, &Device::Cpu)?;
        Ok(Self { w, b })
    }

    /// `x` is [rows, in]; returns [rows, out].
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.w.forward(x)?.broadcast_add(&self.b)
    }
}

struct Norm {
    w: Tensor,
    b: Tensor,
}

impl Norm {
    fn load(f: &E5s1, name: &str, h: usize) -> Result<Self, ModelError> {
        Ok(Self {
            w: Tensor::from_vec(f.f32s(&format!("{name}.w"), h)?, h, &Device::Cpu)?,
            b: Tensor::from_vec(f.f32s(&format!("{name}.b"), h)?, h, &Device::Cpu)?,
        })
    }
    fn forward(&self, x: &Tensor, eps: f32) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.w, &self.b, eps)
    }
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    ao: Linear,
    aln: Norm,
    fi: Linear,
    fo: Linear,
    oln: Norm,
}

fn qtensor(f: &E5s1, name: &str, rows: usize, cols: usize) -> Result<QTensor, ModelError> {
    let raw = f.raw(name, StoredDType::Q4_0, rows * cols)?;
    debug_assert_eq!(raw.len(), rows * cols / 32 * Q4_0_BLOCK_BYTES);
    let storage = QStorage::from_data(Cow::Borrowed(raw), &Device::Cpu, GgmlDType::Q4_0)?;
    Ok(QTensor::new(storage, (rows, cols))?)
}

/// The 12-layer encoder with mean pooling, on whichever path [`Precision`] selects.
pub struct Encoder {
    imp: Imp,
    hidden: usize,
    max_positions: usize,
    precision: Precision,
}

enum Imp {
    Candle(Box<CandleEncoder>),
    Packed(Box<PackedEncoder>),
}

impl Encoder {
    /// Build the encoder from a parsed E5S1 file. Weight bytes are copied out of `f`.
    pub fn load(f: &E5s1, precision: Precision) -> Result<Self, ModelError> {
        let imp = match precision {
            Precision::Q4 => Imp::Packed(Box::new(PackedEncoder::load(f)?)),
            Precision::CandleQ4 | Precision::F32 => {
                Imp::Candle(Box::new(CandleEncoder::load(f, precision)?))
            }
        };
        Ok(Self {
            imp,
            hidden: f.header.hidden,
            max_positions: f.header.max_positions,
            precision,
        })
    }

    /// Embedding width.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Longest input (incl. `<s>`/`</s>`) the position table allows.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Which path the linear layers take.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Mean-pooled (not yet normalised) embeddings of a batch of token-id sequences. Each
    /// sequence must be 1..=max_positions long.
    pub fn forward(&self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, ModelError> {
        match &self.imp {
            Imp::Candle(e) => e.forward(batch),
            Imp::Packed(e) => e.forward(batch),
        }
    }

    /// Whether sequences of different lengths share a forward pass without padding cost.
    pub fn packs_sequences(&self) -> bool {
        matches!(self.imp, Imp::Packed(_))
    }
}

/// The candle graph (padded batches with an attention mask).
struct CandleEncoder {
    word: QTensor,
    pos: Tensor,
    type0: Tensor,
    eln: Norm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    max_positions: usize,
    eps: f32,
}

impl CandleEncoder {
    fn load(f: &E5s1, precision: Precision) -> Result<Self, ModelError> {
        let h = f.header;
        let (hd, ff) = (h.hidden, h.ffn);
        let word = qtensor(f, "emb.word", h.vocab, hd)?;
        let pos = Tensor::from_vec(
            f.f32s("emb.pos", h.max_positions * hd)?,
            (h.max_positions, hd),
            &Device::Cpu,
        )?;
        let types = f.f32s("emb.type", h.type_vocab * hd)?;
        let type0 = Tensor::from_vec(types[..hd].to_vec(), hd, &Device::Cpu)?;
        let eln = Norm::load(f, "emb.ln", hd)?;
        let mut layers = Vec::with_capacity(h.layers);
        for l in 0..h.layers {
            let n = |s: &str| format!("l{l}.{s}");
            layers.push(Layer {
                q: Linear::load(f, &n("q"), hd, hd, precision)?,
                k: Linear::load(f, &n("k"), hd, hd, precision)?,
                v: Linear::load(f, &n("v"), hd, hd, precision)?,
                ao: Linear::load(f, &n("ao"), hd, hd, precision)?,
                aln: Norm::load(f, &n("aln"), hd)?,
                fi: Linear::load(f, &n("fi"), ff, hd, precision)?,
                fo: Linear::load(f, &n("fo"), hd, ff, precision)?,
                oln: Norm::load(f, &n("oln"), hd)?,
            });
        }
        Ok(Self {
            word,
            pos,
            type0,
            eln,
            layers,
            hidden: hd,
            heads: h.heads,
            max_positions: h.max_positions,
            eps: h.eps as f32,
        })
    }

    /// Padded to the longest sequence with an attention mask.
    fn forward(&self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, ModelError> {
        let b = batch.len();
        if b == 0 {
            return Ok(Vec::new());
        }
        let l = batch.iter().map(Vec::len).max().unwrap_or(0);
        if l == 0 || l > self.max_positions {
            return Err(ModelError::Input(format!(
                "sequence length {l} outside 1..={}",
                self.max_positions
            )));
        }
        let (hd, nh) = (self.hidden, self.heads);
        let dh = hd / nh;
        let dev = Device::Cpu;
        let mut ids = Vec::with_capacity(b * l);
        let mut mask = Vec::with_capacity(b * l);
        for s in batch {
            ids.extend_from_slice(s);
            ids.extend(std::iter::repeat_n(1u32, l - s.len())); // <pad>
            mask.extend(std::iter::repeat_n(1f32, s.len()));
            mask.extend(std::iter::repeat_n(0f32, l - s.len()));
        }
        let ids = Tensor::from_vec(ids, b * l, &dev)?;
        let mask = Tensor::from_vec(mask, (b, l), &dev)?;
        // Embeddings: word (dequantized rows) + position + token type 0, then LayerNorm.
        let x = self.word.embedding(&ids)?.reshape((b, l, hd))?;
        let x = x
            .broadcast_add(&self.pos.narrow(0, 0, l)?)?
            .broadcast_add(&self.type0)?;
        let mut x = self.eln.forward(&x, self.eps)?.reshape((b * l, hd))?;
        // Additive attention bias: 0 for real tokens, -inf-ish for padding; [b, 1, 1, l].
        let bias = ((mask.clone() - 1.0)? * 1e9)?.reshape((b, 1, 1, l))?;
        let padded = batch.iter().any(|s| s.len() != l);
        let scale = 1.0 / (dh as f64).sqrt();
        let heads = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, l, nh, dh))?.transpose(1, 2)?.contiguous()
        };
        for ly in &self.layers {
            let q = heads((ly.q.forward(&x)? * scale)?)?;
            let k = heads(ly.k.forward(&x)?)?;
            let v = heads(ly.v.forward(&x)?)?;
            let att = q.matmul(&k.t()?)?;
            let att = if padded {
                att.broadcast_add(&bias)?
            } else {
                att
            };
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            let ctx = att.matmul(&v)?.transpose(1, 2)?.reshape((b * l, hd))?;
            let a = ly.ao.forward(&ctx)?;
            x = ly.aln.forward(&(x + a)?, self.eps)?;
            let m = ly.fi.forward(&x)?.gelu_erf()?;
            let o = ly.fo.forward(&m)?;
            x = ly.oln.forward(&(x + o)?, self.eps)?;
        }
        // Mean pooling over real tokens (special tokens included, as e5 was trained).
        let x = x.reshape((b, l, hd))?;
        let summed = x.broadcast_mul(&mask.unsqueeze(2)?)?.sum(1)?;
        let counts = mask.sum_keepdim(1)?;
        let pooled = summed.broadcast_div(&counts)?.to_dtype(DType::F32)?;
        Ok(pooled.to_vec2::<f32>()?)
    }
}
