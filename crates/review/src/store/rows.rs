//! Row types and decoders of the `items`, `labels` and `audit` tables, and the audit insert.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::json;

use super::dt;
use crate::types::*;
use crate::ReviewError;

/// Item row as needed by the state machine.
pub(super) struct Row {
    pub(super) id: i64,
    pub(super) review_id: String,
    pub(super) queue: String,
    pub(super) taxonomy: String,
    pub(super) required_labels: i64,
    pub(super) stage: Stage,
    pub(super) status: String,
    pub(super) leased_by: Option<String>,
    pub(super) lease_expires_ms: Option<i64>,
    pub(super) final_code: Option<String>,
}

impl Row {
    pub(super) fn snapshot(&self) -> serde_json::Value {
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

pub(super) fn load_row(tx: &Connection, review_id: &str) -> Result<Row, ReviewError> {
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

pub(super) fn audit(
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

pub(super) const ITEM_COLS: &str =
    "i.review_id, i.queue, i.origin_queue, i.text, i.taxonomy, i.external_id,
    i.amount, i.uncertainty, i.reason, i.suggestions, i.neighbors, i.model_version, i.enqueued_ms,
    i.log2_base, i.stage, i.status, i.leased_by, i.lease_expires_ms, i.required_labels,
    i.final_code, i.final_reviewer, i.final_ms";

/// Columns of ITEM_COLS, decoded.
pub(super) struct FullRow {
    pub(super) review_id: String,
    pub(super) queue: String,
    pub(super) origin_queue: String,
    pub(super) text: String,
    pub(super) taxonomy: String,
    pub(super) external_id: Option<String>,
    pub(super) amount: Option<f64>,
    pub(super) uncertainty: f64,
    pub(super) reason: Reason,
    pub(super) suggestions: serde_json::Value,
    pub(super) neighbors: serde_json::Value,
    pub(super) model_version: Option<String>,
    pub(super) enqueued_ms: i64,
    pub(super) log2_base: f64,
    pub(super) stage: Stage,
    pub(super) status: String,
    pub(super) leased_by: Option<String>,
    pub(super) lease_expires_ms: Option<i64>,
    pub(super) required_labels: i64,
    pub(super) final_code: Option<String>,
    pub(super) final_reviewer: Option<String>,
    pub(super) final_ms: Option<i64>,
}

fn conv_err(col: usize, msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        col,
        rusqlite::types::Type::Text,
        Box::<dyn std::error::Error + Send + Sync>::from(msg),
    )
}

pub(super) fn full_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FullRow> {
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
    pub(super) fn final_label(&self) -> Option<FinalLabel> {
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

pub(super) fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
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

pub(super) fn labels_of(
    conn: &Connection,
    review_id: &str,
) -> Result<Vec<LabelRecord>, ReviewError> {
    let mut stmt = conn.prepare_cached(
        "SELECT i.review_id, l.stage, l.reviewer, l.code, l.comment, l.labeled_ms
         FROM labels l JOIN items i ON i.id = l.item_id
         WHERE i.review_id = ?1 ORDER BY l.id",
    )?;
    let rows = stmt.query_map([review_id], label_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}
