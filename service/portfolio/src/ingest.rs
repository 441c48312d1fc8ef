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
//!   0, `committed` false, and *every* rejected row is still listed (validation continues to the
//!   end of the file; once a row is rejected, later valid rows are only validated, not labeled or
//!   written).
//! * [`IngestMode::CommitValid`]: rejected rows are listed; all others are committed at the end.
//!
//! The store is in WAL mode, so the server's readers keep answering from the last committed state
//! during an ingest; only a second concurrent *writer* waits (busy timeout
//! [`crate::store::BUSY_TIMEOUT`]). Chunked commits were rejected on purpose: they would expose a
//! half-ingested file to readers and leave one behind on a crash.
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
//!   [`Labeler`] passed in (in batches; identical texts are labeled once);
//! * `purpose` (optional column) a code of the portfolio's purpose scheme; when empty and the scheme
//!   is the built-in one, the [`KeywordPurposeLabeler`] labels `purpose_text`;
//! * `(loan_id, as_of_date)` unique within the file and not already stored for the portfolio.
//!
//! Non-canonical columns are kept verbatim in a JSON `attributes` object.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read, Seek};
use std::path::Path;
use std::time::Instant;

use rusqlite::{params, Connection, TransactionBehavior};
use serde::{Deserialize, Serialize};
use touxiang_datasets::{Decision, LabelResult, Labeler};

use crate::error::{PortfolioError, Result};
use crate::purpose::KeywordPurposeLabeler;
use crate::refdata::{industry_path, IndustryPath, GBT4754_VERSION};
use crate::store::{read_config, PortfolioConfig, PortfolioStore};

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

const C_LOAN_ID: usize = 0;
const C_PURPOSE_TEXT: usize = 1;
const C_AMOUNT: usize = 2;
const C_BALANCE: usize = 3;
const C_OVERDUE_DAYS: usize = 4;
const C_STATUS: usize = 5;
const C_REGION: usize = 6;
const C_CUSTOMER: usize = 7;
const C_PRODUCT: usize = 8;
const C_ISSUE: usize = 9;
const C_AS_OF: usize = 10;
const C_INDUSTRY: usize = 11;
const C_PURPOSE: usize = 12;

const REQUIRED: [usize; 5] = [C_LOAN_ID, C_PURPOSE_TEXT, C_BALANCE, C_REGION, C_AS_OF];

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
    /// Every rejected row problem, in row order.
    pub rejected: Vec<RowError>,
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

/// A stream of rows from one input file.
trait RowSource {
    /// Header names, in order.
    fn headers(&self) -> &[String];
    /// Schema-less sources (JSONL) add columns that may appear in later rows only; others
    /// ignore this.
    fn add_columns(&mut self, _names: &[&str]) {}
    /// Next row into `buf` (one string per header; `extra` gets keys beyond the header, JSONL
    /// only). Returns the user-visible row number, or `None` at the end. `Err(Left)` is a row-level
    /// problem (row, reason), `Err(Right)` a file-level one.
    fn next_row(
        &mut self,
        buf: &mut Vec<String>,
        extra: &mut Vec<(String, serde_json::Value)>,
    ) -> Result<Option<std::result::Result<u64, (u64, String)>>>;
}

struct CsvSource<R: Read> {
    rdr: csv::Reader<R>,
    headers: Vec<String>,
    rec: csv::StringRecord,
    row: u64,
}

impl<R: Read> CsvSource<R> {
    fn new(r: R) -> Result<Self> {
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .from_reader(r);
        let headers = rdr
            .headers()
            .map_err(|e| PortfolioError::Csv(format!("cannot read header: {e}")))?
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
            .collect();
        Ok(CsvSource {
            rdr,
            headers,
            rec: csv::StringRecord::new(),
            row: 1,
        })
    }
}

