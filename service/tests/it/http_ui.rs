//! The browser pages as HTTP resources: served by the binary's router without a key, with the
//! right content types, a strict CSP, ETag revalidation, gzip, and errors in the contract shape.
//! (What the pages do is tested in real Chromium: `ui_browser.rs`.)

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn get(uri: &str, headers: &[(&str, &str)]) -> axum::response::Response {
    // authentication on: the pages must load without a key
    let mut cfg = crate::common::test_config();
    cfg.insecure_no_auth = false;
    let app = touxiang::app(touxiang::AppState::open(cfg, None).unwrap());
    let mut b = Request::builder().uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    app.oneshot(b.body(Body::empty()).unwrap()).await.unwrap()
}

async fn body(r: axum::response::Response) -> Vec<u8> {
    r.into_body().collect().await.unwrap().to_bytes().to_vec()
}

#[tokio::test]
async fn pages_load_without_a_key_with_a_strict_policy() {
    for (uri, marker) in [("/ui/", "dashboard.js"), ("/ui/review", "review.js")] {
        let r = get(uri, &[]).await;
        assert_eq!(r.status(), StatusCode::OK, "{uri}");
        let h = r.headers().clone();
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::CACHE_CONTROL], "no-cache");
        let html = String::from_utf8(body(r).await).unwrap();
        assert!(html.contains(marker), "{uri} loads its module");
        assert!(
            !html.contains("<script>") && !html.contains(" style="),
            "no inline script or style in {uri}"
        );
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no outside resource in {uri}"
        );
    }
    let r = get("/ui", &[]).await;
    assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(r.headers()[header::LOCATION], "/ui/");
}

#[tokio::test]
async fn every_asset_is_served_with_its_type_and_revalidates() {
    let files = touxiang::routes::ui::files();
    for need in [
        "index.html",
        "review.html",
        "app.css",
        "js/api.js",
        "vendor/echarts/echarts.min.js",
        "vendor/echarts/LICENSE",
    ] {
        assert!(
            files.iter().any(|f| f == need),
            "{need} embedded: {files:?}"
        );
    }
    for f in &files {
        let r = get(&format!("/ui/{f}"), &[]).await;
        assert_eq!(r.status(), StatusCode::OK, "{f}");
        let ct = r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        let want = match f.rsplit('.').next().unwrap() {
            "js" => "text/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            "html" => "text/html; charset=utf-8",
            _ => "",
        };
        if !want.is_empty() {
            assert_eq!(ct, want, "{f}");
        }
        // the same ETag back → 304 with no body
        let etag = r.headers()[header::ETAG].to_str().unwrap().to_string();
        let again = get(&format!("/ui/{f}"), &[("if-none-match", &etag)]).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{f}");
        assert!(body(again).await.is_empty());
    }
}

#[tokio::test]
async fn echarts_is_compressed_and_unknown_files_are_contract_errors() {
    let plain = body(get("/ui/vendor/echarts/echarts.min.js", &[]).await).await;
    let r = get(
        "/ui/vendor/echarts/echarts.min.js",
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
    let gz = body(r).await;
    assert!(
        gz.len() * 2 < plain.len(),
        "gzip {} vs {} bytes",
        gz.len(),
        plain.len()
    );

    let r = get("/ui/nope.js", &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let v: serde_json::Value = serde_json::from_slice(&body(r).await).unwrap();
    assert_eq!(v["error"]["code"], "not_found", "{v}");
    let r = get("/ui/../Cargo.toml", &[]).await;
    assert_ne!(r.status(), StatusCode::OK, "no path traversal");
}

#[tokio::test]
async fn the_api_behind_the_pages_still_needs_a_key() {
    let r = get("/v1/whoami", &[]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
