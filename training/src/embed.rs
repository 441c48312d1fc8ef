//! The encoder interface this crate trains on, a cheap deterministic embedder for tests, and an
//! on-disk embedding cache so training never re-embeds unchanged texts.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Result, TrainError};

/// Dimension of multilingual-e5-small embeddings (and of [`HashEmbedder`] by default).
pub const E5_DIM: usize = 384;

/// A sentence encoder: plain texts in, L2-normalised vectors out.
///
/// The real implementation (multilingual-e5-small in `touxiang-model`) applies the e5 `query: `
/// prefix itself; callers pass plain text.
pub trait EmbedFn: Send + Sync {
    /// One L2-normalised vector of length [`EmbedFn::dim`] per input text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, TrainError>;
    /// Vector length.
    fn dim(&self) -> usize;
    /// Version string; part of every cache key and of the artifact metadata.
    fn version(&self) -> String;
}

/// Deterministic, dependency-free embedder for tests and development: a bag of hashed character
/// 1–3-grams (signed feature hashing, i.e. a sparse random projection) into `dim` buckets,
/// L2-normalised. It captures surface overlap only, which is enough to exercise the pipeline.
#[derive(Debug, Clone)]
pub struct HashEmbedder {
    dim: usize,
}

impl HashEmbedder {
    /// An embedder with `dim` output dimensions.
    pub fn new(dim: usize) -> Self {
        HashEmbedder { dim: dim.max(1) }
    }

    /// Embed one text.
    pub fn embed_one(&self, text: &str) -> Vec<f32> {
        let chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
        let mut v = vec![0f32; self.dim];
        for n in 1..=3usize {
            let weight = match n {
                1 => 0.5,
                2 => 1.0,
                _ => 0.8,
            };
            if chars.len() < n {
                continue;
            }
            for w in chars.windows(n) {
                let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ (n as u64);
                for c in w {
                    for b in (*c as u32).to_le_bytes() {
                        h ^= b as u64;
                        h = h.wrapping_mul(0x0100_0000_01b3);
                    }
                }
                let h = splitmix(h);
                let idx = (h % self.dim as u64) as usize;
                let sign = if (h >> 63) & 1 == 1 { -1.0 } else { 1.0 };
                v[idx] += sign * weight;
            }
        }
        l2_normalize(&mut v);
        v
    }
}

impl Default for HashEmbedder {
    fn default() -> Self {
        HashEmbedder::new(E5_DIM)
    }
}

impl EmbedFn for HashEmbedder {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| self.embed_one(t)).collect())
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn version(&self) -> String {
        format!("hash-char13-{}", self.dim)
    }
}

/// The text the encoder sees: normalised (NFKC, 繁→简, whitespace) and masked (amounts, dates,
/// ids). One function, used for training, classify, batch and ingest alike (the service's
/// batching queue applies it too).
pub fn encoder_text(raw: &str) -> String {
    touxiang_text::prepare(raw).masked
}

/// The real multilingual-e5-small encoder as an [`EmbedFn`], with [`encoder_text`] applied: what
/// `touxiang train`, `eval`, the CLI labelers and the examples embed with.
#[cfg(feature = "e5")]
pub struct E5(pub std::sync::Arc<touxiang_model::E5Model>);

#[cfg(feature = "e5")]
impl EmbedFn for E5 {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        use touxiang_model::Embedder;
        let prepared: Vec<String> = texts.iter().map(|t| encoder_text(t)).collect();
        let refs: Vec<&str> = prepared.iter().map(String::as_str).collect();
        self.0
            .embed(&refs, touxiang_model::Kind::Query)
            .map_err(|e| TrainError::Embed(e.to_string()))
    }
    fn dim(&self) -> usize {
        touxiang_model::Embedder::dim(self.0.as_ref())
    }
    fn version(&self) -> String {
        touxiang_model::Embedder::version(self.0.as_ref())
    }
}

/// SplitMix64 finaliser: a cheap, well-mixed, platform-independent hash step.
pub(crate) fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Stable 64-bit hash of a string (FNV-1a + SplitMix), independent of platform and Rust version.
pub(crate) fn stable_hash(s: &str, seed: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ splitmix(seed);
    for b in s.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    splitmix(h)
}

/// Scale `v` to unit length (left as is when it is all zeros).
pub fn l2_normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

const CACHE_MAGIC: &[u8; 8] = b"TXEMBC01";

/// Append-only on-disk cache of embeddings, one file per encoder version, keyed by the SHA-256
/// of the text (first 16 bytes).
pub struct EmbeddingCache {
    path: PathBuf,
    dim: usize,
    map: HashMap<[u8; 16], Vec<f32>>,
}

