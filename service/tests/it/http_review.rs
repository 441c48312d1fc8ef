//! Review queue over HTTP, in-process (`oneshot`): claim/label/skip/release/stats/item/agreement,
//! invalid codes, concurrent claims, lease expiry, settings, and classify → review → exemplar
//! (active learning) with a small classifier trained in the test.

use crate::common;

use std::collections::HashSet;

use axum::http::StatusCode;
use chrono::Utc;
use common::{call, test_config};
use serde_json::{json, Value};
use touxiang::AppState;
use touxiang_review::NewItem;

const TAX: &str = "gbt4754-2017";

fn enqueue(s: &AppState, text: &str, uncertainty: f64, double: bool) -> String {
    let mut it = NewItem::new("default", text, TAX, uncertainty);
    it.double_review = Some(double);
    s.review().store.enqueue(&it, Utc::now()).unwrap()
}

async fn claim(app: &axum::Router, reviewer: &str) -> (StatusCode, Value) {
    call(
        app,
        "POST",
        "/v1/review/claim",
        Some(json!({"queue": "default", "reviewer": reviewer})),
    )
    .await
}

async fn label(app: &axum::Router, id: &str, reviewer: &str, code: &str) -> (StatusCode, Value) {
    call(
        app,
        "POST",
        &format!("/v1/review/{id}/label"),
        Some(json!({"code": code, "reviewer": reviewer, "comment": "test"})),
    )
    .await
}

