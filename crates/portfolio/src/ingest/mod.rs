//! Streaming ingest of loan files (CSV, XLSX, JSONL) into the store.
//!
//! ## Row numbers
//! `row` in a [`RowError`] is the row as the user sees it in the file: for CSV and XLSX the header
//! is row 1 and the first data row is row 2 (what a spreadsheet shows); for JSONL it is the 1-based
//! line number.
//!
//! ## Transactions and modes
//! An ingest runs in **one** SQLite transaction (`BEGIN IMMEDIATE`) in both modes, so a file is
//! never half-written, whatever happens (crash, labeler failure, disk full):
//! * [`IngestMode::AllOrNothing`]: any rejected row → the transaction is rolled back, `accepted` is
//!   0, `committed` false, and *every* rejected row is still reported (validation continues to the
//!   end of the file; once a row is rejected, later valid rows are only validated, not labeled or
//!   written).
//! * [`IngestMode::CommitValid`]: rejected rows are reported; all others are committed at the end.
//!
//! The store is in WAL mode, so the server's readers keep answering from the last committed state
//! during an ingest; only a second concurrent *writer* waits (busy timeout
//! [`crate::store::BUSY_TIMEOUT`]). Chunked commits were rejected on purpose: they would expose a
//! half-ingested file to readers and leave one behind on a crash.
//!
//! ## Bounded memory
//! Rows are read, validated, labeled and written in chunks ([`IngestOptions::label_batch`] rows);
//! nothing grows with the file's length or its number of bad rows:
//! * CSV and JSONL are read record by record; XLSX files are read cell by cell from the sheet XML
//!   on a reader thread (only the workbook's shared-string table is held whole);
//! * the `(loan_id, as_of_date)` keys seen so far (duplicate detection) live in a temporary
//!   SQLite table, not in memory;
//! * row problems go to a [`report`] log: [`IngestReport::rejected`] keeps the first
//!   [`IngestOptions::max_reported_row_errors`] (default
//!   [`report::DEFAULT_MAX_REPORTED_ROW_ERRORS`]) in row order, [`IngestReport::rejected_total`]
//!   counts them all, and the full list is streamed to a CSV report file
//!   ([`IngestOptions::error_report`]; by default `DIR/ingest-reports/<report_id>.csv` beside the
//!   store, see [`crate::PortfolioStore::ingest_report`]).
//!
//! ## Validation (each failure is one [`RowError`]; a row may have several)
//! * `loan_id`, `purpose_text`, `region_code`, `as_of_date`, `balance` required and non-empty;
//! * `amount`, `balance` finite numbers ≥ 0;
//! * `overdue_days` an integer ≥ 0; at least one of `overdue_days` / `status` per row;
//! * `status` one of current / overdue / default / charged_off / paid_off (after normalising case
//!   and separators, and after the caller's [`IngestOptions::status_map`]);
//! * dates `YYYY-MM-DD` (XLSX date cells are converted);
//! * `region_code` known to the portfolio's region table at any level;
//! * `industry_code` (optional column) a GB/T 4754-2017 code; when empty the loan is labeled by the
//!   [`touxiang_datasets::Labeler`] passed in (in batches; identical texts are labeled once);
//! * `purpose` (optional column) a code of the portfolio's purpose scheme; when empty and the scheme
//!   is the built-in one, the [`crate::purpose::KeywordPurposeLabeler`] labels `purpose_text`;
//! * `(loan_id, as_of_date)` unique within the file and not already stored for the portfolio.
//!
//! Non-canonical columns are kept verbatim in a JSON `attributes` object.

pub mod read;
pub mod report;
mod run;
mod validate;
mod write;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{PortfolioError, Result};
use crate::store::PortfolioConfig;

pub use report::{ErrorReport, ReportInfo, ReportMeta};
pub use validate::parse_date;