fn text_key(text: &str) -> [u8; 16] {
    let d = Sha256::digest(text.as_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

impl EmbeddingCache {
    /// Open (or create) the cache for `version` under `dir`.
    pub fn open(dir: &Path, version: &str, dim: usize) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        let safe: String = version
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{safe}-{dim}.embcache"));
        let mut map = HashMap::new();
        if path.exists() {
            let f = File::open(&path).map_err(|e| TrainError::io(&path, e))?;
            let mut r = BufReader::new(f);
            let mut magic = [0u8; 8];
            r.read_exact(&mut magic)
                .map_err(|e| TrainError::io(&path, e))?;
            if &magic != CACHE_MAGIC {
                return Err(TrainError::Invalid(format!(
                    "{} is not an embedding cache",
                    path.display()
                )));
            }
            let rec = 16 + 4 * dim;
            let mut buf = vec![0u8; rec];
            loop {
                match r.read_exact(&mut buf) {
                    Ok(()) => {
                        let mut k = [0u8; 16];
                        k.copy_from_slice(&buf[..16]);
                        let v: Vec<f32> = buf[16..]
                            .chunks_exact(4)
                            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                            .collect();
                        map.insert(k, v);
                    }
                    // A truncated tail (interrupted write) is ignored; those texts are re-embedded.
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(TrainError::io(&path, e)),
                }
            }
        }
        Ok(EmbeddingCache { path, dim, map })
    }

    /// Vector length of this cache.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of cached vectors.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Cached vector of `text`, if any.
    pub fn get(&self, text: &str) -> Option<&[f32]> {
        self.map.get(&text_key(text)).map(|v| v.as_slice())
    }

    fn append(&mut self, items: &[(&str, Vec<f32>)]) -> Result<()> {
        let new_file = !self.path.exists();
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| TrainError::io(&self.path, e))?;
        let mut w = BufWriter::new(f);
        let io = |e| TrainError::io(&self.path, e);
        if new_file {
            w.write_all(CACHE_MAGIC).map_err(io)?;
        }
        for (t, v) in items {
            w.write_all(&text_key(t)).map_err(io)?;
            for x in v {
                w.write_all(&x.to_le_bytes()).map_err(io)?;
            }
        }
        w.flush().map_err(io)?;
        for (t, v) in items {
            self.map.insert(text_key(t), v.clone());
        }
        Ok(())
    }
}

/// Check that a batch returned by an encoder has the right shape and finite values.
pub(crate) fn check_vectors(vs: &[Vec<f32>], n: usize, dim: usize) -> Result<()> {
    if vs.len() != n {
        return Err(TrainError::BadEmbedding(format!(
            "encoder returned {} vectors for {n} texts",
            vs.len()
        )));
    }
    for (i, v) in vs.iter().enumerate() {
        if v.len() != dim {
            return Err(TrainError::BadEmbedding(format!(
                "vector {i} has length {}, expected {dim}",
                v.len()
            )));
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(TrainError::BadEmbedding(format!(
                "vector {i} has a non-finite value"
            )));
        }
    }
    Ok(())
}

/// Embed `texts` (in order), reading from and appending to the cache in `cache_dir` when given.
/// Duplicate texts are embedded once. Progress is logged every few thousand texts.
pub fn embed_all(
    embedder: &dyn EmbedFn,
    texts: &[&str],
    cache_dir: Option<&Path>,
    batch: usize,
) -> Result<Vec<Vec<f32>>> {
    let dim = embedder.dim();
    let mut cache = match cache_dir {
        Some(d) => Some(EmbeddingCache::open(d, &embedder.version(), dim)?),
        None => None,
    };
    let mut fresh: HashMap<&str, Vec<f32>> = HashMap::new();
    let mut missing: Vec<&str> = Vec::new();
    {
        let mut seen = std::collections::HashSet::new();
        for t in texts {
            let cached = cache.as_ref().and_then(|c| c.get(t)).is_some();
            if !cached && seen.insert(*t) {
                missing.push(t);
            }
        }
    }
    if !missing.is_empty() {
        tracing::info!(
            missing = missing.len(),
            total = texts.len(),
            "embedding texts"
        );
    }
    let batch = batch.max(1);
    for (bi, chunk) in missing.chunks(batch).enumerate() {
        let vs = embedder.embed(chunk)?;
        check_vectors(&vs, chunk.len(), dim)?;
        if let Some(c) = cache.as_mut() {
            let items: Vec<(&str, Vec<f32>)> = chunk.iter().copied().zip(vs).collect();
            c.append(&items)?;
        } else {
            for (t, v) in chunk.iter().zip(vs) {
                fresh.insert(t, v);
            }
        }
        if (bi * batch) % 4096 < batch && bi > 0 {
            tracing::info!(done = bi * batch, of = missing.len(), "embedding progress");
        }
    }
    texts
        .iter()
        .map(|t| {
            if let Some(c) = cache.as_ref() {
                if let Some(v) = c.get(t) {
                    return Ok(v.to_vec());
                }
            }
            fresh
                .get(t)
                .cloned()
                .ok_or_else(|| TrainError::Embed(format!("no embedding for {t:?}")))
        })
        .collect()
}
