//! Helpers shared by the HTTP tests: a state with the real model loaded once per test binary.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use touxiang::config::Config;
use touxiang::AppState;
use touxiang_model::{test_model_dir, E5Model, Precision};
use tower::ServiceExt;

pub fn model() -> Arc<E5Model> {
    static M: OnceLock<Arc<E5Model>> = OnceLock::new();
    M.get_or_init(|| {
        Arc::new(E5Model::ensure_and_load(&test_model_dir(), Precision::Q4).expect("model"))
    })
    .clone()
}

pub fn test_config() -> Config {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    Config {
        data_dir: dir,
        model_dir: Some(test_model_dir()),
        insecure_no_auth: true,
        ..Config::default()
    }
}

pub fn cold_state() -> AppState {
    AppState::new(test_config(), None)
}

pub fn ready_state() -> AppState {
    let s = AppState::new(test_config(), None);
    s.set_model(model());
    s
}

pub async fn call_raw(
    app: &Router,
    method: &str,
    uri: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap();
    send(app, req).await
}

pub async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    body: Option<serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    let b = Request::builder().method(method).uri(uri);
    let req = match body {
        Some(v) => b
            .header("content-type", "application/json")
            .body(Body::from(v.to_string()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    };
    send(app, req).await
}

pub async fn send(app: &Router, req: Request<Body>) -> (StatusCode, serde_json::Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let st = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
    (st, v)
}
