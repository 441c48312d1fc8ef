//! The review additions the reviewer workbench calls: `GET /v1/review/me`, and the extra fields
//! of a claimed item and of the item view (keywords, borrower fields, earlier labels at
//! adjudication), with two reviewers driven to disagree on a double-reviewed item.

use crate::common;
use crate::http_ui_api::{auth_state, get_with_key, strings};

use axum::http::StatusCode;
use chrono::Utc;
use common::{call, test_config};
use serde_json::{json, Value};
use touxiang::AppState;
use touxiang_review::NewItem;

const GBT: &str = "gbt4754-2017";

fn enqueue(s: &AppState, text: &str) -> String {
    let mut it = NewItem::new("default", text, GBT, 0.5);
    it.double_review = Some(false);
    s.review().store.enqueue(&it, Utc::now()).unwrap()
}

async fn post(app: &axum::Router, uri: &str, body: Value) -> (StatusCode, Value) {
    call(app, "POST", uri, Some(body)).await
}

#[tokio::test]
async fn review_me_counts_labels_and_skips_of_the_reviewer() {
    let s = AppState::open(test_config(), None).unwrap();
    let app = touxiang::app(s.clone());
    for t in ["烧烤店购买冷柜", "饺子馆装修", "钢材采购"] {
        enqueue(&s, t);
    }
    let claim = json!({"queue": "default", "reviewer": "r1"});
    let (_, c) = post(&app, "/v1/review/claim", claim.clone()).await;
    let id = c["review_id"].as_str().unwrap();
    let (st, _) = post(
        &app,
        &format!("/v1/review/{id}/label"),
        json!({"code": "6291", "reviewer": "r1"}),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (_, c) = post(&app, "/v1/review/claim", claim.clone()).await;
    let id = c["review_id"].as_str().unwrap();
    let (st, _) = post(
        &app,
        &format!("/v1/review/{id}/skip"),
        json!({"reviewer": "r1"}),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    // r2 labels one too: not r1's.
    let (_, c) = post(
        &app,
        "/v1/review/claim",
        json!({"queue": "default", "reviewer": "r2"}),
    )
    .await;
    let id = c["review_id"].as_str().unwrap();
    post(
        &app,
        &format!("/v1/review/{id}/label"),
        json!({"code": "3120", "reviewer": "r2"}),
    )
    .await;

    let (st, b) = call(&app, "GET", "/v1/review/me?reviewer=r1", None).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["reviewer"], "r1");
    assert_eq!(
        (&b["labeled"], &b["skipped"], &b["labeled_total"]),
        (&json!(1), &json!(1), &json!(1)),
        "{b}"
    );
    assert_eq!(
        b["agreement"],
        json!({"compared": 0, "agreed": 0, "rate": null})
    );
    let since = b["since"].as_str().unwrap();
    assert!(
        since.ends_with("T00:00:00Z"),
        "start of the UTC day: {since}"
    );
    // A window after everything: nothing since, the total stays.
    let (_, b) = call(
        &app,
        "GET",
        "/v1/review/me?reviewer=r1&since=2999-01-01T00:00:00Z",
        None,
    )
    .await;
    assert_eq!((&b["labeled"], &b["skipped"]), (&json!(0), &json!(0)));
    assert_eq!(b["labeled_total"], 1);
    let (_, b) = call(
        &app,
        "GET",
        &format!("/v1/review/me?reviewer=r1&taxonomy={GBT}&since=2020-01-01T08:00:00%2B08:00"),
        None,
    )
    .await;
    assert_eq!(b["labeled"], 1, "{b}");
    // Errors.
    for (q, field) in [
        ("reviewer=r1&since=yesterday", "since"),
        ("reviewer=r1&taxonomy=nope", "taxonomy"),
        ("", "reviewer"),
    ] {
        let (st, b) = call(&app, "GET", &format!("/v1/review/me?{q}"), None).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{q}: {b}");
        assert_eq!(b["error"]["field"], field, "{q}: {b}");
    }

    // With keys: a reviewer is themself, and only themself.
    let (state, keys) = auth_state();
    let app = touxiang::app(state);
    let r1 = &keys[1].2;
    let (st, b) = get_with_key(&app, "/v1/review/me", Some(r1)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["reviewer"], "r1");
    let (st, _) = get_with_key(&app, "/v1/review/me?reviewer=r2", Some(r1)).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, b) = get_with_key(&app, "/v1/review/me?reviewer=r2", Some(&keys[3].2)).await;
    assert_eq!((st, b["reviewer"].as_str()), (StatusCode::OK, Some("r2")));
    let (st, _) = get_with_key(&app, "/v1/review/me", Some(&keys[2].2)).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "analysts do no review work");
}

