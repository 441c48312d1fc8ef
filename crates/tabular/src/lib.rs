//! One streaming reader per tabular format — CSV, JSONL, XLSX, Parquet — shared by batch
//! reclassification (`touxiang-batch`) and portfolio ingest (`touxiang-portfolio`, and through it
//! payments and relations in `touxiang-flow`), so that one file reads the same everywhere.
//!
//! A [`RowSource`] gives the header and then the rows one at a time into a reused [`Row`]:
//! memory is bounded by one row (CSV, JSONL), one row group (Parquet) or the shared-string table
//! plus a bounded read-ahead (XLSX, streamed from the sheet XML on a helper thread).
//!
//! Numbering is the same for every format: data rows count from 1 after the header; blank lines
//! (CSV, JSONL) and empty sheet rows (XLSX) are not rows. [`Row::line`] is the physical line
//! (CSV, JSONL) or sheet row (XLSX) where the row starts.
//!
//! Problems with one row are not errors: the row carries a [`Problem`] (broken quoting, wrong
//! field count, invalid JSON) or [`CellIssue`]s (bytes that do not decode, a cell error, a JSON
//! array where a value was expected) and reading goes on with the next row. [`TabularError`] is
//! for the file as a whole (unreadable, no header, not a workbook).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

mod csv;
mod error;
mod jsonl;
mod lines;
mod parquet;
mod xlsx;

pub use crate::csv::CsvSource;
pub use crate::error::TabularError;
pub use crate::jsonl::JsonlSource;
pub use crate::parquet::ParquetSource;
pub use crate::xlsx::XlsxSource;

/// Result alias of this crate.
pub type Result<T, E = TabularError> = std::result::Result<T, E>;

/// Text encoding of CSV and JSONL input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// UTF-8 (a leading BOM is skipped).
    #[default]
    Utf8,
    /// GB18030 (superset of GBK/GB2312), decoded line by line.
    Gb18030,
}

/// A problem with a whole row; the row is still returned, reading goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A CSV record whose field count differs from the header's.
    FieldCount { found: usize, expected: usize },
    /// A CSV quote opened on the row's first line is never closed (properly); the lines after
    /// it are read again as rows of their own.
    UnterminatedQuote,
    /// CSV text after a closing quote (e.g. `"ab"c`).
    MalformedQuote,
    /// A JSONL line that does not decode in the input encoding (the reason says why).
    Undecodable(String),
    /// A JSONL line that is not JSON.
    InvalidJson(String),
    /// A JSONL line that is JSON but not an object.
    NotAnObject,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::FieldCount { found, expected } => {
                write!(f, "expected {expected} fields, found {found}")
            }
            Problem::UnterminatedQuote => f.write_str(
                "unterminated quoted field (a quote opened on this line is never closed properly)",
            ),
            Problem::MalformedQuote => f.write_str("malformed quoting: text after a closing quote"),
            Problem::Undecodable(reason) => f.write_str(reason),
            Problem::InvalidJson(e) => write!(f, "invalid JSON: {e}"),
            Problem::NotAnObject => f.write_str("not a JSON object"),
        }
    }
}

/// What is wrong with one cell (its text in [`Row::cells`] is then a lossy rendering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueKind {
    /// Bytes that are not valid in the input encoding.
    Encoding,
    /// A spreadsheet error value (`#DIV/0!` …); the text is `#ERROR …`.
    CellError,
    /// A JSON array or object where a scalar was expected; the text is its JSON.
    NotScalar,
}

/// A problem with one cell of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellIssue {
    /// Column index (into [`RowSource::headers`]).
    pub col: usize,
    pub kind: IssueKind,
    pub reason: String,
}

/// One row, reused from call to call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    /// 1-based data row number (the header is not a row; blank lines are not rows).
    pub row: u64,
    /// Physical line (CSV, JSONL) or 1-based sheet row (XLSX) where the row starts.
    pub line: Option<u64>,
    /// One cell per header; `None` = absent (missing field or key, JSON null, empty sheet cell,
    /// Parquet null, a column not projected).
    pub cells: Vec<Option<String>>,
    /// Cells that could not be read as they are.
    pub issues: Vec<CellIssue>,
    /// A problem with the row as a whole (the cells are then a best effort).
    pub problem: Option<Problem>,
    /// JSONL keys beyond the header, in line order.
    pub extra: Vec<(String, serde_json::Value)>,
}

