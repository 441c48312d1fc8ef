//! Exact k-nearest-neighbour search over labeled exemplars (cosine similarity on L2-normalised
//! vectors). Used during training/evaluation and by [`crate::EmbeddingLabeler`]; the service uses
//! its own vector store and passes the neighbours to the classifier.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::classifier::Neighbor;
use crate::error::{Result, TrainError};

/// In-memory exemplar matrix with texts, codes and sources.
pub struct ExemplarIndex {
    dim: usize,
    emb: Tensor,
    pub texts: Vec<String>,
    pub codes: Vec<String>,
    pub sources: Vec<String>,
}

impl ExemplarIndex {
    /// Build from row vectors (all of length `dim`).
    pub fn new(
        dim: usize,
        vectors: &[Vec<f32>],
        texts: Vec<String>,
        codes: Vec<String>,
        sources: Vec<String>,
    ) -> Result<Self> {
        let n = vectors.len();
        if texts.len() != n || codes.len() != n || sources.len() != n {
            return Err(TrainError::Invalid(
                "exemplar vectors, texts, codes and sources differ in length".into(),
            ));
        }
        let mut flat = Vec::with_capacity(n * dim);
        for (i, v) in vectors.iter().enumerate() {
            if v.len() != dim {
                return Err(TrainError::BadEmbedding(format!(
                    "exemplar {i} has length {}, expected {dim}",
                    v.len()
                )));
            }
            flat.extend_from_slice(v);
        }
        Ok(ExemplarIndex {
            dim,
            emb: Tensor::from_vec(flat, (n, dim), &Device::Cpu)?,
            texts,
            codes,
            sources,
        })
    }

    /// Number of exemplars.
    pub fn len(&self) -> usize {
        self.texts.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }
    /// The exemplar matrix `[n, dim]`.
    pub fn matrix(&self) -> &Tensor {
        &self.emb
    }

    /// The `k` most similar exemplars of each query, best first.
    pub fn search(&self, queries: &[Vec<f32>], k: usize) -> Result<Vec<Vec<Neighbor>>> {
        if self.is_empty() || k == 0 {
            return Ok(vec![Vec::new(); queries.len()]);
        }
        let mut out = Vec::with_capacity(queries.len());
        for chunk in queries.chunks(256) {
            let mut flat = Vec::with_capacity(chunk.len() * self.dim);
            for (i, q) in chunk.iter().enumerate() {
                if q.len() != self.dim {
                    return Err(TrainError::BadEmbedding(format!(
                        "query {i} has length {}, expected {}",
                        q.len(),
                        self.dim
                    )));
                }
                flat.extend_from_slice(q);
            }
            let q = Tensor::from_vec(flat, (chunk.len(), self.dim), &Device::Cpu)?;
            let sims = q.matmul(&self.emb.t()?)?.to_vec2::<f32>()?;
            let res: Vec<Vec<Neighbor>> = sims
                .par_iter()
                .map(|row| {
                    top_k(row, k)
                        .into_iter()
                        .map(|(i, s)| Neighbor {
                            text: self.texts[i].clone(),
                            code: self.codes[i].clone(),
                            similarity: s,
                            source: self.sources[i].clone(),
                        })
                        .collect()
                })
                .collect();
            out.extend(res);
        }
        Ok(out)
    }
}

/// Indices and values of the `k` largest entries, largest first (ties: lower index first).
pub(crate) fn top_k(row: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut best: Vec<(usize, f32)> = Vec::with_capacity(k + 1);
    let mut floor = f32::NEG_INFINITY;
    for (i, &s) in row.iter().enumerate() {
        if best.len() == k && s <= floor {
            continue;
        }
        let pos = best.iter().position(|b| s > b.1).unwrap_or(best.len());
        best.insert(pos, (i, s));
        if best.len() > k {
            best.pop();
        }
        if best.len() == k {
            floor = best[k - 1].1;
        }
    }
    best
}
