//! Read-only queries: item views, labels, audit trail and log, final-label export, label pairs.

use std::io::Write;

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::rows::{audit_row, full_row, labels_of, ITEM_COLS};
use super::{dt, ms, ReviewStore};
use crate::types::*;
use crate::ReviewError;

impl ReviewStore {
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
