//! Public data types of the review store.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Why an item is in review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The classifier's decision was `review` (confidence below the auto threshold).
    Review,
    /// The classifier and the neighbour vote disagree.
    Disagreement,
    /// Random quality-assurance sample of an `auto` decision.
    QaSample,
}

impl Reason {
    /// snake_case name (as stored and serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Review => "review",
            Reason::Disagreement => "disagreement",
            Reason::QaSample => "qa_sample",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "review" => Some(Reason::Review),
            "disagreement" => Some(Reason::Disagreement),
            "qa_sample" => Some(Reason::QaSample),
            _ => None,
        }
    }
}

/// Which label of an item is being asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The first (or only) label.
    First,
    /// The second, independent label of a double-reviewed item.
    Second,
    /// The deciding label after two reviewers disagreed.
    Adjudication,
}

impl Stage {
    /// snake_case name (as stored and serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::First => "first",
            Stage::Second => "second",
            Stage::Adjudication => "adjudication",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "first" => Some(Stage::First),
            "second" => Some(Stage::Second),
            "adjudication" => Some(Stage::Adjudication),
            _ => None,
        }
    }
}

/// Where an item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// Waiting to be claimed (including after an expired lease, a skip or a release).
    Pending,
    /// Leased to a reviewer.
    Leased,
    /// Has its final label.
    Final,
}

/// An item to put into review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewItem {
    /// Queue name (`[A-Za-z0-9._:-]`, 1-64 chars), e.g. `default`, a branch or a product.
    pub queue: String,
    /// The loan purpose text.
    pub text: String,
    /// Taxonomy id, e.g. `gbt4754-2017`.
    pub taxonomy: String,
    /// Caller's id of the case (application id, loan id, classify item id).
    pub external_id: Option<String>,
    /// Exposure (loan amount, ≥ 0); `None` → [`ReviewConfig::default_exposure`].
    pub amount: Option<f64>,
    /// 0..=1: `1 − confidence`, or another uncertainty score.
    pub uncertainty: f64,
    /// Why the item is in review.
    pub reason: Reason,
    /// Top-k alternatives as shown to the reviewer (free JSON, stored as given).
    pub suggestions: serde_json::Value,
    /// Nearest labeled exemplars (free JSON, stored as given).
    pub neighbors: serde_json::Value,
    /// Version of the model that produced the suggestion.
    pub model_version: Option<String>,
    /// Force (`Some(true)`), forbid (`Some(false)`) or sample (`None`, at
    /// [`ReviewConfig::double_review_rate`]) double review.
    pub double_review: Option<bool>,
}

impl NewItem {
    /// A `Review`-reason item with empty suggestions/neighbours; fill the rest as needed.
    pub fn new(queue: &str, text: &str, taxonomy: &str, uncertainty: f64) -> Self {
        NewItem {
            queue: queue.to_string(),
            text: text.to_string(),
            taxonomy: taxonomy.to_string(),
            external_id: None,
            amount: None,
            uncertainty,
            reason: Reason::Review,
            suggestions: serde_json::Value::Array(vec![]),
            neighbors: serde_json::Value::Array(vec![]),
            model_version: None,
            double_review: None,
        }
    }
}

/// Durability of labels and enqueues. Both survive `kill -9` of the process (WAL mode); only
/// `Full` also survives power loss / OS crash for the last calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Synchronous {
    /// A label/enqueue call returns only after the WAL file holding it has been fsynced
    /// (default). The fsync runs outside the store's lock, so concurrent calls share flushes
    /// and claims never wait for one.
    Full,
    /// SQLite `synchronous=NORMAL`: fsync only at checkpoints.
    Normal,
}

