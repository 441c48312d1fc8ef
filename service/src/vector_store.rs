//! The exemplar store `serve` uses: the embedded one (`DATA_DIR/vectors/vectors.sqlite`), or,
//! with `qdrant.url` set (file, `TOUXIANG_QDRANT__URL`, `serve --qdrant-url`), a Qdrant
//! collection over gRPC behind [`ResilientStore`]:
//!
//! - Opening never contacts the server, so start-up never waits on it. The collection (cosine,
//!   the encoder's dimension) and its keyword payload indexes are created by a background task
//!   as soon as the server answers; an existing collection of another vector size is refused
//!   with an error in the log.
//! - Searches give up after 300 ms and the store is then skipped for 2 s: classify answers
//!   from the heads with `neighbors_available: false`.
//! - Writes (seeding, reviewed labels) go through the durable outbox
//!   `DATA_DIR/vectors/outbox.sqlite` and are applied in order when the server answers; a
//!   restart replays what is left. A write acknowledged while Qdrant is down is never lost.
//! - Seeding and the replay of reviewed labels wait until the server is reachable.
//!
//! `/readyz` and `/metrics` report the backend, whether it answers and the outbox depth
//! ([`status`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::Serialize;
use touxiang_vectors::{
    QdrantConfig as StoreConfig, QdrantStore, ResilientConfig, ResilientStore, VectorError,
    VectorStore,
};

use crate::config::{Config, QdrantConfig};
use crate::engine::TaxonomyModel;
use crate::state::AppState;

/// Backend names of `/readyz` (`store.backend`) and the metrics label.
pub const EMBEDDED: &str = "embedded";
/// See [`EMBEDDED`].
pub const QDRANT: &str = "qdrant";

/// The configured Qdrant server: a `qdrant` section with a non-blank `url`.
pub fn qdrant_config(cfg: &Config) -> Option<&QdrantConfig> {
    cfg.qdrant.as_ref().filter(|q| !q.url.trim().is_empty())
}

/// `qdrant` when a server is configured, else `embedded`.
pub fn backend_name(cfg: &Config) -> &'static str {
    if qdrant_config(cfg).is_some() {
        QDRANT
    } else {
        EMBEDDED
    }
}

/// Open the configured store without contacting any server (see the module docs). Needs the
/// Tokio runtime (the outbox writer and the collection set-up run as tasks).
pub fn open_store(cfg: &Config, dim: usize) -> anyhow::Result<Arc<dyn VectorStore>> {
    let Some(q) = qdrant_config(cfg) else {
        return crate::engine::open_embedded_store(cfg, dim);
    };
    let mut sc = StoreConfig::new(q.url.trim(), q.collection.clone(), dim);
    sc.api_key = q.api_key.clone().filter(|k| !k.is_empty());
    let inner = QdrantStore::new(sc).map_err(|e| anyhow::anyhow!("qdrant: {e}"))?;
    let outbox = cfg.data_dir.join("vectors");
    let store = ResilientStore::open(inner, ResilientConfig::new(&outbox, dim)).map_err(|e| {
        anyhow::anyhow!(
            "opening the Qdrant write outbox {}: {e}",
            outbox.join("outbox.sqlite").display()
        )
    })?;
    let store = Arc::new(store);
    tracing::info!(url = %q.url, collection = %q.collection, pending_writes = store.pending_writes(),
        outbox = %outbox.join("outbox.sqlite").display(), "exemplar store: qdrant");
    tokio::spawn(prepare_collection(Arc::downgrade(&store)));
    Ok(store)
}

