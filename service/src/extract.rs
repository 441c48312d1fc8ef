//! A JSON extractor whose rejections come back in the service's own error shape, naming the
//! field at fault (via serde_path_to_error).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Like `axum::Json`, but errors are [`ApiError`]s: 415 without a JSON content type, 413 over the
/// body limit, 400 for bytes that are not UTF-8 or not JSON, 422 (with `field`) for JSON of the
/// wrong shape.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !(mime == "application/json" || mime.ends_with("+json")) {
            return Err(ApiError::UnsupportedMediaType(format!(
                "expected Content-Type: application/json, got {:?}",
                if ct.is_empty() { "(none)" } else { ct }
            )));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(format!("request body exceeds the limit: {e}"))
            } else {
                ApiError::BadRequest {
                    code: "unreadable_body",
                    message: e.to_string(),
                    field: None,
                }
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parse JSON bytes into `T` with field-naming errors: 400 `invalid_utf8`; 400 `invalid_json`
/// for anything that is not exactly one JSON value (trailing non-whitespace included); 422
/// `invalid_body` for a value that is not an object; 422 `invalid_field` naming the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ApiError::BadRequest {
        code: "invalid_utf8",
        message: format!(
            "request body is not valid UTF-8 (first bad byte at offset {})",
            e.valid_up_to()
        ),
        field: None,
    })?;
    // Syntax first, over the whole body: bad syntax, a truncated body and anything after the
    // value (`{...} xyz`) are 400 `invalid_json` whatever the shape of what came before.
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| invalid_json(&e))?;
    // Every request body is a JSON object. serde would also read a struct from an array
    // (`[null, null]` fills its fields in order), which no client means to send.
    if !text.trim_start().starts_with('{') {
        return Err(ApiError::Validation {
            code: "invalid_body",
            message: "request body must be a JSON object".into(),
            field: None,
        });
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = (path != "." && !path.is_empty()).then_some(path);
        if inner.is_syntax() || inner.is_eof() {
            invalid_json(&inner)
        } else {
            let message = match &field {
                Some(f) => format!("{f}: {inner}"),
                None => inner.to_string(),
            };
            ApiError::Validation {
                code: "invalid_field",
                message,
                field,
            }
        }
    })?;
    // Only whitespace may follow the value (checked above; kept so this stays true on its own).
    de.end().map_err(|e| invalid_json(&e))?;
    Ok(value)
}

fn invalid_json(e: &serde_json::Error) -> ApiError {
    ApiError::BadRequest {
        code: "invalid_json",
        message: format!("request body is not valid JSON: {e}"),
        field: None,
    }
}
