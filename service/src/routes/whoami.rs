//! `GET /v1/whoami` — who the presented key is: its name, role and the permissions the role
//! holds ([`touxiang_auth::allowed`]). Any valid key may ask ([`crate::auth::Access::AnyKey`]).

use axum::extract::State;
use axum::{Extension, Json};
use serde::Serialize;
use touxiang_auth::{allowed, Permission, Principal, Role};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;

/// The caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    /// Name given to the key at creation (a reviewer key's name is the reviewer id); `local`
    /// when authentication is off.
    pub name: String,
    /// `reviewer` | `analyst` | `originator` | `admin`.
    pub role: String,
    /// Permissions the role holds (`classify`, `embed`, `review_work`, `review_stats`,
    /// `review_reports`, `aggregate`, `export`, `portfolio_write`, `metrics`, `manage_keys`,
    /// `settings`, `reload`), in that order.
    pub permissions: Vec<String>,
    /// False when the service runs with `--insecure-no-auth` (every caller is an admin).
    pub auth: bool,
}

fn permissions(role: Role) -> Vec<String> {
    Permission::ALL
        .iter()
        .filter(|p| allowed(role, **p))
        .map(|p| p.to_string())
        .collect()
}

/// Who the presented key is, and what it may do.
#[utoipa::path(get, path = "/v1/whoami", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = WhoAmI)))]
pub async fn whoami(
    State(s): State<AppState>,
    caller: Option<Extension<Principal>>,
) -> Result<Json<WhoAmI>, ApiError> {
    if s.config().insecure_no_auth {
        return Ok(Json(WhoAmI {
            name: "local".into(),
            role: Role::Admin.to_string(),
            permissions: permissions(Role::Admin),
            auth: false,
        }));
    }
    let Some(Extension(p)) = caller else {
        return Err(ApiError::Unauthorized("missing API key".into()));
    };
    Ok(Json(WhoAmI {
        permissions: permissions(p.role),
        role: p.role.to_string(),
        name: p.name,
        auth: true,
    }))
}
