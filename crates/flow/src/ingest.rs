//! Tabular ingest of payments and relations: the files are read by the portfolio crate's row
//! sources ([`touxiang_portfolio::ingest::read`]: CSV and JSONL record by record, XLSX cell by
//! cell), so row numbers, formats and file-level errors are the loan ingest's.
//!
//! ## Transactions and modes
//! One ingest is **one** SQLite transaction (`BEGIN IMMEDIATE`) on the fund-flow store, whatever
//! the mode, so a file is never half-written:
//! * [`IngestMode::AllOrNothing`] (default): any rejected row → rolled back, `accepted` 0,
//!   `committed` false; every row is still validated, so every problem is reported;
//! * [`IngestMode::CommitValid`]: rejected rows are reported, the others committed at the end.
//!
//! ## Row problems
//! Each problem is a [`RowError`] `{row, field, reason}` (row as the user sees it: header = row 1
//! for CSV/XLSX, the line for JSONL). The summary lists the first
//! [`IngestOptions::max_reported_row_errors`] (default 1000) in row order and counts them all
//! (`rejected_total`, `rejected_rows`), as loan ingest does, with the same full report: when any
//! row is rejected, every problem goes to `DIR/ingest-reports/<report_id>.csv` beside the
//! portfolio store (the portfolio crate's [`RejectLog`], its metadata naming the portfolio), so
//! [`touxiang_portfolio::PortfolioStore::ingest_report`] finds it and the server serves it at
//! `GET /v1/portfolios/{name}/ingest-reports/{report_id}`. A failed ingest leaves none behind.

use std::path::Path;
use std::time::Instant;

use rusqlite::{params, Connection, TransactionBehavior};
use serde::Serialize;
use touxiang_portfolio::ingest::read::{self, RowSource};
use touxiang_portfolio::ingest::report::{
    reports_dir_of, RejectLog, DEFAULT_MAX_REPORTED_ROW_ERRORS, DEFAULT_MAX_REPORT_FILE_ROWS,
};
use touxiang_portfolio::{IngestMode, InputFormat, PortfolioError, RowError};

use crate::error::{FlowError, Result};
use crate::store::FlowStore;

/// Options of one payment or relation ingest.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// All-or-nothing (default) or commit-valid.
    pub mode: IngestMode,
    /// XLSX sheet (default: the first).
    pub sheet: Option<String>,
    /// Source name recorded in the ingest log.
    pub source_name: Option<String>,
    /// Row problems listed in the summary at most (default 1000); all are counted and go to
    /// the report file.
    pub max_reported_row_errors: Option<usize>,
}

/// Summary of a payment or relation ingest (the CLI prints it; the upload route returns it).
#[derive(Debug, Clone, Serialize)]
pub struct IngestSummary {
    /// Portfolio name.
    pub portfolio: String,
    /// `payments` or `relations`.
    pub table: &'static str,
    /// Rows committed.
    pub accepted: u64,
    /// The first row problems, in row order.
    pub rejected: Vec<RowError>,
    /// Row problems in all (a row may have several).
    pub rejected_total: u64,
    /// Distinct rows with at least one problem.
    pub rejected_rows: u64,
    /// `rejected` lists fewer problems than `rejected_total`.
    pub rejected_truncated: bool,
    /// Id of the full report of row problems (`ir_` + 32 hex digits), kept beside the portfolio
    /// store as loan ingest keeps its own (found with
    /// [`touxiang_portfolio::PortfolioStore::ingest_report`]); `None` when no row was rejected.
    pub report_id: Option<String>,
    /// Row problems in the report file (`rejected_total` unless it reached 10 million).
    pub report_rows: u64,
    /// Whether anything was committed.
    pub committed: bool,
    /// Mode used.
    pub mode: IngestMode,
    /// Data rows read.
    pub rows_read: u64,
    /// Rows that passed validation (not committed in all-or-nothing with rejections).
    pub valid_rows: u64,
    /// Distinct payees classified after the commit (payments; `None` when not asked).
    pub payees_labeled: Option<u64>,
    /// Loans whose actual-use section (`flow.section` of `/v1/aggregate`) was recomputed after
    /// the commit (payments; `None` when it was not).
    pub flow_sections: Option<u64>,
    /// Payees sent to the reviewers' `payees` queue after the commit (payments; `None` when
    /// not done).
    pub payees_queued: Option<u64>,
    /// Wall time in milliseconds.
    pub elapsed_ms: u64,
}

