//! The review queue seen from a batch run.

use touxiang_datasets::LabelResult;

/// One row routed to review.
#[derive(Debug, Clone, Copy)]
pub struct ReviewRequest<'a> {
    /// Idempotency key, unique per (job input/options, row): `"<fingerprint>:<row>"`. A run
    /// killed after enqueueing but before its checkpoint re-sends the same rows on resume; the
    /// sink must return the existing review id for a key it has already seen.
    pub key: &'a str,
    /// 1-based input row number.
    pub row: u64,
    /// Input id (e.g. `loan_id`).
    pub id: &'a str,
    /// Original (not normalised) text.
    pub text: &'a str,
    /// The row's label (with its evidence: guess, alternatives, neighbour vote).
    pub label: &'a LabelResult,
    /// The row's balance, when the input has one: the exposure the review queue weighs the
    /// item's uncertainty by (priority = uncertainty × exposure), as `/v1/classify` does with
    /// an item's `amount`.
    pub amount: Option<f64>,
}

/// Where labeled rows are offered when the run asks for review (`--review`). The sink applies
/// the service's one routing rule (`review` decisions, disagreements with the neighbour vote, QA
/// samples of `auto` decisions — the same as `/v1/classify`), implemented over the review
/// store (touxiang-review) by the service.
pub trait ReviewSink: Send + Sync {
    /// Offer one labeled row; returns its review id (e.g. `rv_...`) when the row was routed to
    /// review, `None` when not. Must be idempotent on `key`: a key already routed answers its id.
    fn offer(&self, request: &ReviewRequest<'_>) -> Result<Option<String>, ReviewSinkError>;
}

/// Failure of a review sink (stops the run; it can be resumed).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReviewSinkError(pub String);