impl<R: Read> RowSource for CsvSource<R> {
    fn headers(&self) -> &[String] {
        &self.headers
    }
    fn next_row(
        &mut self,
        buf: &mut Vec<String>,
        _extra: &mut Vec<(String, serde_json::Value)>,
    ) -> Result<Option<std::result::Result<u64, (u64, String)>>> {
        self.row += 1;
        match self.rdr.read_record(&mut self.rec) {
            Ok(false) => Ok(None),
            Ok(true) => {
                if self.rec.len() != self.headers.len() {
                    return Ok(Some(Err((
                        self.row,
                        format!(
                            "row has {} fields, header has {}",
                            self.rec.len(),
                            self.headers.len()
                        ),
                    ))));
                }
                buf.clear();
                buf.extend(self.rec.iter().map(str::to_string));
                Ok(Some(Ok(self.row)))
            }
            Err(e) => match e.kind() {
                csv::ErrorKind::Utf8 { .. } => Ok(Some(Err((self.row, "invalid UTF-8".into())))),
                _ => Err(PortfolioError::Csv(format!("near row {}: {e}", self.row))),
            },
        }
    }
}

struct XlsxSource {
    headers: Vec<String>,
    rows: std::vec::IntoIter<(u64, Vec<String>)>,
}

fn cell_to_string(c: &calamine::Data) -> String {
    use calamine::Data;
    match c {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => {
            if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{}", *f as i64)
            } else {
                f.to_string()
            }
        }
        Data::Bool(b) => b.to_string(),
        Data::DateTime(d) => {
            let (y, m, day, ..) = d.to_ymd_hms_milli();
            format!("{y:04}-{m:02}-{day:02}")
        }
        Data::DateTimeIso(s) => s.chars().take(10).collect(),
        Data::DurationIso(s) => s.clone(),
        Data::Error(e) => format!("#ERROR {e:?}"),
    }
}

impl XlsxSource {
    fn new<RS: Read + Seek + Clone>(rs: RS, sheet: Option<&str>) -> Result<Self> {
        use calamine::Reader;
        let mut wb = calamine::open_workbook_auto_from_rs(rs)
            .map_err(|e| PortfolioError::Xlsx(e.to_string()))?;
        let name = match sheet {
            Some(s) => s.to_string(),
            None => wb
                .sheet_names()
                .first()
                .cloned()
                .ok_or_else(|| PortfolioError::Xlsx("workbook has no sheets".into()))?,
        };
        let range = wb
            .worksheet_range(&name)
            .map_err(|e| PortfolioError::Xlsx(format!("sheet `{name}`: {e}")))?;
        let start_row = range.start().map(|(r, _)| r as u64).unwrap_or(0);
        let mut it = range.rows();
        let headers: Vec<String> = it
            .next()
            .ok_or_else(|| PortfolioError::Xlsx(format!("sheet `{name}` is empty")))?
            .iter()
            .map(|c| cell_to_string(c).trim().to_string())
            .collect();
        let rows: Vec<(u64, Vec<String>)> = it
            .enumerate()
            .filter(|(_, r)| r.iter().any(|c| !matches!(c, calamine::Data::Empty)))
            .map(|(i, r)| {
                (
                    start_row + i as u64 + 2,
                    r.iter().map(cell_to_string).collect(),
                )
            })
            .collect();
        Ok(XlsxSource {
            headers,
            rows: rows.into_iter(),
        })
    }
}

impl RowSource for XlsxSource {
    fn headers(&self) -> &[String] {
        &self.headers
    }
    fn next_row(
        &mut self,
        buf: &mut Vec<String>,
        _extra: &mut Vec<(String, serde_json::Value)>,
    ) -> Result<Option<std::result::Result<u64, (u64, String)>>> {
        Ok(self.rows.next().map(|(n, mut r)| {
            r.resize(self.headers.len(), String::new());
            *buf = r;
            Ok(n)
        }))
    }
}

struct JsonlSource<R: BufRead> {
    lines: std::io::Lines<R>,
    headers: Vec<String>,
    first: Option<(u64, serde_json::Map<String, serde_json::Value>)>,
    line: u64,
}

