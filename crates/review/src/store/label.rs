//! Labeling: validation and the single / double review / adjudication state machine.

use chrono::{DateTime, Utc};
use rusqlite::params;
use serde_json::json;

use super::rows::{audit, full_row, load_row, ITEM_COLS};
use super::{begin, check_reviewer, dt, ms, ReviewStore};
use crate::types::*;
use crate::ReviewError;

impl ReviewStore {
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
}
