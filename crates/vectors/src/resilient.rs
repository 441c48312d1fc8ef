//! Resilience wrapper: fail-fast reads, durable outbox for writes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::{validate_points, Filter, Health, Hit, Point, Result, VectorError, VectorStore};

/// Configuration of [`ResilientStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResilientConfig {
    /// Directory of the outbox database (`outbox.sqlite`), normally the service data dir.
    pub dir: PathBuf,
    /// Vector dimension (writes are validated before they are queued).
    pub dim: usize,
    /// A search/count slower than this fails with `Unavailable`.
    pub search_timeout: Duration,
    /// Time allowed to one attempt at applying queued writes.
    pub write_timeout: Duration,
    /// After a failure, reads fail at once (circuit open) for this long, then one is tried.
    pub circuit_open_for: Duration,
    /// First retry delay of the background writer; doubled on each failure…
    pub retry_initial: Duration,
    /// …up to this.
    pub retry_max: Duration,
}

impl ResilientConfig {
    /// Defaults: 300 ms search timeout, 2 s write attempts, 2 s open circuit, retries from
    /// 200 ms doubling to 30 s.
    pub fn new(dir: impl Into<PathBuf>, dim: usize) -> Self {
        Self {
            dir: dir.into(),
            dim,
            search_timeout: Duration::from_millis(300),
            write_timeout: Duration::from_secs(2),
            circuit_open_for: Duration::from_secs(2),
            retry_initial: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
        }
    }
}

/// Most points (upserts) or ids (deletes) sent to the backend in one request: a write is stored
/// as outbox entries of at most this many, and queued entries are merged up to it, so a backlog
/// (or a seeding batch of thousands of points) never becomes one request beyond the server's
/// message limit or the write timeout, which would be retried forever.
const MAX_BATCH: usize = 256;

/// One queued write.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Upsert { points: Vec<Point> },
    Delete { ids: Vec<String> },
}

struct Shared<S> {
    inner: S,
    cfg: ResilientConfig,
    db: Mutex<Connection>,
    notify: Notify,
    drain: tokio::sync::Mutex<()>,
    open_until: Mutex<Option<Instant>>,
    last_error: Mutex<Option<String>>,
    pending: AtomicU64,
    dead: AtomicU64,
}

/// Wraps a store (normally [`crate::QdrantStore`]) so that an unreachable backend degrades
/// instead of failing the service:
///
/// - `search`/`count` give up after [`ResilientConfig::search_timeout`] with
///   [`VectorError::Unavailable`]; after a failure the circuit stays open for
///   [`ResilientConfig::circuit_open_for`] and reads fail at once.
/// - `upsert`/`delete` are validated, appended to a durable SQLite outbox
///   (`DIR/outbox.sqlite`, `synchronous=FULL`) and then applied in order (one writer, oldest
///   first, so order per id is preserved; at most 256 points or ids per request, queued entries
///   merged up to that). `Ok` means durable in the outbox; when the backend
///   is up and the backlog small the write is also applied before the call returns (so the
///   next search sees it), otherwise a background task retries with exponential backoff until
///   acknowledged. A restart replays the outbox. Queued writes are not visible to `search`
///   until applied.
/// - Writes the backend rejects as invalid (never expected: they are validated first) are
///   moved to the `dead_letters` table of the outbox and counted in [`Health::detail`], not
///   retried forever and not dropped.
///
/// Must be created inside a Tokio runtime (it spawns the background writer, stopped on drop).
pub struct ResilientStore<S: VectorStore + 'static> {
    shared: Arc<Shared<S>>,
    task: tokio::task::JoinHandle<()>,
}