/// Canonical column names (the API contract), plus the optional `status`, `industry_code` and
/// `purpose` inputs.
pub const CANONICAL_COLUMNS: [&str; 13] = [
    "loan_id",
    "purpose_text",
    "amount",
    "balance",
    "overdue_days",
    "status",
    "region_code",
    "customer_type",
    "product",
    "issue_date",
    "as_of_date",
    "industry_code",
    "purpose",
];

/// Loan status (alternative to `overdue_days` for the overdue definition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoanStatus {
    /// Performing.
    Current,
    /// Past due.
    Overdue,
    /// In default.
    Default,
    /// Charged off / written off.
    ChargedOff,
    /// Repaid in full.
    PaidOff,
}

impl LoanStatus {
    /// All statuses, in id order.
    pub const ALL: [LoanStatus; 5] = [
        LoanStatus::Current,
        LoanStatus::Overdue,
        LoanStatus::Default,
        LoanStatus::ChargedOff,
        LoanStatus::PaidOff,
    ];

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LoanStatus::Current => "current",
            LoanStatus::Overdue => "overdue",
            LoanStatus::Default => "default",
            LoanStatus::ChargedOff => "charged_off",
            LoanStatus::PaidOff => "paid_off",
        }
    }

    /// Parse a status after normalising case and separators; common synonyms accepted
    /// (performing, past_due, written_off, fully_paid, 正常, 逾期, 违约, 核销, 结清).
    pub fn parse(s: &str) -> Option<Self> {
        let n: String = s
            .trim()
            .to_lowercase()
            .chars()
            .map(|c| if c == ' ' || c == '-' { '_' } else { c })
            .collect();
        Some(match n.as_str() {
            "current" | "performing" | "正常" => LoanStatus::Current,
            "overdue" | "past_due" | "delinquent" | "逾期" => LoanStatus::Overdue,
            "default" | "defaulted" | "违约" => LoanStatus::Default,
            "charged_off" | "chargedoff" | "written_off" | "write_off" | "核销" => {
                LoanStatus::ChargedOff
            }
            "paid_off" | "fully_paid" | "paid" | "closed" | "结清" => LoanStatus::PaidOff,
            _ => return None,
        })
    }

    pub(crate) fn id(self) -> u8 {
        self as u8
    }

    /// Parse the stored (canonical) name without allocating.
    pub(crate) fn from_stored(s: &str) -> Option<Self> {
        LoanStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// Input file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    /// Comma-separated, UTF-8, header row.
    Csv,
    /// Excel workbook; the first sheet (or [`IngestOptions::sheet`]), header row.
    Xlsx,
    /// One JSON object per line.
    Jsonl,
}

impl InputFormat {
    /// Guess from the file extension (`.csv`, `.xlsx`/`.xlsm`, `.jsonl`/`.ndjson`).
    pub fn from_path(p: &Path) -> Option<Self> {
        let ext = p.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" | "txt" => Some(InputFormat::Csv),
            "xlsx" | "xlsm" | "xls" => Some(InputFormat::Xlsx),
            "jsonl" | "ndjson" | "json" => Some(InputFormat::Jsonl),
            _ => None,
        }
    }

    /// Parse a format name (`csv`, `xlsx`, `jsonl`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Some(InputFormat::Csv),
            "xlsx" => Some(InputFormat::Xlsx),
            "jsonl" | "ndjson" => Some(InputFormat::Jsonl),
            _ => None,
        }
    }
}

/// What to do with a file that has rejected rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IngestMode {
    /// Any rejected row → nothing is committed.
    #[default]
    AllOrNothing,
    /// Rejected rows are listed; the valid rows are committed.
    CommitValid,
}

/// Column renames `canonical=source` (the CLI's `--map`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ColumnMap(pub Vec<(String, String)>);

