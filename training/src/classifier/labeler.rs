//! Labeling texts end to end: [`NeighborSource`] (where the kNN vote's neighbours come from) and
//! [`EmbeddingLabeler`], the [`Labeler`] over an encoder and a classifier.

use std::sync::Arc;

use touxiang_datasets::{LabelError, LabelResult, Labeler};

use super::{Classification, Classifier, ClassifyOptions, Neighbor};
use crate::embed::EmbedFn;
use crate::error::Result;
use crate::knn::ExemplarIndex;

/// Where a labeler finds the labeled neighbours of its texts for the kNN vote: an in-memory
/// [`ExemplarIndex`] (command line) or the service's exemplar store (HTTP jobs and uploads).
pub trait NeighborSource: Send + Sync {
    /// The `k` nearest labeled exemplars of each vector, or `None` when the source cannot answer
    /// now (store not yet seeded, unreachable): the labeler then uses the heads-only calibration
    /// for the whole batch, as `/v1/classify` does.
    fn neighbors(&self, vectors: &[Vec<f32>], k: usize) -> Result<Option<Vec<Vec<Neighbor>>>>;
}

impl NeighborSource for ExemplarIndex {
    fn neighbors(&self, vectors: &[Vec<f32>], k: usize) -> Result<Option<Vec<Vec<Neighbor>>>> {
        self.search(vectors, k).map(Some)
    }
}

/// A [`Labeler`] over a classifier, an encoder and (optionally) a source of labeled neighbours
/// for the kNN vote — for batch jobs and portfolio ingest.
pub struct EmbeddingLabeler {
    pub classifier: Arc<Classifier>,
    pub embedder: Arc<dyn EmbedFn>,
    pub index: Option<Arc<dyn NeighborSource>>,
}

impl EmbeddingLabeler {
    /// Full classifications for a batch of texts.
    pub fn classify_texts(
        &self,
        texts: &[&str],
        opts: &ClassifyOptions,
    ) -> Result<Vec<Classification>> {
        let emb = self.embedder.embed(texts)?;
        crate::embed::check_vectors(&emb, texts.len(), self.classifier.dim())?;
        let k = self.classifier.knn_k().max(opts.show_neighbors);
        let neighbors = match &self.index {
            Some(ix) => ix.neighbors(&emb, k)?,
            None => None,
        }
        .unwrap_or_else(|| vec![Vec::new(); texts.len()]);
        self.classifier
            .classify_batch(texts, &emb, &neighbors, opts)
    }
}

impl Labeler for EmbeddingLabeler {
    fn label(&self, texts: &[&str]) -> Result<Vec<LabelResult>, LabelError> {
        // the alternatives are what a review item offers; neighbours and keywords are not kept
        let opts = ClassifyOptions {
            top_k: 3,
            show_neighbors: 0,
            keywords: 0,
        };
        let cs = self
            .classify_texts(texts, &opts)
            .map_err(|e| LabelError(e.to_string()))?;
        Ok(cs
            .iter()
            .map(|c| self.classifier.to_label_result(c))
            .collect())
    }
    fn model_version(&self) -> String {
        self.classifier.model_version.clone()
    }
    fn taxonomy_version(&self) -> String {
        self.classifier.tree.version.clone()
    }
    fn cache_scope(&self) -> String {
        match self.index {
            // neighbours vote: other labels than heads-only, so never share cached ones
            Some(_) => format!("{}+knn", self.classifier.model_version),
            None => self.classifier.model_version.clone(),
        }
    }
}
