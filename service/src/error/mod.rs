//! The service's error type and the ONE place that maps errors to HTTP statuses.
//!
//! Every error body has the contract shape
//! `{"error": {"code": "snake_case_kind", "message": "human text", "field": "items[3].text"}}`,
//! also for the errors axum and tower-http write themselves ([`contract_errors`]).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

mod domain;

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
    /// The request queue is full or its expected wait too long: shed load instead of growing
    /// memory and latency (→ 429 with `Retry-After: retry_after_secs`).
    #[error("{message}")]
    Overloaded {
        message: String,
        retry_after_secs: u64,
    },
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
        let status = match self {
            ApiError::Validation { code, field, .. } => {
                return (StatusCode::UNPROCESSABLE_ENTITY, code, field.as_deref())
            }
            ApiError::BadRequest { code, field, .. } => {
                return (StatusCode::BAD_REQUEST, code, field.as_deref())
            }
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Backend(_) => StatusCode::FAILED_DEPENDENCY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, status_code_name(status), None)
    }
}

/// The machine code of an error status when nothing more specific is known: the code of
/// [`ApiError`]'s plain variants, and of error responses other layers produce (see
/// [`contract_errors`]).
pub fn status_code_name(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_ACCEPTABLE => "not_acceptable",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::CONFLICT => "conflict",
        StatusCode::LENGTH_REQUIRED => "length_required",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_request",
        StatusCode::FAILED_DEPENDENCY => "backend_error",
        StatusCode::TOO_MANY_REQUESTS => "overloaded",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        StatusCode::INTERNAL_SERVER_ERROR => "internal",
        StatusCode::SERVICE_UNAVAILABLE => "not_ready",
        StatusCode::GATEWAY_TIMEOUT => "gateway_timeout",
        s if s.is_client_error() => "client_error",
        _ => "server_error",
    }
}

/// The media type of a `Content-Type` value without parameters, lowercased.
pub(crate) fn mime_essence(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Does this response already carry JSON (the contract body, or the ingest summary)?
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            let mime = mime_essence(ct);
            mime == "application/json" || mime.ends_with("+json")
        })
        .unwrap_or(false)
}

/// Middleware ([`crate::app`] installs it around everything else): every 4xx/5xx response that
/// is not JSON — written by a layer or an extractor rather than by [`ApiError`]: axum's
/// plain-text rejections (path, query, body), `DefaultBodyLimit`'s 413, the `TimeoutLayer`'s
/// empty 408, the router's empty 405 — leaves in the contract shape, with the code of its status
/// ([`status_code_name`]) and the original text (if any) as the message. Status and headers
/// (`Allow`, `Retry-After`, `WWW-Authenticate`, …) are kept.
pub async fn contract_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(resp.headers()) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    // Such bodies are short texts built in memory; anything longer is not worth quoting.
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allow = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .filter(|a| !a.is_empty())
                .map(|a| format!(" (allowed: {a})"))
                .unwrap_or_default();
            format!("method {method} is not allowed on {path}{allow}")
        }
        StatusCode::REQUEST_TIMEOUT if text.is_empty() => format!(
            "{method} {path} took longer than the configured timeout \
             (limits.request_timeout_secs, or limits.upload_timeout_secs for uploads)"
        ),
        StatusCode::PAYLOAD_TOO_LARGE if text.is_empty() => {
            "request body exceeds the size limit".to_string()
        }
        _ if !text.is_empty() => text,
        _ => status.canonical_reason().unwrap_or("error").to_string(),
    };
    if status.is_server_error() {
        tracing::error!(%status, %method, %path, %message, "request failed");
    }
    let body = ErrorBody {
        error: ErrorDetail {
            code: status_code_name(status).to_string(),
            message,
            field: None,
        },
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(bytes))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, field) = self.parts();
        let retry_after = match &self {
            ApiError::Overloaded {
                retry_after_secs, ..
            } => (*retry_after_secs).max(1),
            _ => 1,
        };
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
                axum::http::HeaderValue::from(retry_after),
            );
        }
        resp
    }
}