impl ColumnMap {
    /// Parse `canonical=source,canonical=source`. Unknown canonical names are an error.
    pub fn parse(s: &str) -> Result<Self> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (c, src) = part.split_once('=').ok_or_else(|| {
                PortfolioError::InvalidMap(format!("`{part}` is not canonical=source"))
            })?;
            let (c, src) = (c.trim(), src.trim());
            if !CANONICAL_COLUMNS.contains(&c) {
                return Err(PortfolioError::InvalidMap(format!(
                    "`{c}` is not a canonical column (one of {})",
                    CANONICAL_COLUMNS.join(", ")
                )));
            }
            if src.is_empty() {
                return Err(PortfolioError::InvalidMap(format!(
                    "empty source column for `{c}`"
                )));
            }
            if out.iter().any(|(k, _): &(String, String)| k == c) {
                return Err(PortfolioError::InvalidMap(format!("`{c}` mapped twice")));
            }
            out.push((c.to_string(), src.to_string()));
        }
        Ok(ColumnMap(out))
    }
}

/// Options of one ingest.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// All-or-nothing (default) or commit-valid.
    pub mode: IngestMode,
    /// Column renames.
    pub map: ColumnMap,
    /// Configuration used when the portfolio is created; when the portfolio exists it must match
    /// (or be `None`).
    pub config: Option<PortfolioConfig>,
    /// Extra `source value → status` mappings applied before [`LoanStatus::parse`] (exact match
    /// after trimming).
    pub status_map: Vec<(String, LoanStatus)>,
    /// Rows per labeler call (default 256).
    pub label_batch: usize,
    /// XLSX sheet name (default: first sheet).
    pub sheet: Option<String>,
    /// Source name recorded in the ingest log (file name).
    pub source_name: Option<String>,
    /// Row problems listed in [`IngestReport::rejected`] at most (default
    /// [`report::DEFAULT_MAX_REPORTED_ROW_ERRORS`]); all of them are counted and go to the
    /// report file.
    pub max_reported_row_errors: Option<usize>,
    /// Where the full list of row problems is written (default: the store's report directory).
    pub error_report: ErrorReport,
    /// Row problems written to the report file at most (default
    /// [`report::DEFAULT_MAX_REPORT_FILE_ROWS`]): a bound on disk use; the count stays exact.
    pub max_report_file_rows: Option<u64>,
}

/// One problem with one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    /// Row as the user sees it (CSV/XLSX: header = row 1; JSONL: line number).
    pub row: u64,
    /// Canonical field at fault (or the source column for attribute problems).
    pub field: String,
    /// What is wrong, in words.
    pub reason: String,
}

/// Summary of an ingest (the CLI prints it as JSON).
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    /// Portfolio name.
    pub portfolio: String,
    /// Rows committed.
    pub accepted: u64,
    /// The first rejected row problems, in row order: at most
    /// [`IngestOptions::max_reported_row_errors`] of them (all of them when
    /// `rejected_truncated` is false).
    pub rejected: Vec<RowError>,
    /// Row problems in all (entries of the full report; a row may have several).
    pub rejected_total: u64,
    /// Distinct rows with at least one problem.
    pub rejected_rows: u64,
    /// `rejected` lists fewer problems than `rejected_total`.
    pub rejected_truncated: bool,
    /// Id of the full report of row problems kept in the store's report directory (`None` when
    /// no row was rejected, or the report went elsewhere).
    pub report_id: Option<String>,
    /// Where the HTTP API serves that report (set by the server; `None` otherwise).
    pub report_url: Option<String>,
    /// File the full report was written to (local callers; the server leaves it out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_path: Option<PathBuf>,
    /// Row problems in the report file (`rejected_total` unless the file reached
    /// [`IngestOptions::max_report_file_rows`]).
    pub report_rows: u64,
    /// Whether anything was committed.
    pub committed: bool,
    /// Mode used.
    pub mode: IngestMode,
    /// Data rows read.
    pub rows_read: u64,
    /// Rows that passed validation (in AllOrNothing with rejections, these were not committed).
    pub valid_rows: u64,
    /// Accepted rows whose industry was labeled by the model on ingest.
    pub industry_labeled: u64,
    /// Accepted rows whose industry came from the `industry_code` column.
    pub industry_from_input: u64,
    /// Accepted rows left without an industry (no labeler given, or the labeler abstained).
    pub industry_missing: u64,
    /// Wall time in milliseconds.
    pub elapsed_ms: u64,
}
