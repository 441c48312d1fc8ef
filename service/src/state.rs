//! Shared application state.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use touxiang_datasets::Labeler;
use touxiang_model::{E5Model, Embedder};
use touxiang_text::Segmenter;
use touxiang_training::{EmbeddingLabeler, Neighbor, NeighborSource, TrainError};
use touxiang_vectors::{Filter, VectorStore};

use crate::config::Config;
use crate::engine::{QueueEmbed, TaxonomyModel};
use crate::error::ApiError;
use crate::queue::EmbedQueue;

/// What is loaded in the background after start; `/readyz` turns 200 once it is set.
pub struct Engine {
    pub model: Arc<E5Model>,
    pub queue: EmbedQueue,
    pub segmenter: Arc<Segmenter>,
    /// Trained classifiers by taxonomy id.
    pub models: HashMap<String, TaxonomyModel>,
    /// Exemplar store (k-NN evidence and votes); `None` = classify without neighbours.
    pub store: Option<Arc<dyn VectorStore>>,
}

impl Engine {
    /// Assemble an engine (starts the batching queue).
    pub fn new(
        cfg: &Config,
        model: Arc<E5Model>,
        segmenter: Arc<Segmenter>,
        models: HashMap<String, TaxonomyModel>,
        store: Option<Arc<dyn VectorStore>>,
    ) -> Self {
        let l = &cfg.limits;
        let queue = EmbedQueue::start(model.clone(), crate::queue::QueueLimits::of(l));
        Self {
            model,
            queue,
            segmenter,
            models,
            store,
        }
    }

    pub fn model_version(&self) -> String {
        Embedder::version(self.model.as_ref())
    }

    /// The classifier of `taxonomy`, or 422 naming the field.
    pub fn taxonomy_model(&self, taxonomy: &str) -> Result<&TaxonomyModel, ApiError> {
        self.models.get(taxonomy).ok_or_else(|| {
            let mut known: Vec<&str> = self.models.keys().map(String::as_str).collect();
            known.sort();
            ApiError::Validation {
                code: "unknown_taxonomy",
                message: format!(
                    "unknown taxonomy '{taxonomy}' (trained: {})",
                    known.join(", ")
                ),
                field: Some("taxonomy".into()),
            }
        })
    }
}

/// Shared state of the HTTP app.
#[derive(Clone)]
pub struct AppState {
    pub inner: Arc<Inner>,
}

pub struct Inner {
    pub config: Config,
    pub engine: OnceLock<Engine>,
    /// Why loading failed, if it did (reported by `/readyz`).
    pub load_error: OnceLock<String>,
    pub started: Instant,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// API key store (`DATA_DIR/auth.sqlite`), opened once on first use (see [`crate::auth`]).
    pub keys: OnceLock<Arc<touxiang_auth::KeyStore>>,
    /// Review store, QA sampler and taxonomies, opened once on first use (see [`crate::review`]).
    pub review: OnceLock<Arc<crate::review::ReviewCtx>>,
    /// Requests in flight per API key (see [`crate::auth::KeyLimiter`]).
    pub in_flight: crate::auth::KeyLimiter,
}

impl AppState {
    pub fn new(
        config: Config,
        metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                engine: OnceLock::new(),
                load_error: OnceLock::new(),
                started: Instant::now(),
                metrics,
                keys: OnceLock::new(),
                review: OnceLock::new(),
                in_flight: crate::auth::KeyLimiter::default(),
            }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The loaded engine, or 503 while loading.
    pub fn engine(&self) -> Result<&Engine, ApiError> {
        self.inner
            .engine
            .get()
            .ok_or_else(|| match self.inner.load_error.get() {
                Some(e) => ApiError::NotReady(format!("model failed to load: {e}")),
                None => ApiError::NotReady("model, taxonomy and indexes are still loading".into()),
            })
    }

    /// Install a loaded engine (once).
    pub fn install(&self, engine: Engine) {
        let _ = self.inner.engine.set(engine);
    }

    /// Install just a model (no classifiers, no store): enough for `/v1/embed`.
    pub fn set_model(&self, model: Arc<E5Model>) {
        let seg = crate::keywords::shared_segmenter();
        self.install(Engine::new(self.config(), model, seg, HashMap::new(), None));
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

/// Labeler injection for tests and offline demos (portfolio upload and batch jobs).
impl AppState {
    /// Use `labeler` for every taxonomy in the portfolio and job routes instead of
    /// [`AppState::labeler`] (kept per data directory, see [`crate::ext`]).
    pub fn set_labeler_override(&self, labeler: Arc<dyn Labeler>) {
        crate::ext::Ext::of(self).set_labeler_override(labeler);
    }
}
