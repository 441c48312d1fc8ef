//! The one error type of this crate.

use std::path::PathBuf;

/// Why a taxonomy or region table could not be loaded.
///
/// Line numbers are 1-based line numbers of the CSV input (the header is line 1).
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The CSV itself is malformed (bad UTF-8, a row with the wrong number of fields, ...).
    #[error("line {line}: {message}")]
    Csv { line: u64, message: String },
    /// A required column is missing from the header.
    #[error("missing column `{column}` in the CSV header")]
    MissingColumn { column: String },
    /// A required field is empty on a row.
    #[error("line {line}: field `{field}` is empty")]
    EmptyField { line: u64, field: String },
    /// A field holds a value outside its allowed set (e.g. a region `level` other than
    /// province/city/county, or a level name that disagrees with the node's depth).
    #[error("line {line}: field `{field}` has invalid value {value:?}: {reason}")]
    InvalidValue {
        line: u64,
        field: String,
        value: String,
        reason: String,
    },
    /// The same code appears twice.
    #[error("line {line}: duplicate code {code:?}")]
    DuplicateCode { code: String, line: u64 },
    /// A row names a parent code that does not exist in the file.
    #[error("line {line}: code {code:?} names parent {parent:?}, which is not in the file")]
    MissingParent {
        code: String,
        parent: String,
        line: u64,
    },
    /// The parent links form a cycle (listed in parent order, e.g. `a → b → a` gives `[a, b]`).
    #[error("parent links form a cycle: {}", cycle_text(.codes))]
    Cycle { codes: Vec<String> },
    /// The input has a header but no data rows.
    #[error("no rows: the file has a header but no codes")]
    Empty,
    /// A taxonomy with this id is already registered.
    #[error("taxonomy id {id:?} is already registered")]
    DuplicateTaxonomy { id: String },
    /// An error while loading a particular file (wraps the cause).
    #[error("{}: {source}", .path.display())]
    File {
        path: PathBuf,
        source: Box<DatasetError>,
    },
    /// Reading failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl DatasetError {
    /// The innermost error, looking through [`DatasetError::File`] wrappers.
    pub fn root_cause(&self) -> &DatasetError {
        match self {
            DatasetError::File { source, .. } => source.root_cause(),
            other => other,
        }
    }

    pub(crate) fn in_file(self, path: &std::path::Path) -> DatasetError {
        DatasetError::File {
            path: path.to_path_buf(),
            source: Box::new(self),
        }
    }

    pub(crate) fn from_csv(e: csv::Error) -> DatasetError {
        let line = e.position().map(|p| p.line()).unwrap_or(0);
        match e.into_kind() {
            csv::ErrorKind::Io(io) => DatasetError::Io(io),
            csv::ErrorKind::Utf8 { err, .. } => DatasetError::Csv {
                line,
                message: format!("invalid UTF-8 in field {}", err.field() + 1),
            },
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => DatasetError::Csv {
                line,
                message: format!("expected {expected_len} fields, found {len}"),
            },
            other => DatasetError::Csv {
                line,
                message: format!("{other:?}"),
            },
        }
    }
}

fn cycle_text(codes: &[String]) -> String {
    let mut s = codes.join(" → ");
    if let Some(first) = codes.first() {
        s.push_str(" → ");
        s.push_str(first);
    }
    s
}
