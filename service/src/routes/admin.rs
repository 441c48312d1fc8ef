//! Administration: API keys and runtime settings (admin keys only; see [`crate::auth`]).
//!
//! * `GET /v1/admin/keys` — every key (never the key itself or its hash).
//! * `POST /v1/admin/keys` `{role, name}` → 201 `{key_id, key, name, role}` (the key is shown once).
//! * `DELETE /v1/admin/keys/{key_id_or_name}` — revoke; takes effect on the next request.
//! * `GET|PUT /v1/admin/settings` `{qa_sample_rate, double_review_rate}` — runtime rates.
//!   Settings changed here hold until the process restarts (the configuration file stays the
//!   persistent source).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use touxiang_auth::{KeyInfo, Permission as P, Role};
use utoipa::ToSchema;

use crate::auth::Access::Needs;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::review::blocking;
use crate::routes::access::Routes;
use crate::state::AppState;

/// The admin routes (merged into [`crate::app`]): key management (`manage_keys`) and run-time
/// settings (`settings`).
pub fn router() -> Routes {
    let keys = Needs(P::ManageKeys);
    let settings = Needs(P::Settings);
    Routes::new()
        .get("/v1/admin/keys", keys, list_keys)
        .post("/v1/admin/keys", keys, create_key)
        .delete("/v1/admin/keys/{key}", keys, revoke_key)
        .get("/v1/admin/settings", settings, get_settings)
        .put("/v1/admin/settings", settings, put_settings)
}

/// Key metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyDoc {
    pub key_id: String,
    pub name: String,
    /// `originator` | `reviewer` | `analyst` | `admin`.
    pub role: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<KeyInfo> for KeyDoc {
    fn from(k: KeyInfo) -> Self {
        KeyDoc {
            key_id: k.key_id,
            name: k.name,
            role: k.role.as_str().to_string(),
            created_at: k.created_at,
            revoked_at: k.revoked_at,
            last_used: k.last_used,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyDoc>,
}

/// Every API key, oldest first.
#[utoipa::path(get, path = "/v1/admin/keys", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = KeyList), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list_keys(State(s): State<AppState>) -> Result<Json<KeyList>, ApiError> {
    let ks = s.key_store();
    let keys = blocking(move || Ok(ks.list()?)).await?;
    Ok(Json(KeyList {
        keys: keys.into_iter().map(KeyDoc::from).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateKeyRequest {
    /// `originator` | `reviewer` | `analyst` | `admin`.
    pub role: String,
    /// 1-64 characters of `A-Z a-z 0-9 . _ @ -`; for reviewer keys this is the reviewer id.
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    pub key_id: String,
    /// The key (shown once; only its hash is stored).
    pub key: String,
    pub name: String,
    pub role: String,
}

/// Create a key.
#[utoipa::path(post, path = "/v1/admin/keys", tag = "admin", request_body = CreateKeyRequest, security(("bearer" = [])),
    responses((status = 201, body = CreatedKey), (status = 409, description = "an active key has this name", body = crate::error::ErrorBody),
        (status = 422, description = "invalid role or name", body = crate::error::ErrorBody)))]
pub async fn create_key(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<CreateKeyRequest>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let role: Role = req.role.parse()?;
    let ks = s.key_store();
    let name = req.name.clone();
    let (key_id, key) = blocking(move || Ok(ks.create(role, &name)?)).await?;
    tracing::info!(%key_id, name = %req.name, %role, "API key created over HTTP");
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            key_id,
            key,
            name: req.name,
            role: role.as_str().to_string(),
        }),
    ))
}

/// Revoke a key by key id or by the name of an active key.
#[utoipa::path(delete, path = "/v1/admin/keys/{key}", tag = "admin",
    params(("key" = String, Path, description = "key id (`key_…`) or name")), security(("bearer" = [])),
    responses((status = 200, body = KeyDoc), (status = 404, body = crate::error::ErrorBody), (status = 409, description = "already revoked", body = crate::error::ErrorBody)))]
pub async fn revoke_key(
    State(s): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<KeyDoc>, ApiError> {
    let ks = s.key_store();
    let info = blocking(move || Ok(ks.revoke(&key)?)).await?;
    tracing::info!(key_id = %info.key_id, name = %info.name, "API key revoked over HTTP");
    Ok(Json(info.into()))
}

/// Runtime settings.
#[derive(Debug, Serialize, Deserialize, ToSchema, Default)]
pub struct Settings {
    /// Share (0..=1) of `auto` decisions sent to review as a QA sample.
    #[serde(default)]
    pub qa_sample_rate: Option<f64>,
    /// Share (0..=1) of review items labeled by two reviewers.
    #[serde(default)]
    pub double_review_rate: Option<f64>,
}

fn current(s: &AppState) -> Result<Settings, ApiError> {
    let ctx = s.review();
    Ok(Settings {
        qa_sample_rate: Some(ctx.qa.rate()),
        double_review_rate: Some(ctx.double_review_rate()),
    })
}

/// Current runtime settings.
#[utoipa::path(get, path = "/v1/admin/settings", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Settings)))]
pub async fn get_settings(State(s): State<AppState>) -> Result<Json<Settings>, ApiError> {
    Ok(Json(current(&s)?))
}

/// Change runtime settings (fields left out stay as they are). Holds until restart.
#[utoipa::path(put, path = "/v1/admin/settings", tag = "admin", request_body = Settings, security(("bearer" = [])),
    responses((status = 200, body = Settings), (status = 422, description = "a rate outside 0..=1", body = crate::error::ErrorBody)))]
pub async fn put_settings(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<Settings>,
) -> Result<Json<Settings>, ApiError> {
    let ctx = s.review();
    for (field, v) in [
        ("qa_sample_rate", req.qa_sample_rate),
        ("double_review_rate", req.double_review_rate),
    ] {
        if let Some(v) = v {
            if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                return Err(ApiError::invalid(
                    field,
                    format!("{field} must be within 0..=1, got {v}"),
                ));
            }
        }
    }
    if let Some(r) = req.qa_sample_rate {
        ctx.qa.set_rate(r)?;
    }
    if let Some(r) = req.double_review_rate {
        ctx.set_double_review_rate(r)?;
    }
    tracing::info!(qa_sample_rate = ?req.qa_sample_rate, double_review_rate = ?req.double_review_rate, "runtime settings changed");
    Ok(Json(current(&s)?))
}
