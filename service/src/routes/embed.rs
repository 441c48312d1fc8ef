//! `POST /v1/embed` — exactly as in API.md.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use touxiang_model::{Kind, MODEL_ID};
use utoipa::ToSchema;

use crate::auth::Access::Needs;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::routes::access::Routes;
use crate::state::AppState;

/// The embedding route (merged into [`crate::app`]): keys with the `embed` permission.
pub fn router() -> Routes {
    Routes::new().post("/v1/embed", Needs(touxiang_auth::Permission::Embed), embed)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EmbedRequest {
    /// Texts to embed (1..=limits.max_items, each 1..=limits.max_text_chars characters).
    pub texts: Vec<String>,
    /// `query` (default) or `passage`: the e5 prefix.
    #[serde(default)]
    #[schema(value_type = String, example = "query")]
    pub kind: Kind,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmbedResponse {
    pub model: String,
    pub dim: usize,
    /// L2-normalised vectors, one per text, in order.
    pub embeddings: Vec<Vec<f32>>,
}

/// Check a list of texts against the limits; `field` names the list (e.g. `texts`).
pub fn validate_texts<'a>(
    s: &AppState,
    field: &str,
    texts: impl ExactSizeIterator<Item = (String, &'a str)>,
) -> Result<(), ApiError> {
    let l = &s.config().limits;
    if texts.len() == 0 {
        return Err(ApiError::invalid(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if texts.len() > l.max_items {
        return Err(ApiError::invalid(
            field,
            format!(
                "{field} has {} entries; at most {} per request",
                texts.len(),
                l.max_items
            ),
        ));
    }
    for (name, t) in texts {
        if t.trim().is_empty() {
            return Err(ApiError::invalid(name.clone(), format!("{name} is empty")));
        }
        let n = t.chars().count();
        if n > l.max_text_chars {
            return Err(ApiError::invalid(
                name.clone(),
                format!("{name} has {n} characters; at most {}", l.max_text_chars),
            ));
        }
    }
    Ok(())
}

/// Embed texts with multilingual-e5-small (4-bit).
#[utoipa::path(post, path = "/v1/embed", tag = "embeddings", request_body = EmbedRequest,
    security(("bearer" = [])),
    responses((status = 200, body = EmbedResponse),
        (status = 400, description = "not JSON / not UTF-8", body = crate::error::ErrorBody),
        (status = 413, description = "body over the limit", body = crate::error::ErrorBody),
        (status = 422, description = "invalid field", body = crate::error::ErrorBody),
        (status = 429, description = "queue full", body = crate::error::ErrorBody),
        (status = 503, description = "still loading", body = crate::error::ErrorBody)))]
pub async fn embed(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<EmbedRequest>,
) -> Result<Json<EmbedResponse>, ApiError> {
    validate_texts(
        &s,
        "texts",
        req.texts
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("texts[{i}]"), t.as_str())),
    )?;
    let engine = s.engine()?;
    let texts: Vec<&str> = req.texts.iter().map(String::as_str).collect();
    let ids = engine.model.tokenize(&texts, req.kind)?;
    let embeddings = engine.queue.embed(ids).await?;
    Ok(Json(EmbedResponse {
        model: MODEL_ID.into(),
        dim: engine.model.encoder().hidden(),
        embeddings,
    }))
}
