//! Per-key concurrency limit (issue 13): one API key may hold at most
//! `limits.max_in_flight_per_key` requests at once; the next gets 429 with `Retry-After` in the
//! contract shape, other keys are not affected, and the slot comes back when the call ends.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use touxiang_auth::{KeyStore, Role};
use tower::ServiceExt;

fn upload(key: &str, body: Body) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri("/v1/portfolios/p1/loans")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "text/csv")
        .body(body)
        .unwrap()
}

#[tokio::test]
async fn a_key_over_its_in_flight_limit_gets_429_and_others_do_not() {
    let mut cfg = crate::common::test_config();
    cfg.insecure_no_auth = false;
    cfg.limits.max_in_flight_per_key = 1;
    let ks = KeyStore::open(&cfg.data_dir).unwrap();
    let (_, busy) = ks.create(Role::Analyst, "busy").unwrap();
    let (_, other) = ks.create(Role::Analyst, "other").unwrap();
    let app = touxiang::app(touxiang::AppState::open(cfg, None).unwrap());

    // an upload whose body has not finished arriving holds its key's only slot
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tx.send(Ok(b"loan_id,purpose_text,amount,balance,overdue_days,region_code,customer_type,product,issue_date,as_of_date\n".to_vec()))
        .await
        .unwrap();
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let held = tokio::spawn(
        app.clone()
            .oneshot(upload(&busy, Body::from_stream(stream))),
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let r = app
        .clone()
        .oneshot(upload(&busy, Body::from("loan_id\n")))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "1");
    let v: serde_json::Value =
        serde_json::from_slice(&r.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(v["error"]["code"], "overloaded", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("in flight"),
        "{v}"
    );

    // another key is not affected
    let r = app
        .clone()
        .oneshot(
            Request::builder()
                .uri("/v1/portfolios")
                .header("authorization", format!("Bearer {other}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // the held call ends → its slot comes back
    drop(tx);
    let _ = held.await.unwrap().unwrap();
    let r = app
        .clone()
        .oneshot(
            Request::builder()
                .uri("/v1/portfolios")
                .header("authorization", format!("Bearer {busy}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