fn json_to_string(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl<R: BufRead> JsonlSource<R> {
    fn new(r: R) -> Result<Self> {
        let mut lines = r.lines();
        let mut line = 0u64;
        loop {
            let Some(l) = lines.next() else {
                return Err(PortfolioError::Json("no JSON object in input".into()));
            };
            let l = l?;
            line += 1;
            if l.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(&l)
                .map_err(|e| PortfolioError::Json(format!("line {line}: {e}")))?;
            let serde_json::Value::Object(m) = v else {
                return Err(PortfolioError::Json(format!(
                    "line {line}: not a JSON object"
                )));
            };
            let headers = m.keys().cloned().collect();
            return Ok(JsonlSource {
                lines,
                headers,
                first: Some((line, m)),
                line,
            });
        }
    }

    fn fill(
        &self,
        m: serde_json::Map<String, serde_json::Value>,
        buf: &mut Vec<String>,
        extra: &mut Vec<(String, serde_json::Value)>,
    ) {
        buf.clear();
        buf.resize(self.headers.len(), String::new());
        extra.clear();
        for (k, v) in m {
            match self.headers.iter().position(|h| *h == k) {
                Some(i) => buf[i] = json_to_string(&v),
                None => extra.push((k, v)),
            }
        }
    }
}

impl<R: BufRead> RowSource for JsonlSource<R> {
    fn headers(&self) -> &[String] {
        &self.headers
    }
    fn add_columns(&mut self, names: &[&str]) {
        for n in names {
            if !self.headers.iter().any(|h| h == n) {
                self.headers.push(n.to_string());
            }
        }
    }
    fn next_row(
        &mut self,
        buf: &mut Vec<String>,
        extra: &mut Vec<(String, serde_json::Value)>,
    ) -> Result<Option<std::result::Result<u64, (u64, String)>>> {
        if let Some((n, m)) = self.first.take() {
            self.fill(m, buf, extra);
            return Ok(Some(Ok(n)));
        }
        loop {
            let Some(l) = self.lines.next() else {
                return Ok(None);
            };
            self.line += 1;
            let l = match l {
                Ok(l) => l,
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    return Ok(Some(Err((self.line, "invalid UTF-8".into()))))
                }
                Err(e) => return Err(e.into()),
            };
            if l.trim().is_empty() {
                continue;
            }
            return Ok(Some(match serde_json::from_str::<serde_json::Value>(&l) {
                Ok(serde_json::Value::Object(m)) => {
                    self.fill(m, buf, extra);
                    Ok(self.line)
                }
                Ok(_) => Err((self.line, "line is not a JSON object".into())),
                Err(e) => Err((self.line, format!("invalid JSON: {e}"))),
            }));
        }
    }
}

/// One validated row, ready to be labeled and written.
struct LoanRow {
    row: u64,
    loan_id: String,
    purpose_text: String,
    /// What the labeler reads: the purpose text with the borrower's name and business scope
    /// (columns `borrower_name`, `business_scope`, kept as attributes) composed in.
    model_text: String,
    amount: Option<f64>,
    balance: f64,
    overdue_days: Option<i64>,
    status: Option<LoanStatus>,
    region_code: String,
    region: [Option<String>; 3],
    customer_type: Option<String>,
    product: Option<String>,
    issue_date: Option<String>,
    as_of_date: String,
    industry: Option<IndustryPath>,
    industry_code: Option<String>,
    purpose_code: Option<String>,
    purpose_conf: Option<f64>,
    purpose_source: Option<&'static str>,
    attributes: Option<String>,
}

/// Parse a `YYYY-MM-DD` date strictly (a real calendar date).
pub fn parse_date(s: &str) -> Option<String> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u32)
        })
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    chrono::NaiveDate::from_ymd_opt(y as i32, m, d).map(|_| s.to_string())
}