/// Create the collection and its payload indexes once the server answers (retrying with
/// backoff; stops when the store is dropped).
async fn prepare_collection(store: Weak<ResilientStore<QdrantStore>>) {
    let mut delay = Duration::from_millis(500);
    let mut warned = false;
    loop {
        let Some(s) = store.upgrade() else { return };
        let res = s.inner().ensure_collection().await;
        let name = s.inner().config().collection.clone();
        drop(s);
        match res {
            Ok(()) => {
                tracing::info!(collection = %name, "qdrant collection and payload indexes ready");
                return;
            }
            Err(e) if e.is_unavailable() => {
                if !warned {
                    tracing::warn!(error = %e, "qdrant unreachable: classify answers without neighbours and writes wait in the outbox until it answers");
                    warned = true;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, collection = %name, "qdrant collection cannot be used; retrying");
                delay = delay.max(Duration::from_secs(10));
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// Open the store for `serve` ([`open_store`]). The embedded store is seeded at once with the
/// exemplars the artifacts carry as vectors; a Qdrant store is seeded by [`fill_in_background`]
/// once reachable, and those taxonomies classify heads-only until then.
pub async fn open_for_serve(
    cfg: &Config,
    models: &HashMap<String, TaxonomyModel>,
    model_version: &str,
    dim: usize,
) -> anyhow::Result<Arc<dyn VectorStore>> {
    let store = open_store(cfg, dim)?;
    for m in models.values() {
        if qdrant_config(cfg).is_some() {
            if m.exemplars.is_some() {
                m.neighbors_ready.store(false, Ordering::SeqCst);
            }
        } else {
            crate::engine::seed_store(store.as_ref(), m, model_version).await?;
        }
    }
    Ok(store)
}

/// After the engine is installed: seed the store (artifact exemplars held as vectors when the
/// store is remote; the shipped exemplar texts when `classify.seed_exemplars`), then replay
/// reviewed labels the store lacks. With Qdrant, each step waits until the server is reachable
/// and starts over when it becomes unreachable midway.
pub async fn fill_in_background(s: AppState) {
    let Ok(e) = s.engine() else { return };
    let Some(store) = e.store.clone() else { return };
    let remote = qdrant_config(s.config()).is_some();
    if remote {
        wait_reachable(store.as_ref()).await;
        let version = e.model_version();
        for m in e.models.values() {
            if m.exemplars.is_none() || m.neighbors_ready.load(Ordering::SeqCst) {
                continue;
            }
            let done = retrying(store.as_ref(), "seeding the exemplar store", || {
                crate::engine::seed_store(store.as_ref(), m, &version)
            })
            .await;
            if done.is_some() {
                m.neighbors_ready.store(true, Ordering::SeqCst);
            }
        }
    }
    let seed = s.config().classify.seed_exemplars;
    if !seed {
        tracing::info!("classify.seed_exemplars = false: shipped exemplars are not embedded; the neighbour vote stays off");
    }
    for m in e.models.values().filter(|_| seed) {
        let added = retrying(store.as_ref(), "seeding shipped exemplars", || {
            crate::engine::seed_store_from_texts(store.as_ref(), m, &e.model, &e.queue)
        })
        .await;
        if added.is_some_and(|n| n > 0) {
            release_freed_memory();
        }
    }
    match retrying(store.as_ref(), "replaying reviewed labels", || {
        crate::review::replay_reviewed(&s)
    })
    .await
    {
        Some(0) | None => {}
        Some(n) => tracing::info!(
            points = n,
            "reviewed labels replayed into the exemplar store"
        ),
    }
}

/// Whether `e` comes from an unreachable store (worth retrying once it answers).
fn is_unavailable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<VectorError>()
            .is_some_and(VectorError::is_unavailable)
    })
}

/// Run `f` until it succeeds; after an "unavailable" error wait for the store and run it again,
/// after any other error log it and give up (`None`).
async fn retrying<T, Fut: Future<Output = anyhow::Result<T>>>(
    store: &dyn VectorStore,
    what: &str,
    mut f: impl FnMut() -> Fut,
) -> Option<T> {
    loop {
        match f().await {
            Ok(v) => return Some(v),
            Err(err) if is_unavailable(&err) => {
                tracing::warn!(error = %format!("{err:#}"), "{what}: exemplar store unreachable; resuming when it answers");
                tokio::time::sleep(Duration::from_secs(1)).await;
                wait_reachable(store).await;
            }
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "{what} failed");
                return None;
            }
        }
    }
}

/// Wait (polling its health with backoff up to 10 s) until the store answers.
async fn wait_reachable(store: &dyn VectorStore) {
    let mut delay = Duration::from_millis(250);
    let mut logged = false;
    loop {
        if store.health().await.is_ok_and(|h| h.ok) {
            if logged {
                tracing::info!("exemplar store reachable again");
            }
            return;
        }
        if !logged {
            tracing::info!("exemplar store unreachable: seeding and replay wait for it");
            logged = true;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// The exemplar store's state as `/readyz` shows it (`store`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoreStatus {
    /// `qdrant` or `embedded` (`none` when the service runs without a store).
    pub backend: &'static str,
    /// Whether the store answered its health check now (always true for the embedded store).
    /// While false, classify answers without neighbours (`neighbors_available: false`).
    pub reachable: bool,
    /// Writes (seeded exemplars, reviewed labels) durable in the outbox but not yet applied
    /// to Qdrant; 0 for the embedded store.
    pub pending_writes: u64,
}

/// Check the store (health, at most 1 s) and update the gauges
/// `touxiang_vector_store_reachable{backend}` (1/0) and `touxiang_vector_outbox_pending`.
/// `None` while the engine is still loading.
pub async fn status(s: &AppState) -> Option<StoreStatus> {
    let e = s.engine().ok()?;
    let st = match &e.store {
        None => StoreStatus {
            backend: "none",
            reachable: false,
            pending_writes: 0,
        },
        Some(store) => {
            let health = tokio::time::timeout(Duration::from_secs(1), store.health()).await;
            StoreStatus {
                backend: backend_name(s.config()),
                reachable: matches!(health, Ok(Ok(h)) if h.ok),
                pending_writes: store.pending_writes(),
            }
        }
    };
    metrics::gauge!("touxiang_vector_store_reachable", "backend" => st.backend)
        .set(if st.reachable { 1.0 } else { 0.0 });
    metrics::gauge!("touxiang_vector_outbox_pending").set(st.pending_writes as f64);
    Some(st)
}

/// Give the heap memory freed after seeding back to the OS. Seeding reads and embeds tens of
/// thousands of texts; glibc keeps the freed pages in its arenas, so the first start's RSS
/// stayed about 40 MB above a restarted server's (424 against 382 MB with the GB/T artifact).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only returns free memory of glibc's own arenas to the OS; it
        // touches no live allocation and is safe to call from any thread at any time.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_url_means_embedded() {
        let mut cfg = Config::default();
        assert_eq!(backend_name(&cfg), EMBEDDED);
        cfg.qdrant = Some(QdrantConfig {
            url: "  ".into(),
            ..QdrantConfig::default()
        });
        assert_eq!(backend_name(&cfg), EMBEDDED);
        cfg.qdrant = Some(QdrantConfig {
            url: "http://127.0.0.1:6334".into(),
            ..QdrantConfig::default()
        });
        assert_eq!(backend_name(&cfg), QDRANT);
    }

    #[test]
    fn unavailability_is_found_through_context() {
        let e = anyhow::Error::from(VectorError::Unavailable("down".into())).context("seeding");
        assert!(is_unavailable(&e));
        let e = anyhow::Error::from(VectorError::Backend("no".into())).context("seeding");
        assert!(!is_unavailable(&e));
    }
}
