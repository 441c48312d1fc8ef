//! Per-data-directory services of the portfolio and batch routes: the portfolio store (whose
//! in-memory aggregation snapshots must be shared by all requests), the batch job registry and
//! an optional labeler override (tests, embedding).
//!
//! They live in a process-wide map keyed by the data directory rather than in [`AppState`]'s
//! fields, so these routes can be wired without touching the state's struct: every `AppState`
//! with the same `data_dir` shares one store and one job registry (one server process serves one
//! data directory; tests use one temporary directory per state).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use touxiang_batch::JobRegistry;
use touxiang_datasets::{LabelError, LabelResult, Labeler};
use touxiang_portfolio::PortfolioStore;

use crate::error::ApiError;
use crate::state::AppState;

/// What the portfolio and jobs routes keep for one data directory.
pub struct Ext {
    /// Data directory these services belong to.
    pub data_dir: PathBuf,
    store: OnceLock<Arc<PortfolioStore>>,
    /// Batch jobs started over HTTP (in memory: a restart forgets them; their checkpoints stay,
    /// so a new job with `resume` continues).
    pub jobs: JobRegistry,
    labeler_override: RwLock<Option<Arc<dyn Labeler>>>,
}

impl Ext {
    /// The services of `state`'s data directory (created on first use).
    pub fn of(state: &AppState) -> Arc<Ext> {
        static ALL: OnceLock<Mutex<HashMap<PathBuf, Arc<Ext>>>> = OnceLock::new();
        let dir = state.config().data_dir.clone();
        let mut m = ALL
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        m.entry(dir.clone())
            .or_insert_with(|| {
                Arc::new(Ext {
                    data_dir: dir,
                    store: OnceLock::new(),
                    jobs: JobRegistry::new(),
                    labeler_override: RwLock::new(None),
                })
            })
            .clone()
    }

    /// The portfolio store `DATA_DIR/portfolio.sqlite` (opened once).
    pub fn store(&self) -> Result<Arc<PortfolioStore>, ApiError> {
        if let Some(s) = self.store.get() {
            return Ok(s.clone());
        }
        let s = PortfolioStore::open(&self.data_dir).map_err(|e| {
            ApiError::Internal(format!(
                "cannot open the portfolio store in {}: {e}",
                self.data_dir.display()
            ))
        })?;
        Ok(self.store.get_or_init(|| Arc::new(s)).clone())
    }

    /// Replace the classifier of every taxonomy by `labeler` (tests; offline demos).
    pub fn set_labeler_override(&self, labeler: Arc<dyn Labeler>) {
        *self
            .labeler_override
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(labeler);
    }

    fn labeler_override(&self) -> Option<Arc<dyn Labeler>> {
        self.labeler_override
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The labeler for `taxonomy`: the override when one is set, else [`AppState::labeler`]
/// (503 while loading, 422 for an unknown taxonomy).
pub fn labeler_for(state: &AppState, taxonomy: &str) -> Result<Arc<dyn Labeler>, ApiError> {
    match Ext::of(state).labeler_override() {
        Some(l) => Ok(l),
        None => state.labeler(taxonomy),
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
