//! Labeling and writing of validated rows (part of [`super`]), one chunk at a time.

use rusqlite::{params, Connection};
use touxiang_datasets::{Decision, LabelResult, Labeler};

use crate::error::{PortfolioError, Result};
use crate::refdata::{industry_path, IndustryPath, GBT4754_VERSION};

use super::report::RejectLog;
use super::validate::LoanRow;
use super::{IngestReport, LoanStatus, RowError};

const INSERT_SQL: &str = "INSERT INTO loans (portfolio, loan_id, as_of_date, purpose_text, amount, balance, \
    overdue_days, status, region_code, province, city, county, customer_type, product, issue_date, \
    ind_code, ind_section, ind_division, ind_group, ind_class, ind_confidence, ind_decision, ind_source, \
    ind_model_version, ind_taxonomy_version, purpose_code, purpose_confidence, purpose_source, \
    purpose_model_version, purpose_taxonomy_version, attributes, ingest_id) VALUES \
    (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25,?26,?27,?28,?29,?30,?31,?32)";

pub(super) struct Writer<'a> {
    pub(super) portfolio: &'a str,
    pub(super) ingest_id: i64,
    pub(super) labeler: Option<&'a dyn Labeler>,
    pub(super) label_cache: rustc_hash::FxHashMap<String, LabelResult>,
    pub(super) purpose_model: String,
    pub(super) purpose_tax: String,
    pub(super) report: IngestReport,
}

const LABEL_CACHE_MAX: usize = 200_000;

/// (path, confidence, decision, source, model_version, taxonomy_version) of one loan's label.
type IndustryLabelCols<'a> = (
    IndustryPath,
    Option<f64>,
    Option<&'a str>,
    &'a str,
    Option<String>,
    Option<String>,
);

impl Writer<'_> {
    /// Label (where needed) and insert a batch of validated rows; rows already stored go to
    /// `log` as duplicates.
    pub(super) fn flush(
        &mut self,
        tx: &Connection,
        batch: &mut Vec<LoanRow>,
        log: &mut RejectLog,
    ) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        if let Some(lab) = self.labeler {
            let mut todo: Vec<&str> = Vec::new();
            let mut queued: std::collections::HashSet<&str> = std::collections::HashSet::new();
            for r in batch.iter() {
                if r.industry.is_none()
                    && !self.label_cache.contains_key(&r.model_text)
                    && queued.insert(r.model_text.as_str())
                {
                    todo.push(&r.model_text);
                }
            }
            if !todo.is_empty() {
                let labels = lab.label(&todo)?;
                if labels.len() != todo.len() {
                    return Err(PortfolioError::Label(touxiang_datasets::LabelError(
                        format!(
                            "labeler returned {} results for {} texts",
                            labels.len(),
                            todo.len()
                        ),
                    )));
                }
                if self.label_cache.len() + todo.len() > LABEL_CACHE_MAX {
                    self.label_cache.clear();
                }
                for (t, l) in todo.into_iter().zip(labels) {
                    self.label_cache.insert(t.to_string(), l);
                }
            }
        }
        let mut stmt = tx.prepare_cached(INSERT_SQL)?;
        for r in batch.drain(..) {
            let (path, conf, decision, source, mv, tv): IndustryLabelCols =
                if let Some(p) = r.industry.clone() {
                    (
                        p,
                        Some(1.0),
                        Some("auto"),
                        "input",
                        None,
                        Some(GBT4754_VERSION.to_string()),
                    )
                } else if let Some(l) = self.label_cache.get(&r.model_text) {
                    // The labeler's deepest code is authoritative; its path comes from the
                    // taxonomy. A code outside GB/T 4754-2017 counts as no label.
                    let p: IndustryPath = l
                        .code
                        .as_deref()
                        .and_then(industry_path)
                        .unwrap_or_default();
                    let has = p[0].is_some();
                    (
                        p,
                        Some(l.confidence as f64),
                        Some(match l.decision {
                            Decision::Auto => "auto",
                            Decision::Review => "review",
                        }),
                        if has { "model" } else { "none" },
                        Some(l.model_version.clone()),
                        Some(l.taxonomy_version.clone()),
                    )
                } else {
                    (Default::default(), None, None, "none", None, None)
                };
            match source {
                "input" => self.report.industry_from_input += 1,
                "model" => self.report.industry_labeled += 1,
                _ => self.report.industry_missing += 1,
            }
            let ind_code = r
                .industry_code
                .clone()
                .or_else(|| path.iter().rev().flatten().next().cloned());
            let res = stmt.execute(params![
                self.portfolio,
                r.loan_id,
                r.as_of_date,
                r.purpose_text,
                r.amount,
                r.balance,
                r.overdue_days,
                r.status.map(LoanStatus::as_str),
                r.region_code,
                r.region[0],
                r.region[1],
                r.region[2],
                r.customer_type,
                r.product,
                r.issue_date,
                ind_code,
                path[0],
                path[1],
                path[2],
                path[3],
                conf,
                decision,
                source,
                mv,
                tv,
                r.purpose_code,
                r.purpose_conf,
                r.purpose_source,
                r.purpose_source.map(|s| if s == "keywords" {
                    self.purpose_model.as_str()
                } else {
                    "input"
                }),
                r.purpose_code.as_ref().map(|_| self.purpose_tax.as_str()),
                r.attributes,
                self.ingest_id,
            ]);
            match res {
                Ok(_) => self.report.accepted += 1,
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    self.report.valid_rows -= 1;
                    log.push(RowError {
                        row: r.row,
                        field: "loan_id".into(),
                        reason: format!(
                            "duplicate: loan {:?} as of {} is already stored in portfolio {:?}",
                            r.loan_id, r.as_of_date, self.portfolio
                        ),
                    });
                    match source {
                        "input" => self.report.industry_from_input -= 1,
                        "model" => self.report.industry_labeled -= 1,
                        _ => self.report.industry_missing -= 1,
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