fn parse_amount(s: &str) -> std::result::Result<f64, String> {
    let t = s.trim().replace(',', "");
    match t.parse::<f64>() {
        Ok(v) if !v.is_finite() => Err(format!("{s:?} is not a finite number")),
        Ok(v) if v < 0.0 => Err(format!("{s:?} is negative (must be ≥ 0)")),
        Ok(v) => Ok(v),
        Err(_) => Err(format!("{s:?} is not a number")),
    }
}

fn parse_days(s: &str) -> std::result::Result<i64, String> {
    let t = s.trim();
    if let Ok(v) = t.parse::<i64>() {
        return if v < 0 {
            Err(format!("{s:?} is negative (must be an integer ≥ 0)"))
        } else {
            Ok(v)
        };
    }
    // Spreadsheets write integers as "30.0".
    match t.parse::<f64>() {
        Ok(f) if f.fract() == 0.0 && (0.0..1e9).contains(&f) => Ok(f as i64),
        Ok(f) if f < 0.0 => Err(format!("{s:?} is negative (must be an integer ≥ 0)")),
        _ => Err(format!("{s:?} is not an integer")),
    }
}

struct Columns {
    /// canonical index → header index
    idx: [Option<usize>; 13],
    /// header indices kept as attributes
    attrs: Vec<usize>,
}

fn resolve_columns(headers: &[String], map: &ColumnMap) -> Result<Columns> {
    let find = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .or_else(|| headers.iter().position(|h| h.eq_ignore_ascii_case(name)))
    };
    let mut idx = [None; 13];
    for (ci, c) in CANONICAL_COLUMNS.iter().enumerate() {
        if let Some((_, src)) = map.0.iter().find(|(k, _)| k == c) {
            idx[ci] = Some(find(src).ok_or_else(|| PortfolioError::MissingColumn {
                column: c.to_string(),
                mapped_from: Some(src.clone()),
            })?);
        } else {
            idx[ci] = find(c);
        }
    }
    for r in REQUIRED {
        if idx[r].is_none() {
            return Err(PortfolioError::MissingColumn {
                column: CANONICAL_COLUMNS[r].to_string(),
                mapped_from: None,
            });
        }
    }
    if idx[C_OVERDUE_DAYS].is_none() && idx[C_STATUS].is_none() {
        return Err(PortfolioError::MissingColumn {
            column: "overdue_days".to_string(),
            mapped_from: None,
        });
    }
    let used: Vec<usize> = idx.iter().flatten().copied().collect();
    let attrs = (0..headers.len())
        .filter(|i| !used.contains(i) && !headers[*i].is_empty())
        .collect();
    Ok(Columns { idx, attrs })
}

/// Reference data and caches used by validation.
struct Validator<'a> {
    config: &'a PortfolioConfig,
    status_map: &'a [(String, LoanStatus)],
    region_cache: rustc_hash::FxHashMap<String, Option<[Option<String>; 3]>>,
    industry_cache: rustc_hash::FxHashMap<String, Option<IndustryPath>>,
    purpose_labeler: KeywordPurposeLabeler,
}