#[tokio::test]
async fn claimed_items_carry_keywords_borrower_fields_and_at_adjudication_the_earlier_labels() {
    // Every classified item goes to review (QA rate 1) and needs two labels.
    let mut cfg = test_config();
    cfg.classify.qa_sample_rate = 1.0;
    cfg.review.double_review_rate = 1.0;
    let s = common::state_with_mini(cfg).await;
    let app = touxiang::app(s.clone());
    let text = "用于烤串店装修及购买冷柜";
    let (st, b) = post(
        &app,
        "/v1/classify",
        json!({"taxonomy": "mini", "items": [{"id": "app-1", "text": text, "amount": 300000,
            "borrower_name": "老王烧烤店", "business_scope": "餐饮服务；食品销售",
            "declared_industry": "H1"}]}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let result = &b["results"][0];
    let review_id = result["review_id"].as_str().expect("routed to review");
    let keywords = result["keywords"].clone();
    assert!(!strings(&keywords).is_empty(), "{result}");

    let claim = |who: &str, queue: &str| {
        post(
            &app,
            "/v1/review/claim",
            json!({"queue": queue, "reviewer": who}),
        )
    };
    let label = |who: &'static str, code: &'static str, comment: &'static str| {
        let (app, uri) = (app.clone(), format!("/v1/review/{review_id}/label"));
        async move {
            post(
                &app,
                &uri,
                json!({"code": code, "reviewer": who, "comment": comment}),
            )
            .await
        }
    };
    // First review: the keywords classify returned, the borrower fields, no earlier labels.
    let (st, c) = claim("r1", "default").await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert_eq!(c["review_id"], review_id);
    assert_eq!(c["stage"], "first");
    assert_eq!(c["keywords"], keywords);
    assert_eq!(c["borrower_name"], "老王烧烤店");
    assert_eq!(c["business_scope"], "餐饮服务；食品销售");
    assert_eq!(c["declared_industry"], "H1");
    assert_eq!(c["amount"], 300000.0);
    assert_eq!(c["neighbors"]["borrower"]["borrower_name"], "老王烧烤店");
    assert!(c.get("earlier_labels").is_none(), "{c}");
    assert_eq!(label("r1", "H1", "烧烤店").await.0, StatusCode::OK);
    // Second review: independent, so still no earlier labels.
    let (_, c) = claim("r2", "default").await;
    assert_eq!(
        (c["review_id"].as_str(), c["stage"].as_str()),
        (Some(review_id), Some("second"))
    );
    assert!(c.get("earlier_labels").is_none(), "{c}");
    let (_, l) = label("r2", "A1", "").await;
    assert_eq!(l["next_queue"], "adjudication", "{l}");
    // Adjudication: the two disagreeing labels, with names, comments and times.
    let (st, c) = claim("r3", "adjudication").await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert_eq!(c["stage"], "adjudication");
    assert_eq!(c["keywords"], keywords);
    let earlier = c["earlier_labels"].as_array().expect("earlier_labels");
    assert_eq!(earlier.len(), 2, "{c}");
    assert_eq!(
        (
            &earlier[0]["reviewer"],
            &earlier[0]["code"],
            &earlier[0]["name"]
        ),
        (&json!("r1"), &json!("H1"), &json!("烧烤小吃"))
    );
    assert_eq!(earlier[0]["comment"], "烧烤店");
    assert_eq!(earlier[0]["stage"], "first");
    assert_eq!(
        (
            &earlier[1]["reviewer"],
            &earlier[1]["code"],
            &earlier[1]["name"]
        ),
        (&json!("r2"), &json!("A1"), &json!("水稻种植"))
    );
    assert!(earlier[1]["at"].as_str().unwrap().starts_with("20"));
    // The item view carries the same, inside `item`.
    let (st, v) = call(&app, "GET", &format!("/v1/review/{review_id}"), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["item"]["keywords"], keywords);
    assert_eq!(v["item"]["earlier_labels"].as_array().unwrap().len(), 2);
    assert_eq!(v["item"]["borrower_name"], "老王烧烤店");
    assert_eq!(v["item"]["labels"].as_array().unwrap().len(), 2);
    assert_eq!(label("r3", "H1", "烤串").await.0, StatusCode::OK);

    // Agreement with the final label: r1 agreed, r2 did not; r3's label is the final one.
    let me = |who: &str| {
        let (app, uri) = (app.clone(), format!("/v1/review/me?reviewer={who}"));
        async move { call(&app, "GET", &uri, None).await }
    };
    let (_, b) = me("r1").await;
    assert_eq!(
        b["agreement"],
        json!({"compared": 1, "agreed": 1, "rate": 1.0}),
        "{b}"
    );
    let (_, b) = me("r2").await;
    assert_eq!(
        b["agreement"],
        json!({"compared": 1, "agreed": 0, "rate": 0.0}),
        "{b}"
    );
    let (_, b) = me("r3").await;
    assert_eq!(
        (&b["labeled"], &b["agreement"]["compared"]),
        (&json!(1), &json!(0))
    );
}
