//! The one error type of this crate.

use touxiang_portfolio::PortfolioError;

/// Why a fund-flow operation failed as a whole. Row-level problems of an ingest are not errors:
/// they are [`touxiang_portfolio::RowError`]s in the [`crate::IngestSummary`].
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// Reading the input file failed (unreadable CSV/XLSX/JSONL, unsupported format), or the
    /// portfolio store failed.
    #[error(transparent)]
    Portfolio(#[from] PortfolioError),
    /// The embedded database failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Reading or writing a file failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The store file is damaged (empty, corrupt, without its tables): refused, unchanged.
    #[error(transparent)]
    Store(#[from] touxiang_sqlite::StoreError),
    /// A required column is absent from the input.
    #[error("missing required column `{0}`")]
    MissingColumn(String),
    /// No portfolio with that name exists.
    #[error("unknown portfolio `{0}`")]
    UnknownPortfolio(String),
    /// No loan with that id in the portfolio.
    #[error("no loan {loan_id:?} in portfolio {portfolio:?}")]
    UnknownLoan {
        /// Portfolio name.
        portfolio: String,
        /// Loan id asked for.
        loan_id: String,
    },
    /// No borrower with that id or name in the portfolio.
    #[error("no borrower {borrower:?} in portfolio {portfolio:?}")]
    UnknownBorrower {
        /// Portfolio name.
        portfolio: String,
        /// Borrower id or name asked for.
        borrower: String,
    },
    /// A parameter is invalid.
    #[error("invalid parameter `{field}`: {message}")]
    Invalid {
        /// The parameter at fault.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The payee labeler failed.
    #[error(transparent)]
    Label(#[from] touxiang_datasets::LabelError),
}

impl FlowError {
    /// Short snake_case kind, for the HTTP error body's `code`.
    pub fn code(&self) -> &'static str {
        match self {
            FlowError::Portfolio(e) => e.code(),
            FlowError::Sqlite(_) | FlowError::Store(_) => "database_error",
            FlowError::Io(_) => "io_error",
            FlowError::MissingColumn(_) => "missing_column",
            FlowError::UnknownPortfolio(_) => "unknown_portfolio",
            FlowError::UnknownLoan { .. } => "unknown_loan",
            FlowError::UnknownBorrower { .. } => "unknown_borrower",
            FlowError::Invalid { .. } => "invalid_query",
            FlowError::Label(_) => "labeling_failed",
        }
    }

    /// The field at fault, when one is.
    pub fn field(&self) -> Option<&str> {
        match self {
            FlowError::Portfolio(e) => e.field(),
            FlowError::MissingColumn(c) => Some(c),
            FlowError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = FlowError> = std::result::Result<T, E>;

pub(crate) fn invalid(field: &str, message: impl Into<String>) -> FlowError {
    FlowError::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}
