//! Authentication and the role matrix, in-process (`oneshot`) with authentication ON: every
//! endpoint × every role (and no key / a bad key / a revoked key).

use crate::common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{send, test_config};
use serde_json::{json, Value};
use touxiang::auth::{access_for, Access};
use touxiang::AppState;
use touxiang_auth::{KeyStore, Role};
use utoipa::OpenApi;

/// A state with authentication on and one key per role (`originator`, `r1` (reviewer),
/// `analyst`, `ops` (admin)) created in its temporary data directory.
fn auth_state() -> (AppState, Vec<(Role, String)>) {
    let mut cfg = test_config();
    cfg.insecure_no_auth = false;
    let ks = KeyStore::open(&cfg.data_dir).unwrap();
    let keys = [
        (Role::Originator, "originator"),
        (Role::Reviewer, "r1"),
        (Role::Analyst, "analyst"),
        (Role::Admin, "ops"),
    ]
    .into_iter()
    .map(|(r, n)| (r, ks.create(r, n).unwrap().1))
    .collect();
    (AppState::open(cfg, None).unwrap(), keys)
}

async fn req(
    app: &axum::Router,
    method: &str,
    uri: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    let r = match body {
        Some(v) => b
            .header("content-type", "application/json")
            .body(Body::from(v.to_string()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    };
    send(app, r).await
}

/// Every endpoint and the roles (besides admin) that may call it, written out independently of
/// the access the routes declare in `touxiang::routes` (O = originator, R = reviewer, A = analyst; `open` = no
/// key needed).
const MATRIX: &[(&str, &str, &str)] = &[
    ("GET", "/healthz", "open"),
    ("GET", "/readyz", "open"),
    ("GET", "/openapi.json", "open"),
    ("GET", "/docs/", "open"),
    ("GET", "/metrics", "A"),
    ("POST", "/v1/embed", "O"),
    ("POST", "/v1/classify", "O"),
    ("POST", "/v1/review/claim", "R"),
    ("POST", "/v1/review/rv_missing/label", "R"),
    ("POST", "/v1/review/rv_missing/skip", "R"),
    ("POST", "/v1/review/rv_missing/release", "R"),
    ("GET", "/v1/review/rv_missing", "R"),
    ("GET", "/v1/review/stats", "RA"),
    ("GET", "/v1/review/agreement", "A"),
    ("GET", "/v1/review/me", "R"),
    ("GET", "/v1/whoami", "ORA"),
    ("GET", "/v1/taxonomies", "ORA"),
    ("GET", "/v1/taxonomies/gbt4754-2017/search?q=36", "ORA"),
    ("GET", "/v1/portfolios", "A"),
    ("POST", "/v1/portfolios/p1/loans", "A"),
    ("GET", "/v1/portfolios/p1/ingest-reports/ir_missing", "A"),
    ("GET", "/v1/aggregate?portfolio=p1&by=industry.section", "A"),
    (
        "GET",
        "/v1/concentration?portfolio=p1&by=industry.section",
        "A",
    ),
    ("GET", "/v1/scores?portfolio=p1&by=industry.section", "A"),
    ("GET", "/v1/alerts?portfolio=p1", "A"),
    ("POST", "/v1/portfolios/p1/payments", "A"),
    ("POST", "/v1/portfolios/p1/relations", "A"),
    ("GET", "/v1/loans/L1/flow?portfolio=p1", "A"),
    ("GET", "/v1/graph/circles?portfolio=p1", "A"),
    ("GET", "/v1/graph/borrowers/b1?portfolio=p1", "A"),
    ("POST", "/v1/jobs", "A"),
    ("GET", "/v1/jobs", "A"),
    ("GET", "/v1/jobs/job_missing", "A"),
    ("POST", "/v1/jobs/job_missing/cancel", "A"),
    ("GET", "/v1/jobs/job_missing/output", "A"),
    ("GET", "/v1/admin/keys", ""),
    ("POST", "/v1/admin/keys", ""),
    ("DELETE", "/v1/admin/keys/key_missing", ""),
    ("GET", "/v1/admin/settings", ""),
    ("PUT", "/v1/admin/settings", ""),
];

fn letter(r: Role) -> char {
    match r {
        Role::Originator => 'O',
        Role::Reviewer => 'R',
        Role::Analyst => 'A',
        Role::Admin => '*',
    }
}

#[tokio::test]
async fn role_matrix_every_endpoint_every_role() {
    let (state, keys) = auth_state();
    let app = touxiang::app(state);
    let mut checked = 0;
    for (method, uri, who) in MATRIX {
        let body = matches!(*method, "POST" | "PUT").then(|| json!({}));
        let (st, b) = req(&app, method, uri, None, body.clone()).await;
        if *who == "open" {
            assert!(
                st != StatusCode::UNAUTHORIZED && st != StatusCode::FORBIDDEN,
                "{method} {uri} without key: {st} {b}"
            );
        } else {
            assert_eq!(
                st,
                StatusCode::UNAUTHORIZED,
                "{method} {uri} without key: {b}"
            );
            assert_eq!(b["error"]["code"], "unauthorized", "{b}");
        }
        for (role, key) in &keys {
            let (st, b) = req(&app, method, uri, Some(key), body.clone()).await;
            let may = *who == "open" || *role == Role::Admin || who.contains(letter(*role));
            if may {
                assert!(
                    st != StatusCode::UNAUTHORIZED && st != StatusCode::FORBIDDEN,
                    "{role} may call {method} {uri}, got {st} {b}"
                );
            } else {
                assert_eq!(st, StatusCode::FORBIDDEN, "{role} × {method} {uri}: {b}");
                assert_eq!(b["error"]["code"], "forbidden", "{b}");
                assert!(b["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(role.as_str()));
            }
            checked += 1;
        }
    }
    assert_eq!(checked, MATRIX.len() * 4);
}

#[test]
fn every_documented_route_declares_its_access_and_is_in_the_matrix() {
    let doc = serde_json::to_value(touxiang::openapi::ApiDoc::openapi()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/v1/review/claim") && paths.contains_key("/v1/admin/keys"));
    for (path, item) in paths {
        let concrete: String = path
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        for m in ["get", "post", "put", "delete", "patch"] {
            let Some(op) = item.get(m) else { continue };
            let method: Method = m.to_uppercase().parse().unwrap();
            let access = access_for(&method, &concrete);
            assert!(
                access.is_some(),
                "{m} {path} declares no access where touxiang::routes adds it"
            );
            if path.starts_with("/v1/review") || path.starts_with("/v1/admin") {
                assert!(
                    op["security"].as_array().is_some_and(|s| !s.is_empty()),
                    "{m} {path} documents no bearer security"
                );
            }
            if access != Some(Access::Open) {
                let in_matrix = MATRIX.iter().any(|(mm, u, _)| {
                    let u = u.split('?').next().unwrap();
                    mm.eq_ignore_ascii_case(m)
                        && u.split('/').count() == concrete.split('/').count()
                        && u.split('/')
                            .zip(concrete.split('/'))
                            .all(|(a, b)| a == b || b == "x")
                });
                assert!(in_matrix, "{m} {path} is missing from the role-matrix test");
            }
        }
    }
}

#[tokio::test]
async fn bad_revoked_and_malformed_keys_get_401_with_a_challenge() {
    let (state, keys) = auth_state();
    let app = touxiang::app(state.clone());
    let admin = &keys[3].1;
    for header in [
        "Bearer tx_0000".to_string(),
        "Bearer ".to_string(),
        format!("Basic {admin}"),
        admin.clone(),
    ] {
        let r = Request::builder()
            .uri("/v1/admin/keys")
            .header("authorization", header.clone())
            .body(Body::empty())
            .unwrap();
        let resp = tower::ServiceExt::oneshot(app.clone(), r).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{header}");
        assert!(resp.headers().contains_key("www-authenticate"));
    }
    // Unknown route: default deny for non-admins, 404 for admins.
    let (st, _) = req(&app, "GET", "/v1/nothing-here", Some(&keys[0].1), None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = req(&app, "GET", "/v1/nothing-here", Some(admin), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Create a key over HTTP, use it, revoke it: the next request is refused.
    let (st, b) = req(
        &app,
        "POST",
        "/v1/admin/keys",
        Some(admin),
        Some(json!({"role": "analyst", "name": "temp-analyst"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let k = b["key"].as_str().unwrap().to_string();
    let id = b["key_id"].as_str().unwrap().to_string();
    let (st, _) = req(&app, "GET", "/v1/review/stats", Some(&k), None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, b) = req(&app, "GET", "/v1/admin/keys", Some(admin), None).await;
    assert_eq!(st, StatusCode::OK);
    let listed = b["keys"].as_array().unwrap();
    assert_eq!(listed.len(), 5);
    assert!(listed
        .iter()
        .all(|k| k.get("key").is_none() && k.get("key_hash").is_none()));
    let (st, b) = req(
        &app,
        "DELETE",
        &format!("/v1/admin/keys/{id}"),
        Some(admin),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert!(b["revoked_at"].is_string());
    let (st, _) = req(&app, "GET", "/v1/review/stats", Some(&k), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // Revoking again → 409; bad role / name → 422 naming the field; taken name → 409.
    let (st, _) = req(
        &app,
        "DELETE",
        &format!("/v1/admin/keys/{id}"),
        Some(admin),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT);
    for (body, field) in [
        (json!({"role": "root", "name": "x"}), "role"),
        (json!({"role": "reviewer", "name": "a b"}), "name"),
    ] {
        let (st, b) = req(&app, "POST", "/v1/admin/keys", Some(admin), Some(body)).await;
        assert_eq!(
            (st, b["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field))
        );
    }
    let (st, _) = req(
        &app,
        "POST",
        "/v1/admin/keys",
        Some(admin),
        Some(json!({"role": "reviewer", "name": "r1"})),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT);
}

#[tokio::test]
async fn reviewers_act_only_as_themselves() {
    let (state, keys) = auth_state();
    let app = touxiang::app(state.clone());
    let (reviewer, admin) = (&keys[1].1, &keys[3].1);
    let ctx = state.review();
    let id = ctx
        .store
        .enqueue(
            &touxiang_review::NewItem::new(
                "default",
                "用于烤串店装修及购买冷柜",
                "gbt4754-2017",
                0.5,
            ),
            chrono::Utc::now(),
        )
        .unwrap();
    // r1's key may not claim as r2.
    let (st, b) = req(
        &app,
        "POST",
        "/v1/review/claim",
        Some(reviewer),
        Some(json!({"queue": "default", "reviewer": "r2"})),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{b}");
    // Without `reviewer`, the key's name is used.
    let (st, b) = req(
        &app,
        "POST",
        "/v1/review/claim",
        Some(reviewer),
        Some(json!({"queue": "default"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(
        (b["review_id"].as_str(), b["reviewer"].as_str()),
        (Some(id.as_str()), Some("r1"))
    );
    // An admin acting as r2 cannot label r1's lease: 403 from the store.
    let (st, b) = req(
        &app,
        "POST",
        &format!("/v1/review/{id}/label"),
        Some(admin),
        Some(json!({"code": "6291", "reviewer": "r2"})),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{b}");
    let (st, b) = req(
        &app,
        "POST",
        &format!("/v1/review/{id}/label"),
        Some(reviewer),
        Some(json!({"code": "6291", "comment": "烧烤"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["reviewer"], "r1");
}

#[tokio::test]
async fn insecure_no_auth_switches_checks_off() {
    let s = AppState::open(test_config(), None).unwrap();
    assert!(s.config().insecure_no_auth);
    let app = touxiang::app(s);
    let (st, _) = req(&app, "GET", "/v1/admin/keys", None, None).await;
    assert_eq!(st, StatusCode::OK);
    // Without a key there is no reviewer identity: it must be given.
    let (st, b) = req(
        &app,
        "POST",
        "/v1/review/claim",
        None,
        Some(json!({"queue": "default"})),
    )
    .await;
    assert_eq!(
        (st, b["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("reviewer"))
    );
}

#[test]
fn every_operation_documents_the_errors_its_layers_can_give() {
    let doc = serde_json::to_value(touxiang::openapi::ApiDoc::openapi()).unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in ["get", "post", "put", "delete", "patch"] {
            let Some(op) = item.get(m) else { continue };
            let codes = op["responses"].as_object().unwrap();
            let must = |code: &str, why: &str| {
                let r = codes
                    .get(code)
                    .unwrap_or_else(|| panic!("{m} {path}: no {code} ({why})"));
                assert!(
                    r["content"]["application/json"]["schema"].is_object(),
                    "{m} {path} {code}"
                );
            };
            must("408", "timeout layer");
            must("500", "internal error");
            if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
                must("401", "key required");
                must("403", "permission");
            }
            if op.get("requestBody").is_some() {
                for c in ["400", "413", "415", "422"] {
                    must(c, "request body");
                }
            }
            let query = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
            if query {
                must("422", "query parameters");
            }
            checked += 1;
        }
    }
    assert!(checked >= 28, "{checked}");
    // the upload's 422 is an error body (rejected rows add the summary fields beside `error`)
    let r = &doc["paths"]["/v1/portfolios/{name}/loans"]["post"]["responses"]["422"];
    assert_eq!(
        r["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
}

#[tokio::test]
async fn undeclared_requests_need_an_admin_key() {
    let (state, keys) = auth_state();
    let app = touxiang::app(state);
    let (analyst, admin) = (&keys[2].1, &keys[3].1);
    // a method the path does not serve, and a path no route has
    for (method, uri, status) in [
        ("POST", "/healthz", StatusCode::METHOD_NOT_ALLOWED),
        ("DELETE", "/v1/review/claim", StatusCode::METHOD_NOT_ALLOWED),
        ("GET", "/v1/nothing", StatusCode::NOT_FOUND),
        ("GET", "/v1/review/rv_1/label/x", StatusCode::NOT_FOUND),
    ] {
        let (st, b) = req(&app, method, uri, None, None).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{method} {uri}: {b}");
        let (st, b) = req(&app, method, uri, Some(analyst), None).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{method} {uri}: {b}");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("needs an admin key"),
            "{b}"
        );
        let (st, b) = req(&app, method, uri, Some(admin), None).await;
        assert_eq!(st, status, "{method} {uri}: {b}");
        assert!(b["error"]["code"].is_string(), "contract shape: {b}");
    }
}