impl<S: VectorStore + 'static> Drop for ResilientStore<S> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<S: VectorStore + 'static> ResilientStore<S> {
    /// Opens the outbox in `cfg.dir` and starts the background writer, which first replays
    /// whatever a previous process left queued.
    pub fn open(inner: S, cfg: ResilientConfig) -> Result<Self> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            VectorError::invalid("runtime", "ResilientStore::open needs a Tokio runtime")
        })?;
        std::fs::create_dir_all(&cfg.dir)?;
        let path = cfg.dir.join("outbox.sqlite");
        // refuses an existing outbox that is empty, corrupt or without its tables
        let conn = crate::integrity::open(&path, &crate::integrity::OUTBOX)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let pending: i64 = conn.query_row("SELECT COUNT(*) FROM ops", [], |r| r.get(0))?;
        let dead: i64 = conn.query_row("SELECT COUNT(*) FROM dead_letters", [], |r| r.get(0))?;
        let shared = Arc::new(Shared {
            inner,
            cfg,
            db: Mutex::new(conn),
            notify: Notify::new(),
            drain: tokio::sync::Mutex::new(()),
            open_until: Mutex::new(None),
            last_error: Mutex::new(None),
            pending: AtomicU64::new(pending as u64),
            dead: AtomicU64::new(dead as u64),
        });
        if pending > 0 {
            tracing::info!("vector outbox: replaying {pending} queued writes");
        }
        let task = handle.spawn(writer_loop(shared.clone()));
        Ok(Self { shared, task })
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.shared.inner
    }

    /// Outbox entries not yet acknowledged by the backend (a write is stored as entries of at
    /// most 256 points or ids).
    pub fn pending_writes(&self) -> u64 {
        self.shared.pending.load(Ordering::SeqCst)
    }

    /// Writes moved to the dead-letter table.
    pub fn dead_letters(&self) -> u64 {
        self.shared.dead.load(Ordering::SeqCst)
    }

    /// Waits until the outbox is empty or `timeout` passes; returns whether it is empty.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.pending_writes() > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            self.shared.notify.notify_one();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Appends `ops` to the outbox in one transaction (all or none are durable).
    async fn enqueue(&self, ops: Vec<Op>) -> Result<()> {
        let bodies = ops
            .iter()
            .map(serde_json::to_string)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| VectorError::Storage(format!("encode outbox entry: {e}")))?;
        let sh = self.shared.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let mut db = sh.db.lock();
            let tx = db.transaction()?;
            let now = chrono::Utc::now().to_rfc3339();
            for body in &bodies {
                tx.execute(
                    "INSERT INTO ops(body, enqueued_at) VALUES (?1, ?2)",
                    params![body, now],
                )?;
            }
            tx.commit()?;
            sh.pending.fetch_add(bodies.len() as u64, Ordering::SeqCst);
            Ok(())
        })
        .await
        .map_err(|e| VectorError::Storage(format!("outbox task failed: {e}")))??;
        // Apply now if the backend is up and nobody else is draining; else the writer will.
        // Apply now (after any drain in progress) if the backend is up; bounded in time. If this
        // is cut short the entries stay queued: re-applying an upsert/delete is harmless.
        if !self.shared.circuit_open() {
            let sh = &self.shared;
            let _ = tokio::time::timeout(sh.cfg.write_timeout * 2, async {
                let guard = sh.drain.lock().await;
                sh.drain_locked(&guard, Some(256)).await
            })
            .await;
        }
        if self.pending_writes() > 0 {
            self.shared.notify.notify_one();
        }
        Ok(())
    }

    async fn guarded_read<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let sh = &self.shared;
        if sh.circuit_open() {
            return Err(VectorError::Unavailable(format!(
                "{what}: backend marked down ({})",
                sh.last_error.lock().clone().unwrap_or_default()
            )));
        }
        match tokio::time::timeout(sh.cfg.search_timeout, fut).await {
            Ok(Ok(v)) => {
                sh.close_circuit();
                Ok(v)
            }
            Ok(Err(e)) if e.is_unavailable() => {
                sh.trip(&e.to_string());
                Err(e)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => {
                let msg = format!("{what} timed out after {:?}", sh.cfg.search_timeout);
                sh.trip(&msg);
                Err(VectorError::Unavailable(msg))
            }
        }
    }
}

