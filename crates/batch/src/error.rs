//! The crate's error type and the per-row issue record.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything that stops a batch run. Row-level problems (empty text, broken quoting, bad
/// encoding) never become a `BatchError`: they are reported as [`RowIssue`]s and the run goes on.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Reading or writing a file failed.
    #[error("{context} {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Invalid options (unknown format, bad shard, missing review sink, ...).
    #[error("invalid option {option}: {message}")]
    Options {
        option: &'static str,
        message: String,
    },
    /// The input cannot be read at all (missing column, unreadable header, corrupt container).
    #[error("input {path}: {message}")]
    Input { path: PathBuf, message: String },
    /// Writing an output or report failed.
    #[error("output {path}: {message}")]
    Output { path: PathBuf, message: String },
    /// `--resume` found a checkpoint that belongs to other input or options.
    #[error("checkpoint {path} does not match this input/options ({message}); delete it or run without --resume")]
    CheckpointMismatch { path: PathBuf, message: String },
    /// The checkpoint or the partial output is damaged.
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    /// The label cache failed.
    #[error("label cache {path}: {message}")]
    Cache { path: String, message: String },
    /// The labeler failed on a whole batch (the run can be resumed).
    #[error("labeler failed at input row {row}: {message}")]
    Labeler { row: u64, message: String },
    /// The review sink failed (the run can be resumed).
    #[error("review queue failed at input row {row}: {message}")]
    Review { row: u64, message: String },
    /// The cancel flag was raised; everything up to `rows_done` is checkpointed.
    #[error("cancelled after {rows_done} rows (resume with --resume)")]
    Cancelled { rows_done: u64 },
    /// The label cache file is damaged (empty, corrupt, without its table): refused, unchanged.
    #[error(transparent)]
    Store(#[from] touxiang_sqlite::StoreError),
}

impl BatchError {
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        BatchError::Io {
            context,
            path: path.into(),
            source,
        }
    }

    /// A stable snake_case kind for API error bodies (`{"error": {"code": ...}}`).
    pub fn code(&self) -> &'static str {
        match self {
            BatchError::Io { .. } => "io_error",
            BatchError::Options { .. } => "invalid_option",
            BatchError::Input { .. } => "invalid_input",
            BatchError::Output { .. } => "output_error",
            BatchError::CheckpointMismatch { .. } => "checkpoint_mismatch",
            BatchError::Checkpoint { .. } => "checkpoint_error",
            BatchError::Cache { .. } => "cache_error",
            BatchError::Labeler { .. } => "labeler_error",
            BatchError::Review { .. } => "review_error",
            BatchError::Cancelled { .. } => "cancelled",
            BatchError::Store(_) => "cache_error",
        }
    }
}

/// One problem with one input row. `row` is the 1-based data row number (header excluded, blank
/// lines not counted), the same numbering in every format; `line` is where it starts in the file
/// (physical line for CSV/JSONL, sheet row for XLSX; `None` for Parquet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowIssue {
    pub row: u64,
    pub line: Option<u64>,
    pub id: String,
    pub field: String,
    pub reason: String,
}
