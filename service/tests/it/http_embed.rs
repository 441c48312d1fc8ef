//! /v1/embed and the error contract, through the router in-process (`oneshot`).

use crate::common;

use axum::http::StatusCode;
use common::{call, call_raw, ready_state};
use serde_json::json;

#[tokio::test]
async fn embed_returns_normalised_vectors_in_the_contract_shape() {
    let app = touxiang::app(ready_state());
    let (st, body) = call(
        &app,
        "POST",
        "/v1/embed",
        Some(json!({"texts": ["补充流动资金，采购热轧钢卷", "资金周转"], "kind": "query"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["model"], "multilingual-e5-small-q4");
    assert_eq!(body["dim"], 384);
    let e = body["embeddings"].as_array().unwrap();
    assert_eq!(e.len(), 2);
    for v in e {
        let v: Vec<f64> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(v.len(), 384);
        let n: f64 = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((n - 1.0).abs() < 1e-3, "norm {n}");
    }
    // kind defaults to query; passage differs.
    let (_, q) = call(
        &app,
        "POST",
        "/v1/embed",
        Some(json!({"texts": ["稻谷种植"]})),
    )
    .await;
    let (_, p) = call(
        &app,
        "POST",
        "/v1/embed",
        Some(json!({"texts": ["稻谷种植"], "kind": "passage"})),
    )
    .await;
    assert_ne!(q["embeddings"], p["embeddings"]);
}

fn assert_error(st: StatusCode, body: &serde_json::Value, want: StatusCode, field: Option<&str>) {
    assert_eq!(st, want, "{body}");
    let err = &body["error"];
    assert!(
        err["code"].is_string() && err["message"].is_string(),
        "{body}"
    );
    if let Some(f) = field {
        assert_eq!(err["field"], f, "{body}");
    }
}

#[tokio::test]
async fn bad_input_gets_clear_4xx_errors() {
    let app = touxiang::app(ready_state());
    let (st, b) = call(&app, "POST", "/v1/embed", Some(json!({"texts": []}))).await;
    assert_error(st, &b, StatusCode::UNPROCESSABLE_ENTITY, Some("texts"));
    let (st, b) = call(
        &app,
        "POST",
        "/v1/embed",
        Some(json!({"texts": ["ok", "  "]})),
    )
    .await;
    assert_error(st, &b, StatusCode::UNPROCESSABLE_ENTITY, Some("texts[1]"));
    let big = "钢".repeat(100_000 / 3 + 1);
    let (st, b) = call(&app, "POST", "/v1/embed", Some(json!({"texts": [big]}))).await;
    assert_error(st, &b, StatusCode::UNPROCESSABLE_ENTITY, Some("texts[0]"));
    let (st, b) = call(
        &app,
        "POST",
        "/v1/embed",
        Some(json!({"texts": "not a list"})),
    )
    .await;
    assert_error(st, &b, StatusCode::UNPROCESSABLE_ENTITY, Some("texts"));
    let (st, b) = call(&app, "POST", "/v1/embed", Some(json!({"texts": ["a", 3]}))).await;
    assert_error(st, &b, StatusCode::UNPROCESSABLE_ENTITY, Some("texts[1]"));
    let (st, b) = call(
        &app,
        "POST",
        "/v1/embed",
        Some(json!({"texts": ["a"], "kind": "document"})),
    )
    .await;
    assert_error(st, &b, StatusCode::UNPROCESSABLE_ENTITY, Some("kind"));
    let (st, b) = call(&app, "POST", "/v1/embed", Some(json!({"kind": "query"}))).await;
    assert_error(st, &b, StatusCode::UNPROCESSABLE_ENTITY, None);
    let (st, b) = call_raw(
        &app,
        "POST",
        "/v1/embed",
        "application/json",
        b"{\"texts\": [\"a\"".to_vec(),
    )
    .await;
    assert_error(st, &b, StatusCode::BAD_REQUEST, None);
    assert_eq!(b["error"]["code"], "invalid_json");
    let (st, b) = call_raw(
        &app,
        "POST",
        "/v1/embed",
        "application/json",
        b"{\"texts\": [\"\xff\xfe\"]}".to_vec(),
    )
    .await;
    assert_error(st, &b, StatusCode::BAD_REQUEST, None);
    assert_eq!(b["error"]["code"], "invalid_utf8");
    // a struct is never read from an array (serde would fill the fields in order)
    for body in [
        &b"[[\"a\"], \"query\"]"[..],
        b"[null, null]",
        b"  \"texts\"",
    ] {
        let (st, b) = call_raw(&app, "POST", "/v1/embed", "application/json", body.to_vec()).await;
        assert_error(st, &b, StatusCode::UNPROCESSABLE_ENTITY, None);
        assert_eq!(b["error"]["code"], "invalid_body", "{b}");
    }
    let (st, b) = call_raw(&app, "POST", "/v1/embed", "text/plain", b"{}".to_vec()).await;
    assert_error(st, &b, StatusCode::UNSUPPORTED_MEDIA_TYPE, None);
    let huge = format!("{{\"texts\": [\"{}\"]}}", "a".repeat(3 * 1024 * 1024));
    let (st, b) = call_raw(
        &app,
        "POST",
        "/v1/embed",
        "application/json",
        huge.into_bytes(),
    )
    .await;
    assert_error(st, &b, StatusCode::PAYLOAD_TOO_LARGE, None);
    let many: Vec<String> = (0..1000).map(|i| format!("t{i}")).collect();
    let (st, b) = call(&app, "POST", "/v1/embed", Some(json!({ "texts": many }))).await;
    assert_error(st, &b, StatusCode::UNPROCESSABLE_ENTITY, Some("texts"));
    let (st, b) = call(&app, "GET", "/v1/nothing", None).await;
    assert_error(st, &b, StatusCode::NOT_FOUND, None);
}

#[tokio::test]
async fn ops_endpoints() {
    let app = touxiang::app(ready_state());
    let (st, _) = call(&app, "GET", "/healthz", None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = call(&app, "GET", "/readyz", None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, doc) = call(&app, "GET", "/openapi.json", None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        doc["paths"]["/v1/embed"]["post"].is_object(),
        "embed documented"
    );
    // Not ready before the model is loaded.
    let cold = touxiang::app(common::cold_state());
    let (st, b) = call(&cold, "GET", "/readyz", None).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    let (st, _) = call(&cold, "POST", "/v1/embed", Some(json!({"texts": ["a"]}))).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn overfull_queue_answers_429_and_others_still_succeed() {
    let mut cfg = common::test_config();
    cfg.limits.max_queue_tokens = 64;
    let s = touxiang::AppState::open(cfg, None).unwrap();
    s.set_model(common::model());
    let app = touxiang::app(s);
    let mut tasks = Vec::new();
    for i in 0..24 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            call(
                &app,
                "POST",
                "/v1/embed",
                Some(json!({"texts": [format!("第{i}笔 补充流动资金，采购热轧钢卷和冷轧板材")]})),
            )
            .await
        }));
    }
    let (mut ok, mut shed) = (0, 0);
    for t in tasks {
        let (st, b) = t.await.unwrap();
        match st {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(b["error"]["code"], "overloaded");
                shed += 1
            }
            other => panic!("unexpected {other}: {b}"),
        }
    }
    assert!(ok >= 1 && shed >= 1, "ok={ok} shed={shed}");
    // A single request larger than the whole queue is a 413, not a 429.
    let long = "补充流动资金，采购热轧钢卷。".repeat(20);
    let (st, _) = call(&app, "POST", "/v1/embed", Some(json!({ "texts": [long] }))).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn openapi_documents_the_contract_endpoints() {
    let app = touxiang::app(ready_state());
    let (_, doc) = call(&app, "GET", "/openapi.json", None).await;
    for (path, method) in [
        ("/v1/embed", "post"),
        ("/v1/classify", "post"),
        ("/v1/review/claim", "post"),
        ("/v1/review/{review_id}/label", "post"),
        ("/v1/review/{review_id}/skip", "post"),
        ("/v1/review/stats", "get"),
        ("/v1/aggregate", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
}
