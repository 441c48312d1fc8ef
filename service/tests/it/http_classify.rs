//! /v1/classify end to end with the real encoder and a small classifier trained in the test on a
//! custom two-level taxonomy (so the test does not depend on shipped artifacts).

use crate::common;

use axum::http::StatusCode;
use common::{call, test_config};
use serde_json::json;

async fn app_with_classifier() -> (axum::Router, touxiang::AppState) {
    let state = common::state_with_mini(test_config()).await;
    (touxiang::app(state.clone()), state)
}

#[tokio::test]
async fn classify_returns_consistent_paths_with_evidence() {
    let (app, _) = app_with_classifier().await;
    let items: Vec<_> = [
        "补充流动资金，采购热轧钢卷",
        "用于烤串店装修及购买冷柜",
        "購買仔豬及飼料",
        "支付水稻种子款人民币50万元",
        "采购棉布用于衬衫生产",
        "资金周转",
        "Purchase of steel coils",
    ]
    .iter()
    .enumerate()
    .map(|(i, t)| json!({"id": format!("app-{i}"), "text": t, "amount": 100000}))
    .collect();
    let (st, body) = call(
        &app,
        "POST",
        "/v1/classify",
        Some(json!({"items": items, "taxonomy": "mini", "top_k": 2, "neighbors": 3})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(
        body["taxonomy_version"]
            .as_str()
            .map(|s| s.starts_with("mini")),
        Some(true),
        "{body}"
    );
    let tax = &common::mini().0;
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 7);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["id"], format!("app-{i}"));
        let d = r["decision"].as_str().unwrap();
        assert!(d == "auto" || d == "review");
        let c = r["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&c));
        if let Some(label) = r["label"].as_object() {
            let path = label["path"].as_array().unwrap();
            assert_eq!(
                path.last().unwrap()["code"],
                label["code"],
                "path ends at the label"
            );
            for w in path.windows(2) {
                let child = tax.get(w[1]["code"].as_str().unwrap()).unwrap();
                assert_eq!(
                    child.parent.as_deref(),
                    w[0]["code"].as_str(),
                    "path not consistent: {r}"
                );
            }
            assert!(
                tax.get(path[0]["code"].as_str().unwrap())
                    .unwrap()
                    .parent
                    .is_none(),
                "path starts at a root"
            );
        } else {
            assert_eq!(d, "review", "no label must mean review: {r}");
        }
        let nb = r["neighbors"].as_array().unwrap();
        assert!(nb.len() <= 3 && !nb.is_empty(), "neighbours shown: {r}");
        for n in nb {
            assert!(n["source"] == "seed" || n["source"] == "reviewed");
        }
        assert!(r["alternatives"].as_array().unwrap().len() <= 2);
    }
    let code = |i: usize| {
        results[i]["label"]["path"][0]["code"]
            .as_str()
            .unwrap_or("-")
            .to_string()
    };
    assert_eq!(code(0), "C", "{}", results[0]);
    assert_eq!(code(1), "H", "{}", results[1]);
    assert_eq!(code(2), "A", "traditional script: {}", results[2]);
    assert_eq!(code(4), "C", "{}", results[4]);
    let kw: Vec<&str> = results[1]["keywords"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k.as_str())
        .collect();
    assert!(kw.contains(&"冷柜") || kw.contains(&"烤串"), "{kw:?}");
}

#[tokio::test]
async fn classify_rejects_bad_input_naming_the_field() {
    let (app, _) = app_with_classifier().await;
    let cases = [
        (json!({"items": [], "taxonomy": "mini"}), "items"),
        (
            json!({"items": [{"text": " "}], "taxonomy": "mini"}),
            "items[0].text",
        ),
        (
            json!({"items": [{"text": "钢材", "amount": -5}], "taxonomy": "mini"}),
            "items[0].amount",
        ),
        (
            json!({"items": [{"text": "钢材", "amount": "lots"}], "taxonomy": "mini"}),
            "items[0].amount",
        ),
        (
            json!({"items": [{"text": "钢材"}], "taxonomy": "no-such-taxonomy"}),
            "taxonomy",
        ),
        (
            json!({"items": [{"text": "钢材"}], "taxonomy": "mini", "top_k": 1000}),
            "top_k",
        ),
        (
            json!({"items": [{"text": "钢材"}], "taxonomy": "mini", "neighbors": -1}),
            "neighbors",
        ),
        (
            json!({"items": [{"texts": "钢材"}], "taxonomy": "mini"}),
            "items[0]",
        ),
        (
            json!({"items": [{"text": "钢材", "declared_industry": "Z9"}], "taxonomy": "mini"}),
            "items[0].declared_industry",
        ),
        (
            json!({"items": [{"text": "钢材"}, {"text": "钢材", "borrower_name": "华".repeat(201)}],
                "taxonomy": "mini"}),
            "items[1].borrower_name",
        ),
        (
            json!({"items": [{"text": "钢材", "business_scope": "批".repeat(2001)}], "taxonomy": "mini"}),
            "items[0].business_scope",
        ),
    ];
    for (body, field) in cases {
        let (st, b) = call(&app, "POST", "/v1/classify", Some(body.clone())).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body} -> {b}");
        assert_eq!(b["error"]["field"], field, "{body} -> {b}");
    }
}

