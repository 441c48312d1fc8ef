//! The endpoints the browser UI calls besides the core API: `GET /v1/whoami`,
//! `GET /v1/taxonomies` and `GET /v1/taxonomies/{id}/search`. The review additions are in
//! `http_ui_review`, `touxiang datasets synth-book` in `cli_synth_book`.

use crate::common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{call, send, test_config};
use serde_json::Value;
use touxiang::AppState;
use touxiang_auth::{KeyStore, Role};

const GBT: &str = "gbt4754-2017";

pub(crate) async fn get_with_key(
    app: &axum::Router,
    uri: &str,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let mut b = Request::builder().method("GET").uri(uri);
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    send(app, b.body(Body::empty()).unwrap()).await
}

/// Authentication on, one key per role: (role, name, key).
pub(crate) fn auth_state() -> (AppState, Vec<(Role, &'static str, String)>) {
    let mut cfg = test_config();
    cfg.insecure_no_auth = false;
    let ks = KeyStore::open(&cfg.data_dir).unwrap();
    let keys = [
        (Role::Originator, "los"),
        (Role::Reviewer, "r1"),
        (Role::Analyst, "risk"),
        (Role::Admin, "ops"),
    ]
    .into_iter()
    .map(|(r, n)| (r, n, ks.create(r, n).unwrap().1))
    .collect();
    (AppState::open(cfg, None).unwrap(), keys)
}

pub(crate) fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn whoami_names_the_key_its_role_and_permissions() {
    let (state, keys) = auth_state();
    let app = touxiang::app(state);
    let expected: &[(Role, &[&str])] = &[
        (Role::Originator, &["classify", "embed"]),
        (Role::Reviewer, &["review_work", "review_stats"]),
        (
            Role::Analyst,
            &[
                "review_stats",
                "review_reports",
                "aggregate",
                "export",
                "portfolio_write",
                "metrics",
            ],
        ),
        (
            Role::Admin,
            &[
                "classify",
                "embed",
                "review_work",
                "review_stats",
                "review_reports",
                "aggregate",
                "export",
                "portfolio_write",
                "metrics",
                "manage_keys",
                "settings",
                "reload",
            ],
        ),
    ];
    for (role, name, key) in &keys {
        let (st, b) = get_with_key(&app, "/v1/whoami", Some(key)).await;
        assert_eq!(st, StatusCode::OK, "{role}: {b}");
        assert_eq!(b["name"], *name);
        assert_eq!(b["role"], role.as_str());
        assert_eq!(b["auth"], true);
        let perms = expected.iter().find(|(r, _)| r == role).unwrap().1;
        assert_eq!(strings(&b["permissions"]), perms, "{role}");
    }
    for key in [None, Some("tx_not_a_key")] {
        let (st, b) = get_with_key(&app, "/v1/whoami", key).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{b}");
        assert_eq!(b["error"]["code"], "unauthorized");
    }
    // Authentication off: the local admin.
    let app = touxiang::app(AppState::open(test_config(), None).unwrap());
    let (st, b) = call(&app, "GET", "/v1/whoami", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        (b["name"].as_str(), b["role"].as_str()),
        (Some("local"), Some("admin"))
    );
    assert_eq!(b["auth"], false);
    assert_eq!(b["permissions"].as_array().unwrap().len(), 12);
}

#[tokio::test]
async fn taxonomies_are_listed_before_the_model_is_loaded() {
    let cfg = test_config();
    std::fs::create_dir_all(cfg.data_dir.join("taxonomies")).unwrap();
    std::fs::write(
        cfg.data_dir.join("taxonomies/bank.csv"),
        "code,name,parent,level\nX,对公,,segment\nX1,小微,X,line\n",
    )
    .unwrap();
    let app = touxiang::app(AppState::open(cfg, None).unwrap());
    let (st, b) = call(&app, "GET", "/v1/taxonomies", None).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["default"], GBT);
    let list = b["taxonomies"].as_array().unwrap();
    let ids: Vec<&str> = list.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["bank", GBT, "purpose"]);
    let gbt = &list[1];
    assert_eq!(
        strings(&gbt["levels"]),
        ["section", "division", "group", "class"]
    );
    assert_eq!(gbt["codes"], 20 + 97 + 473 + 1382);
    assert_eq!(gbt["version"], GBT);
    assert!(list.iter().all(|t| t["classifier"] == false), "{b}");
    assert_eq!(strings(&list[0]["levels"]), ["segment", "line"]);
    assert_eq!(list[0]["codes"], 2);

    // With a trained classifier loaded (a taxonomy known only through it, too).
    let s = common::state_with_mini(test_config()).await;
    let app = touxiang::app(s);
    let (_, b) = call(&app, "GET", "/v1/taxonomies", None).await;
    let mini = b["taxonomies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "mini")
        .cloned()
        .unwrap_or_else(|| panic!("mini missing: {b}"));
    assert_eq!(mini["classifier"], true);
    assert_eq!(mini["codes"], 8);
    let (_, h) = call(&app, "GET", "/v1/taxonomies/mini/search?q=烧烤", None).await;
    assert_eq!(h["hits"][0]["code"], "H1", "{h}");
}