impl<S: VectorStore + 'static> Shared<S> {
    fn circuit_open(&self) -> bool {
        self.open_until
            .lock()
            .is_some_and(|until| Instant::now() < until)
    }

    fn trip(&self, err: &str) {
        *self.open_until.lock() = Some(Instant::now() + self.cfg.circuit_open_for);
        *self.last_error.lock() = Some(err.to_owned());
    }

    fn close_circuit(&self) {
        *self.open_until.lock() = None;
    }

    /// Applies queued ops oldest first, in runs of the same kind, up to `limit` ops (all when
    /// `None`). Stops at the first failure. Caller holds the drain lock.
    async fn drain_locked(
        &self,
        _guard: &tokio::sync::MutexGuard<'_, ()>,
        limit: Option<usize>,
    ) -> Result<()> {
        let mut done = 0usize;
        loop {
            if limit.is_some_and(|l| done >= l) {
                return Ok(());
            }
            let batch = self.read_batch(256)?;
            let Some((first, last, op)) = batch else {
                return Ok(());
            };
            let n = (last - first + 1) as usize;
            let res = match tokio::time::timeout(self.cfg.write_timeout, async {
                match op.clone() {
                    Op::Upsert { points } => self.inner.upsert(points).await,
                    Op::Delete { ids } => self.inner.delete(ids).await,
                }
            })
            .await
            {
                Ok(r) => r,
                Err(_) => Err(VectorError::Unavailable(format!(
                    "write timed out after {:?}",
                    self.cfg.write_timeout
                ))),
            };
            match res {
                Ok(()) => {
                    self.remove(first, last, None)?;
                    self.close_circuit();
                    done += n;
                }
                Err(
                    e @ (VectorError::InvalidInput { .. }
                    | VectorError::DimensionMismatch { .. }
                    | VectorError::Corrupt(_)),
                ) => {
                    tracing::error!(
                        "vector outbox: backend rejected ops {first}..={last}, moved to dead_letters: {e}"
                    );
                    self.remove(first, last, Some(&e.to_string()))?;
                    done += n;
                }
                Err(e) => {
                    if e.is_unavailable() {
                        self.trip(&e.to_string());
                    } else {
                        *self.last_error.lock() = Some(e.to_string());
                        tracing::error!("vector outbox: write failed, will retry: {e}");
                    }
                    return Err(e);
                }
            }
        }
    }

    /// The oldest run of same-kind ops (at most `max`), merged: (first seq, last seq, op).
    fn read_batch(&self, max: usize) -> Result<Option<(i64, i64, Op)>> {
        let db = self.db.lock();
        let mut stmt = db.prepare_cached("SELECT seq, body FROM ops ORDER BY seq LIMIT ?1")?;
        let rows = stmt.query_map(params![max as i64], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut merged: Option<(i64, i64, Op)> = None;
        for row in rows {
            let (seq, body) = row?;
            let op: Op = serde_json::from_str(&body)
                .map_err(|e| VectorError::Corrupt(format!("outbox entry {seq}: {e}")))?;
            match (&mut merged, op) {
                (None, op) => merged = Some((seq, seq, op)),
                (Some((_, last, Op::Upsert { points })), Op::Upsert { points: more })
                    if points.len() + more.len() <= MAX_BATCH =>
                {
                    points.extend(more);
                    *last = seq;
                }
                (Some((_, last, Op::Delete { ids })), Op::Delete { ids: more })
                    if ids.len() + more.len() <= MAX_BATCH =>
                {
                    ids.extend(more);
                    *last = seq;
                }
                _ => break,
            }
        }
        Ok(merged)
    }

    fn remove(&self, first: i64, last: i64, dead_error: Option<&str>) -> Result<()> {
        let mut db = self.db.lock();
        let tx = db.transaction()?;
        if let Some(err) = dead_error {
            let moved = tx.execute(
                "INSERT INTO dead_letters(seq, body, error, failed_at)
                 SELECT seq, body, ?3, ?4 FROM ops WHERE seq BETWEEN ?1 AND ?2",
                params![first, last, err, chrono::Utc::now().to_rfc3339()],
            )?;
            self.dead.fetch_add(moved as u64, Ordering::SeqCst);
        }
        let n = tx.execute(
            "DELETE FROM ops WHERE seq BETWEEN ?1 AND ?2",
            params![first, last],
        )?;
        tx.commit()?;
        self.pending.fetch_sub(n as u64, Ordering::SeqCst);
        Ok(())
    }
}