/// Settings of a review store.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewConfig {
    /// Waiting time after which an item's effective priority has doubled (default 2 h).
    pub priority_doubling_time: Duration,
    /// How long a skipped item stays away from the reviewer who skipped it (default 1 h).
    pub skip_cooldown: Duration,
    /// Share of items (0..=1) that need two independent labels (default 0.1).
    pub double_review_rate: f64,
    /// Name of the queue where disagreements go (default `adjudication`).
    pub adjudication_queue: String,
    /// May a reviewer who labeled an item also adjudicate it? (default false: a third person).
    pub adjudicator_may_be_labeler: bool,
    /// Exposure used when an item has no amount (default 1.0).
    pub default_exposure: f64,
    /// Durability level (default `Full`).
    pub synchronous: Synchronous,
    /// Seed for the double-review sampler (`None` → OS entropy). For tests.
    pub seed: Option<u64>,
    /// Run WAL checkpoints on a background thread at this interval instead of inside commits
    /// (default 1 s; `None` → SQLite's automatic checkpoints in the commit path). Keeps the
    /// fsync of the database file out of claim/label latency. Use `None` for short-lived
    /// processes (CLI export).
    pub checkpoint_interval: Option<Duration>,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        ReviewConfig {
            priority_doubling_time: Duration::from_secs(2 * 3600),
            skip_cooldown: Duration::from_secs(3600),
            double_review_rate: 0.1,
            adjudication_queue: "adjudication".to_string(),
            adjudicator_may_be_labeler: false,
            default_exposure: 1.0,
            synchronous: Synchronous::Full,
            seed: None,
            checkpoint_interval: Some(Duration::from_secs(1)),
        }
    }
}

/// An item leased to a reviewer (the body of `POST /v1/review/claim`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimedItem {
    /// `rv_` + 32 hex.
    pub review_id: String,
    /// Queue it was claimed from.
    pub queue: String,
    /// Which label is asked for.
    pub stage: Stage,
    /// The loan purpose text.
    pub text: String,
    /// Taxonomy id.
    pub taxonomy: String,
    /// Caller's id of the case.
    pub external_id: Option<String>,
    /// Loan amount, if given.
    pub amount: Option<f64>,
    /// Uncertainty at enqueue.
    pub uncertainty: f64,
    /// Why it is in review.
    pub reason: Reason,
    /// Top-k alternatives (as enqueued). For a second review these are still the model's.
    pub suggestions: serde_json::Value,
    /// Neighbours (as enqueued).
    pub neighbors: serde_json::Value,
    /// Model version at enqueue.
    pub model_version: Option<String>,
    /// When it entered review.
    pub enqueued_at: DateTime<Utc>,
    /// Effective priority at claim time.
    pub priority: f64,
    /// Reviewer holding the lease.
    pub reviewer: String,
    /// The lease runs out at this time.
    pub lease_expires_at: DateTime<Utc>,
}

/// A final, human-decided label — what goes into the exemplar store and the training export.
/// Serialises to the export line `{text, code, taxonomy, reviewer, labeled_at, source, …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalLabel {
    /// The loan purpose text.
    pub text: String,
    /// Final code (any level of the taxonomy).
    pub code: String,
    /// Taxonomy id.
    pub taxonomy: String,
    /// Reviewer whose label became final (the second reviewer on agreement, the adjudicator
    /// after disagreement).
    pub reviewer: String,
    /// When the label became final.
    pub labeled_at: DateTime<Utc>,
    /// Always `"reviewed"`.
    pub source: String,
    /// The review item.
    pub review_id: String,
    /// Caller's id of the case.
    pub external_id: Option<String>,
    /// Model version at enqueue.
    pub model_version: Option<String>,
    /// Why it was in review.
    pub reason: Reason,
}

/// One recorded label (any stage).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelRecord {
    /// The review item.
    pub review_id: String,
    /// Which label this was.
    pub stage: Stage,
    /// Who gave it.
    pub reviewer: String,
    /// The code.
    pub code: String,
    /// Free comment.
    pub comment: Option<String>,
    /// When it was recorded (committed).
    pub labeled_at: DateTime<Utc>,
}

/// Result of [`crate::ReviewStore::label`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelOutcome {
    /// The label just recorded.
    pub label: LabelRecord,
    /// State of the item afterwards (`Final`, or `Pending` for a second review/adjudication).
    pub state: ItemState,
    /// Stage the item waits for next, when not final.
    pub next_stage: Option<Stage>,
    /// Queue the item waits in next, when not final (the adjudication queue after disagreement).
    pub next_queue: Option<String>,
    /// The final label when this call made the item final: upsert it into the exemplar store.
    pub final_label: Option<FinalLabel>,
}

