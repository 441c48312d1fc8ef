//! Every domain crate's error mapped to the API error, in one place: the domain crates know
//! nothing of HTTP, and [`ApiError`] alone decides the status and the contract body.

use touxiang_auth::AuthError;
use touxiang_batch::BatchError;
use touxiang_flow::FlowError;
use touxiang_portfolio::PortfolioError;
use touxiang_review::ReviewError;

use super::ApiError;

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let message = e.to_string();
        match e {
            AuthError::InvalidRole(_) => ApiError::Validation {
                code: "invalid_role",
                message,
                field: Some("role".into()),
            },
            AuthError::InvalidName(_) => ApiError::Validation {
                code: "invalid_name",
                message,
                field: Some("name".into()),
            },
            AuthError::NameTaken(_) | AuthError::AlreadyRevoked(_) => ApiError::Conflict(message),
            AuthError::KeyNotFound(_) => ApiError::NotFound(message),
            AuthError::Random(_)
            | AuthError::Db(_)
            | AuthError::Store(_)
            | AuthError::KeysLost { .. }
            | AuthError::Io { .. } => ApiError::Internal(message),
        }
    }
}

impl From<ReviewError> for ApiError {
    fn from(e: ReviewError) -> Self {
        let message = e.to_string();
        let code = e.kind();
        let field = e.field().map(str::to_string);
        match e {
            ReviewError::NotFound(_) => ApiError::NotFound(message),
            ReviewError::InvalidCode { .. } | ReviewError::InvalidInput { .. } => {
                ApiError::Validation {
                    code,
                    message,
                    field,
                }
            }
            ReviewError::NotLeasedToYou { .. } => ApiError::Forbidden(message),
            ReviewError::LeaseExpired { .. } | ReviewError::AlreadyLabeled(_) => {
                ApiError::Conflict(message)
            }
            ReviewError::Db(_)
            | ReviewError::Json(_)
            | ReviewError::Io(_)
            | ReviewError::Store(_) => ApiError::Internal(message),
        }
    }
}

impl From<BatchError> for ApiError {
    fn from(e: BatchError) -> Self {
        let code = e.code();
        let message = e.to_string();
        match e {
            BatchError::Options { option, .. } => ApiError::Validation {
                code,
                message,
                field: Some(option.to_string()),
            },
            BatchError::Input { .. } | BatchError::CheckpointMismatch { .. } => {
                ApiError::Validation {
                    code,
                    message,
                    field: None,
                }
            }
            BatchError::Cancelled { .. } => ApiError::Conflict(message),
            BatchError::Labeler { .. } | BatchError::Review { .. } => ApiError::Backend(message),
            BatchError::Io { .. }
            | BatchError::Output { .. }
            | BatchError::Checkpoint { .. }
            | BatchError::Cache { .. }
            | BatchError::Store(_) => ApiError::Internal(message),
        }
    }
}

impl From<PortfolioError> for ApiError {
    fn from(e: PortfolioError) -> Self {
        let code = e.code();
        let field = e.field().map(str::to_string);
        let message = e.to_string();
        match e {
            PortfolioError::InvalidQuery { .. }
            | PortfolioError::MissingColumn { .. }
            | PortfolioError::InvalidMap(_) => ApiError::Validation {
                code,
                message,
                field,
            },
            PortfolioError::Csv(_) | PortfolioError::Xlsx(_) | PortfolioError::Json(_) => {
                ApiError::BadRequest {
                    code,
                    message,
                    field: None,
                }
            }
            PortfolioError::UnsupportedFormat(_) => ApiError::UnsupportedMediaType(message),
            PortfolioError::UnknownPortfolio(_) => ApiError::NotFound(message),
            PortfolioError::ConfigConflict(_) => ApiError::Conflict(message),
            PortfolioError::Label(_) => ApiError::Backend(message),
            PortfolioError::Sqlite(_)
            | PortfolioError::Io(_)
            | PortfolioError::Export(_)
            | PortfolioError::Store(_) => ApiError::Internal(message),
        }
    }
}

impl From<FlowError> for ApiError {
    fn from(e: FlowError) -> Self {
        let code = e.code();
        let field = e.field().map(str::to_string);
        let message = e.to_string();
        match e {
            FlowError::Portfolio(p) => p.into(),
            FlowError::MissingColumn(_) | FlowError::Invalid { .. } => ApiError::Validation {
                code,
                message,
                field,
            },
            FlowError::UnknownPortfolio(_)
            | FlowError::UnknownLoan { .. }
            | FlowError::UnknownBorrower { .. } => ApiError::NotFound(message),
            FlowError::Label(_) => ApiError::Backend(message),
            FlowError::Sqlite(_) | FlowError::Io(_) | FlowError::Store(_) => {
                ApiError::Internal(message)
            }
        }
    }
}

impl From<touxiang_model::ModelError> for ApiError {
    fn from(e: touxiang_model::ModelError) -> Self {
        match e {
            touxiang_model::ModelError::Input(m) => ApiError::Validation {
                code: "invalid_input",
                message: m,
                field: None,
            },
            other => ApiError::Backend(other.to_string()),
        }
    }
}
