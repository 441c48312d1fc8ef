//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading evaluation data, scoring, training the baseline or
/// writing a report.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line of a JSONL input is malformed or names a code the taxonomy does not contain.
    #[error("{path}:{line}: {message}")]
    BadLine {
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        message: String,
    },
    /// A record handed to the metrics is inconsistent with the taxonomy (unknown gold or
    /// predicted code, a predicted path whose steps are not parent → child, a non-finite
    /// confidence).
    #[error("record {index}: {message}")]
    BadRecord {
        /// 0-based index of the record in the evaluated set.
        index: usize,
        message: String,
    },
    /// The classifier under evaluation failed or returned the wrong number of results.
    #[error("classifier failed: {0}")]
    Classifier(String),
    /// Nothing to evaluate or train on, or an invalid option.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A report could not be serialised.
    #[error("serialising the report: {0}")]
    Json(#[from] serde_json::Error),
}

impl EvalError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EvalError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = EvalError> = std::result::Result<T, E>;
