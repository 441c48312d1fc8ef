//! Shared application state.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use touxiang_datasets::Labeler;
use touxiang_model::E5Model;

use crate::config::Config;
use crate::error::ApiError;
use crate::queue::EmbedQueue;

/// What is loaded in the background after start; `/readyz` turns 200 once it is set.
pub struct Engine {
    pub model: Arc<E5Model>,
    pub queue: EmbedQueue,
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

    /// Install a loaded model (starts the batching queue).
    pub fn set_model(&self, model: Arc<E5Model>) {
        let l = &self.inner.config.limits;
        let queue = EmbedQueue::start(model.clone(), l.max_batch_tokens, l.max_queue_tokens);
        let _ = self.inner.engine.set(Engine { model, queue });
    }

    /// Labeler (encoder + classifier) for `taxonomy`: 422 for an unknown taxonomy, 503 while
    /// loading. Used by portfolio ingest and batch jobs.
    pub fn labeler(&self, taxonomy: &str) -> Result<Arc<dyn Labeler>, ApiError> {
        self.engine()?;
        Err(ApiError::Validation {
            code: "unknown_taxonomy",
            message: format!("no trained classifier for taxonomy '{taxonomy}'"),
            field: Some("taxonomy".into()),
        })
    }
}
