//! Resilience wrapper: outbox retries, ordering, restart replay, fail-fast reads.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use touxiang_vectors::conformance::{self, point, unit_vector};
use touxiang_vectors::{
    EmbeddedConfig, EmbeddedStore, Filter, Health, Hit, Point, ResilientConfig, ResilientStore,
    Result, VectorError, VectorStore,
};

const DIM: usize = 384;

/// An embedded store whose writes fail with `Unavailable` the first `fail_writes` times, and
/// whose reads hang while `hang` is set.
#[derive(Clone)]
struct Flaky {
    inner: EmbeddedStore,
    fail_writes: Arc<AtomicUsize>,
    write_attempts: Arc<AtomicUsize>,
    hang: Arc<AtomicBool>,
    /// Largest upsert request seen.
    max_batch: Arc<AtomicUsize>,
}

impl Flaky {
    fn new(dir: &std::path::Path, fail_writes: usize) -> Self {
        Self {
            inner: EmbeddedStore::open(EmbeddedConfig::new(dir, DIM)).unwrap(),
            fail_writes: Arc::new(AtomicUsize::new(fail_writes)),
            write_attempts: Arc::new(AtomicUsize::new(0)),
            hang: Arc::new(AtomicBool::new(false)),
            max_batch: Arc::new(AtomicUsize::new(0)),
        }
    }
    fn gate(&self) -> Result<()> {
        self.write_attempts.fetch_add(1, Ordering::SeqCst);
        let left = self.fail_writes.load(Ordering::SeqCst);
        if left > 0 {
            self.fail_writes.store(left - 1, Ordering::SeqCst);
            return Err(VectorError::Unavailable("fake outage".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl VectorStore for Flaky {
    async fn upsert(&self, points: Vec<Point>) -> Result<()> {
        self.max_batch.fetch_max(points.len(), Ordering::SeqCst);
        self.gate()?;
        self.inner.upsert(points).await
    }
    async fn search(&self, q: &[f32], k: usize, f: &Filter) -> Result<Vec<Hit>> {
        if self.hang.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        self.inner.search(q, k, f).await
    }
    async fn delete(&self, ids: Vec<String>) -> Result<()> {
        self.gate()?;
        self.inner.delete(ids).await
    }
    async fn count(&self, f: &Filter) -> Result<u64> {
        self.inner.count(f).await
    }
    async fn contains(&self, ids: &[String], f: &Filter) -> Result<Vec<bool>> {
        self.gate()?;
        self.inner.contains(ids, f).await
    }
    async fn health(&self) -> Result<Health> {
        self.inner.health().await
    }
}

fn cfg(dir: &std::path::Path) -> ResilientConfig {
    let mut c = ResilientConfig::new(dir, DIM);
    c.retry_initial = Duration::from_millis(20);
    c.retry_max = Duration::from_millis(100);
    c.circuit_open_for = Duration::from_millis(200);
    c.search_timeout = Duration::from_millis(150);
    c
}

#[tokio::test]
async fn conformance_suite_through_wrapper() {
    let tmp = tempfile::tempdir().unwrap();
    let failures = conformance::run_all(
        |name| {
            let dir = tmp.path().join(name);
            async move {
                let inner = EmbeddedStore::open(EmbeddedConfig::new(dir.join("db"), DIM)).unwrap();
                ResilientStore::open(inner, cfg(&dir)).unwrap()
            }
        },
        DIM,
    )
    .await;
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn writes_retried_until_acknowledged_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let flaky = Flaky::new(&tmp.path().join("db"), 3);
    let store = ResilientStore::open(flaky.clone(), cfg(tmp.path())).unwrap();
    let b = point("b", unit_vector(DIM, 2), "6210", "seed");
    // While the backend fails: write a, replace a, write b, delete b.
    store
        .upsert(vec![point("a", unit_vector(DIM, 1), "OLD", "seed")])
        .await
        .unwrap();
    store
        .upsert(vec![point("a", unit_vector(DIM, 1), "NEW", "reviewed")])
        .await
        .unwrap();
    store.upsert(vec![b]).await.unwrap();
    store.delete(vec!["b".into()]).await.unwrap();
    assert!(
        store.flush(Duration::from_secs(10)).await,
        "outbox not drained"
    );
    assert!(
        flaky.write_attempts.load(Ordering::SeqCst) >= 4,
        "no retries happened"
    );
    assert_eq!(flaky.inner.count(&Filter::all()).await.unwrap(), 1);
    let hits = flaky
        .inner
        .search(&unit_vector(DIM, 1), 5, &Filter::all())
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(
        (hits[0].id.as_str(), hits[0].payload.code.as_str()),
        ("a", "NEW")
    );
    let h = store.health().await.unwrap();
    assert_eq!(h.pending_writes, 0);
}

#[tokio::test]
async fn restart_replays_the_outbox() {
    let tmp = tempfile::tempdir().unwrap();
    let pts: Vec<Point> = (0..5)
        .map(|i| point(&format!("p{i}"), unit_vector(DIM, i), "6291", "reviewed"))
        .collect();
    {
        // The backend is down for the whole life of this "process".
        let down = Flaky::new(&tmp.path().join("db-down"), usize::MAX);
        let store = ResilientStore::open(down.clone(), cfg(tmp.path())).unwrap();
        store.upsert(pts[..3].to_vec()).await.unwrap();
        store.upsert(pts[3..].to_vec()).await.unwrap();
        store.delete(vec!["p0".into()]).await.unwrap();
        assert_eq!(store.pending_writes(), 3);
        assert_eq!(down.inner.count(&Filter::all()).await.unwrap(), 0);
    }
    // New process, backend back: the queued writes arrive, in order.
    let up = Flaky::new(&tmp.path().join("db-up"), 0);
    let store = ResilientStore::open(up.clone(), cfg(tmp.path())).unwrap();
    assert_eq!(store.pending_writes(), 3);
    assert!(store.flush(Duration::from_secs(10)).await);
    assert_eq!(up.inner.count(&Filter::all()).await.unwrap(), 4);
    let hits = up
        .inner
        .search(&pts[0].vector, 1, &Filter::all())
        .await
        .unwrap();
    assert_ne!(hits[0].id, "p0", "delete queued after the upsert must win");
}

#[tokio::test]
async fn hanging_backend_makes_search_fail_fast() {
    let tmp = tempfile::tempdir().unwrap();
    let flaky = Flaky::new(&tmp.path().join("db"), 0);
    let store = ResilientStore::open(flaky.clone(), cfg(tmp.path())).unwrap();
    let p = point("a", unit_vector(DIM, 1), "6291", "seed");
    store.upsert(vec![p.clone()]).await.unwrap();
    assert_eq!(
        store.search(&p.vector, 1, &Filter::all()).await.unwrap()[0].id,
        "a"
    );
    flaky.hang.store(true, Ordering::SeqCst);
    let t = Instant::now();
    let err = store
        .search(&p.vector, 1, &Filter::all())
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
    // Circuit open: the next read fails at once without waiting for the timeout.
    let t = Instant::now();
    assert!(store
        .search(&p.vector, 1, &Filter::all())
        .await
        .unwrap_err()
        .is_unavailable());
    assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
    assert!(!store.health().await.unwrap().ok);
    // Backend recovers: after the open period reads work again.
    flaky.hang.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        store.search(&p.vector, 1, &Filter::all()).await.unwrap()[0].id,
        "a"
    );
}

/// A seeding-sized write (and a backlog of them) reaches the backend in requests of at most 256
/// points, all of them, in order.
#[tokio::test]
async fn large_writes_and_backlogs_are_sent_in_bounded_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let pts: Vec<Point> = (0..700)
        .map(|i| point(&format!("p{i}"), unit_vector(DIM, i), "6291", "seed"))
        .collect();
    {
        let down = Flaky::new(&tmp.path().join("db-down"), usize::MAX);
        let store = ResilientStore::open(down, cfg(tmp.path())).unwrap();
        store.upsert(pts[..600].to_vec()).await.unwrap();
        store.upsert(pts[600..].to_vec()).await.unwrap();
        assert_eq!(store.pending_writes(), 4, "600 points = 3 entries, then 1");
    }
    let up = Flaky::new(&tmp.path().join("db-up"), 0);
    let store = ResilientStore::open(up.clone(), cfg(tmp.path())).unwrap();
    assert!(store.flush(Duration::from_secs(20)).await);
    assert_eq!(up.inner.count(&Filter::all()).await.unwrap(), 700);
    let max = up.max_batch.load(Ordering::SeqCst);
    assert!(max > 0 && max <= 256, "largest request {max} points");
}
