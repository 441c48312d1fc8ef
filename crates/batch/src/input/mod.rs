//! Input rows: the four formats are read by `touxiang-tabular` (the readers portfolio ingest
//! uses too), and each row's wanted cells are assembled into a [`RawRow`] here.
//!
//! Rows come one at a time, so memory is bounded by one row (CSV, JSONL), one row group
//! (Parquet) or the workbook's shared-string table (XLSX: calamine streams the cells of a sheet
//! but keeps the shared strings of the whole workbook in memory, and the XML is parsed on a
//! helper thread that hands rows over a bounded channel).
//!
//! Row numbering is the same for every format: data rows count from 1 after the header; blank
//! lines (CSV/JSONL) and empty sheet rows (XLSX) are not rows. Problems with one row (broken
//! quoting, wrong field count, invalid UTF-8/GBK bytes, invalid JSON) become a row with a
//! `problem`; the reader then goes on with the next row.

use std::path::Path;

use crate::error::BatchError;
use crate::options::{BatchOptions, Format};

mod source;
#[cfg(test)]
mod tests;

use source::Source;

/// One input row as read, before normalisation and labeling.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawRow {
    /// 1-based data row number.
    pub row: u64,
    /// Physical line (CSV/JSONL) or sheet row (XLSX) where the row starts.
    pub line: Option<u64>,
    pub id: String,
    pub text: String,
    pub old_code: Option<String>,
    pub balance: Option<f64>,
    /// `(field, reason)` when the row cannot be labeled.
    pub problem: Option<(String, String)>,
    /// `(field, reason)` for problems that do not stop labeling (e.g. a bad balance).
    pub warnings: Vec<(String, String)>,
}

/// A cell value: the text, or (lossy text, reason) when it could not be decoded.
type Cell = Result<String, (String, String)>;

/// Wanted columns: id, text, old code, balance, borrower name, business scope.
const N_SLOTS: usize = 6;

/// Names of the wanted columns, in slot order: id, text, old code, balance, borrower name,
/// business scope.
#[derive(Debug, Clone)]
pub(crate) struct Wanted {
    pub names: [Option<String>; N_SLOTS],
}

impl Wanted {
    pub fn from_options(opts: &BatchOptions) -> Wanted {
        Wanted {
            names: [
                Some(opts.id_column.clone()),
                Some(opts.text_column.clone()),
                opts.old_code_column.clone(),
                opts.balance_column.clone(),
                opts.borrower_name_column.clone(),
                opts.business_scope_column.clone(),
            ],
        }
    }

    /// Column index of each wanted name in `header`; id and text are required.
    fn resolve(
        &self,
        header: &[String],
        path: &Path,
    ) -> Result<[Option<usize>; N_SLOTS], BatchError> {
        let mut out = [None; N_SLOTS];
        for (slot, name) in self.names.iter().enumerate() {
            let Some(name) = name else { continue };
            match header.iter().position(|h| h.trim() == name) {
                Some(i) => out[slot] = Some(i),
                None => {
                    return Err(BatchError::Input {
                        path: path.to_path_buf(),
                        message: format!(
                            "column {name:?} not found; the columns are: {}",
                            header.join(", ")
                        ),
                    })
                }
            }
        }
        Ok(out)
    }
}

const SLOT_NAMES: [&str; N_SLOTS] = [
    "id",
    "text",
    "old_code",
    "balance",
    "borrower_name",
    "business_scope",
];

/// Build a row from the four wanted cells (`None` = absent).
fn assemble(
    row: u64,
    line: Option<u64>,
    wanted: &Wanted,
    cells: [Option<Cell>; N_SLOTS],
) -> RawRow {
    let name = |slot: usize| {
        wanted.names[slot]
            .clone()
            .unwrap_or_else(|| SLOT_NAMES[slot].to_string())
    };
    let [id, text, old, bal, borrower, scope] = cells;
    let mut out = RawRow {
        row,
        line,
        id: String::new(),
        text: String::new(),
        old_code: None,
        balance: None,
        problem: None,
        warnings: Vec::new(),
    };
    match id {
        Some(Ok(s)) => out.id = s.trim().to_string(),
        Some(Err((lossy, reason))) => {
            out.id = lossy.trim().to_string();
            out.problem = Some((name(0), reason));
        }
        None => {}
    }
    if out.id.is_empty() && out.problem.is_none() {
        out.warnings.push((name(0), "empty id".into()));
    }
    match text {
        Some(Ok(s)) => out.text = s,
        Some(Err((lossy, reason))) => {
            out.text = lossy;
            if out.problem.is_none() {
                out.problem = Some((name(1), reason));
            }
        }
        None => {
            if out.problem.is_none() {
                out.problem = Some((name(1), "missing value".into()));
            }
        }
    }
    match old {
        Some(Ok(s)) if !s.trim().is_empty() => out.old_code = Some(s.trim().to_string()),
        Some(Err((_, reason))) => out.warnings.push((name(2), reason)),
        _ => {}
    }
    match bal {
        Some(Ok(s)) if !s.trim().is_empty() => {
            let cleaned: String = s.trim().chars().filter(|c| *c != ',').collect();
            match cleaned.parse::<f64>() {
                Ok(v) if v.is_finite() => out.balance = Some(v),
                _ => out
                    .warnings
                    .push((name(3), format!("not a number: {:?}", s.trim()))),
            }
        }
        Some(Err((_, reason))) => out.warnings.push((name(3), reason)),
        _ => {}
    }
    // The borrower's name and business scope are read with the purpose text, as by
    // /v1/classify: the text that is deduplicated and labeled is the composed one.
    let mut field = |slot: usize, cell: Option<Cell>| match cell {
        Some(Ok(s)) if !s.trim().is_empty() => Some(s),
        Some(Err((_, reason))) => {
            out.warnings.push((name(slot), reason));
            None
        }
        _ => None,
    };
    let (borrower_name, business_scope) = (field(4, borrower), field(5, scope));
    if out.problem.is_none() && (borrower_name.is_some() || business_scope.is_some()) {
        out.text = touxiang_datasets::LoanText {
            text: std::mem::take(&mut out.text),
            borrower_name,
            business_scope,
            declared_industry: None,
        }
        .model_text();
    }
    out
}

/// A source of rows.
pub(crate) trait RowSource {
    fn next_row(&mut self) -> Result<Option<RawRow>, BatchError>;
}

/// Open the input of `opts` as a row source.
pub(crate) fn open(opts: &BatchOptions) -> Result<Box<dyn RowSource + Send>, BatchError> {
    Ok(Box::new(Source::open(opts)?))
}

/// Number of data rows of the input (a full read for CSV/JSONL/XLSX, metadata for Parquet).
pub(crate) fn count_rows(opts: &BatchOptions) -> Result<u64, BatchError> {
    if opts.resolved_input_format()? == Format::Parquet {
        return touxiang_tabular::parquet_row_count(&opts.input)
            .map_err(|e| source::input_error(&opts.input, e));
    }
    let mut src = open(opts)?;
    let mut n = 0;
    while src.next_row()?.is_some() {
        n += 1;
    }
    Ok(n)
}