impl Validator<'_> {
    fn validate(
        &mut self,
        row: u64,
        cols: &Columns,
        headers: &[String],
        f: &[String],
        extra: &[(String, serde_json::Value)],
        errs: &mut Vec<RowError>,
    ) -> Option<LoanRow> {
        let n0 = errs.len();
        let get = |c: usize| cols.idx[c].map(|i| f[i].trim()).filter(|s| !s.is_empty());
        let mut err = |field: &str, reason: String| {
            errs.push(RowError {
                row,
                field: field.to_string(),
                reason,
            })
        };
        let loan_id = get(C_LOAN_ID);
        if loan_id.is_none() {
            err("loan_id", "empty loan_id".into());
        }
        let purpose_text = get(C_PURPOSE_TEXT);
        if purpose_text.is_none() {
            err("purpose_text", "empty purpose_text".into());
        }
        let amount = match get(C_AMOUNT).map(parse_amount) {
            Some(Err(e)) => {
                err("amount", e);
                None
            }
            Some(Ok(v)) => Some(v),
            None => None,
        };
        let balance = match get(C_BALANCE).map(parse_amount) {
            Some(Err(e)) => {
                err("balance", e);
                None
            }
            Some(Ok(v)) => Some(v),
            None => {
                err("balance", "empty balance".into());
                None
            }
        };
        let overdue_days = match get(C_OVERDUE_DAYS).map(parse_days) {
            Some(Err(e)) => {
                err("overdue_days", e);
                None
            }
            Some(Ok(v)) => Some(v),
            None => None,
        };
        let status = match get(C_STATUS) {
            Some(s) => {
                let mapped = self
                    .status_map
                    .iter()
                    .find(|(k, _)| k == s)
                    .map(|(_, v)| *v)
                    .or_else(|| LoanStatus::parse(s));
                if mapped.is_none() {
                    err(
                        "status",
                        format!("unknown status {s:?} (current, overdue, default, charged_off, paid_off)"),
                    );
                }
                mapped
            }
            None => None,
        };
        if overdue_days.is_none()
            && status.is_none()
            && get(C_OVERDUE_DAYS).is_none()
            && get(C_STATUS).is_none()
        {
            err(
                if cols.idx[C_OVERDUE_DAYS].is_some() {
                    "overdue_days"
                } else {
                    "status"
                },
                "neither overdue_days nor status given".into(),
            );
        }
        let region_code = get(C_REGION);
        let region = match region_code {
            None => {
                err("region_code", "empty region_code".into());
                None
            }
            Some(code) => {
                let scheme = self.config.region_scheme;
                let r = match self.region_cache.get(code) {
                    Some(r) => r.clone(),
                    None => {
                        let r = scheme.resolve(code);
                        self.region_cache.insert(code.to_string(), r.clone());
                        r
                    }
                };
                if r.is_none() {
                    err(
                        "region_code",
                        format!(
                            "unknown region code {code:?} in the {} table",
                            scheme.as_str()
                        ),
                    );
                }
                r
            }
        };
        let issue_date = match get(C_ISSUE) {
            Some(s) => {
                let d = parse_date(s);
                if d.is_none() {
                    err("issue_date", format!("{s:?} is not a date YYYY-MM-DD"));
                }
                d
            }
            None => None,
        };
        let as_of_date = match get(C_AS_OF) {
            Some(s) => {
                let d = parse_date(s);
                if d.is_none() {
                    err("as_of_date", format!("{s:?} is not a date YYYY-MM-DD"));
                }
                d
            }
            None => {
                err("as_of_date", "empty as_of_date".into());
                None
            }
        };
        let (industry, industry_code) = match get(C_INDUSTRY) {
            Some(code) => {
                let p = match self.industry_cache.get(code) {
                    Some(p) => p.clone(),
                    None => {
                        let p = industry_path(code);
                        self.industry_cache.insert(code.to_string(), p.clone());
                        p
                    }
                };
                if p.is_none() {
                    err(
                        "industry_code",
                        format!("{code:?} is not a GB/T 4754-2017 code"),
                    );
                }
                (p, Some(code.to_string()))
            }
            None => (None, None),
        };
        let (purpose_code, purpose_conf, purpose_source) = match get(C_PURPOSE) {
            Some(p) => {
                if !self.config.purpose_scheme.contains(p) {
                    err(
                        "purpose",
                        format!(
                            "{p:?} is not a code of purpose taxonomy {}",
                            self.config.purpose_scheme.id
                        ),
                    );
                }
                (Some(p.to_string()), Some(1.0), Some("input"))
            }
            None => match purpose_text {
                Some(t) if self.config.purpose_scheme.is_builtin() => {
                    let (c, conf) = self.purpose_labeler.label_one(t);
                    (Some(c.to_string()), Some(conf as f64), Some("keywords"))
                }
                _ => (None, None, None),
            },
        };
        if errs.len() > n0 {
            return None;
        }
        let attributes = if cols.attrs.is_empty() && extra.is_empty() {
            None
        } else {
            let mut m = serde_json::Map::new();
            for &i in &cols.attrs {
                m.insert(headers[i].clone(), serde_json::Value::String(f[i].clone()));
            }
            for (k, v) in extra {
                m.insert(k.clone(), v.clone());
            }
            Some(serde_json::Value::Object(m).to_string())
        };
        let attr = |name: &str| {
            cols.attrs
                .iter()
                .find(|&&i| headers[i] == name)
                .map(|&i| f[i].trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let model_text = touxiang_datasets::LoanText {
            text: purpose_text?.to_string(),
            borrower_name: attr("borrower_name"),
            business_scope: attr("business_scope"),
            declared_industry: None,
        }
        .model_text();
        Some(LoanRow {
            row,
            loan_id: loan_id?.to_string(),
            purpose_text: purpose_text?.to_string(),
            model_text,
            amount,
            balance: balance?,
            overdue_days,
            status,
            region_code: region_code?.to_string(),
            region: region?,
            customer_type: get(C_CUSTOMER).map(str::to_string),
            product: get(C_PRODUCT).map(str::to_string),
            issue_date,
            as_of_date: as_of_date?,
            industry,
            industry_code,
            purpose_code,
            purpose_conf,
            purpose_source,
            attributes,
        })
    }
}

const INSERT_SQL: &str = "INSERT INTO loans (portfolio, loan_id, as_of_date, purpose_text, amount, balance, \
    overdue_days, status, region_code, province, city, county, customer_type, product, issue_date, \
    ind_code, ind_section, ind_division, ind_group, ind_class, ind_confidence, ind_decision, ind_source, \
    ind_model_version, ind_taxonomy_version, purpose_code, purpose_confidence, purpose_source, \
    purpose_model_version, purpose_taxonomy_version, attributes, ingest_id) VALUES \
    (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25,?26,?27,?28,?29,?30,?31,?32)";

struct Writer<'a> {
    portfolio: &'a str,
    ingest_id: i64,
    labeler: Option<&'a dyn Labeler>,
    label_cache: rustc_hash::FxHashMap<String, LabelResult>,
    purpose_model: String,
    purpose_tax: String,
    report: IngestReport,
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
    /// Label (where needed) and insert a batch of validated rows.
    fn flush(&mut self, tx: &Connection, batch: &mut Vec<LoanRow>) -> Result<()> {
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
                    self.report.rejected.push(RowError {
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

impl PortfolioStore {
    /// Ingest a file; the format is taken from the extension.
    pub fn ingest_file(
        &self,
        portfolio: &str,
        path: &Path,
        opts: &IngestOptions,
        labeler: Option<&dyn Labeler>,
    ) -> Result<IngestReport> {
        let format = InputFormat::from_path(path).ok_or_else(|| {
            PortfolioError::UnsupportedFormat(format!(
                "cannot tell the format of {} (use .csv, .xlsx or .jsonl)",
                path.display()
            ))
        })?;
        let mut opts = opts.clone();
        if opts.source_name.is_none() {
            opts.source_name = Some(path.display().to_string());
        }
        match format {
            InputFormat::Xlsx => {
                let bytes = std::fs::read(path)?;
                self.ingest_bytes(portfolio, format, bytes, &opts, labeler)
            }
            _ => self.ingest_reader(portfolio, format, File::open(path)?, &opts, labeler),
        }
    }

    /// Ingest from in-memory bytes (HTTP upload). XLSX must come this way or via a file.
    pub fn ingest_bytes(
        &self,
        portfolio: &str,
        format: InputFormat,
        bytes: Vec<u8>,
        opts: &IngestOptions,
        labeler: Option<&dyn Labeler>,
    ) -> Result<IngestReport> {
        match format {
            InputFormat::Xlsx => {
                let mut src = XlsxSource::new(Cursor::new(bytes), opts.sheet.as_deref())?;
                self.ingest_source(portfolio, &mut src, opts, labeler)
            }
            _ => self.ingest_reader(portfolio, format, Cursor::new(bytes), opts, labeler),
        }
    }

    /// Ingest a CSV or JSONL stream (rows are read one at a time; memory stays bounded apart from
    /// the set of `(loan_id, as_of_date)` keys used for duplicate detection).
    pub fn ingest_reader<R: Read>(
        &self,
        portfolio: &str,
        format: InputFormat,
        reader: R,
        opts: &IngestOptions,
        labeler: Option<&dyn Labeler>,
    ) -> Result<IngestReport> {
        let reader = BufReader::with_capacity(1 << 16, reader);
        match format {
            InputFormat::Csv => {
                let mut src = CsvSource::new(reader)?;
                self.ingest_source(portfolio, &mut src, opts, labeler)
            }
            InputFormat::Jsonl => {
                let mut src = JsonlSource::new(reader)?;
                self.ingest_source(portfolio, &mut src, opts, labeler)
            }
            InputFormat::Xlsx => Err(PortfolioError::UnsupportedFormat(
                "XLSX needs random access: use ingest_bytes or ingest_file".into(),
            )),
        }
    }

    fn ingest_source(
        &self,
        portfolio: &str,
        src: &mut dyn RowSource,
        opts: &IngestOptions,
        labeler: Option<&dyn Labeler>,
    ) -> Result<IngestReport> {
        let started = Instant::now();
        if portfolio.trim().is_empty() {
            return Err(crate::error::invalid("portfolio", "empty portfolio name"));
        }
        // Required columns are checked against the header (JSONL: the first object's keys).
        resolve_columns(src.headers(), &opts.map)?;
        // JSONL: canonical keys (or mapped source keys) first seen on a later line are still
        // canonical fields, not attributes.
        let mut known: Vec<&str> = CANONICAL_COLUMNS
            .iter()
            .copied()
            .filter(|c| !opts.map.0.iter().any(|(k, _)| k == c))
            .collect();
        known.extend(opts.map.0.iter().map(|(_, s)| s.as_str()));
        src.add_columns(&known);
        let headers = src.headers().to_vec();
        let cols = resolve_columns(&headers, &opts.map)?;

        let mut conn = self.connect()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let config = match read_config(&tx, portfolio)? {
            Some((stored, _)) => {
                if let Some(c) = &opts.config {
                    if *c != stored {
                        return Err(PortfolioError::ConfigConflict(format!(
                            "portfolio {portfolio:?} exists with region table {} / purpose taxonomy {} / {}; \
                             this ingest asks for {} / {} / {}",
                            stored.region_scheme.as_str(),
                            stored.purpose_scheme.id,
                            stored.currency,
                            c.region_scheme.as_str(),
                            c.purpose_scheme.id,
                            c.currency
                        )));
                    }
                }
                stored
            }
            None => {
                let c = opts.config.clone().unwrap_or_default();
                tx.execute(
                    "INSERT INTO portfolios (name, region_scheme, purpose_scheme, currency) VALUES (?1,?2,?3,?4)",
                    params![
                        portfolio,
                        c.region_scheme.as_str(),
                        serde_json::to_string(&c.purpose_scheme).expect("serialisable"),
                        c.currency
                    ],
                )?;
                c
            }
        };
        tx.execute(
            "INSERT INTO ingests (portfolio, source, mode, accepted, rejected) VALUES (?1,?2,?3,0,0)",
            params![
                portfolio,
                opts.source_name.as_deref().unwrap_or("-"),
                match opts.mode {
                    IngestMode::AllOrNothing => "all_or_nothing",
                    IngestMode::CommitValid => "commit_valid",
                }
            ],
        )?;
        let ingest_id = tx.last_insert_rowid();
        let purpose = KeywordPurposeLabeler::new();
        let mut validator = Validator {
            config: &config,
            status_map: &opts.status_map,
            region_cache: Default::default(),
            industry_cache: Default::default(),
            purpose_labeler: purpose.clone(),
        };
        let mut writer = Writer {
            portfolio,
            ingest_id,
            labeler,
            label_cache: Default::default(),
            purpose_model: touxiang_datasets::Labeler::model_version(&purpose),
            purpose_tax: config.purpose_scheme.id.clone(),
            report: IngestReport {
                portfolio: portfolio.to_string(),
                accepted: 0,
                rejected: Vec::new(),
                committed: false,
                mode: opts.mode,
                rows_read: 0,
                valid_rows: 0,
                industry_labeled: 0,
                industry_from_input: 0,
                industry_missing: 0,
                elapsed_ms: 0,
            },
        };
        let batch_size = if opts.label_batch == 0 {
            256
        } else {
            opts.label_batch
        };
        let mut batch: Vec<LoanRow> = Vec::with_capacity(batch_size);
        let mut seen: rustc_hash::FxHashMap<(String, String), u64> = Default::default();
        let mut exists =
            tx.prepare("SELECT 1 FROM loans WHERE portfolio=?1 AND loan_id=?2 AND as_of_date=?3")?;
        let mut buf = Vec::new();
        let mut extra = Vec::new();
        let mut row_errs = Vec::new();
        while let Some(next) = src.next_row(&mut buf, &mut extra)? {
            writer.report.rows_read += 1;
            let row = match next {
                Ok(r) => r,
                Err((row, reason)) => {
                    writer.report.rejected.push(RowError {
                        row,
                        field: "*".into(),
                        reason,
                    });
                    continue;
                }
            };
            row_errs.clear();
            let Some(loan) = validator.validate(row, &cols, &headers, &buf, &extra, &mut row_errs)
            else {
                writer.report.rejected.append(&mut row_errs);
                continue;
            };
            match seen.entry((loan.loan_id.clone(), loan.as_of_date.clone())) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    writer.report.rejected.push(RowError {
                        row,
                        field: "loan_id".into(),
                        reason: format!(
                            "duplicate: loan {:?} as of {} already appears in row {} of this file",
                            loan.loan_id,
                            loan.as_of_date,
                            e.get()
                        ),
                    });
                    continue;
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(row);
                }
            }
            writer.report.valid_rows += 1;
            let doomed =
                opts.mode == IngestMode::AllOrNothing && !writer.report.rejected.is_empty();
            if doomed {
                // Nothing will be committed: only check against stored loans, skip labeling/writing.
                for l in batch.drain(..).chain(std::iter::once(loan)) {
                    if exists.exists(params![portfolio, l.loan_id, l.as_of_date])? {
                        writer.report.valid_rows -= 1;
                        writer.report.rejected.push(RowError {
                            row: l.row,
                            field: "loan_id".into(),
                            reason: format!(
                                "duplicate: loan {:?} as of {} is already stored in portfolio {:?}",
                                l.loan_id, l.as_of_date, portfolio
                            ),
                        });
                    }
                }
                continue;
            }
            batch.push(loan);
            if batch.len() >= batch_size {
                writer.flush(&tx, &mut batch)?;
            }
        }
        if opts.mode != IngestMode::AllOrNothing || writer.report.rejected.is_empty() {
            writer.flush(&tx, &mut batch)?;
        }
        drop(exists);
        let mut report = writer.report;
        report.rejected.sort_by_key(|e| e.row);
        if opts.mode == IngestMode::AllOrNothing && !report.rejected.is_empty() {
            tx.rollback()?;
            report.accepted = 0;
            report.industry_labeled = 0;
            report.industry_from_input = 0;
            report.industry_missing = 0;
            report.committed = false;
        } else {
            tx.execute(
                "UPDATE ingests SET accepted=?1, rejected=?2 WHERE id=?3",
                params![
                    report.accepted as i64,
                    report.rejected.len() as i64,
                    ingest_id
                ],
            )?;
            tx.execute(
                "UPDATE portfolios SET generation = generation + 1 WHERE name=?1",
                [portfolio],
            )?;
            tx.commit()?;
            report.committed = true;
        }
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }
}
