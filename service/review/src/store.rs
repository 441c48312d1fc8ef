//! The SQLite-backed review store.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{
    params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};
use serde_json::json;

use crate::sampling::Sampler;
use crate::types::*;
use crate::ReviewError;

/// File name of the review database inside the data dir.
pub const REVIEW_DB_FILE: &str = "review.sqlite";
/// Floor of `uncertainty × exposure`, so that zero-uncertainty or zero-amount items still age.
pub const MIN_BASE_PRIORITY: f64 = 1e-6;

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id               INTEGER PRIMARY KEY,
    review_id        TEXT NOT NULL UNIQUE,
    queue            TEXT NOT NULL,
    origin_queue     TEXT NOT NULL,
    text             TEXT NOT NULL,
    taxonomy         TEXT NOT NULL,
    external_id      TEXT,
    amount           REAL,
    exposure         REAL NOT NULL,
    uncertainty      REAL NOT NULL,
    log2_base        REAL NOT NULL,
    prio_key         REAL NOT NULL,
    reason           TEXT NOT NULL,
    suggestions      TEXT NOT NULL,
    neighbors        TEXT NOT NULL,
    model_version    TEXT,
    required_labels  INTEGER NOT NULL CHECK (required_labels IN (1, 2)),
    stage            TEXT NOT NULL CHECK (stage IN ('first', 'second', 'adjudication')),
    status           TEXT NOT NULL CHECK (status IN ('pending', 'leased', 'done')),
    leased_by        TEXT,
    lease_expires_ms INTEGER,
    enqueued_ms      INTEGER NOT NULL,
    final_code       TEXT,
    final_reviewer   TEXT,
    final_ms         INTEGER
);
CREATE INDEX IF NOT EXISTS items_claim ON items (queue, prio_key DESC) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS items_leases ON items (lease_expires_ms) WHERE status = 'leased';
CREATE INDEX IF NOT EXISTS items_final ON items (final_ms) WHERE status = 'done';
CREATE INDEX IF NOT EXISTS items_queue_status ON items (queue, status);

CREATE TABLE IF NOT EXISTS labels (
    id         INTEGER PRIMARY KEY,
    item_id    INTEGER NOT NULL REFERENCES items (id),
    stage      TEXT NOT NULL,
    queue      TEXT NOT NULL,
    reviewer   TEXT NOT NULL,
    code       TEXT NOT NULL,
    comment    TEXT,
    labeled_ms INTEGER NOT NULL,
    UNIQUE (item_id, stage)
);
CREATE INDEX IF NOT EXISTS labels_item_reviewer ON labels (item_id, reviewer);
CREATE INDEX IF NOT EXISTS labels_reviewer ON labels (reviewer);

CREATE TABLE IF NOT EXISTS skips (
    id         INTEGER PRIMARY KEY,
    item_id    INTEGER NOT NULL REFERENCES items (id),
    reviewer   TEXT NOT NULL,
    queue      TEXT NOT NULL,
    skipped_ms INTEGER NOT NULL,
    until_ms   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS skips_item_reviewer ON skips (item_id, reviewer, until_ms);

CREATE TABLE IF NOT EXISTS audit (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms     INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    review_id TEXT,
    detail    TEXT NOT NULL,
    previous  TEXT
);
CREATE INDEX IF NOT EXISTS audit_review ON audit (review_id, seq);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at_ms);

CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS labels_no_update BEFORE UPDATE ON labels
BEGIN SELECT RAISE(ABORT, 'labels are append-only'); END;
CREATE TRIGGER IF NOT EXISTS labels_no_delete BEFORE DELETE ON labels
BEGIN SELECT RAISE(ABORT, 'labels are append-only'); END;
"#;

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

/// Item row as needed by the state machine.
struct Row {
    id: i64,
    review_id: String,
    queue: String,
    taxonomy: String,
    required_labels: i64,
    stage: Stage,
    status: String,
    leased_by: Option<String>,
    lease_expires_ms: Option<i64>,
    final_code: Option<String>,
}

impl Row {
    fn snapshot(&self) -> serde_json::Value {
        json!({
            "status": self.status,
            "stage": self.stage.as_str(),
            "queue": self.queue,
            "leased_by": self.leased_by,
            "lease_expires_at": self.lease_expires_ms.map(dt),
            "final_code": self.final_code,
        })
    }
}

