//! The labelers of portfolio uploads, batch jobs and fund flow: the loaded engine's classifier
//! voting over the exemplar store, or the override a test (or an offline demo) installs.

use std::sync::Arc;

use touxiang_datasets::{LabelError, LabelResult, Labeler};
use touxiang_training::{EmbeddingLabeler, Neighbor, NeighborSource, TrainError};
use touxiang_vectors::Filter;

use super::AppState;
use crate::engine::QueueEmbed;
use crate::error::ApiError;

impl AppState {
    /// The labeler for `taxonomy` in the portfolio, jobs and fund-flow routes: the override when
    /// one is set ([`AppState::set_labeler_override`]), else [`AppState::labeler`] (503 while
    /// loading, 422 for an unknown taxonomy).
    pub fn labeler_for(&self, taxonomy: &str) -> Result<Arc<dyn Labeler>, ApiError> {
        match self.labeler_override() {
            Some(l) => Ok(l),
            None => self.labeler(taxonomy),
        }
    }

    /// Use `labeler` for every taxonomy in the portfolio, jobs and fund-flow routes instead of
    /// [`AppState::labeler`] (tests; offline demos).
    pub fn set_labeler_override(&self, labeler: Arc<dyn Labeler>) {
        *self
            .inner
            .labeler_override
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(labeler);
    }

    fn labeler_override(&self) -> Option<Arc<dyn Labeler>> {
        self.inner
            .labeler_override
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Labeler (encoder + classifier) for `taxonomy`: 422 for an unknown taxonomy, 503 while
    /// loading. Used by portfolio uploads and batch jobs. It embeds through the batching queue's
    /// background lane ([`QueueEmbed`]), behind any waiting `/v1/classify` request. It votes over the same exemplar store
    /// as `/v1/classify` (training exemplars and reviewed cases) once that store is seeded, so a
    /// book reclassified over HTTP gets the labels online classify gives; before that, or
    /// without a store, it uses the heads-only calibration, as classify does. Must be called
    /// inside the runtime (it keeps a handle to search the store from the labeling threads).
    pub fn labeler(&self, taxonomy: &str) -> Result<Arc<dyn Labeler>, ApiError> {
        let e = self.engine()?;
        let m = e.taxonomy_model(taxonomy)?;
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|err| ApiError::Internal(format!("labeler outside the runtime: {err}")))?;
        Ok(Arc::new(EmbeddingLabeler {
            classifier: m.classifier.clone(),
            embedder: Arc::new(QueueEmbed {
                model: e.model.clone(),
                queue: e.queue.clone(),
                handle,
            }),
            index: self.neighbor_source(taxonomy)?,
        }))
    }

    /// Where [`AppState::labeler`] finds neighbours: the exemplar store `/v1/classify` searches
    /// (when there is one), else the artifact's in-memory exemplars, else none. A labeler made
    /// while the store is still being seeded gets none: it labels heads-only throughout (and
    /// caches under that scope) rather than switching mid-job.
    pub fn neighbor_source(
        &self,
        taxonomy: &str,
    ) -> Result<Option<Arc<dyn NeighborSource>>, ApiError> {
        let e = self.engine()?;
        let m = e.taxonomy_model(taxonomy)?;
        let seeded = m.neighbors_ready.load(std::sync::atomic::Ordering::SeqCst);
        Ok(match (&e.store, &m.exemplars) {
            (Some(_), _) if !seeded => None,
            (Some(_), _) => {
                let handle = tokio::runtime::Handle::try_current().map_err(|err| {
                    ApiError::Internal(format!("labeler outside the runtime: {err}"))
                })?;
                Some(Arc::new(StoreNeighbors {
                    state: self.clone(),
                    taxonomy: taxonomy.to_string(),
                    handle,
                }))
            }
            (None, Some(ix)) => Some(ix.clone()),
            (None, None) => None,
        })
    }
}

/// The service's exemplar store as a [`NeighborSource`] for labelers that run on their own
/// threads (batch jobs, portfolio uploads): searches go back to the runtime through `handle`.
struct StoreNeighbors {
    state: AppState,
    taxonomy: String,
    handle: tokio::runtime::Handle,
}

impl NeighborSource for StoreNeighbors {
    fn neighbors(
        &self,
        vectors: &[Vec<f32>],
        k: usize,
    ) -> Result<Option<Vec<Vec<Neighbor>>>, TrainError> {
        let engine = self
            .state
            .engine()
            .map_err(|e| TrainError::Embed(e.to_string()))?;
        let (Some(store), Ok(tm)) = (&engine.store, engine.taxonomy_model(&self.taxonomy)) else {
            return Ok(None);
        };
        if !tm.neighbors_ready.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(None);
        }
        let filter = Filter {
            taxonomy: Some(self.taxonomy.clone()),
            model_version: Some(engine.model_version()),
            ..Filter::default()
        };
        Ok(self.handle.block_on(crate::engine::store_neighbors(
            store.as_ref(),
            &filter,
            vectors,
            k,
        )))
    }
}

/// A labeler that fails every call with a fixed reason: stands in when no classifier is
/// available, so an ingest whose rows all carry `industry_code` still succeeds while one that
/// needs labels fails as a whole (nothing committed) with the reason.
pub struct UnavailableLabeler {
    /// Why there is no classifier.
    pub reason: String,
}

impl Labeler for UnavailableLabeler {
    fn label(&self, _texts: &[&str]) -> Result<Vec<LabelResult>, LabelError> {
        Err(LabelError(self.reason.clone()))
    }
    fn model_version(&self) -> String {
        "unavailable".into()
    }
    fn taxonomy_version(&self) -> String {
        "unavailable".into()
    }
}
