//! Liveness, readiness and Prometheus metrics.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::auth::Access::{Needs, Open};
use crate::routes::access::Routes;
use crate::state::AppState;

/// Liveness and readiness (open: probes carry no key) and the metrics (keys with the
/// `metrics` permission).
pub fn router() -> Routes {
    Routes::new()
        .get("/healthz", Open, healthz)
        .get("/readyz", Open, readyz)
        .get(
            "/metrics",
            Needs(touxiang_auth::Permission::Metrics),
            metrics,
        )
}

/// 200 while the process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "process is up")))]
pub async fn healthz(State(s): State<AppState>) -> impl IntoResponse {
    Json(json!({"status": "ok", "uptime_secs": s.started().elapsed().as_secs()}))
}

/// 200 once model, taxonomy and indexes are loaded; 503 before (or when loading failed). The
/// body says how far seeding the neighbour store is: `exemplars.seeded` of `exemplars.total`
/// (summed over taxonomies, per taxonomy under `exemplars.taxonomies`); until a taxonomy's
/// exemplars are all in, its classifications use the heads-only calibration
/// (`neighbors_ready: false`). `store` tells which exemplar store serves (`embedded` or `qdrant`),
/// whether it answers now and how many writes wait in its outbox: while Qdrant is down the
/// service stays ready (200) and classifies without neighbours (`neighbors_available: false`).
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, description = "ready; e.g. `{\"status\":\"ready\",\"exemplars\":{\"seeded\":12000,\"total\":58208,\"taxonomies\":{\"gbt4754-2017\":{\"seeded\":12000,\"total\":58208,\"neighbors_ready\":false}}},\"store\":{\"backend\":\"qdrant\",\"reachable\":false,\"pending_writes\":3}}`: `store` is a `StoreStatus`"),
    (status = 503, description = "still loading", body = crate::error::ErrorBody)))]
pub async fn readyz(State(s): State<AppState>) -> axum::response::Response {
    match s.engine() {
        Ok(e) => {
            let (mut seeded, mut total) = (0, 0);
            let mut by_tax = serde_json::Map::new();
            let mut ids: Vec<&String> = e.models.keys().collect();
            ids.sort();
            for id in ids {
                let m = &e.models[id];
                let (s, t) = m.seeding.get();
                let ready = m.neighbors_ready.load(std::sync::atomic::Ordering::SeqCst);
                seeded += s;
                total += t;
                by_tax.insert(
                    id.clone(),
                    json!({"seeded": s, "total": t, "neighbors_ready": ready}),
                );
            }
            let store = crate::vector_store::status(&s).await;
            Json(json!({
                "status": "ready",
                "exemplars": {"seeded": seeded, "total": total, "taxonomies": by_tax},
                "store": store,
            }))
            .into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Prometheus text exposition (with `touxiang_vector_store_reachable{backend}` and
/// `touxiang_vector_outbox_pending` checked at each scrape). Needs a key with permission `metrics` (analyst and admin keys;
/// declared where the route is added, in [`crate::routes::app`]), unless the server runs with `--insecure-no-auth`.
#[utoipa::path(get, path = "/metrics", tag = "ops", security(("bearer" = [])),
    responses((status = 200, description = "Prometheus text", content_type = "text/plain"),
        (status = 401, description = "Missing or unknown API key", body = crate::error::ErrorBody),
        (status = 403, description = "The key's role lacks permission `metrics` (only analyst and admin keys hold it)", body = crate::error::ErrorBody)))]
pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    // sets the store gauges (nothing while the engine is loading)
    let _ = crate::vector_store::status(&s).await;
    let body = s.metrics().map(|h| h.render()).unwrap_or_default();
    (
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4")],
        body,
    )
}
