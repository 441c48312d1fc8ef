//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while building a corpus, training, loading artifacts or classifying.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line of a JSONL/CSV input is malformed or refers to something unknown.
    #[error("{path}:{line}: {message}")]
    BadLine {
        path: PathBuf,
        /// 1-based line (or record) number.
        line: usize,
        message: String,
    },
    /// A code that the taxonomy does not contain.
    #[error("unknown code {code:?} in {context}")]
    UnknownCode { code: String, context: String },
    /// The encoder failed.
    #[error("embedding failed: {0}")]
    Embed(String),
    /// An embedding of the wrong size or a non-finite value.
    #[error("bad embedding: {0}")]
    BadEmbedding(String),
    /// Artifacts on disk are missing a piece or do not fit together.
    #[error("artifacts in {dir}: {message}")]
    Artifacts { dir: PathBuf, message: String },
    /// Configuration or input that cannot be trained on.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// Tensor backend failure.
    #[error("tensor: {0}")]
    Tensor(#[from] candle_core::Error),
    /// JSON (de)serialisation failure outside of a line-oriented input.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