impl Row {
    pub(crate) fn reset(&mut self, width: usize) {
        self.line = None;
        self.cells.clear();
        self.cells.resize(width, None);
        self.issues.clear();
        self.problem = None;
        self.extra.clear();
    }

    /// The issue of cell `col`, if it has one.
    pub fn issue(&self, col: usize) -> Option<&CellIssue> {
        self.issues.iter().find(|i| i.col == col)
    }
}

/// A stream of rows from one input.
pub trait RowSource {
    /// Header names, trimmed, in order.
    fn headers(&self) -> &[String];
    /// Schema-less sources (JSONL) add columns that may appear in later rows only; the others
    /// ignore this.
    fn add_columns(&mut self, _names: &[&str]) {}
    /// Read the next row into `row`; `false` at the end of the input.
    fn next_row(&mut self, row: &mut Row) -> Result<bool>;
}

impl<S: RowSource + ?Sized> RowSource for Box<S> {
    fn headers(&self) -> &[String] {
        (**self).headers()
    }
    fn add_columns(&mut self, names: &[&str]) {
        (**self).add_columns(names)
    }
    fn next_row(&mut self, row: &mut Row) -> Result<bool> {
        (**self).next_row(row)
    }
}

/// The input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
    Xlsx,
    Parquet,
}

/// How to open an input.
#[derive(Debug, Clone, Default)]
pub struct Options<'a> {
    /// Text encoding of CSV and JSONL.
    pub encoding: Encoding,
    /// XLSX sheet; `None` = the first.
    pub sheet: Option<&'a str>,
    /// Parquet: read only these columns (names not in the schema are ignored); `None` = all.
    pub columns: Option<&'a [&'a str]>,
}

/// Buffer size of file readers.
const READ_BUFFER: usize = 1 << 16;

/// The row source of the file at `path` in `format`.
pub fn open_file(
    path: &Path,
    format: Format,
    opts: &Options<'_>,
) -> Result<Box<dyn RowSource + Send>> {
    Ok(match format {
        Format::Xlsx => Box::new(XlsxSource::open(path, opts.sheet)?),
        Format::Parquet => Box::new(ParquetSource::open(path, opts.columns)?),
        Format::Csv | Format::Jsonl => {
            let f = std::fs::File::open(path)?;
            open_reader(BufReader::with_capacity(READ_BUFFER, f), format, opts)?
        }
    })
}

/// The row source of in-memory bytes in `format`.
pub fn open_bytes(
    bytes: Vec<u8>,
    format: Format,
    opts: &Options<'_>,
) -> Result<Box<dyn RowSource + Send>> {
    Ok(match format {
        Format::Xlsx => Box::new(XlsxSource::from_bytes(bytes, opts.sheet)?),
        Format::Csv | Format::Jsonl | Format::Parquet => {
            open_reader(std::io::Cursor::new(bytes), format, opts)?
        }
    })
}

/// The row source of a CSV or JSONL stream.
pub fn open_reader<R: BufRead + Send + 'static>(
    r: R,
    format: Format,
    opts: &Options<'_>,
) -> Result<Box<dyn RowSource + Send>> {
    Ok(match format {
        Format::Csv => Box::new(CsvSource::new(r, opts.encoding)?),
        Format::Jsonl => Box::new(JsonlSource::new(r, opts.encoding)?),
        Format::Xlsx | Format::Parquet => {
            return Err(TabularError::Unsupported(
                "XLSX and Parquet need random access: open a file (or XLSX bytes)".into(),
            ))
        }
    })
}

/// Number of data rows of a Parquet file, from its metadata.
pub fn parquet_row_count(path: &Path) -> Result<u64> {
    parquet::row_count(path)
}

/// Wrap any reader for [`CsvSource::new`] / [`JsonlSource::new`].
pub fn buffered<R: Read>(r: R) -> BufReader<R> {
    BufReader::with_capacity(READ_BUFFER, r)
}
