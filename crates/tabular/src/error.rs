//! The one error type of this crate.

/// Why an input cannot be read as a whole. Problems with one row are not errors: they travel
/// with the row ([`crate::Problem`], [`crate::CellIssue`]).
#[derive(Debug, thiserror::Error)]
pub enum TabularError {
    /// Reading the input failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The input has no header row (an empty CSV file, an empty sheet).
    #[error("empty file: no header row")]
    NoHeader,
    /// The CSV header row is broken.
    #[error("header (line {line}): {reason}")]
    Header { line: u64, reason: String },
    /// The workbook cannot be read.
    #[error("{0}")]
    Xlsx(String),
    /// The Parquet file cannot be read.
    #[error("parquet: {0}")]
    Parquet(String),
    /// The format cannot be read this way.
    #[error("unsupported: {0}")]
    Unsupported(String),
}
