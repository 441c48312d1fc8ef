//! The browser UI: the risk dashboard (`/ui/`) and the reviewer workbench (`/ui/review`),
//! static files from `service/ui/assets/` embedded in the binary (`rust-embed`; a debug build
//! reads them from disk, so editing a page needs no rebuild).
//!
//! Every UI response carries a strict Content-Security-Policy (scripts, styles and connections
//! from this origin only, no inline script or style, no framing), `nosniff` and
//! `no-referrer`. Files are revalidated on every load (`Cache-Control: no-cache` with a content
//! `ETag`, so an unchanged file costs a 304) and gzip-compressed when the browser accepts it
//! (the vendored ECharts build shrinks from 1.1 MB to ≈ 370 kB). The pages hold no key and
//! no business logic: they call the API with the key the user typed, kept in the tab's
//! `sessionStorage`.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use rust_embed::RustEmbed;
use tower_http::compression::CompressionLayer;

use crate::auth::Access::Open;
use crate::error::ApiError;
use crate::routes::access::Routes;

#[derive(RustEmbed)]
#[folder = "ui/assets/"]
struct Assets;

/// The policy every UI response carries. `img-src data:` is for ECharts' "save as image".
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; object-src 'none'; \
base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The UI routes (merged into [`crate::app`]). Open: the pages ask for a key themselves, and
/// every API call they make is checked as usual.
pub fn router() -> Routes {
    Routes::new()
        .get("/ui", Open, || async { Redirect::permanent("/ui/") })
        .get("/ui/", Open, dashboard)
        .get("/ui/review", Open, workbench)
        .get("/ui/{*path}", Open, file)
        .map(|r| r.layer(CompressionLayer::new()))
}

/// The risk dashboard (HTML; analyst keys). The page asks for an API key and calls the API
/// with it; the contract of its elements is `UI.md`.
#[utoipa::path(get, path = "/ui/", tag = "ui",
    responses((status = 200, description = "The dashboard page", content_type = "text/html"),
        (status = 304, description = "Unchanged since the ETag sent in If-None-Match")))]
pub async fn dashboard(h: HeaderMap) -> Response {
    asset("index.html", &h)
}

/// The reviewer workbench (HTML; reviewer keys): claim, evidence, keyboard labeling.
#[utoipa::path(get, path = "/ui/review", tag = "ui",
    responses((status = 200, description = "The workbench page", content_type = "text/html"),
        (status = 304, description = "Unchanged since the ETag sent in If-None-Match")))]
pub async fn workbench(h: HeaderMap) -> Response {
    asset("review.html", &h)
}

/// The pages' scripts, styles and the vendored ECharts build (`/ui/js/…`, `/ui/app.css`,
/// `/ui/vendor/echarts/echarts.min.js` with its LICENSE and NOTICE).
#[utoipa::path(get, path = "/ui/{path}", tag = "ui",
    params(("path" = String, Path, description = "File under the UI root")),
    responses((status = 200, description = "The file, with its content type; gzip when accepted"),
        (status = 304, description = "Unchanged since the ETag sent in If-None-Match"),
        (status = 404, description = "No such file", body = crate::error::ErrorBody)))]
pub async fn file(Path(p): Path<String>, h: HeaderMap) -> Response {
    asset(&p, &h)
}

fn asset(path: &str, req: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        return ApiError::NotFound(format!("no UI file /ui/{path}")).into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..12]));
    let mut headers = HeaderMap::new();
    let mime = file.metadata.mimetype();
    let mime = if mime.starts_with("text/") || mime.ends_with("javascript") {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    for (k, v) in [
        (header::CONTENT_TYPE, mime.as_str()),
        (header::CACHE_CONTROL, "no-cache"),
        (header::ETAG, etag.as_str()),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(k, HeaderValue::from_str(v).expect("ASCII header value"));
    }
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, file.data.into_owned()).into_response()
}

/// Paths of every embedded UI file (for tests and the OpenAPI description).
pub fn files() -> Vec<String> {
    Assets::iter().map(|p| p.into_owned()).collect()
}
