//! The service's error type and the ONE place that maps errors to HTTP statuses.
//!
//! Every error body has the contract shape
//! `{"error": {"code": "snake_case_kind", "message": "human text", "field": "items[3].text"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Well-formed JSON whose content is not acceptable (→ 422).
    #[error("{message}")]
    Validation {
        code: &'static str,
        message: String,
        field: Option<String>,
    },
    /// Malformed request: bad JSON, not UTF-8, bad query string (→ 400).
    #[error("{message}")]
    BadRequest {
        code: &'static str,
        message: String,
        field: Option<String>,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The request queue is full: shed load instead of growing memory (→ 429).
    #[error("{0}")]
    Overloaded(String),
    /// Model, taxonomy or indexes still loading (→ 503).
    #[error("{0}")]
    NotReady(String),
    /// A backend (model, vector store) failed (→ 424).
    #[error("{0}")]
    Backend(String),
    #[error("{0}")]
    Internal(String),
}

/// Error body as served (documented in the OpenAPI document).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable kind, snake_case.
    pub code: String,
    pub message: String,
    /// The request field at fault, e.g. `items[3].text`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// A 422 naming the field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation {
            code: "invalid_field",
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// Status, machine code and field of this error.
    pub fn parts(&self) -> (StatusCode, &'static str, Option<&str>) {
        match self {
            ApiError::Validation { code, field, .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, code, field.as_deref())
            }
            ApiError::BadRequest { code, field, .. } => {
                (StatusCode::BAD_REQUEST, code, field.as_deref())
            }
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", None),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", None),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", None),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict", None),
            ApiError::PayloadTooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None)
            }
            ApiError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                None,
            ),
            ApiError::Overloaded(_) => (StatusCode::TOO_MANY_REQUESTS, "overloaded", None),
            ApiError::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready", None),
            ApiError::Backend(_) => (StatusCode::FAILED_DEPENDENCY, "backend_error", None),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", None),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, field) = self.parts();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Expected while loading: readiness probes poll until ready.
            tracing::debug!(%status, error = %self, "not ready");
        } else if status.is_server_error() {
            tracing::error!(%status, error = %self, "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message: self.to_string(),
                field: field.map(str::to_string),
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        resp
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
