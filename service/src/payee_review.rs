//! The reviewers' `payees` queue (issue 15): after a payment ingest (upload or CLI), the payees
//! the classifier was unsure of — it abstained or asked for review — become review items in the
//! same workbench, largest amount paid first; a final label comes back to the fund-flow payee
//! cache, where it wins over the model's in every flow (not to the exemplar store: payee names
//! are not loan purposes).

use chrono::Utc;
use serde_json::json;
use touxiang_flow::payee_review::EXTERNAL_PREFIX;
use touxiang_flow::payees::PAYEE_TAXONOMY;
use touxiang_flow::{FlowError, FlowStore};
use touxiang_review::{FinalLabel, NewItem, Reason, ReviewStore};

/// Queue of payee review items.
pub const PAYEE_QUEUE: &str = "payees";

/// Payees sent to review per ingest at most (the largest amounts); the rest follow at the next.
pub const MAX_PER_INGEST: usize = 1000;

/// Why payees could not be sent to review.
#[derive(Debug, thiserror::Error)]
pub enum PayeeReviewError {
    #[error(transparent)]
    Flow(#[from] FlowError),
    #[error(transparent)]
    Review(#[from] touxiang_review::ReviewError),
}

/// Send the unsure payees of `portfolio` to the `payees` queue; returns how many were queued.
pub fn enqueue_payees(
    review: &ReviewStore,
    flow: &FlowStore,
    portfolio: &str,
) -> Result<u64, PayeeReviewError> {
    let todo = flow.payees_to_review(portfolio, MAX_PER_INGEST)?;
    let now = Utc::now();
    let mut queued = Vec::with_capacity(todo.len());
    for p in todo {
        let confidence = p.label.as_ref().and_then(|l| l.confidence).unwrap_or(0.0);
        let suggestions: Vec<serde_json::Value> = p
            .label
            .iter()
            .map(|l| {
                json!({"code": l.code, "level": l.level, "name": l.name, "confidence": confidence,
                    "path": l.path, "source": "classifier"})
            })
            .collect();
        let item = NewItem {
            queue: PAYEE_QUEUE.to_string(),
            text: p.name.clone(),
            taxonomy: PAYEE_TAXONOMY.to_string(),
            external_id: Some(format!("{EXTERNAL_PREFIX}{}", p.norm)),
            amount: Some(p.paid),
            uncertainty: (1.0 - confidence).clamp(0.0, 1.0),
            reason: Reason::Review,
            suggestions: serde_json::Value::Array(suggestions),
            neighbors: json!({"neighbors": [], "payee": {"portfolio": portfolio, "paid": p.paid,
                "loans": p.loans}}),
            model_version: None,
            double_review: Some(false),
        };
        let id = review.enqueue(&item, now)?;
        metrics::counter!("touxiang_review_enqueued_total", "reason" => "payee").increment(1);
        queued.push((p.norm, id));
    }
    flow.mark_payees_queued(&queued)?;
    Ok(queued.len() as u64)
}

/// The normalised payee name of a final label from the `payees` queue, `None` for other items.
pub fn payee_of(label: &FinalLabel) -> Option<&str> {
    label.external_id.as_deref()?.strip_prefix(EXTERNAL_PREFIX)
}

/// Apply a payee's final label to the fund-flow cache; `false` when the code is no GB/T 4754
/// code (a label of another taxonomy).
pub fn apply_final(flow: &FlowStore, label: &FinalLabel) -> Result<bool, FlowError> {
    match payee_of(label) {
        Some(norm) if label.taxonomy == PAYEE_TAXONOMY => {
            flow.set_reviewed_payee(norm, &label.code)
        }
        _ => Ok(false),
    }
}
