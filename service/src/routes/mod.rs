//! The HTTP app: `fn app(state) -> Router`.
//!
//! Each `routes/*.rs` file builds its routes with [`access::Routes`], declaring beside each
//! route the access it needs (`Open`, `AnyKey`, `Needs(permission)`), and [`routes`] puts them
//! together with their limits and timeouts. Anything no route declares is admin-only: the
//! fallback (unknown path → 404) and the answer to a method a path does not serve (→ 405) run
//! the same key check with no declared access first ([`crate::auth::authorize`]).

pub mod access;
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
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::Access::Open;
use crate::config::Limits;
use crate::error::ApiError;
use crate::openapi::ApiDoc;
use crate::state::AppState;
use access::{Declared, Routes};

/// Build the router with every route, limit and middleware.
pub fn app(state: AppState) -> Router {
    let (router, _) = routes(&state.config().limits).into_parts();
    router
        // default deny for what no route declared (after every route is added: it applies
        // to the routes present)
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(middleware::from_fn(track_metrics))
        .layer(middleware::from_fn(request_head_limits))
        // Outermost but for tracing: whoever wrote an error response, it leaves in the
        // contract shape.
        .layer(middleware::from_fn(crate::error::contract_errors))
        .layer(TraceLayer::new_for_http())
        // the state for the access checks, which run inside the routes' own layers
        .layer(Extension(state.clone()))
        .with_state(state)
}

/// Every route with its declared access, limits and timeouts (no state needed: see [`app`]).
pub fn routes(limits: &Limits) -> Routes {
    let api = Routes::new()
        .merge(embed::router())
        .merge(classify::router())
        .merge(review::router())
        .merge(taxonomy::router())
        .merge(admin::router())
        .map(|r| r.layer(DefaultBodyLimit::max(limits.max_body_bytes)));
    let timeout = |secs| {
        TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_secs(secs))
    };
    // The API document and its browsable UI: open (the paths utoipa-swagger-ui registers).
    let docs = Router::from(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()));
    let requests = Routes::new()
        .merge(health::router())
        .merge(api)
        .merge(portfolio::router())
        .merge(flow::router())
        .merge(jobs::router())
        .get_router(
            docs,
            &["/docs", "/docs/", "/docs/{*rest}", "/openapi.json"],
            Open,
        )
        .map(|r| r.layer(timeout(limits.request_timeout_secs)));
    let uploads = Routes::new()
        .merge(portfolio::upload_router(limits))
        .merge(flow::upload_router(limits))
        .merge(jobs::upload_router(limits))
        .map(|r| r.layer(timeout(limits.upload_timeout_secs)));
    Routes::new()
        .merge(requests)
        .merge(uploads)
        .merge(ui::router())
}

/// What every route declares (method, path pattern, access), as [`app`] builds them.
pub fn declared() -> Vec<Declared> {
    routes(&Limits::default()).into_parts().1
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

/// The fallback: no route has this path. Admin only (nothing declared it), then 404.
async fn not_found(req: Request) -> Response {
    match crate::auth::authorize(None, &req).await {
        Err(denied) => denied.into_response(),
        Ok(_permit) => ApiError::NotFound(format!("no route for {}", req.uri())).into_response(),
    }
}

/// A path that exists, with a method it does not serve. Admin only (nothing declared it),
/// then 405 (the router adds `Allow`).
async fn method_not_allowed(req: Request) -> Response {
    match crate::auth::authorize(None, &req).await {
        Err(denied) => denied.into_response(),
        Ok(_permit) => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
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