fn load_row(tx: &Connection, review_id: &str) -> Result<Row, ReviewError> {
    tx.query_row(
        "SELECT id, review_id, queue, taxonomy, required_labels, stage, status, leased_by,
                lease_expires_ms, final_code
         FROM items WHERE review_id = ?1",
        [review_id],
        |r| {
            let stage: String = r.get(5)?;
            Ok(Row {
                id: r.get(0)?,
                review_id: r.get(1)?,
                queue: r.get(2)?,
                taxonomy: r.get(3)?,
                required_labels: r.get(4)?,
                stage: Stage::parse(&stage).unwrap_or(Stage::First),
                status: r.get(6)?,
                leased_by: r.get(7)?,
                lease_expires_ms: r.get(8)?,
                final_code: r.get(9)?,
            })
        },
    )
    .optional()?
    .ok_or_else(|| ReviewError::NotFound(review_id.to_string()))
}

fn audit(
    tx: &Connection,
    at_ms: i64,
    actor: &str,
    action: &str,
    review_id: Option<&str>,
    detail: &serde_json::Value,
    previous: Option<&serde_json::Value>,
) -> Result<(), ReviewError> {
    tx.execute(
        "INSERT INTO audit (at_ms, actor, action, review_id, detail, previous)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            at_ms,
            actor,
            action,
            review_id,
            detail.to_string(),
            previous.map(|p| p.to_string())
        ],
    )?;
    Ok(())
}

const ITEM_COLS: &str = "i.review_id, i.queue, i.origin_queue, i.text, i.taxonomy, i.external_id,
    i.amount, i.uncertainty, i.reason, i.suggestions, i.neighbors, i.model_version, i.enqueued_ms,
    i.log2_base, i.stage, i.status, i.leased_by, i.lease_expires_ms, i.required_labels,
    i.final_code, i.final_reviewer, i.final_ms";

/// Columns of ITEM_COLS, decoded.
struct FullRow {
    review_id: String,
    queue: String,
    origin_queue: String,
    text: String,
    taxonomy: String,
    external_id: Option<String>,
    amount: Option<f64>,
    uncertainty: f64,
    reason: Reason,
    suggestions: serde_json::Value,
    neighbors: serde_json::Value,
    model_version: Option<String>,
    enqueued_ms: i64,
    log2_base: f64,
    stage: Stage,
    status: String,
    leased_by: Option<String>,
    lease_expires_ms: Option<i64>,
    required_labels: i64,
    final_code: Option<String>,
    final_reviewer: Option<String>,
    final_ms: Option<i64>,
}

fn conv_err(col: usize, msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        col,
        rusqlite::types::Type::Text,
        Box::<dyn std::error::Error + Send + Sync>::from(msg),
    )
}

fn full_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FullRow> {
    let reason: String = r.get(8)?;
    let stage: String = r.get(14)?;
    let suggestions: String = r.get(9)?;
    let neighbors: String = r.get(10)?;
    Ok(FullRow {
        review_id: r.get(0)?,
        queue: r.get(1)?,
        origin_queue: r.get(2)?,
        text: r.get(3)?,
        taxonomy: r.get(4)?,
        external_id: r.get(5)?,
        amount: r.get(6)?,
        uncertainty: r.get(7)?,
        reason: Reason::parse(&reason).ok_or_else(|| conv_err(8, format!("reason {reason}")))?,
        suggestions: serde_json::from_str(&suggestions).map_err(|e| conv_err(9, e.to_string()))?,
        neighbors: serde_json::from_str(&neighbors).map_err(|e| conv_err(10, e.to_string()))?,
        model_version: r.get(11)?,
        enqueued_ms: r.get(12)?,
        log2_base: r.get(13)?,
        stage: Stage::parse(&stage).ok_or_else(|| conv_err(14, format!("stage {stage}")))?,
        status: r.get(15)?,
        leased_by: r.get(16)?,
        lease_expires_ms: r.get(17)?,
        required_labels: r.get(18)?,
        final_code: r.get(19)?,
        final_reviewer: r.get(20)?,
        final_ms: r.get(21)?,
    })
}

impl FullRow {
    fn final_label(&self) -> Option<FinalLabel> {
        match (&self.final_code, &self.final_reviewer, self.final_ms) {
            (Some(code), Some(reviewer), Some(at)) if self.status == "done" => Some(FinalLabel {
                text: self.text.clone(),
                code: code.clone(),
                taxonomy: self.taxonomy.clone(),
                reviewer: reviewer.clone(),
                labeled_at: dt(at),
                source: "reviewed".to_string(),
                review_id: self.review_id.clone(),
                external_id: self.external_id.clone(),
                model_version: self.model_version.clone(),
                reason: self.reason,
            }),
            _ => None,
        }
    }
}

