//! The SQLite-backed review store.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior};

use crate::sampling::Sampler;
use crate::types::*;
use crate::ReviewError;

mod label;
mod queue;
mod reads;
mod rows;
mod schema;
mod stats;
#[cfg(test)]
mod tests;

pub(crate) use reads::Pair;
pub(crate) use schema::SCHEMA;

/// File name of the review database inside the data dir.
pub const REVIEW_DB_FILE: &str = "review.sqlite";
/// Floor of `uncertainty × exposure`, so that zero-uncertainty or zero-amount items still age.
pub const MIN_BASE_PRIORITY: f64 = 1e-6;

/// The review store. One instance per process is enough (it serialises its own calls); several
/// instances or processes may open the same file — every state change runs in an
/// `IMMEDIATE` transaction, so two reviewers can never hold the same item.
pub struct ReviewStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    config: ReviewConfig,
    double_sampler: Sampler,
    checkpointer: Option<Checkpointer>,
}

/// Background WAL checkpoints, so that no claim or label pays for copying the WAL into the
/// database file and fsyncing it (SQLite's automatic checkpoint runs inside a commit).
struct Checkpointer {
    stop: std::sync::mpsc::Sender<()>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path, every: Duration) -> Result<Self, ReviewError> {
        let conn = init_conn(Connection::open(path)?)?;
        let (stop, rx) = std::sync::mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("review-wal-checkpoint".into())
            .spawn(move || {
                // PASSIVE: never blocks writers or readers; frames still in use stay in the WAL.
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })?;
        Ok(Checkpointer {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn dt(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

fn dur_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn invalid(field: &'static str, message: impl Into<String>) -> ReviewError {
    ReviewError::InvalidInput {
        field,
        message: message.into(),
    }
}

fn check_queue(field: &'static str, q: &str) -> Result<(), ReviewError> {
    let ok = !q.is_empty()
        && q.len() <= 64
        && q.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("queue name {q:?} must be 1-64 characters of A-Z a-z 0-9 . _ - :"),
        ))
    }
}

fn check_reviewer(r: &str) -> Result<(), ReviewError> {
    if r.trim().is_empty() || r.len() > 128 {
        Err(invalid("reviewer", "must be 1-128 characters"))
    } else {
        Ok(())
    }
}

/// `log2(max(uncertainty × exposure, MIN_BASE_PRIORITY))`.
pub(crate) fn log2_base(uncertainty: f64, exposure: f64) -> f64 {
    (uncertainty * exposure).max(MIN_BASE_PRIORITY).log2()
}

/// Time-independent order key: larger = claimed first. See the crate docs.
pub(crate) fn prio_key(log2_base: f64, enqueued_ms: i64, doubling_ms: i64) -> f64 {
    log2_base - enqueued_ms as f64 / doubling_ms as f64
}

/// Effective priority `base × 2^(age / doubling)` at `now`.
pub(crate) fn effective_priority(
    log2_base: f64,
    enqueued_ms: i64,
    now_ms: i64,
    doubling_ms: i64,
) -> f64 {
    let age = (now_ms - enqueued_ms).max(0) as f64;
    (log2_base + age / doubling_ms as f64).exp2()
}

/// Begin an `IMMEDIATE` (write-locked) transaction. Every connection runs at
/// `synchronous=NORMAL`: a commit writes its WAL frames without fsync, so the write lock (and
/// the store's mutex) is never held across a disk flush. Durability of labels and enqueues at
/// [`Synchronous::Full`] comes from [`ReviewStore::make_durable`], an fsync of the WAL file
/// *after* the lock is released and *before* the call returns: concurrent callers' flushes
/// overlap (group commit by the OS) and claims never wait behind a disk flush.
///
/// Why this is as safe as `synchronous=FULL` for the returning call: its frames were written
/// to the WAL before the fsync, so the fsync persists them; if a checkpoint has since moved
/// them into the database file, SQLite (at NORMAL) fsyncs the database file before it
/// restarts the WAL. Leases (claim, skip, release, lease expiry) are soft state and are not
/// flushed explicitly: they survive `kill -9` like everything in WAL mode; a power loss can
/// drop the last few, which returns those items to the queue like an expired lease.
fn begin(conn: &mut Connection) -> Result<Transaction<'_>, ReviewError> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

fn init_conn(conn: Connection) -> Result<Connection, ReviewError> {
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

impl ReviewStore {
    /// Open (creating if needed) `dir/review.sqlite`; creates `dir` if missing.
    pub fn open(dir: impl AsRef<Path>, config: ReviewConfig) -> Result<Self, ReviewError> {
        std::fs::create_dir_all(dir.as_ref())?;
        Self::open_file(dir.as_ref().join(REVIEW_DB_FILE), config)
    }

    /// Open the review database at an explicit file path, creating it only when the file does
    /// not exist; a damaged file is refused ([`crate::integrity`]).
    pub fn open_file(path: impl Into<PathBuf>, config: ReviewConfig) -> Result<Self, ReviewError> {
        let path = path.into();
        if config.priority_doubling_time.as_millis() == 0 {
            return Err(invalid("priority_doubling_time", "must be > 0"));
        }
        check_queue("adjudication_queue", &config.adjudication_queue)?;
        if !(config.default_exposure.is_finite() && config.default_exposure >= 0.0) {
            return Err(invalid("default_exposure", "must be a finite number ≥ 0"));
        }
        let double_sampler = match config.seed {
            Some(seed) => Sampler::seeded(config.double_review_rate, seed),
            None => Sampler::from_os(config.double_review_rate),
        }
        .map_err(|_| invalid("double_review_rate", "must be within 0..=1"))?;
        let mut conn = init_conn(crate::integrity::open(&path)?)?;
        {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // The order key depends on the doubling time: recompute when it changed.
            let doubling_ms = dur_ms(config.priority_doubling_time);
            let stored: Option<String> = tx
                .query_row(
                    "SELECT value FROM meta WHERE key = 'doubling_ms'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            if stored.as_deref() != Some(doubling_ms.to_string().as_str()) {
                tx.execute(
                    "UPDATE items SET prio_key = log2_base - CAST(enqueued_ms AS REAL) / ?1",
                    [doubling_ms as f64],
                )?;
                tx.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('doubling_ms', ?1)",
                    [doubling_ms.to_string()],
                )?;
            }
            tx.commit()?;
        }
        let checkpointer = match config.checkpoint_interval {
            Some(every) if !every.is_zero() => {
                conn.pragma_update(None, "wal_autocheckpoint", 0)?;
                Some(Checkpointer::start(&path, every)?)
            }
            _ => None,
        };
        Ok(ReviewStore {
            conn: Mutex::new(conn),
            path,
            config,
            double_sampler,
            checkpointer,
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// At [`Synchronous::Full`], fsync the WAL file so that everything committed so far is on
    /// disk (see [`begin`]); at `Normal`, nothing (commits already survive `kill -9`).
    fn make_durable(&self) -> Result<(), ReviewError> {
        if self.config.synchronous == Synchronous::Normal {
            return Ok(());
        }
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        match std::fs::File::open(&wal) {
            Ok(f) => f.sync_data()?,
            // No WAL file: everything was checkpointed into the (fsynced) database file.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Is a background checkpoint thread running for this store?
    pub fn has_background_checkpoints(&self) -> bool {
        self.checkpointer.is_some()
    }

    /// The configuration in force.
    pub fn config(&self) -> &ReviewConfig {
        &self.config
    }

    /// Change the double-review share at run time.
    pub fn set_double_review_rate(&self, rate: f64) -> Result<(), ReviewError> {
        self.double_sampler.set_rate(rate)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // Transactions roll back on drop, so a poisoned lock holds a consistent connection.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A separate read-only connection for long reads (export, reports) that must not block
    /// claims; WAL readers do not block the writer.
    pub(crate) fn reader(&self) -> Result<Connection, ReviewError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(30))?;
        Ok(conn)
    }

    fn doubling_ms(&self) -> i64 {
        dur_ms(self.config.priority_doubling_time)
    }

    /// Test hook: run raw SQL on the store's connection (used to prove the audit log rejects
    /// updates and deletes).
    #[doc(hidden)]
    pub fn execute_raw_for_tests(&self, sql: &str) -> Result<usize, ReviewError> {
        Ok(self.lock().execute(sql, [])?)
    }
}