/// Batch jobs and portfolio uploads label through `AppState::labeler` on their own threads; it
/// must search the same seeded store as `/v1/classify` (same neighbours) and so give the labels
/// and confidences online classify gives.
#[tokio::test]
async fn job_and_upload_labelers_vote_over_the_store_like_classify() {
    use touxiang_training::EmbedFn;
    let (app, state) = app_with_classifier().await;
    let texts = [
        "补充流动资金，采购热轧钢卷",
        "用于烤串店装修及购买冷柜",
        "购买仔猪及饲料",
        "支付水稻种子款",
        "采购棉布用于衬衫生产",
        "资金周转",
    ];
    let items: Vec<_> = texts.iter().map(|t| json!({ "text": t })).collect();
    let (st, body) = call(
        &app,
        "POST",
        "/v1/classify",
        Some(json!({"items": items, "taxonomy": "mini", "neighbors": 3})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let results = body["results"].as_array().unwrap();
    assert!(results[0]["neighbors_available"].as_bool().unwrap());

    // the neighbours the labelers see, searched from a thread outside the runtime
    let source = state
        .neighbor_source("mini")
        .unwrap()
        .expect("store-backed");
    let vectors = touxiang::engine::E5(state.engine().unwrap().model.clone())
        .embed(&texts)
        .unwrap();
    let found = tokio::task::spawn_blocking(move || source.neighbors(&vectors, 3))
        .await
        .unwrap()
        .unwrap()
        .expect("store seeded");
    for (i, r) in results.iter().enumerate() {
        let shown: Vec<(&str, &str)> = r["neighbors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| (n["text"].as_str().unwrap(), n["code"].as_str().unwrap()))
            .collect();
        let got: Vec<(&str, &str)> = found[i]
            .iter()
            .map(|n| (n.text.as_str(), n.code.as_str()))
            .collect();
        assert_eq!(got, shown, "{}", texts[i]);
        assert!(!got.is_empty());
    }

    let labeler = state.labeler("mini").unwrap();
    assert!(
        labeler.cache_scope().ends_with("+knn"),
        "labels voted over neighbours are cached apart from heads-only ones: {}",
        labeler.cache_scope()
    );
    // an upload labels on a blocking-pool thread, a job on a thread of its own; both embed
    // through the batching queue's background lane, behind waiting classify requests
    let queue = state.engine().unwrap().queue.clone();
    let before = queue.background_sequences();
    let n = texts.len() as u64;
    let (l1, l2) = (labeler.clone(), labeler);
    let from_pool = tokio::task::spawn_blocking(move || l1.label(&texts))
        .await
        .unwrap()
        .unwrap();
    let from_thread = tokio::task::spawn_blocking(move || {
        std::thread::spawn(move || l2.label(&texts)).join().unwrap()
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(queue.background_sequences() - before, 2 * n);
    for (i, r) in results.iter().enumerate() {
        for got in [&from_pool[i], &from_thread[i]] {
            assert_eq!(
                got.code.as_deref(),
                r["label"]["code"].as_str(),
                "{}",
                texts[i]
            );
            assert_eq!(got.decision.as_str(), r["decision"].as_str().unwrap());
            let c = r["confidence"].as_f64().unwrap() as f32;
            assert!(
                (got.confidence - c).abs() < 1e-4,
                "{}: {} vs {c}",
                texts[i],
                got.confidence
            );
        }
    }
}

/// The borrower's name is read with the text (a generic purpose becomes the borrower's industry),
/// the declared industry comes back as evidence, and alternatives are leaves with their paths
/// plus the best guess's full path.
#[tokio::test]
async fn borrower_fields_are_read_and_candidates_are_leaves_with_paths() {
    let (app, _) = app_with_classifier().await;
    let classify = |item: serde_json::Value| {
        let app = app.clone();
        async move {
            let (st, b) = call(
                &app,
                "POST",
                "/v1/classify",
                Some(json!({"items": [item], "taxonomy": "mini", "top_k": 3})),
            )
            .await;
            assert_eq!(st, StatusCode::OK, "{b}");
            b["results"][0].clone()
        }
    };
    let bare = classify(json!({"text": "购买原材料一批"})).await;
    let named = classify(
        json!({"text": "购买原材料一批", "borrower_name": "江苏华瑞服装有限公司",
        "business_scope": "服装、服饰加工与销售", "declared_industry": "C2"}),
    )
    .await;
    assert_eq!(named["guess"]["code"], "C2", "{named}");
    assert_ne!(
        (&bare["guess"]["code"], &bare["confidence"]),
        (&named["guess"]["code"], &named["confidence"]),
        "the borrower fields changed nothing: {bare} vs {named}"
    );
    assert_eq!(named["declared"]["code"], "C2");
    assert_eq!(named["declared"]["name"], "服装制造");
    assert_eq!(named["declared"]["agrees"], true);
    assert!(bare["declared"].is_null());
    for r in [&bare, &named] {
        let guess = &r["guess"];
        if guess.is_null() {
            // vague: no guess, no label
            assert!(r["label"].is_null(), "{r}");
            continue;
        }
        let gpath = guess["path"].as_array().unwrap();
        assert_eq!(gpath.len(), 2, "guess goes down to a leaf: {r}");
        assert_eq!(gpath[1]["code"], guess["code"]);
        let alts = r["alternatives"].as_array().unwrap();
        assert_eq!(alts.len(), 3, "{r}");
        for a in alts {
            assert_ne!(a["code"], guess["code"], "the guess is not repeated: {r}");
            assert_eq!(a["level"], guess["level"], "alternatives are leaves: {r}");
            let p = a["path"].as_array().unwrap();
            assert_eq!(p.len(), 2, "{r}");
            assert_eq!(p[1]["code"], a["code"]);
            assert!(p[1]["confidence"].as_f64().unwrap() <= p[0]["confidence"].as_f64().unwrap());
        }
    }
}