/// Full view of an item (for a `GET /v1/review/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemView {
    /// `rv_…`.
    pub review_id: String,
    /// Current queue.
    pub queue: String,
    /// Queue it was enqueued to.
    pub origin_queue: String,
    /// Where it stands (an expired lease shows as `Pending`).
    pub state: ItemState,
    /// Which label it waits for (or the last one given, when final).
    pub stage: Stage,
    /// Needs two labels?
    pub double_review: bool,
    /// The loan purpose text.
    pub text: String,
    /// Taxonomy id.
    pub taxonomy: String,
    /// Caller's id of the case.
    pub external_id: Option<String>,
    /// Loan amount.
    pub amount: Option<f64>,
    /// Uncertainty at enqueue.
    pub uncertainty: f64,
    /// Why it is in review.
    pub reason: Reason,
    /// Alternatives (as enqueued).
    pub suggestions: serde_json::Value,
    /// Neighbours (as enqueued).
    pub neighbors: serde_json::Value,
    /// Model version.
    pub model_version: Option<String>,
    /// When it entered review.
    pub enqueued_at: DateTime<Utc>,
    /// Current lease holder (only while the lease runs).
    pub leased_by: Option<String>,
    /// Current lease end (only while the lease runs).
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Labels so far, in order.
    pub labels: Vec<LabelRecord>,
    /// The final label, once there is one.
    pub final_label: Option<FinalLabel>,
}

/// One audit log line. The log is append-only (enforced by database triggers).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Monotonic sequence number (use as a cursor).
    pub seq: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who: a reviewer id, or `system` (lease expiry), or the enqueuing caller.
    pub actor: String,
    /// `enqueue`, `claim`, `lease_expired`, `skip`, `release`, `label`.
    pub action: String,
    /// The item concerned.
    pub review_id: Option<String>,
    /// What was done (action-specific JSON: code, comment, queue, lease end, outcome …).
    pub detail: serde_json::Value,
    /// State before the action (`status`, `stage`, `queue`, `leased_by`, `final_code` …).
    pub previous: Option<serde_json::Value>,
}

/// Which final labels to read or export.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelFilter {
    /// Only labels that became final at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only this taxonomy.
    pub taxonomy: Option<String>,
    /// At most this many (oldest first).
    pub limit: Option<usize>,
}

/// Per-reviewer counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReviewerStats {
    /// Reviewer id.
    pub reviewer: String,
    /// Items currently leased to them.
    pub leased: u64,
    /// Labels they gave (any stage).
    pub labeled: u64,
    /// Skips they made.
    pub skipped: u64,
}

/// Counters of one queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueStats {
    /// Queue name.
    pub queue: String,
    /// Items waiting to be claimed (an expired lease counts as pending).
    pub pending: u64,
    /// Of `pending`, items waiting for their second label.
    pub pending_second_review: u64,
    /// Items under a running lease.
    pub leased: u64,
    /// Items with their final label in this queue.
    pub labeled: u64,
    /// Age in seconds of the oldest pending item.
    pub oldest_pending_age_secs: Option<f64>,
    /// Per-reviewer counters within this queue.
    pub reviewers: Vec<ReviewerStats>,
}

/// `GET /v1/review/stats`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// When computed.
    pub at: DateTime<Utc>,
    /// One entry per queue that has or had items, by name.
    pub queues: Vec<QueueStats>,
    /// Per-reviewer counters over all queues.
    pub reviewers: Vec<ReviewerStats>,
}

/// Taxonomy access the store needs: is a code valid, and its path (root first, ending with the
/// code itself) for agreement credit and kappa per level.
///
/// The service implements it over the datasets crate, e.g.
/// `registry.get(taxonomy).and_then(|t| t.path(code))` mapped to codes. Closures
/// `Fn(&str, &str) -> Option<Vec<String>>` implement it too.
pub trait TaxonomyLookup {
    /// Root → `code` path of `code` in taxonomy `taxonomy`; `None` when the taxonomy is
    /// unknown or the code is not in it.
    fn path(&self, taxonomy: &str, code: &str) -> Option<Vec<String>>;

    /// Is `code` a code of `taxonomy` (at any level)?
    fn contains(&self, taxonomy: &str, code: &str) -> bool {
        self.path(taxonomy, code).is_some()
    }
}

impl<F> TaxonomyLookup for F
where
    F: Fn(&str, &str) -> Option<Vec<String>>,
{
    fn path(&self, taxonomy: &str, code: &str) -> Option<Vec<String>> {
        self(taxonomy, code)
    }
}
