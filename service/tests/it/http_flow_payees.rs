//! The reviewers' `payees` queue through the service: an unsure payee is queued after a payment
//! upload, and the reviewer's label wins in the loan's flow.

use axum::http::StatusCode;

use crate::common::{call, call_raw};
use crate::http_flow::{body, generated, truth_app};

/// A payee the classifier abstains on goes to the reviewers' `payees` queue after the upload;
/// the reviewer's label comes back to the payee cache and wins in the loan's flow.
#[tokio::test]
async fn unsure_payees_go_to_review_and_the_reviewed_label_wins() {
    let (dir, truth) = generated(120, 2);
    let (app, _) = truth_app(&truth);
    let (st, b) = call_raw(
        &app,
        "POST",
        "/v1/portfolios/book/loans?label=false",
        "text/csv",
        body(&dir, "loans.csv"),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    // one payee the stand-in classifier does not know: it abstains
    let unknown = "江城某某未知咨询有限公司";
    let mut payments = String::from_utf8(body(&dir, "payments.csv")).unwrap();
    payments.push_str(&format!(
        "PX-UNSURE,L00000001,{unknown},,50000,2024-03-01,,受托支付,generated\n"
    ));
    let (st, b) = call_raw(
        &app,
        "POST",
        "/v1/portfolios/book/payments",
        "text/csv",
        payments.into_bytes(),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["payees_queued"], 1, "only the unsure payee: {b}");
    let (st, item) = call(
        &app,
        "POST",
        "/v1/review/claim",
        Some(serde_json::json!({"queue": "payees", "reviewer": "r1"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{item}");
    assert_eq!(item["text"], unknown);
    let id = item["review_id"].as_str().unwrap().to_string();
    let (st, l) = call(
        &app,
        "POST",
        &format!("/v1/review/{id}/label"),
        Some(serde_json::json!({"code": "7211", "reviewer": "r1"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{l}");
    assert_eq!(l["final_code"], "7211");
    assert_eq!(l["exemplar"], "payee", "{l}");
    let (st, f) = call(&app, "GET", "/v1/loans/L00000001/flow?portfolio=book", None).await;
    assert_eq!(st, StatusCode::OK, "{f}");
    let hop = f["hops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["payee_name"] == unknown)
        .expect("the payment to the reviewed payee");
    assert_eq!(hop["label"]["code"], "7211", "{hop}");
    assert_eq!(hop["label"]["decision"], "reviewed", "{hop}");
    // proposed once: a second upload of the same payee queues nothing
    let (_, b) = call_raw(
        &app,
        "POST",
        "/v1/portfolios/book/payments?mode=commit-valid",
        "text/csv",
        format!(
            "payment_id,loan_id,payee_name,payee_account,amount,paid_at,memo,channel\nPX-AGAIN,L00000002,{unknown},,100,2024-03-02,,受托支付\n"
        )
        .into_bytes(),
    )
    .await;
    assert_eq!(b["payees_queued"], 0, "{b}");
}
