//! The application state: one [`AppState`], built once at start-up by [`AppState::open`], holding
//! every service the routes use (configuration, key store, review services, portfolio and
//! fund-flow stores, batch jobs, per-key limiter, metrics handle), and the [`Engine`] installed
//! once it has loaded in the background. Every `impl AppState` is in this module: the services
//! here, the labelers of portfolio uploads, batch jobs and fund flow in [`labeler`].

mod labeler;

pub use labeler::UnavailableLabeler;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use touxiang_auth::KeyStore;
use touxiang_batch::JobRegistry;
use touxiang_datasets::Labeler;
use touxiang_flow::FlowStore;
use touxiang_model::{E5Model, Embedder};
use touxiang_portfolio::PortfolioStore;
use touxiang_text::Segmenter;
use touxiang_vectors::VectorStore;

use crate::auth::KeyLimiter;
use crate::config::Config;
use crate::engine::TaxonomyModel;
use crate::error::ApiError;
use crate::queue::EmbedQueue;
use crate::review::ReviewCtx;

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

/// Shared state of the HTTP app: every service a request may use, built once by
/// [`AppState::open`] before the server listens, and cheap to clone (one `Arc`).
///
/// There is no other place a route finds a service: no process-global map, no store opened on a
/// request's first use. The one thing not there at start is the [`Engine`] (encoder, classifiers,
/// exemplar store), which loads in the background and is installed once ([`AppState::install`]);
/// until then [`AppState::engine`] answers 503 and `/readyz` says it is loading.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

/// The fields behind [`AppState`] (see [`AppState::open`] for how each is made).
struct Inner {
    config: Config,
    started: Instant,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// API keys (`DATA_DIR/auth.sqlite`, see [`crate::auth`]).
    keys: Arc<KeyStore>,
    /// Review store, QA sampler and taxonomies (see [`crate::review`]).
    review: Arc<ReviewCtx>,
    /// Loan books (`DATA_DIR/portfolio.sqlite`): one store per process, because its in-memory
    /// aggregation snapshots must be shared by all requests.
    portfolios: Arc<PortfolioStore>,
    /// Fund-flow store (`DATA_DIR/flow.sqlite`): opened here when the file exists, else created
    /// by the first fund-flow call ([`AppState::flow_store`]). It stays absent until then
    /// because its file is what tells "this data dir has fund-flow data" (`/v1/alerts` adds a
    /// `flow` part only then), so starting the server must not create it.
    flow: OnceLock<FlowStore>,
    /// Batch jobs started over HTTP (in memory: a restart forgets them; their checkpoints stay,
    /// so a new job with `resume` continues).
    jobs: JobRegistry,
    /// A labeler used instead of the engine's for every taxonomy (tests, offline demos).
    labeler_override: RwLock<Option<Arc<dyn Labeler>>>,
    /// Requests in flight per API key (see [`crate::auth::KeyLimiter`]).
    in_flight: KeyLimiter,
    /// Loaded in the background after start (the only service set after construction).
    engine: OnceLock<Engine>,
    /// Why loading the engine failed, if it did (reported by `/readyz`).
    load_error: OnceLock<String>,
}

impl AppState {
    /// Open every service of `config.data_dir` (creating the data dir and the stores that do
    /// not exist yet, except the fund-flow store, see [`AppState::flow_store`]).
    ///
    /// Fails, naming the file and the recovery step, when a store is damaged: `serve` refuses to
    /// start rather than answer without its data. The messages are those the stores give
    /// (`touxiang_sqlite::open_store`), prefixed as the routes reported them before; the stores
    /// the state does not hold (exemplar store, batch caches) are checked on the way by
    /// [`crate::store_check::check_stores`], in the order `serve` has always checked them.
    /// Blocking (SQLite checks); call it before the server starts, not from a request. Tests
    /// build one per temporary data dir.
    pub fn open(
        config: Config,
        metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> anyhow::Result<Self> {
        let dir = config.data_dir.clone();
        let portfolios = PortfolioStore::open(&dir).map_err(|e| {
            anyhow::anyhow!("cannot open the portfolio store in {}: {e}", dir.display())
        })?;
        let flow = OnceLock::new();
        if dir.join(touxiang_flow::store::STORE_FILE).exists() {
            let _ = flow.set(open_flow_store(&dir).map_err(|e| anyhow::anyhow!("{e}"))?);
        }
        crate::store_check::check_stores(&config)?;
        // `KeyStore::open` refuses `admin.key` beside a missing or empty key store, so opening
        // it here never hides a lost key store from `crate::auth::startup`.
        let keys = KeyStore::open(&dir)?;
        let review = ReviewCtx::open(&config).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                started: Instant::now(),
                metrics,
                keys: Arc::new(keys),
                review: Arc::new(review),
                portfolios: Arc::new(portfolios),
                flow,
                jobs: JobRegistry::new(),
                labeler_override: RwLock::new(None),
                in_flight: KeyLimiter::default(),
                engine: OnceLock::new(),
                load_error: OnceLock::new(),
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// When this state was built (`/healthz` uptime).
    pub fn started(&self) -> Instant {
        self.inner.started
    }

    /// The Prometheus handle `/metrics` renders, when the recorder is installed.
    pub fn metrics(&self) -> Option<&metrics_exporter_prometheus::PrometheusHandle> {
        self.inner.metrics.as_ref()
    }

    /// The key store of this data directory.
    pub fn key_store(&self) -> Arc<KeyStore> {
        self.inner.keys.clone()
    }

    /// The review services of this data directory.
    pub fn review(&self) -> Arc<ReviewCtx> {
        self.inner.review.clone()
    }

    /// The portfolio store of this data directory.
    pub fn portfolios(&self) -> Arc<PortfolioStore> {
        self.inner.portfolios.clone()
    }

    /// The batch jobs of this server process.
    pub fn jobs(&self) -> &JobRegistry {
        &self.inner.jobs
    }

    /// Requests in flight per API key.
    pub fn in_flight(&self) -> &KeyLimiter {
        &self.inner.in_flight
    }

    /// The fund-flow store: the one opened at start, else created now (first payment or
    /// relation upload, or a fund-flow read on a data dir without one).
    pub fn flow_store(&self) -> Result<FlowStore, ApiError> {
        if let Some(s) = self.inner.flow.get() {
            return Ok(s.clone());
        }
        let s = open_flow_store(&self.config().data_dir)?;
        // a concurrent first call may have won: both opened the same file, keep the first
        Ok(self.inner.flow.get_or_init(|| s).clone())
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

    /// Record why loading the engine failed (`/readyz` and every 503 say it).
    pub fn set_load_error(&self, error: String) {
        let _ = self.inner.load_error.set(error);
    }

    /// Install just a model (no classifiers, no store): enough for `/v1/embed`.
    pub fn set_model(&self, model: Arc<E5Model>) {
        let seg = crate::keywords::shared_segmenter();
        self.install(Engine::new(self.config(), model, seg, HashMap::new(), None));
    }
}

fn open_flow_store(dir: &std::path::Path) -> Result<FlowStore, ApiError> {
    FlowStore::open(dir).map_err(|e| {
        ApiError::Internal(format!(
            "cannot open the fund-flow store in {}: {e}",
            dir.display()
        ))
    })
}