/// The fields of one source row, by column name.
pub(crate) struct Fields<'a> {
    pub(crate) idx: &'a [Option<usize>],
    pub(crate) values: &'a [String],
}

impl Fields<'_> {
    /// Trimmed, non-empty value of canonical column `c` (index into the table's columns).
    pub(crate) fn get(&self, c: usize) -> Option<&str> {
        self.idx[c]
            .map(|i| self.values[i].trim())
            .filter(|s| !s.is_empty())
    }
}

/// One kind of table (payments, relations): its columns, validation and insert.
pub(crate) trait Table {
    type Row;
    /// `payments` / `relations`.
    const NAME: &'static str;
    /// Canonical columns, in index order.
    const COLUMNS: &'static [&'static str];
    /// Columns that must be in the header.
    const REQUIRED: &'static [&'static str];
    /// Validate a row; problems go to `errs`.
    fn validate(
        &mut self,
        tx: &Connection,
        row: u64,
        f: &Fields<'_>,
        extra: Option<String>,
        errs: &mut Vec<RowError>,
    ) -> Result<Option<Self::Row>>;
    /// Insert a valid row; `Some(problem)` when it turns out a duplicate.
    fn insert(
        &mut self,
        tx: &Connection,
        row: &Self::Row,
        ingest_id: i64,
    ) -> Result<Option<RowError>>;
}

/// Where an ingest reads from.
pub enum Input<'a> {
    /// A file; the format from the extension unless given.
    File(&'a Path, Option<InputFormat>),
    /// Bytes in memory.
    Bytes(Vec<u8>, InputFormat),
}

pub(crate) fn open_source(
    input: Input<'_>,
    sheet: Option<&str>,
) -> Result<Box<dyn RowSource + Send>> {
    Ok(match input {
        Input::File(p, fmt) => {
            let fmt = match fmt.or_else(|| InputFormat::from_path(p)) {
                Some(f) => f,
                None => {
                    return Err(PortfolioError::UnsupportedFormat(format!(
                        "cannot tell the format of {} (use .csv, .xlsx or .jsonl)",
                        p.display()
                    ))
                    .into())
                }
            };
            read::open_file(p, fmt, sheet)?
        }
        Input::Bytes(b, fmt) => read::open_bytes(b, fmt, sheet)?,
    })
}