/// Background writer: waits for work (or a 5 s tick), drains the outbox, backs off
/// exponentially while the backend fails. Aborted when the store is dropped.
async fn writer_loop<S: VectorStore + 'static>(sh: Arc<Shared<S>>) {
    let mut delay: Option<Duration> = None;
    loop {
        match delay {
            Some(d) => tokio::time::sleep(d).await,
            None if sh.pending.load(Ordering::SeqCst) == 0 => {
                let _ = tokio::time::timeout(Duration::from_secs(5), sh.notify.notified()).await;
                continue;
            }
            None => {}
        }
        let res = {
            let guard = sh.drain.lock().await;
            sh.drain_locked(&guard, None).await
        };
        delay = match res {
            Ok(()) => None,
            Err(_) => Some(match delay {
                None => sh.cfg.retry_initial,
                Some(d) => (d * 2).min(sh.cfg.retry_max),
            }),
        };
    }
}

#[async_trait]
impl<S: VectorStore + 'static> VectorStore for ResilientStore<S> {
    async fn upsert(&self, points: Vec<Point>) -> Result<()> {
        let points = validate_points(points, self.shared.cfg.dim)?;
        if points.is_empty() {
            return Ok(());
        }
        let ops = points
            .chunks(MAX_BATCH)
            .map(|c| Op::Upsert { points: c.to_vec() })
            .collect();
        self.enqueue(ops).await
    }

    async fn search(&self, query: &[f32], k: usize, filter: &Filter) -> Result<Vec<Hit>> {
        crate::validate_query(query, self.shared.cfg.dim)?;
        self.guarded_read("search", self.shared.inner.search(query, k, filter))
            .await
    }

    async fn delete(&self, ids: Vec<String>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ops = ids
            .chunks(MAX_BATCH)
            .map(|c| Op::Delete { ids: c.to_vec() })
            .collect();
        self.enqueue(ops).await
    }

    async fn count(&self, filter: &Filter) -> Result<u64> {
        self.guarded_read("count", self.shared.inner.count(filter))
            .await
    }

    async fn contains(&self, ids: &[String], filter: &Filter) -> Result<Vec<bool>> {
        self.guarded_read("contains", self.shared.inner.contains(ids, filter))
            .await
    }

    fn pending_writes(&self) -> u64 {
        self.shared.pending.load(Ordering::SeqCst)
    }

    async fn health(&self) -> Result<Health> {
        let sh = &self.shared;
        let inner = tokio::time::timeout(sh.cfg.search_timeout, sh.inner.health()).await;
        let (backend, ok, points, detail) = match inner {
            Ok(Ok(h)) => (h.backend, h.ok, h.points, h.detail),
            Ok(Err(e)) => ("?".into(), false, None, e.to_string()),
            Err(_) => (
                "?".into(),
                false,
                None,
                format!("health check timed out after {:?}", sh.cfg.search_timeout),
            ),
        };
        let dead = self.dead_letters();
        let mut detail = detail;
        if dead > 0 {
            detail.push_str(&format!("; {dead} writes in dead_letters"));
        }
        if let Some(e) = sh.last_error.lock().as_ref() {
            detail.push_str(&format!("; last error: {e}"));
        }
        Ok(Health {
            backend: format!("resilient({backend})"),
            ok: ok && !sh.circuit_open(),
            points,
            pending_writes: self.pending_writes(),
            detail,
        })
    }
}
