//! Row sources (part of [`super`]): the readers of `touxiang-tabular` (the same ones batch
//! reclassification uses), seen as rows of strings with a user-visible row number.
//!
//! Public so that other tabular ingests (payments and relations in `touxiang-flow`) read files
//! exactly as loan ingest does: [`open_file`] / [`open_bytes`] give a [`RowSource`].
//!
//! The row number shown to users is the spreadsheet's: the CSV header is row 1 (so data row `n`
//! is row `n + 1`), JSONL rows are their line, XLSX rows their sheet row.

use std::io::{BufReader, Read};
use std::path::Path;

use touxiang_tabular::{self as tabular, IssueKind, Problem};

use super::InputFormat;
use crate::error::{PortfolioError, Result};

/// The row source of a file in `format` (XLSX streamed from the sheet XML; CSV and JSONL read
/// record by record).
pub fn open_file(
    path: &Path,
    format: InputFormat,
    sheet: Option<&str>,
) -> Result<Box<dyn RowSource + Send>> {
    let opened = tabular::open_file(path, tabular_format(format), &options(sheet));
    Ok(Box::new(Source::new(opened, format)?))
}

/// The row source of in-memory bytes in `format`.
pub fn open_bytes(
    bytes: Vec<u8>,
    format: InputFormat,
    sheet: Option<&str>,
) -> Result<Box<dyn RowSource + Send>> {
    let opened = tabular::open_bytes(bytes, tabular_format(format), &options(sheet));
    Ok(Box::new(Source::new(opened, format)?))
}

/// The row source of a CSV or JSONL stream.
pub(crate) fn open_reader<'r, R: Read + 'r>(
    reader: R,
    format: InputFormat,
) -> Result<Box<dyn RowSource + 'r>> {
    let r = BufReader::with_capacity(1 << 16, reader);
    let enc = tabular::Encoding::Utf8;
    Ok(match format {
        InputFormat::Csv => Box::new(Source::new(tabular::CsvSource::new(r, enc), format)?),
        InputFormat::Jsonl => Box::new(Source::new(tabular::JsonlSource::new(r, enc), format)?),
        InputFormat::Xlsx => {
            return Err(PortfolioError::UnsupportedFormat(
                "XLSX needs random access: use ingest_bytes or ingest_file".into(),
            ))
        }
    })
}

fn tabular_format(f: InputFormat) -> tabular::Format {
    match f {
        InputFormat::Csv => tabular::Format::Csv,
        InputFormat::Xlsx => tabular::Format::Xlsx,
        InputFormat::Jsonl => tabular::Format::Jsonl,
    }
}

fn options(sheet: Option<&str>) -> tabular::Options<'_> {
    tabular::Options {
        sheet,
        ..Default::default()
    }
}

impl From<tabular::TabularError> for PortfolioError {
    fn from(e: tabular::TabularError) -> Self {
        use tabular::TabularError as T;
        match e {
            T::Io(e) => PortfolioError::Io(e),
            T::Xlsx(m) => PortfolioError::Xlsx(m),
            e @ (T::NoHeader | T::Header { .. }) => PortfolioError::Csv(e.to_string()),
            e @ (T::Parquet(_) | T::Unsupported(_)) => {
                PortfolioError::UnsupportedFormat(e.to_string())
            }
        }
    }
}

/// A stream of rows from one input file.
pub trait RowSource {
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

/// A `touxiang-tabular` source seen as a [`RowSource`].
struct Source<S> {
    /// `None`: an empty CSV file (no header, no rows; the required columns are missing).
    inner: Option<S>,
    format: InputFormat,
    row: tabular::Row,
    /// `row` holds a row read ahead (the first JSONL row, read to check the header).
    pending: bool,
}

impl<S: tabular::RowSource> Source<S> {
    fn new(opened: tabular::Result<S>, format: InputFormat) -> Result<Self> {
        let inner = match opened {
            Ok(s) => Some(s),
            Err(tabular::TabularError::NoHeader) if format == InputFormat::Csv => None,
            Err(e) => return Err(e.into()),
        };
        let mut src = Source {
            inner,
            format,
            row: tabular::Row::default(),
            pending: false,
        };
        // JSONL: the header is the first object's keys; a file without one cannot be ingested.
        if let Some(inner) = src.inner.as_mut().filter(|_| format == InputFormat::Jsonl) {
            if inner.headers().is_empty() {
                if !inner.next_row(&mut src.row)? {
                    return Err(PortfolioError::Json("no JSON object in input".into()));
                }
                if let Some(p) = &src.row.problem {
                    let why = match p {
                        Problem::InvalidJson(e) => e.clone(),
                        Problem::Undecodable(_) => "invalid UTF-8".into(),
                        other => other.to_string(),
                    };
                    let line = src.row.line.unwrap_or(src.row.row);
                    return Err(PortfolioError::Json(format!("line {line}: {why}")));
                }
                src.pending = true;
            }
        }
        Ok(src)
    }
}

/// The reason shown for a row-level problem.
fn reason(p: &Problem) -> String {
    match p {
        Problem::FieldCount { found, expected } => {
            format!("row has {found} fields, header has {expected}")
        }
        Problem::NotAnObject => "line is not a JSON object".into(),
        Problem::Undecodable(_) => "invalid UTF-8".into(),
        other => other.to_string(),
    }
}

impl<S: tabular::RowSource> RowSource for Source<S> {
    fn headers(&self) -> &[String] {
        self.inner.as_ref().map_or(&[], |s| s.headers())
    }

    fn add_columns(&mut self, names: &[&str]) {
        if let Some(s) = self.inner.as_mut() {
            s.add_columns(names);
            // A row read ahead gets the new (absent) columns too.
            let width = s.headers().len();
            if self.pending && self.row.cells.len() < width {
                self.row.cells.resize(width, None);
            }
        }
    }

    fn next_row(
        &mut self,
        buf: &mut Vec<String>,
        extra: &mut Vec<(String, serde_json::Value)>,
    ) -> Result<Option<std::result::Result<u64, (u64, String)>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(None);
        };
        if !std::mem::take(&mut self.pending) && !inner.next_row(&mut self.row)? {
            return Ok(None);
        }
        let r = &mut self.row;
        let n = match self.format {
            InputFormat::Csv => r.row + 1,
            InputFormat::Jsonl | InputFormat::Xlsx => r.line.unwrap_or(r.row),
        };
        if let Some(p) = &r.problem {
            return Ok(Some(Err((n, reason(p)))));
        }
        if r.issues.iter().any(|i| i.kind == IssueKind::Encoding) {
            return Ok(Some(Err((n, "invalid UTF-8".into()))));
        }
        buf.clear();
        buf.extend(r.cells.iter_mut().map(|c| c.take().unwrap_or_default()));
        *extra = std::mem::take(&mut r.extra);
        Ok(Some(Ok(n)))
    }
}