/// Run one ingest of `table` rows from `src` into `portfolio`.
pub(crate) fn run<T: Table>(
    store: &FlowStore,
    portfolio: &str,
    src: &mut dyn RowSource,
    opts: &IngestOptions,
    table: &mut T,
) -> Result<IngestSummary> {
    let started = Instant::now();
    let mut conn = store.connect(portfolio)?;
    src.add_columns(T::COLUMNS);
    let headers = src.headers().to_vec();
    let find = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .or_else(|| headers.iter().position(|h| h.eq_ignore_ascii_case(name)))
    };
    let idx: Vec<Option<usize>> = T::COLUMNS.iter().map(|c| find(c)).collect();
    for r in T::REQUIRED {
        let i = T::COLUMNS
            .iter()
            .position(|c| c == r)
            .expect("required is a column");
        if idx[i].is_none() {
            return Err(FlowError::MissingColumn(r.to_string()));
        }
    }
    let attrs: Vec<usize> = (0..headers.len())
        .filter(|i| !idx.contains(&Some(*i)) && !headers[*i].is_empty())
        .collect();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mode = match opts.mode {
        IngestMode::AllOrNothing => "all_or_nothing",
        IngestMode::CommitValid => "commit_valid",
    };
    tx.execute(
        "INSERT INTO ingests (portfolio, what, source, mode, accepted, rejected) VALUES (?1,?2,?3,?4,0,0)",
        params![portfolio, T::NAME, opts.source_name.as_deref().unwrap_or("-"), mode],
    )?;
    let ingest_id = tx.last_insert_rowid();
    let mut s = IngestSummary {
        portfolio: portfolio.to_string(),
        table: T::NAME,
        accepted: 0,
        rejected: Vec::new(),
        rejected_total: 0,
        rejected_rows: 0,
        rejected_truncated: false,
        report_id: None,
        report_rows: 0,
        committed: false,
        mode: opts.mode,
        rows_read: 0,
        valid_rows: 0,
        payees_labeled: None,
        flow_sections: None,
        payees_queued: None,
        elapsed_ms: 0,
    };
    let mut log = RejectLog::in_dir(
        &reports_dir_of(store.portfolio_path()),
        opts.max_reported_row_errors
            .unwrap_or(DEFAULT_MAX_REPORTED_ROW_ERRORS),
        DEFAULT_MAX_REPORT_FILE_ROWS,
    );
    // Rows are handled in order and a row's problems are final once noted: settle at once.
    let note = |log: &mut RejectLog, errs: &mut Vec<RowError>| -> Result<()> {
        for e in errs.drain(..) {
            log.push(e);
        }
        Ok(log.settle()?)
    };
    let (mut buf, mut extra, mut errs) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(next) = src.next_row(&mut buf, &mut extra)? {
        s.rows_read += 1;
        let row = match next {
            Ok(r) => r,
            Err((row, reason)) => {
                errs.push(RowError {
                    row,
                    field: "*".into(),
                    reason,
                });
                note(&mut log, &mut errs)?;
                continue;
            }
        };
        let attributes = (!attrs.is_empty() || !extra.is_empty()).then(|| {
            let mut m = serde_json::Map::new();
            for &i in &attrs {
                m.insert(
                    headers[i].clone(),
                    serde_json::Value::String(buf[i].clone()),
                );
            }
            for (k, v) in extra.drain(..) {
                m.insert(k, v);
            }
            serde_json::Value::Object(m).to_string()
        });
        let fields = Fields {
            idx: &idx,
            values: &buf,
        };
        let Some(r) = table.validate(&tx, row, &fields, attributes, &mut errs)? else {
            note(&mut log, &mut errs)?;
            continue;
        };
        // In all-or-nothing mode after a rejection the row is still inserted (the transaction
        // is rolled back at the end), so duplicates of it are still found.
        match table.insert(&tx, &r, ingest_id)? {
            None => {
                s.valid_rows += 1;
                s.accepted += 1;
            }
            Some(e) => {
                errs.push(e);
                note(&mut log, &mut errs)?;
            }
        }
    }
    let aborted = opts.mode == IngestMode::AllOrNothing && !log.is_empty();
    // The report is complete before the commit; a failure after it removes the report again.
    let source = opts.source_name.as_deref().unwrap_or("-");
    let r = log.finish(portfolio, source, opts.mode, !aborted)?;
    s.rejected = r.rejected;
    s.rejected_total = r.rejected_total;
    s.rejected_rows = r.rejected_rows;
    s.rejected_truncated = r.rejected_truncated;
    s.report_id = r.report_id;
    s.report_rows = r.report_rows;
    let files = r.files;
    let done = (|| -> Result<()> {
        if aborted {
            tx.rollback()?;
            s.accepted = 0;
        } else {
            tx.execute(
                "UPDATE ingests SET accepted=?1, rejected=?2 WHERE id=?3",
                params![s.accepted as i64, s.rejected_total as i64, ingest_id],
            )?;
            tx.commit()?;
            s.committed = true;
        }
        Ok(())
    })();
    if let Err(e) = done {
        files.discard();
        return Err(e);
    }
    s.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(s)
}

/// Parse a money amount (`1,234.5` accepted) that must be > 0.
pub(crate) fn parse_positive(s: &str) -> std::result::Result<f64, String> {
    let t = s.trim().replace([',', '，'], "");
    match t.parse::<f64>() {
        Ok(v) if !v.is_finite() => Err(format!("{s:?} is not a finite number")),
        Ok(v) if v <= 0.0 => Err(format!("{s:?} is not positive (must be > 0)")),
        Ok(v) => Ok(v),
        Err(_) => Err(format!("{s:?} is not a number")),
    }
}

/// A date `YYYY-MM-DD`, or a date-time starting with one (`YYYY-MM-DD HH:MM[:SS]`,
/// `YYYY-MM-DDTHH:MM:SS`); returned as given (trimmed).
pub(crate) fn parse_paid_at(s: &str) -> Option<String> {
    let t = s.trim();
    let date = t.get(..10)?;
    touxiang_portfolio::ingest::parse_date(date)?;
    match t.get(10..) {
        Some("") => Some(t.to_string()),
        Some(rest) if rest.starts_with([' ', 'T']) && rest.len() >= 6 => {
            let time = &rest[1..];
            let ok = time
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, ':' | '.' | 'Z' | '+' | '-'));
            ok.then(|| t.to_string())
        }
        _ => None,
    }
}
