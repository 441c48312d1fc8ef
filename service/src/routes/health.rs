//! Liveness, readiness and Prometheus metrics.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::state::AppState;

/// 200 while the process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "process is up")))]
pub async fn healthz(State(s): State<AppState>) -> impl IntoResponse {
    Json(json!({"status": "ok", "uptime_secs": s.inner.started.elapsed().as_secs()}))
}

/// 200 once model, taxonomy and indexes are loaded; 503 before (or when loading failed).
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, description = "ready"), (status = 503, description = "still loading", body = crate::error::ErrorBody)))]
pub async fn readyz(State(s): State<AppState>) -> axum::response::Response {
    match s.engine() {
        Ok(_) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text", content_type = "text/plain")))]
pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let body = s
        .inner
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    (
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4")],
        body,
    )
}
