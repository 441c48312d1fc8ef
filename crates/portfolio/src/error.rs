//! The one error type of this crate.

/// Why a portfolio operation failed as a whole.
///
/// Row-level problems during ingest are *not* errors: they are reported as [`crate::RowError`]s in
/// the [`crate::IngestReport`]. This enum is for file-level and system-level failures.
#[derive(Debug, thiserror::Error)]
pub enum PortfolioError {
    /// The embedded database failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Reading or writing a file failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The CSV input is malformed at a place that cannot be attributed to one row.
    #[error("csv error: {0}")]
    Csv(String),
    /// The XLSX input cannot be read.
    #[error("xlsx error: {0}")]
    Xlsx(String),
    /// A JSONL line is not a JSON object (file-level because the header cannot be derived).
    #[error("json error: {0}")]
    Json(String),
    /// A required canonical column is absent from the input (after applying the column map).
    #[error("missing required column `{column}`{}", source_hint(.mapped_from))]
    MissingColumn {
        /// Canonical column name.
        column: String,
        /// Source column it was mapped from, when a `--map` entry named one.
        mapped_from: Option<String>,
    },
    /// The column map is malformed or names an unknown canonical column.
    #[error("invalid column map: {0}")]
    InvalidMap(String),
    /// The input format could not be determined or is unsupported.
    #[error("unsupported input format: {0}")]
    UnsupportedFormat(String),
    /// No portfolio with that name exists.
    #[error("unknown portfolio `{0}`")]
    UnknownPortfolio(String),
    /// A query parameter is invalid.
    #[error("invalid query parameter `{field}`: {message}")]
    InvalidQuery {
        /// Name of the parameter at fault (e.g. `by`, `filter.region.province`).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Options disagree with the portfolio's stored configuration (e.g. another region table).
    #[error("portfolio configuration conflict: {0}")]
    ConfigConflict(String),
    /// The industry labeler failed.
    #[error(transparent)]
    Label(#[from] touxiang_datasets::LabelError),
    /// Export failed.
    #[error("export error: {0}")]
    Export(String),
    /// The store file is damaged (empty, corrupt, without its tables): refused, unchanged.
    #[error(transparent)]
    Store(#[from] touxiang_sqlite::StoreError),
}

fn source_hint(m: &Option<String>) -> String {
    match m {
        Some(s) => format!(" (mapped from source column `{s}`)"),
        None => String::new(),
    }
}

impl PortfolioError {
    /// Short snake_case kind, for the HTTP error body's `code`.
    pub fn code(&self) -> &'static str {
        match self {
            PortfolioError::Sqlite(_) => "database_error",
            PortfolioError::Io(_) => "io_error",
            PortfolioError::Csv(_) => "invalid_csv",
            PortfolioError::Xlsx(_) => "invalid_xlsx",
            PortfolioError::Json(_) => "invalid_json",
            PortfolioError::MissingColumn { .. } => "missing_column",
            PortfolioError::InvalidMap(_) => "invalid_map",
            PortfolioError::UnsupportedFormat(_) => "unsupported_format",
            PortfolioError::UnknownPortfolio(_) => "unknown_portfolio",
            PortfolioError::InvalidQuery { .. } => "invalid_query",
            PortfolioError::ConfigConflict(_) => "config_conflict",
            PortfolioError::Label(_) => "labeling_failed",
            PortfolioError::Export(_) => "export_failed",
            PortfolioError::Store(_) => "database_error",
        }
    }

    /// The field at fault, when one is (for the HTTP error body's `field`).
    pub fn field(&self) -> Option<&str> {
        match self {
            PortfolioError::MissingColumn { column, .. } => Some(column),
            PortfolioError::InvalidQuery { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = PortfolioError> = std::result::Result<T, E>;

pub(crate) fn invalid(field: &str, message: impl Into<String>) -> PortfolioError {
    PortfolioError::InvalidQuery {
        field: field.to_string(),
        message: message.into(),
    }
}
