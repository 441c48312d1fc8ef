//! Review queues for touxiang: durable items with leases, priorities with ageing, double review
//! with adjudication, an append-only audit log, agreement reports and label export.
//!
//! Everything lives in one SQLite file (`DIR/review.sqlite`, WAL): a call that changes state
//! commits before it returns, so a label acknowledged to a client survives `kill -9`; with
//! [`Synchronous::Full`] (default) `label`/`enqueue` also fsync the WAL before returning, so it
//! survives power loss too. The fsync runs outside the store's lock (concurrent labels share
//! flushes; claims never wait for the disk); WAL checkpoints run on a background thread.
//!
//! Use **one `ReviewStore` per process** (share it in an `Arc`): its mutex queues callers fairly
//! cheaply, whereas several connections contend through SQLite's sleeping busy handler. Other
//! processes (CLI export) may open the same file at the same time. All calls block (a label
//! waits for an fsync, ~5 ms): call them from `tokio::task::spawn_blocking` in async code.
//!
//! ## Life of an item
//! 1. [`ReviewStore::enqueue`] — the classifier routes an item here ([`review_reason`] decides:
//!    `review` decision, classifier-vs-neighbour-vote disagreement, or a random QA sample of
//!    `auto` decisions via [`Sampler`]). A share of items ([`ReviewConfig::double_review_rate`])
//!    is marked for double review.
//! 2. [`ReviewStore::claim`] leases the highest-priority pending item of a queue to a reviewer.
//!    Expired leases return items to the queue. [`ReviewStore::skip`] returns it and keeps it away
//!    from that reviewer for [`ReviewConfig::skip_cooldown`]; [`ReviewStore::release`] returns it.
//! 3. [`ReviewStore::label`] validates the code against the taxonomy and records it. Single
//!    review → final. Double review → the item waits for a second, different reviewer; if both
//!    agree (same code) it is final, otherwise it moves to the adjudication queue whose label is
//!    final. A final label comes back as a [`FinalLabel`] for the exemplar store.
//!
//! ## Priority and ageing
//! Base priority = `uncertainty × exposure` (exposure = `amount`, or
//! [`ReviewConfig::default_exposure`] when absent), floored at [`MIN_BASE_PRIORITY`].
//! Effective priority doubles every [`ReviewConfig::priority_doubling_time`] of waiting:
//! `effective = base × 2^(age / doubling_time)`. Any waiting item therefore overtakes any new
//! item after at most `doubling_time × log2(base_new / base_old)` — e.g. a 1 000× smaller item
//! waits at most ≈ 10 doubling times — so nothing starves. Because
//! `log2(effective) = log2(base) − enqueued_at/doubling_time + now/doubling_time`, the order
//! is a time-independent key stored per item and indexed: a claim is one index probe.

mod activity;
mod agreement;
mod integrity;
mod load;
mod sampling;
mod store;
mod types;

pub use activity::{FinalAgreement, ReviewerActivity};
pub use agreement::{
    cohen_kappa, level_name, partial_credit, AgreementReport, CodeAgreement, LevelKappa,
    ReviewerAgreement,
};
pub use load::{run_load, LoadOptions, LoadReport};
pub use sampling::{review_reason, Sampler};
pub use store::{ReviewStore, MIN_BASE_PRIORITY, REVIEW_DB_FILE};
pub use types::{
    AuditEntry, ClaimedItem, FinalLabel, ItemState, ItemView, LabelFilter, LabelOutcome,
    LabelRecord, NewItem, QueueStats, Reason, ReviewConfig, ReviewerStats, Stage, Stats,
    Synchronous, TaxonomyLookup,
};

/// Errors of the review crate.
///
/// HTTP mapping for the service ([`ReviewError::http_status`], [`ReviewError::kind`]):
///
/// | variant           | status | kind                 |
/// |-------------------|--------|----------------------|
/// | `NotFound`        | 404    | `not_found`          |
/// | `InvalidCode`     | 422    | `invalid_code`       |
/// | `InvalidInput`    | 422    | `invalid_input`      |
/// | `NotLeasedToYou`  | 403    | `not_leased_to_you`  |
/// | `LeaseExpired`    | 409    | `lease_expired`      |
/// | `AlreadyLabeled`  | 409    | `already_labeled`    |
/// | `Db`/`Json`/`Io`  | 500    | `internal`           |
/// | `Store`           | 500    | `internal`           |
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// No item with this review id.
    #[error("review item {0:?} not found")]
    NotFound(String),
    /// The code is not in the item's taxonomy (at any level).
    #[error("code: {code:?} is not a code of taxonomy {taxonomy:?}")]
    InvalidCode {
        /// The rejected code.
        code: String,
        /// The item's taxonomy id.
        taxonomy: String,
    },
    /// A field of a request is invalid.
    #[error("{field}: {message}")]
    InvalidInput {
        /// Name of the offending field (`queue`, `text`, `amount`, …).
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The item is not leased to this reviewer (leased to someone else, or not claimed).
    #[error("review item {review_id:?} is not leased to reviewer {reviewer:?}")]
    NotLeasedToYou {
        /// The item.
        review_id: String,
        /// The caller.
        reviewer: String,
    },
    /// This reviewer's lease on the item has expired; claim again.
    #[error("lease of review item {review_id:?} expired at {expired_at}")]
    LeaseExpired {
        /// The item.
        review_id: String,
        /// When the lease ran out.
        expired_at: chrono::DateTime<chrono::Utc>,
    },
    /// The item has its final label already, or this reviewer has labeled it already.
    #[error("review item {0:?} is already labeled")]
    AlreadyLabeled(String),
    /// Database failure.
    #[error("review database: {0}")]
    Db(#[from] rusqlite::Error),
    /// JSON (de)serialisation failure.
    #[error("review json: {0}")]
    Json(#[from] serde_json::Error),
    /// File system / writer failure.
    #[error("review io: {0}")]
    Io(#[from] std::io::Error),
    /// The review database is damaged (empty, corrupt, without its tables): refused, unchanged.
    #[error(transparent)]
    Store(#[from] touxiang_sqlite::StoreError),
}

impl ReviewError {
    /// snake_case error kind for the API error body (`error.code`).
    pub fn kind(&self) -> &'static str {
        match self {
            ReviewError::NotFound(_) => "not_found",
            ReviewError::InvalidCode { .. } => "invalid_code",
            ReviewError::InvalidInput { .. } => "invalid_input",
            ReviewError::NotLeasedToYou { .. } => "not_leased_to_you",
            ReviewError::LeaseExpired { .. } => "lease_expired",
            ReviewError::AlreadyLabeled(_) => "already_labeled",
            ReviewError::Db(_)
            | ReviewError::Json(_)
            | ReviewError::Io(_)
            | ReviewError::Store(_) => "internal",
        }
    }

    /// The request field at fault, for the API error body (`error.field`).
    pub fn field(&self) -> Option<&'static str> {
        match self {
            ReviewError::InvalidCode { .. } => Some("code"),
            ReviewError::InvalidInput { field, .. } => Some(field),
            _ => None,
        }
    }
}