#[tokio::test]
async fn claim_label_item_stats_and_errors() {
    let s = AppState::open(test_config(), None).unwrap();
    let app = touxiang::app(s.clone());
    let (st, _) = claim(&app, "r1").await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let low = enqueue(&s, "购买办公用品", 0.1, false);
    let high = enqueue(&s, "用于烤串店装修及购买冷柜", 0.9, false);

    // Highest priority first, with the contract fields.
    let (st, b) = claim(&app, "r1").await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["review_id"], high.as_str());
    for f in ["text", "suggestions", "neighbors", "lease_expires_at"] {
        assert!(b.get(f).is_some(), "{f} missing: {b}");
    }
    // Someone else gets the other item, then nothing.
    let (_, b2) = claim(&app, "r2").await;
    assert_eq!(b2["review_id"], low.as_str());
    assert_eq!(claim(&app, "r3").await.0, StatusCode::NO_CONTENT);

    // Invalid code → 422 naming `code`; leased to someone else → 403; unknown item → 404.
    let (st, e) = label(&app, &high, "r1", "9999").await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(
        (e["error"]["code"].as_str(), e["error"]["field"].as_str()),
        (Some("invalid_code"), Some("code"))
    );
    let (st, _) = label(&app, &high, "r2", "6291").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = label(&app, "rv_nope", "r1", "6291").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // Missing code → 422 saying so.
    let (st, e) = call(
        &app,
        "POST",
        &format!("/v1/review/{high}/label"),
        Some(json!({"reviewer": "r1"})),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("code"),
        "{e}"
    );

    // A valid label (any level) is final for single review.
    let (st, b) = label(&app, &high, "r1", "6291").await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(
        (b["state"].as_str(), b["final_code"].as_str()),
        (Some("final"), Some("6291"))
    );
    // No model loaded in this state: the label is durable, the exemplar is reported unavailable.
    assert_eq!(b["exemplar"], "unavailable");
    let (st, _) = label(&app, &high, "r1", "6291").await;
    assert_eq!(st, StatusCode::CONFLICT);

    // Item view with its audit trail.
    let (st, v) = call(&app, "GET", &format!("/v1/review/{high}"), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["item"]["final_label"]["code"], "6291");
    let actions: Vec<&str> = v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["enqueue", "claim", "label"]);

    // Skip and release put r2's item back; r2 does not get a skipped item again at once.
    let (st, _) = call(
        &app,
        "POST",
        &format!("/v1/review/{low}/release"),
        Some(json!({"reviewer": "r2"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (_, b) = claim(&app, "r2").await;
    assert_eq!(b["review_id"], low.as_str());
    let (st, _) = call(
        &app,
        "POST",
        &format!("/v1/review/{low}/skip"),
        Some(json!({"reviewer": "r2", "reason": "unclear"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(claim(&app, "r2").await.0, StatusCode::NO_CONTENT);
    assert_eq!(claim(&app, "r3").await.1["review_id"], low.as_str());
    // Skip of an item not leased to you → 403.
    let (st, _) = call(
        &app,
        "POST",
        &format!("/v1/review/{low}/skip"),
        Some(json!({"reviewer": "r2"})),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    let (st, stats) = call(&app, "GET", "/v1/review/stats", None).await;
    assert_eq!(st, StatusCode::OK);
    let q = &stats["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "default")
        .unwrap()
        .clone();
    assert_eq!(
        (q["labeled"].as_u64(), q["leased"].as_u64()),
        (Some(1), Some(1)),
        "{stats}"
    );
}

#[tokio::test]
async fn double_review_agreement_report() {
    let s = AppState::open(test_config(), None).unwrap();
    let app = touxiang::app(s.clone());
    // Two double-reviewed items: one agreement, one disagreement at class level (same group).
    for (first, second) in [("6291", "6291"), ("6291", "6299")] {
        let id = enqueue(&s, &format!("小吃店 {first}{second}"), 0.5, true);
        assert_eq!(claim(&app, "r1").await.1["review_id"], id.as_str());
        let (_, b) = label(&app, &id, "r1", first).await;
        assert_eq!(
            (b["state"].as_str(), b["next_stage"].as_str()),
            (Some("pending"), Some("second"))
        );
        assert_eq!(b["exemplar"], "not_final");
        // The same reviewer cannot do the second review.
        assert_eq!(claim(&app, "r1").await.0, StatusCode::NO_CONTENT);
        assert_eq!(claim(&app, "r2").await.1["review_id"], id.as_str());
        let (_, b) = label(&app, &id, "r2", second).await;
        if first == second {
            assert_eq!(b["final_code"], first);
        } else {
            assert_eq!(b["next_queue"], "adjudication");
        }
    }
    let (st, r) = call(
        &app,
        "GET",
        "/v1/review/agreement?taxonomy=gbt4754-2017",
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["pairs"], 2);
    assert_eq!(r["exact_agreement"], 0.5);
    // Same section, division and group; differ at class: partial credit (1 + 0.75) / 2.
    assert!(
        (r["mean_partial_credit"].as_f64().unwrap() - 0.875).abs() < 1e-9,
        "{r}"
    );
    assert!(r["kappa"].as_array().is_some_and(|k| !k.is_empty()), "{r}");
    let (st, _) = call(&app, "GET", "/v1/review/agreement?taxonomy=nope", None).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_never_hand_out_one_item_twice() {
    let s = AppState::open(test_config(), None).unwrap();
    let app = touxiang::app(s.clone());
    let n_items = 120;
    let ids: HashSet<String> = (0..n_items)
        .map(|i| enqueue(&s, &format!("贷款用途 {i}"), (i % 10) as f64 / 10.0, false))
        .collect();
    let mut tasks = Vec::new();
    for r in 0..20 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let reviewer = format!("rev{r}");
            let mut got = Vec::new();
            loop {
                let (st, b) = claim(&app, &reviewer).await;
                match st {
                    StatusCode::OK => got.push(b["review_id"].as_str().unwrap().to_string()),
                    StatusCode::NO_CONTENT => break,
                    other => panic!("claim: {other} {b}"),
                }
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<String> = all.iter().cloned().collect();
    assert_eq!(all.len(), unique.len(), "an item was handed out twice");
    assert_eq!(unique, ids);
}

#[tokio::test]
async fn expired_lease_returns_the_item_to_the_queue() {
    let mut cfg = test_config();
    cfg.review.lease_ttl_secs = 1;
    let s = AppState::open(cfg, None).unwrap();
    let app = touxiang::app(s.clone());
    let id = enqueue(&s, "用于烤串店装修及购买冷柜", 0.5, false);
    assert_eq!(claim(&app, "r1").await.1["review_id"], id.as_str());
    assert_eq!(claim(&app, "r2").await.0, StatusCode::NO_CONTENT);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (st, b) = claim(&app, "r2").await;
    assert_eq!(
        (st, b["review_id"].as_str()),
        (StatusCode::OK, Some(id.as_str()))
    );
    // The former holder's lease is gone: labeling now is refused.
    let (st, _) = label(&app, &id, "r1", "6291").await;
    assert!(
        st == StatusCode::FORBIDDEN || st == StatusCode::CONFLICT,
        "{st}"
    );
    assert_eq!(label(&app, &id, "r2", "6291").await.0, StatusCode::OK);
}

#[tokio::test]
async fn admin_settings_change_rates_at_run_time() {
    let s = AppState::open(test_config(), None).unwrap();
    let app = touxiang::app(s.clone());
    let (st, b) = call(
        &app,
        "PUT",
        "/v1/admin/settings",
        Some(json!({"qa_sample_rate": 1.5})),
    )
    .await;
    assert_eq!(
        (st, b["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("qa_sample_rate"))
    );
    let (st, b) = call(
        &app,
        "PUT",
        "/v1/admin/settings",
        Some(json!({"qa_sample_rate": 0.5, "double_review_rate": 1.0})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(
        (
            b["qa_sample_rate"].as_f64(),
            b["double_review_rate"].as_f64()
        ),
        (Some(0.5), Some(1.0))
    );
    assert_eq!(s.review().qa.rate(), 0.5);
    // Double review now applies to every new item.
    let id = s
        .review()
        .store
        .enqueue(&NewItem::new("default", "养猪", TAX, 0.5), Utc::now())
        .unwrap();
    assert!(s.review().store.get(&id, Utc::now()).unwrap().double_review);
    let (_, b) = call(&app, "GET", "/v1/admin/settings", None).await;
    assert_eq!(b["double_review_rate"].as_f64(), Some(1.0));
}

// ---------------------------------------------------------------------------------------------
// classify → review → exemplar store, with a small classifier trained here (custom taxonomy).

async fn state_with_classifier(qa_rate: f64) -> AppState {
    let mut cfg = test_config();
    cfg.classify.qa_sample_rate = qa_rate;
    // No random double review: one label makes an item final (double review is tested above).
    cfg.review.double_review_rate = 0.0;
    common::state_with_mini(cfg).await
}

async fn classify(app: &axum::Router, texts: &[&str]) -> Vec<Value> {
    let items: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"id": format!("app-{i}"), "text": t, "amount": 100000}))
        .collect();
    let (st, b) = call(
        app,
        "POST",
        "/v1/classify",
        Some(json!({"items": items, "taxonomy": "mini", "neighbors": 5})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    b["results"].as_array().unwrap().clone()
}

#[tokio::test]
async fn classify_routes_to_review_and_a_label_becomes_a_neighbour() {
    // QA rate 1: every item goes to review (review decisions, disagreements, and QA samples).
    let s = state_with_classifier(1.0).await;
    let app = touxiang::app(s.clone());
    let reviewed_text = "承包鱼塘养殖草鱼和鲢鱼";
    let similar = "鱼塘养殖草鱼鲢鱼的饲料款";
    let before = classify(&app, &[similar]).await;
    assert!(before[0]["neighbors"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["source"] == "seed"));

    let res = classify(&app, &[reviewed_text, "采购热轧钢卷"]).await;
    let ids: Vec<&str> = res
        .iter()
        .map(|r| r["review_id"].as_str().expect("review_id set at QA rate 1"))
        .collect();
    assert!(ids.iter().all(|i| i.starts_with("rv_")));

    // The item carries the classify context; label it (the reviewer puts the fish pond under 农业).
    let (st, item) = call(&app, "GET", &format!("/v1/review/{}", ids[0]), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(item["item"]["external_id"], "app-0");
    assert_eq!(item["item"]["amount"], 100000.0);
    assert_eq!(item["item"]["taxonomy"], "mini");
    assert!(
        item["item"]["suggestions"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{item}"
    );
    // Three items wait (the first classify was routed too, at QA rate 1); their order follows
    // the classifier's uncertainty, so claim until ours comes.
    let mut claimed = None;
    for _ in 0..3 {
        let (_, b) = claim(&app, "r1").await;
        if b["review_id"] == ids[0] {
            claimed = Some(b);
            break;
        }
    }
    assert!(claimed.is_some(), "the item could not be claimed");
    let (st, e) = label(&app, ids[0], "r1", "ZZ").await;
    assert_eq!(
        (st, e["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("code"))
    );
    let (st, b) = label(&app, ids[0], "r1", "A").await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["exemplar"], "added", "{b}");

    // The next similar text sees the reviewed label as its nearest neighbour.
    let after = classify(&app, &[similar]).await;
    let nb = after[0]["neighbors"].as_array().unwrap();
    let hit = nb
        .iter()
        .find(|n| n["source"] == "reviewed")
        .unwrap_or_else(|| panic!("no reviewed neighbour: {after:?}"));
    assert_eq!(
        (hit["text"].as_str(), hit["code"].as_str()),
        (Some(reviewed_text), Some("A"))
    );
    assert_eq!(
        nb[0]["source"], "reviewed",
        "the reviewed exemplar should be the nearest: {nb:?}"
    );
    assert_ne!(before[0]["neighbors"], after[0]["neighbors"]);
}

#[tokio::test]
async fn without_qa_sampling_only_review_decisions_or_disagreements_are_routed() {
    let s = state_with_classifier(0.0).await;
    let app = touxiang::app(s.clone());
    let res = classify(
        &app,
        &["采购热轧钢卷", "购买仔猪", "用途不明的资金周转", "其他"],
    )
    .await;
    for r in &res {
        if r["decision"] == "review" {
            assert!(r["review_id"].is_string(), "{r}");
        }
    }
    let routed = res.iter().filter(|r| r["review_id"].is_string()).count() as u64;
    let (_, st) = call(&app, "GET", "/v1/review/stats", None).await;
    let pending: u64 = st["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["pending"].as_u64().unwrap())
        .sum();
    assert_eq!(pending, routed, "{st}");
}

#[tokio::test]
async fn labels_that_missed_the_exemplar_store_are_replayed_once() {
    let s = state_with_classifier(0.0).await;
    let ctx = s.review();
    let reviewed = [
        ("承包鱼塘养殖草鱼和鲢鱼", "A"),
        ("采购热轧钢卷用于转售", "C1"),
    ];
    // Labels written straight to the review store, as when the model or the exemplar store
    // was down (or the process died) between the label's commit and its upsert.
    for (text, code) in reviewed {
        let mut it = NewItem::new("default", text, "mini", 0.9);
        it.double_review = Some(false);
        let id = ctx.store.enqueue(&it, Utc::now()).unwrap();
        let c = ctx
            .store
            .claim("default", "r1", ctx.lease_ttl, Utc::now())
            .unwrap()
            .expect("claimable");
        assert_eq!(c.review_id, id);
        ctx.store
            .label(&id, "r1", code, None, &ctx.lookup(&s), Utc::now())
            .unwrap();
    }
    let engine = s.engine().unwrap();
    let store = engine.store.clone().unwrap();
    let reviewed_filter = touxiang_vectors::Filter {
        taxonomy: Some("mini".into()),
        sources: Some(vec!["reviewed".into()]),
        ..Default::default()
    };
    assert_eq!(store.count(&reviewed_filter).await.unwrap(), 0);
    assert_eq!(touxiang::review::replay_reviewed(&s).await.unwrap(), 2);
    assert_eq!(store.count(&reviewed_filter).await.unwrap(), 2);
    // Nothing missing any more: a second start writes nothing.
    assert_eq!(touxiang::review::replay_reviewed(&s).await.unwrap(), 0);
    // And the replayed label is a neighbour of a similar text.
    let res = classify(&touxiang::app(s.clone()), &["鱼塘养殖草鱼鲢鱼的饲料款"]).await;
    let nb = res[0]["neighbors"].as_array().unwrap();
    assert!(
        nb.iter()
            .any(|n| n["source"] == "reviewed" && n["text"] == reviewed[0].0),
        "{nb:?}"
    );
}