async fn search(app: &axum::Router, q: &str) -> Vec<Value> {
    let (st, b) = call(
        app,
        "GET",
        &format!("/v1/taxonomies/{GBT}/search?q={}", urlencode(q)),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{q}: {b}");
    assert_eq!(b["taxonomy"], GBT);
    assert_eq!(b["query"], q);
    b["hits"].as_array().unwrap().clone()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn taxonomy_search_by_code_name_term_and_traditional_characters() {
    // No model loaded: the terms come from the shipped artifact all the same.
    let app = touxiang::app(AppState::open(test_config(), None).unwrap());

    // Code: exact first, then the codes below it, coarser first.
    let hits = search(&app, "36").await;
    assert!(hits.len() >= 10, "{hits:?}");
    assert_eq!(
        (hits[0]["code"].as_str(), hits[0]["matched"].as_str()),
        (Some("36"), Some("code"))
    );
    assert_eq!(hits[0]["name"], "汽车制造业");
    assert_eq!(hits[0]["level"], "division");
    let codes: Vec<&Value> = hits.iter().filter(|h| h["matched"] == "code").collect();
    assert!(codes.len() >= 10, "{hits:?}");
    assert!(codes
        .iter()
        .all(|h| h["code"].as_str().unwrap().starts_with("36")));
    // code matches come first (a note term holding "36" may follow)
    assert!(
        hits[..codes.len()].iter().all(|h| h["matched"] == "code"),
        "{hits:?}"
    );
    assert_eq!(
        hits[1]["code"].as_str().unwrap().len(),
        3,
        "groups before classes"
    );
    let path: Vec<&str> = hits[0]["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert_eq!(path, ["C", "36"]);
    assert!(hits[0]["term"].is_null());

    // Name: shorter names first; 小吃服务 among them, with its full path.
    let hits = search(&app, "小吃").await;
    assert_eq!(hits[0]["matched"], "name", "{hits:?}");
    let snack = hits.iter().find(|h| h["code"] == "6291").expect("6291");
    assert_eq!(snack["matched"], "name");
    assert_eq!(snack["path"][0]["name"], "住宿和餐饮业");
    assert_eq!(snack["path"].as_array().unwrap().len(), 4);
    let name_lens: Vec<usize> = hits
        .iter()
        .filter(|h| h["matched"] == "name")
        .map(|h| h["name"].as_str().unwrap().chars().count())
        .collect();
    assert!(name_lens.windows(2).all(|w| w[0] <= w[1]), "{name_lens:?}");

    // A note term (包括 item of 0111 稻谷种植), not in any name.
    let hits = search(&app, "早籼稻").await;
    assert_eq!(hits[0]["code"], "0111", "{hits:?}");
    assert_eq!(hits[0]["matched"], "term");
    assert_eq!(hits[0]["term"], "早籼稻");
    // Generated loan phrasings are no terms.
    assert!(search(&app, "饺子馆装修").await.is_empty());

    // Traditional characters and case.
    let hits = search(&app, "汽車製造").await;
    assert_eq!(hits[0]["code"], "36", "{hits:?}");
    assert_eq!(hits[0]["matched"], "name");
    assert_eq!(search(&app, "c").await[0]["code"], "C");

    // limit: 20 by default, as asked
    assert_eq!(search(&app, "制造").await.len(), 20);
    let (st, b) = call(
        &app,
        "GET",
        &format!("/v1/taxonomies/{GBT}/search?q=36&limit=1"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(b["hits"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn taxonomy_search_errors() {
    let app = touxiang::app(AppState::open(test_config(), None).unwrap());
    let (st, b) = call(&app, "GET", "/v1/taxonomies/nope/search?q=36", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{b}");
    assert_eq!(b["error"]["code"], "not_found");
    let long = "a".repeat(101);
    for (query, field) in [
        ("", "q"),
        ("q=", "q"),
        ("q=%20%20", "q"),
        (&format!("q={long}") as &str, "q"),
        ("q=36&limit=0", "limit"),
        ("q=36&limit=101", "limit"),
        ("q=36&limit=ten", "limit"),
    ] {
        let (st, b) = call(
            &app,
            "GET",
            &format!("/v1/taxonomies/{GBT}/search?{query}"),
            None,
        )
        .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {b}");
        assert_eq!(b["error"]["field"], field, "{query}: {b}");
    }
    let (st, _) = call(
        &app,
        "GET",
        &format!(
            "/v1/taxonomies/{GBT}/search?q={}&limit=100",
            "a".repeat(100)
        ),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
}
