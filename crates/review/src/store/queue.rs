//! Queue operations: enqueue, claim (with lease expiry), skip and release.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Transaction};
use serde_json::json;

use super::rows::{audit, full_row, load_row, Row, ITEM_COLS};
use super::{
    begin, check_queue, check_reviewer, dt, dur_ms, effective_priority, invalid, log2_base, ms,
    prio_key, ReviewStore,
};
use crate::types::*;
use crate::ReviewError;

impl ReviewStore {
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
    pub(super) fn check_lease(row: &Row, reviewer: &str, now_ms: i64) -> Result<(), ReviewError> {
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
}
