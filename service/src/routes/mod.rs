//! The HTTP app: `fn app(state) -> Router`.

pub mod admin;
pub mod classify;
pub mod embed;
pub mod flow;
pub mod health;
pub mod jobs;
pub mod portfolio;
pub mod review;
pub mod review_extra;
pub mod taxonomy;
pub mod ui;
pub mod whoami;

use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ApiError;
use crate::openapi::ApiDoc;
use crate::state::AppState;

/// Build the router with every route, limit and middleware.
pub fn app(state: AppState) -> Router {
    let limits = state.config().limits.clone();
    let api = Router::new()
        .route("/v1/embed", post(embed::embed))
        .route("/v1/classify", post(classify::classify))
        .merge(review::router())
        .merge(taxonomy::router())
        .merge(admin::router())
        .layer(DefaultBodyLimit::max(limits.max_body_bytes));
    let timeout = |secs| {
        TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(secs),
        )
    };
    let requests = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .merge(api)
        .merge(portfolio::router())
        .merge(flow::router())
        .merge(jobs::router())
        .merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        .layer(timeout(limits.request_timeout_secs));
    let uploads = Router::new()
        .merge(portfolio::upload_router(&limits))
        .merge(flow::upload_router(&limits))
        .merge(jobs::upload_router(&limits))
        .layer(timeout(limits.upload_timeout_secs));
    Router::new()
        .merge(requests)
        .merge(uploads)
        .merge(ui::router())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require,
        ))
        .layer(middleware::from_fn(track_metrics))
        .layer(middleware::from_fn(request_head_limits))
        // Outermost but for tracing: whoever wrote an error response, it leaves in the
        // contract shape.
        .layer(middleware::from_fn(crate::error::contract_errors))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Longest id accepted in a request body, in characters: a classify item's `id` (the loan or
/// application id, kept as the review item's external id) and a review `reviewer`.
pub const MAX_ID_CHARS: usize = 128;

/// 422 `invalid_field` naming `field` when `value` has more than `max` characters.
pub fn check_max_chars(field: &str, value: Option<&str>, max: usize) -> Result<(), ApiError> {
    let n = value.map_or(0, |v| v.chars().count());
    if n > max {
        return Err(ApiError::invalid(
            field,
            format!("{field} has {n} characters; at most {max}"),
        ));
    }
    Ok(())
}

/// Longest request target (path and query) accepted, bytes (→ 414 above).
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most header fields, and most header bytes (names + values), accepted (→ 431 above).
pub const MAX_HEADERS: usize = 64;
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// 414 and 431 in the contract shape: hyper answers these itself with an empty body, but only
/// beyond its own, much larger limits (64 KiB of URI, ~400 KiB of headers, 256 header fields
/// as [`crate::server`] sets it); the app's tighter limits here answer first, through
/// [`crate::error::contract_errors`].
async fn request_head_limits(req: Request, next: Next) -> Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let uri = req.uri().to_string().len();
    if uri > MAX_URI_BYTES {
        return (
            StatusCode::URI_TOO_LONG,
            format!("request target has {uri} bytes; at most {MAX_URI_BYTES}"),
        )
            .into_response();
    }
    let h = req.headers();
    let bytes: usize = h.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    if h.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "{} header fields with {bytes} bytes; at most {MAX_HEADERS} fields and {MAX_HEADER_BYTES} bytes",
                h.len()
            ),
        )
            .into_response();
    }
    next.run(req).await
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {uri}"))
}

async fn track_metrics(req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    let labels = [
        ("method", method),
        ("path", path),
        ("status", resp.status().as_u16().to_string()),
    ];
    metrics::counter!("touxiang_http_requests_total", &labels).increment(1);
    metrics::histogram!("touxiang_http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    resp
}