fn label_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LabelRecord> {
    let stage: String = r.get(1)?;
    Ok(LabelRecord {
        review_id: r.get(0)?,
        stage: Stage::parse(&stage).ok_or_else(|| conv_err(1, format!("stage {stage}")))?,
        reviewer: r.get(2)?,
        code: r.get(3)?,
        comment: r.get(4)?,
        labeled_at: dt(r.get(5)?),
    })
}

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    let detail: String = r.get(5)?;
    let previous: Option<String> = r.get(6)?;
    Ok(AuditEntry {
        seq: r.get(0)?,
        at: dt(r.get(1)?),
        actor: r.get(2)?,
        action: r.get(3)?,
        review_id: r.get(4)?,
        detail: serde_json::from_str(&detail).map_err(|e| conv_err(5, e.to_string()))?,
        previous: previous
            .map(|p| serde_json::from_str(&p))
            .transpose()
            .map_err(|e| conv_err(6, e.to_string()))?,
    })
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

    /// Put an item into review. Returns its `review_id` (`rv_` + 32 hex). Committed on return.
    pub fn enqueue(&self, item: &NewItem, now: DateTime<Utc>) -> Result<String, ReviewError> {
        check_queue("queue", &item.queue)?;
        if item.queue == self.config.adjudication_queue {
            return Err(invalid(
                "queue",
                "the adjudication queue is filled by disagreements only",
            ));
        }
        if item.text.trim().is_empty() {
            return Err(invalid("text", "must not be empty"));
        }
        if item.taxonomy.trim().is_empty() {
            return Err(invalid("taxonomy", "must not be empty"));
        }
        if let Some(a) = item.amount {
            if !(a.is_finite() && a >= 0.0) {
                return Err(invalid(
                    "amount",
                    format!("must be a finite number ≥ 0, got {a}"),
                ));
            }
        }
        if !(item.uncertainty.is_finite() && (0.0..=1.0).contains(&item.uncertainty)) {
            return Err(invalid(
                "uncertainty",
                format!("must be within 0..=1, got {}", item.uncertainty),
            ));
        }
        let double = item
            .double_review
            .unwrap_or_else(|| self.double_sampler.sample());
        let exposure = item.amount.unwrap_or(self.config.default_exposure);
        let lb = log2_base(item.uncertainty, exposure);
        let now_ms = ms(now);
        let key = prio_key(lb, now_ms, self.doubling_ms());
        let review_id = format!("rv_{}", uuid::Uuid::new_v4().simple());

        let mut conn = self.lock();
        let tx = begin(&mut conn)?;
        tx.execute(
            "INSERT INTO items (review_id, queue, origin_queue, text, taxonomy, external_id, amount,
                exposure, uncertainty, log2_base, prio_key, reason, suggestions, neighbors,
                model_version, required_labels, stage, status, enqueued_ms)
             VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                'first', 'pending', ?16)",
            params![
                review_id,
                item.queue,
                item.text,
                item.taxonomy,
                item.external_id,
                item.amount,
                exposure,
                item.uncertainty,
                lb,
                key,
                item.reason.as_str(),
                item.suggestions.to_string(),
                item.neighbors.to_string(),
                item.model_version,
                if double { 2 } else { 1 },
                now_ms,
            ],
        )?;
        audit(
            &tx,
            now_ms,
            "system",
            "enqueue",
            Some(&review_id),
            &json!({
                "queue": item.queue, "taxonomy": item.taxonomy, "external_id": item.external_id,
                "amount": item.amount, "uncertainty": item.uncertainty,
                "reason": item.reason.as_str(), "double_review": double,
                "model_version": item.model_version,
            }),
            None,
        )?;
        tx.commit()?;
        drop(conn);
        self.make_durable()?;
        Ok(review_id)
    }

    /// Return expired leases to their queues (audited as `lease_expired` by `system`).
    fn expire_leases(tx: &Transaction<'_>, now_ms: i64) -> Result<usize, ReviewError> {
        let expired: Vec<(i64, String, Option<String>, Option<i64>)> = {
            let mut stmt = tx.prepare_cached(
                "SELECT id, review_id, leased_by, lease_expires_ms FROM items
                 WHERE status = 'leased' AND lease_expires_ms <= ?1",
            )?;
            let rows = stmt.query_map([now_ms], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        for (id, review_id, by, until) in &expired {
            // leased_by / lease_expires_ms are kept so the former holder gets LeaseExpired.
            tx.execute("UPDATE items SET status = 'pending' WHERE id = ?1", [id])?;
            audit(
                tx,
                now_ms,
                "system",
                "lease_expired",
                Some(review_id),
                &json!({"leased_by": by, "lease_expired_at": until.map(dt)}),
                Some(&json!({"status": "leased", "leased_by": by})),
            )?;
        }
        Ok(expired.len())
    }

    /// Lease the highest-priority claimable item of `queue` to `reviewer` for `lease_ttl`.
    /// `None` when nothing is claimable (HTTP 204). Not claimable for this reviewer: items they
    /// skipped within the cooldown, and items they already labeled (the second review must be
    /// someone else; adjudication too unless [`ReviewConfig::adjudicator_may_be_labeler`]).
    pub fn claim(
        &self,
        queue: &str,
        reviewer: &str,
        lease_ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<ClaimedItem>, ReviewError> {
        check_queue("queue", queue)?;
        check_reviewer(reviewer)?;
        if lease_ttl.is_zero() {
            return Err(invalid("lease_ttl", "must be > 0"));
        }
        let now_ms = ms(now);
        let until_ms = now_ms.saturating_add(dur_ms(lease_ttl));
        let allow_labeler =
            self.config.adjudicator_may_be_labeler && queue == self.config.adjudication_queue;
        let mut conn = self.lock();
        let tx = begin(&mut conn)?;
        Self::expire_leases(&tx, now_ms)?;
        let picked: Option<(i64, String, String, String)> = tx
            .prepare_cached(
                "SELECT i.id, i.review_id, i.stage, i.status FROM items i
                 WHERE i.queue = ?1 AND i.status = 'pending'
                   AND NOT EXISTS (SELECT 1 FROM skips s
                                   WHERE s.item_id = i.id AND s.reviewer = ?2 AND s.until_ms > ?3)
                   AND (?4 OR NOT EXISTS (SELECT 1 FROM labels l
                                          WHERE l.item_id = i.id AND l.reviewer = ?2))
                 ORDER BY i.prio_key DESC, i.id ASC
                 LIMIT 1",
            )?
            .query_row(params![queue, reviewer, now_ms, allow_labeler], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        let Some((id, review_id, stage, status)) = picked else {
            tx.commit()?; // keep lease expiries
            return Ok(None);
        };
        let n = tx.execute(
            "UPDATE items SET status = 'leased', leased_by = ?2, lease_expires_ms = ?3
             WHERE id = ?1 AND status = 'pending'",
            params![id, reviewer, until_ms],
        )?;
        debug_assert_eq!(n, 1, "claim inside an IMMEDIATE transaction cannot race");
        audit(
            &tx,
            now_ms,
            reviewer,
            "claim",
            Some(&review_id),
            &json!({"queue": queue, "stage": stage, "lease_expires_at": dt(until_ms)}),
            Some(&json!({"status": status})),
        )?;
        let row = tx.query_row(
            &format!("SELECT {ITEM_COLS} FROM items i WHERE i.id = ?1"),
            [id],
            full_row,
        )?;
        tx.commit()?;
        Ok(Some(ClaimedItem {
            review_id: row.review_id,
            queue: row.queue,
            stage: row.stage,
            text: row.text,
            taxonomy: row.taxonomy,
            external_id: row.external_id,
            amount: row.amount,
            uncertainty: row.uncertainty,
            reason: row.reason,
            suggestions: row.suggestions,
            neighbors: row.neighbors,
            model_version: row.model_version,
            enqueued_at: dt(row.enqueued_ms),
            priority: effective_priority(
                row.log2_base,
                row.enqueued_ms,
                now_ms,
                self.doubling_ms(),
            ),
            reviewer: reviewer.to_string(),
            lease_expires_at: dt(until_ms),
        }))
    }

    /// Check that `reviewer` holds a running lease on `row`.
    fn check_lease(row: &Row, reviewer: &str, now_ms: i64) -> Result<(), ReviewError> {
        if row.status == "done" {
            return Err(ReviewError::AlreadyLabeled(row.review_id.clone()));
        }
        if row.leased_by.as_deref() == Some(reviewer) {
            if let Some(until) = row.lease_expires_ms {
                if until <= now_ms {
                    return Err(ReviewError::LeaseExpired {
                        review_id: row.review_id.clone(),
                        expired_at: dt(until),
                    });
                }
            }
            if row.status == "leased" {
                return Ok(());
            }
        }
        Err(ReviewError::NotLeasedToYou {
            review_id: row.review_id.clone(),
            reviewer: reviewer.to_string(),
        })
    }

    /// Record `reviewer`'s label `code` on a leased item. The code must be in the item's
    /// taxonomy at any level (`taxonomy.contains`). Committed before returning.
    ///
    /// Checks, in order: item exists (`NotFound`); not final and not already labeled by this
    /// reviewer (`AlreadyLabeled`); lease held and running (`LeaseExpired`, `NotLeasedToYou`);
    /// code valid (`InvalidCode`).
    pub fn label(
        &self,
        review_id: &str,
        reviewer: &str,
        code: &str,
        comment: Option<&str>,
        taxonomy: &dyn TaxonomyLookup,
        now: DateTime<Utc>,
    ) -> Result<LabelOutcome, ReviewError> {
        check_reviewer(reviewer)?;
        let code = code.trim();
        let now_ms = ms(now);
        let mut conn = self.lock();
        let tx = begin(&mut conn)?;
        let row = load_row(&tx, review_id)?;
        if row.status == "done" {
            return Err(ReviewError::AlreadyLabeled(review_id.to_string()));
        }
        let labeled_before: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM labels WHERE item_id = ?1 AND reviewer = ?2)",
            params![row.id, reviewer],
            |r| r.get(0),
        )?;
        let self_adjudication =
            row.stage == Stage::Adjudication && self.config.adjudicator_may_be_labeler;
        if labeled_before && !self_adjudication {
            return Err(ReviewError::AlreadyLabeled(review_id.to_string()));
        }
        Self::check_lease(&row, reviewer, now_ms)?;
        if code.is_empty() || !taxonomy.contains(&row.taxonomy, code) {
            return Err(ReviewError::InvalidCode {
                code: code.to_string(),
                taxonomy: row.taxonomy.clone(),
            });
        }
        tx.execute(
            "INSERT INTO labels (item_id, stage, queue, reviewer, code, comment, labeled_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                row.id,
                row.stage.as_str(),
                row.queue,
                reviewer,
                code,
                comment,
                now_ms
            ],
        )?;

        // State transition.
        let (next_stage, next_queue, outcome): (Option<Stage>, Option<String>, &str) =
            match row.stage {
                Stage::First if row.required_labels == 2 => (
                    Some(Stage::Second),
                    Some(row.queue.clone()),
                    "second_review",
                ),
                Stage::Second => {
                    let first: String = tx.query_row(
                        "SELECT code FROM labels WHERE item_id = ?1 AND stage = 'first'",
                        [row.id],
                        |r| r.get(0),
                    )?;
                    if first == code {
                        (None, None, "final_agreed")
                    } else {
                        (
                            Some(Stage::Adjudication),
                            Some(self.config.adjudication_queue.clone()),
                            "adjudication",
                        )
                    }
                }
                Stage::First | Stage::Adjudication => (None, None, "final"),
            };
        match (&next_stage, &next_queue) {
            (Some(stage), Some(queue)) => {
                tx.execute(
                    "UPDATE items SET status = 'pending', stage = ?2, queue = ?3,
                         leased_by = NULL, lease_expires_ms = NULL
                     WHERE id = ?1",
                    params![row.id, stage.as_str(), queue],
                )?;
            }
            _ => {
                tx.execute(
                    "UPDATE items SET status = 'done', final_code = ?2, final_reviewer = ?3,
                         final_ms = ?4, leased_by = NULL, lease_expires_ms = NULL
                     WHERE id = ?1",
                    params![row.id, code, reviewer, now_ms],
                )?;
            }
        }
        audit(
            &tx,
            now_ms,
            reviewer,
            "label",
            Some(review_id),
            &json!({
                "code": code, "comment": comment, "stage": row.stage.as_str(),
                "outcome": outcome, "next_queue": next_queue,
            }),
            Some(&row.snapshot()),
        )?;
        let final_label = if next_stage.is_none() {
            let full = tx.query_row(
                &format!("SELECT {ITEM_COLS} FROM items i WHERE i.id = ?1"),
                [row.id],
                full_row,
            )?;
            full.final_label()
        } else {
            None
        };
        tx.commit()?;
        drop(conn);
        self.make_durable()?;
        Ok(LabelOutcome {
            label: LabelRecord {
                review_id: review_id.to_string(),
                stage: row.stage,
                reviewer: reviewer.to_string(),
                code: code.to_string(),
                comment: comment.map(str::to_string),
                labeled_at: dt(now_ms),
            },
            state: if next_stage.is_some() {
                ItemState::Pending
            } else {
                ItemState::Final
            },
            next_stage,
            next_queue,
            final_label,
        })
    }

    /// Give a leased item back so others get it; this reviewer will not be offered it again
    /// for [`ReviewConfig::skip_cooldown`]. Committed before returning.
    pub fn skip(
        &self,
        review_id: &str,
        reviewer: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), ReviewError> {
        self.unlease(review_id, reviewer, reason, now, true)
    }

    /// Give a leased item back to the queue without a cooldown. Committed before returning.
    pub fn release(
        &self,
        review_id: &str,
        reviewer: &str,
        now: DateTime<Utc>,
    ) -> Result<(), ReviewError> {
        self.unlease(review_id, reviewer, None, now, false)
    }

    fn unlease(
        &self,
        review_id: &str,
        reviewer: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
        skip: bool,
    ) -> Result<(), ReviewError> {
        check_reviewer(reviewer)?;
        let now_ms = ms(now);
        let mut conn = self.lock();
        let tx = begin(&mut conn)?;
        let row = load_row(&tx, review_id)?;
        Self::check_lease(&row, reviewer, now_ms)?;
        tx.execute(
            "UPDATE items SET status = 'pending', leased_by = NULL, lease_expires_ms = NULL
             WHERE id = ?1",
            [row.id],
        )?;
        let detail = if skip {
            let until = now_ms.saturating_add(dur_ms(self.config.skip_cooldown));
            tx.execute(
                "INSERT INTO skips (item_id, reviewer, queue, skipped_ms, until_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![row.id, reviewer, row.queue, now_ms, until],
            )?;
            json!({"reason": reason, "not_before_for_reviewer": dt(until)})
        } else {
            json!({})
        };
        audit(
            &tx,
            now_ms,
            reviewer,
            if skip { "skip" } else { "release" },
            Some(review_id),
            &detail,
            Some(&row.snapshot()),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Everything about one item.
    pub fn get(&self, review_id: &str, now: DateTime<Utc>) -> Result<ItemView, ReviewError> {
        let conn = self.lock();
        let row = conn
            .query_row(
                &format!("SELECT {ITEM_COLS} FROM items i WHERE i.review_id = ?1"),
                [review_id],
                full_row,
            )
            .optional()?
            .ok_or_else(|| ReviewError::NotFound(review_id.to_string()))?;
        let labels = labels_of(&conn, review_id)?;
        let now_ms = ms(now);
        let lease_running =
            row.status == "leased" && row.lease_expires_ms.is_some_and(|u| u > now_ms);
        let state = match row.status.as_str() {
            "done" => ItemState::Final,
            _ if lease_running => ItemState::Leased,
            _ => ItemState::Pending,
        };
        Ok(ItemView {
            final_label: row.final_label(),
            review_id: row.review_id,
            queue: row.queue,
            origin_queue: row.origin_queue,
            state,
            stage: row.stage,
            double_review: row.required_labels == 2,
            text: row.text,
            taxonomy: row.taxonomy,
            external_id: row.external_id,
            amount: row.amount,
            uncertainty: row.uncertainty,
            reason: row.reason,
            suggestions: row.suggestions,
            neighbors: row.neighbors,
            model_version: row.model_version,
            enqueued_at: dt(row.enqueued_ms),
            leased_by: if lease_running { row.leased_by } else { None },
            lease_expires_at: if lease_running {
                row.lease_expires_ms.map(dt)
            } else {
                None
            },
            labels,
        })
    }

    /// Labels recorded for an item, in order.
    pub fn labels(&self, review_id: &str) -> Result<Vec<LabelRecord>, ReviewError> {
        let conn = self.lock();
        labels_of(&conn, review_id)
    }

    /// The audit trail of one item, oldest first.
    pub fn audit(&self, review_id: &str) -> Result<Vec<AuditEntry>, ReviewError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT seq, at_ms, actor, action, review_id, detail, previous FROM audit
             WHERE review_id = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([review_id], audit_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The audit log after sequence number `after_seq` (use the last `seq` seen as a cursor;
    /// 0 from the start) and, if given, at or after `since`; at most `limit` entries.
    pub fn audit_log(
        &self,
        after_seq: i64,
        since: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, ReviewError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare(
            "SELECT seq, at_ms, actor, action, review_id, detail, previous FROM audit
             WHERE seq > ?1 AND at_ms >= ?2 ORDER BY seq LIMIT ?3",
        )?;
        let rows = stmt.query_map(
            params![
                after_seq,
                since.map(ms).unwrap_or(i64::MIN),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            audit_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Queue and reviewer counters (`GET /v1/review/stats`).
    pub fn stats(&self, now: DateTime<Utc>) -> Result<Stats, ReviewError> {
        use std::collections::BTreeMap;
        let now_ms = ms(now);
        let conn = self.reader()?;
        let mut queues: BTreeMap<String, QueueStats> = BTreeMap::new();
        {
            let mut stmt = conn.prepare(
                "SELECT queue,
                   SUM(status = 'pending' OR (status = 'leased' AND lease_expires_ms <= ?1)),
                   SUM(stage = 'second' AND (status = 'pending'
                       OR (status = 'leased' AND lease_expires_ms <= ?1))),
                   SUM(status = 'leased' AND lease_expires_ms > ?1),
                   SUM(status = 'done'),
                   MIN(CASE WHEN status = 'pending'
                            OR (status = 'leased' AND lease_expires_ms <= ?1)
                       THEN enqueued_ms END)
                 FROM items GROUP BY queue",
            )?;
            let mut rows = stmt.query([now_ms])?;
            while let Some(r) = rows.next()? {
                let q: String = r.get(0)?;
                let oldest: Option<i64> = r.get(5)?;
                queues.insert(
                    q.clone(),
                    QueueStats {
                        queue: q,
                        pending: r.get::<_, i64>(1)? as u64,
                        pending_second_review: r.get::<_, i64>(2)? as u64,
                        leased: r.get::<_, i64>(3)? as u64,
                        labeled: r.get::<_, i64>(4)? as u64,
                        oldest_pending_age_secs: oldest
                            .map(|o| (now_ms - o).max(0) as f64 / 1000.0),
                        reviewers: vec![],
                    },
                );
            }
        }
        // (queue, reviewer) → counters; queue "" = all queues.
        let mut per: BTreeMap<(String, String), ReviewerStats> = BTreeMap::new();
        let mut bump =
            |queue: String, reviewer: String, f: &dyn Fn(&mut ReviewerStats, u64), n: u64| {
                for q in [queue, String::new()] {
                    let e = per
                        .entry((q, reviewer.clone()))
                        .or_insert_with(|| ReviewerStats {
                            reviewer: reviewer.clone(),
                            ..Default::default()
                        });
                    f(e, n);
                }
            };
        for (sql, f) in [
            (
                "SELECT queue, leased_by, COUNT(*) FROM items
                 WHERE status = 'leased' AND lease_expires_ms > ?1 GROUP BY 1, 2",
                (|e: &mut ReviewerStats, n| e.leased += n) as fn(&mut ReviewerStats, u64),
            ),
            (
                "SELECT queue, reviewer, COUNT(*) FROM labels WHERE ?1 = ?1 GROUP BY 1, 2",
                |e, n| e.labeled += n,
            ),
            (
                "SELECT queue, reviewer, COUNT(*) FROM skips WHERE ?1 = ?1 GROUP BY 1, 2",
                |e, n| e.skipped += n,
            ),
        ] {
            let mut stmt = conn.prepare(sql)?;
            let mut rows = stmt.query([now_ms])?;
            while let Some(r) = rows.next()? {
                bump(r.get(0)?, r.get(1)?, &f, r.get::<_, i64>(2)? as u64);
            }
        }
        let mut reviewers = Vec::new();
        for ((q, _), s) in per {
            if q.is_empty() {
                reviewers.push(s);
            } else {
                queues
                    .entry(q.clone())
                    .or_insert_with(|| QueueStats {
                        queue: q,
                        ..Default::default()
                    })
                    .reviewers
                    .push(s);
            }
        }
        Ok(Stats {
            at: now,
            queues: queues.into_values().collect(),
            reviewers,
        })
    }

    /// Final labels (oldest first) matching `filter`.
    pub fn labels_since(&self, filter: &LabelFilter) -> Result<Vec<FinalLabel>, ReviewError> {
        let mut out = Vec::new();
        self.for_each_final(filter, |l| {
            out.push(l);
            Ok(())
        })?;
        Ok(out)
    }

    /// Write final labels matching `filter` as JSON lines
    /// `{"text","code","taxonomy","reviewer","labeled_at","source":"reviewed","review_id",…}`
    /// (the `touxiang export-labels` format; `touxiang train` reads `text`/`code`/`taxonomy`).
    /// Reads on its own connection, so it does not block claims. Returns the number written.
    pub fn export_labels<W: Write>(
        &self,
        mut writer: W,
        filter: &LabelFilter,
    ) -> Result<usize, ReviewError> {
        let mut n = 0;
        self.for_each_final(filter, |l| {
            serde_json::to_writer(&mut writer, &l)?;
            writer.write_all(b"\n")?;
            n += 1;
            Ok(())
        })?;
        writer.flush()?;
        Ok(n)
    }

    /// Final labels matching `filter`, oldest first.
    pub fn final_labels(&self, filter: &LabelFilter) -> Result<Vec<FinalLabel>, ReviewError> {
        let mut out = Vec::new();
        self.for_each_final(filter, |l| {
            out.push(l);
            Ok(())
        })?;
        Ok(out)
    }

    fn for_each_final(
        &self,
        filter: &LabelFilter,
        mut f: impl FnMut(FinalLabel) -> Result<(), ReviewError>,
    ) -> Result<(), ReviewError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {ITEM_COLS} FROM items i
             WHERE i.status = 'done' AND i.final_ms >= ?1 AND (?2 IS NULL OR i.taxonomy = ?2)
             ORDER BY i.final_ms, i.id LIMIT ?3"
        ))?;
        let mut rows = stmt.query(params![
            filter.since.map(ms).unwrap_or(i64::MIN),
            filter.taxonomy,
            filter
                .limit
                .map(|l| i64::try_from(l).unwrap_or(i64::MAX))
                .unwrap_or(-1)
        ])?;
        while let Some(r) = rows.next()? {
            if let Some(l) = full_row(r)?.final_label() {
                f(l)?;
            }
        }
        Ok(())
    }

    /// Pairs of independent labels of double-reviewed items:
    /// `(taxonomy, first reviewer, first code, second reviewer, second code, final code)`.
    pub(crate) fn label_pairs(&self, taxonomy: Option<&str>) -> Result<Vec<Pair>, ReviewError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare(
            "SELECT i.taxonomy, a.reviewer, a.code, b.reviewer, b.code, i.final_code
             FROM items i
             JOIN labels a ON a.item_id = i.id AND a.stage = 'first'
             JOIN labels b ON b.item_id = i.id AND b.stage = 'second'
             WHERE (?1 IS NULL OR i.taxonomy = ?1)
             ORDER BY i.id",
        )?;
        let rows = stmt.query_map([taxonomy], |r| {
            Ok(Pair {
                taxonomy: r.get(0)?,
                reviewer_a: r.get(1)?,
                code_a: r.get(2)?,
                reviewer_b: r.get(3)?,
                code_b: r.get(4)?,
                final_code: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Test hook: run raw SQL on the store's connection (used to prove the audit log rejects
    /// updates and deletes).
    #[doc(hidden)]
    pub fn execute_raw_for_tests(&self, sql: &str) -> Result<usize, ReviewError> {
        Ok(self.lock().execute(sql, [])?)
    }
}

/// One double-reviewed item.
#[derive(Debug, Clone)]
pub(crate) struct Pair {
    pub taxonomy: String,
    pub reviewer_a: String,
    pub code_a: String,
    pub reviewer_b: String,
    pub code_b: String,
    pub final_code: Option<String>,
}

fn labels_of(conn: &Connection, review_id: &str) -> Result<Vec<LabelRecord>, ReviewError> {
    let mut stmt = conn.prepare_cached(
        "SELECT i.review_id, l.stage, l.reviewer, l.code, l.comment, l.labeled_ms
         FROM labels l JOIN items i ON i.id = l.item_id
         WHERE i.review_id = ?1 ORDER BY l.id",
    )?;
    let rows = stmt.query_map([review_id], label_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ageing_order_key_matches_effective_priority() {
        let d = 3_600_000;
        // Old low-priority item vs new high-priority item: order keys agree with the
        // effective priorities at any time.
        let (lb_old, t_old) = (log2_base(0.5, 100.0), 0_i64);
        let (lb_new, t_new) = (log2_base(0.9, 1_000_000.0), 20 * d);
        for now in [t_new, t_new + d, t_new + 100 * d] {
            let ko = prio_key(lb_old, t_old, d);
            let kn = prio_key(lb_new, t_new, d);
            let eo = effective_priority(lb_old, t_old, now, d);
            let en = effective_priority(lb_new, t_new, now, d);
            assert_eq!(ko > kn, eo > en, "now={now}");
        }
        // base ratio 1e6/50·0.9 ≈ 18000 ≈ 2^14.1: after 20 doublings the old one wins.
        assert!(prio_key(lb_old, t_old, d) > prio_key(lb_new, t_new, d));
        // …but not after 10.
        assert!(prio_key(lb_old, t_old, d) < prio_key(lb_new, 10 * d, d));
        // Zero base still ages.
        assert!(log2_base(0.0, 1e9).is_finite());
    }
}
