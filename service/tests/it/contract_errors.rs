//! The error contract at the edges (issue 13, item 7): errors written by layers and extractors
//! (body limit, timeout, method not allowed, path rejections) in the contract shape; malformed
//! JSON and trailing garbage as 400 `invalid_json` on every JSON endpoint; portfolio names,
//! ids, reviewer ids and comments bounded, with the limits in the OpenAPI document; `/metrics`
//! documented with the security it enforces.

use crate::common;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use common::{cold_state, test_config};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use touxiang::auth::{access_for, Access};
use touxiang::AppState;
use touxiang_auth::{KeyStore, Role};
use tower::ServiceExt;
use utoipa::OpenApi;

async fn send_full(app: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let st = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (st, headers, v)
}

async fn post_raw(
    app: &Router,
    uri: &str,
    ct: &str,
    body: impl Into<Body>,
) -> (StatusCode, HeaderMap, Value) {
    let req = Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", ct)
        .body(body.into())
        .unwrap();
    send_full(app, req).await
}

/// The contract shape: JSON content type, `{"error": {"code", "message", "field"?}}`.
fn assert_contract(
    what: &str,
    (st, headers, body): &(StatusCode, HeaderMap, Value),
    status: StatusCode,
    code: &str,
    field: Option<&str>,
) {
    assert_eq!(*st, status, "{what}: {body}");
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "{what}: {headers:?}"
    );
    let err = &body["error"];
    assert_eq!(err["code"], code, "{what}: {body}");
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
    match field {
        Some(f) => assert_eq!(err["field"], f, "{what}: {body}"),
        None => assert!(err.get("field").is_none(), "{what}: {body}"),
    }
}

fn small_limits_state() -> AppState {
    let mut cfg = test_config();
    cfg.limits.max_body_bytes = 1024;
    cfg.limits.request_timeout_secs = 1;
    AppState::open(cfg, None).unwrap()
}

#[tokio::test]
async fn errors_written_by_layers_and_extractors_have_the_contract_shape() {
    let app = touxiang::app(small_limits_state());
    let big = json!({"reviewer": "r1", "reason": "x".repeat(4000)}).to_string();
    // DefaultBodyLimit on the optional bodies of skip and release (plain text before).
    for action in ["skip", "release"] {
        let r = post_raw(
            &app,
            &format!("/v1/review/rv_x/{action}"),
            "application/json",
            big.clone(),
        )
        .await;
        assert_contract(
            action,
            &r,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            None,
        );
    }
    // The router's 405 (empty before), keeping its Allow header.
    let r = send_full(
        &app,
        Request::builder()
            .method("GET")
            .uri("/v1/classify")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_contract(
        "405",
        &r,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        None,
    );
    let allow = r.1.get("allow").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(allow.contains("POST"), "{:?}", r.1);
    // A path parameter axum cannot decode (plain-text 400 before).
    let r = send_full(
        &app,
        Request::builder()
            .uri("/v1/review/%FF%FE")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_contract("bad path", &r, StatusCode::BAD_REQUEST, "bad_request", None);
    // Errors the app writes itself are untouched.
    let r = send_full(
        &app,
        Request::builder()
            .uri("/nowhere")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_contract("404", &r, StatusCode::NOT_FOUND, "not_found", None);
    // Successful non-JSON answers are untouched too.
    let r = send_full(
        &app,
        Request::builder()
            .uri("/metrics")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.0, StatusCode::OK);
}

#[tokio::test]
async fn the_request_timeout_is_a_contract_error() {
    let app = touxiang::app(small_limits_state());
    let t = std::time::Instant::now();
    // A request body that never ends (a client that stalls mid-upload).
    let (_writer, reader) = tokio::io::duplex(64);
    let stalled = Body::from_stream(tokio_util::io::ReaderStream::new(reader));
    let r = post_raw(&app, "/v1/embed", "application/json", stalled).await;
    assert_contract(
        "408",
        &r,
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        None,
    );
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
}

/// Every endpoint with a JSON body.
const JSON_ENDPOINTS: &[(&str, &str)] = &[
    ("POST", "/v1/embed"),
    ("POST", "/v1/classify"),
    ("POST", "/v1/jobs"),
    ("POST", "/v1/review/claim"),
    ("POST", "/v1/review/rv_x/label"),
    ("POST", "/v1/review/rv_x/skip"),
    ("POST", "/v1/review/rv_x/release"),
    ("POST", "/v1/admin/keys"),
    ("PUT", "/v1/admin/settings"),
];

#[tokio::test]
async fn malformed_json_and_trailing_garbage_are_400_invalid_json_everywhere() {
    let app = touxiang::app(cold_state());
    let bodies = [
        r#"{"input": "a.csv""#,
        r#"{"input": "a.csv",}"#,
        r#"{input: "a.csv"}"#,
        r#"not json"#,
        // a shape error (unknown field, wrong type) met before the syntax error: POST /v1/jobs
        // (deny_unknown_fields) answered these with 422 invalid_field
        r#"{"a": 1,,}"#,
        r#"{"input": [}"#,
        // trailing garbage after a complete (and otherwise acceptable) value
        r#"{"input": "a.csv"} xyz"#,
        r#"{"items": [{"text": "烤串店装修"}]} xyz"#,
        r#"{"texts": ["a"]}}"#,
        r#"{} {}"#,
        r#"{"reviewer": "r1"} ["#,
        // shape errors before the garbage do not turn it into a 422
        r#"{"items": 5} xyz"#,
    ];
    for (method, uri) in JSON_ENDPOINTS {
        for b in bodies {
            let req = Request::builder()
                .method(*method)
                .uri(*uri)
                .header("content-type", "application/json")
                .body(Body::from(b))
                .unwrap();
            let r = send_full(&app, req).await;
            assert_contract(
                &format!("{method} {uri} {b}"),
                &r,
                StatusCode::BAD_REQUEST,
                "invalid_json",
                None,
            );
        }
    }
    // Trailing whitespace is fine; a well-formed body of the wrong shape is still a 422.
    let r = post_raw(
        &app,
        "/v1/jobs",
        "application/json",
        "{\"chunk_size\": \"x\"} \n\t",
    )
    .await;
    assert_contract(
        "jobs shape",
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("chunk_size"),
    );
    // The `options` part of a multipart job is parsed the same way.
    let mp = "--B\r\nContent-Disposition: form-data; name=\"options\"\r\n\r\n{\"resume\": tru}\r\n--B--\r\n";
    let r = post_raw(&app, "/v1/jobs", "multipart/form-data; boundary=B", mp).await;
    assert_contract(
        "jobs multipart",
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_json",
        None,
    );
}

const CSV: &str = "loan_id,purpose_text,amount,balance,overdue_days,region_code,customer_type,product,issue_date,as_of_date,industry_code\nL1,采购钢材,1,1,0,110101,个人,x,2024-01-01,2025-01-31,3120\n";

async fn upload(app: &Router, encoded_name: &str) -> (StatusCode, HeaderMap, Value) {
    post_raw(
        app,
        &format!("/v1/portfolios/{encoded_name}/loans"),
        "text/csv",
        CSV,
    )
    .await
}

#[tokio::test]
async fn portfolio_names_follow_the_documented_pattern() {
    use touxiang::routes::portfolio::name;
    let app = touxiang::app(cold_state());
    let long = "x".repeat(5000);
    for (encoded, why) in [
        ("..%2F..%2Fetc", "traversal"),
        ("a%2Fb", "slash"),
        ("a%5Cb", "backslash"),
        ("a%00b", "NUL"),
        ("a%20b", "space"),
        (".hidden", "leading dot"),
        ("..", "dot-dot"),
        ("-x", "leading hyphen"),
        (&long, "5000 characters"),
        (&"y".repeat(65), "65 characters"),
    ] {
        let r = upload(&app, encoded).await;
        assert_contract(
            why,
            &r,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("name"),
        );
    }
    let ok_names = [
        "Book_1",
        "%E5%8D%8E%E4%B8%9C%E5%88%86%E8%A1%8C-2025.v1",
        &"z".repeat(64),
    ];
    for encoded in ok_names {
        let (st, _, v) = upload(&app, encoded).await;
        assert_eq!(st, StatusCode::OK, "{encoded}: {v}");
    }
    // Nothing was created for the refused names.
    let (_, _, list) = send_full(
        &app,
        Request::builder()
            .uri("/v1/portfolios")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let mut names: Vec<&str> = list["portfolios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    names.sort();
    let zs = "z".repeat(64);
    assert_eq!(names, ["Book_1", zs.as_str(), "华东分行-2025.v1"]);
    // The rule itself, and the pattern the OpenAPI document states for the parameter.
    for ok in ["a", "9", "华东分行", "loans-2024_Q1.v2", "𠀀x"] {
        assert!(name::validate(ok).is_ok(), "{ok}");
    }
    for bad in ["", "_x", "a\tb", "ｆｕｌｌ", "émile", "a:b", "a\u{202e}b"] {
        assert!(name::validate(bad).is_err(), "{bad:?}");
    }
    let doc = serde_json::to_value(touxiang::openapi::ApiDoc::openapi()).unwrap();
    let params = doc["paths"]["/v1/portfolios/{name}/loans"]["post"]["parameters"]
        .as_array()
        .unwrap();
    let p = params.iter().find(|p| p["name"] == "name").unwrap();
    assert_eq!(p["schema"]["pattern"], name::PATTERN, "{p}");
    assert_eq!(p["schema"]["maxLength"], 64, "{p}");
}

#[tokio::test]
async fn ids_reviewers_and_comments_are_bounded() {
    let app = touxiang::app(cold_state());
    let post = |uri: &'static str, body: Value| {
        let app = app.clone();
        async move { post_raw(&app, uri, "application/json", body.to_string()).await }
    };
    // classify: item id up to 128 characters (CJK counted as one each)
    let r = post(
        "/v1/classify",
        json!({"items": [{"id": "a".repeat(100_000), "text": "烤串店装修"}]}),
    )
    .await;
    assert_contract(
        "id 100k",
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("items[0].id"),
    );
    let r = post(
        "/v1/classify",
        json!({"items": [{"id": "ok", "text": "烤串店装修"}, {"id": "贷".repeat(129), "text": "烤串店装修"}]}),
    )
    .await;
    assert_contract(
        "id 129",
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("items[1].id"),
    );
    let (st, _, b) = post(
        "/v1/classify",
        json!({"items": [{"id": "贷".repeat(128), "text": "烤串店装修"}]}),
    )
    .await;
    assert_ne!(st, StatusCode::UNPROCESSABLE_ENTITY, "{b}"); // the cold state answers 503
                                                             // review label: comment up to 2000 characters, reviewer up to 128
    let r = post(
        "/v1/review/rv_x/label",
        json!({"code": "A", "reviewer": "r1", "comment": "x".repeat(100_000)}),
    )
    .await;
    assert_contract(
        "comment 100k",
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("comment"),
    );
    let r = post(
        "/v1/review/rv_x/label",
        json!({"code": "A", "reviewer": "r1", "comment": "评".repeat(2001)}),
    )
    .await;
    assert_contract(
        "comment 2001",
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("comment"),
    );
    let r = post(
        "/v1/review/rv_x/label",
        json!({"code": "A", "reviewer": "r1", "comment": "评".repeat(2000)}),
    )
    .await;
    assert_contract("comment 2000", &r, StatusCode::NOT_FOUND, "not_found", None);
    let r = post(
        "/v1/review/rv_x/label",
        json!({"code": "A", "reviewer": "r".repeat(129)}),
    )
    .await;
    assert_contract(
        "reviewer 129",
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("reviewer"),
    );
    let r = post("/v1/review/claim", json!({"reviewer": "r".repeat(100_000)})).await;
    assert_contract(
        "claim reviewer",
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("reviewer"),
    );
    let r = post(
        "/v1/review/rv_x/skip",
        json!({"reviewer": "r1", "reason": "x".repeat(2001)}),
    )
    .await;
    assert_contract(
        "skip reason",
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("reason"),
    );
    let r = post(
        "/v1/review/rv_x/release",
        json!({"reviewer": "r".repeat(129)}),
    )
    .await;
    assert_contract(
        "release reviewer",
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("reviewer"),
    );
    // The limits are in the OpenAPI schemas.
    let doc = serde_json::to_value(touxiang::openapi::ApiDoc::openapi()).unwrap();
    let schemas = &doc["components"]["schemas"];
    for (schema, field, max) in [
        ("ClassifyItem", "id", 128),
        ("LabelRequest", "comment", 2000),
        ("LabelRequest", "reviewer", 128),
        ("ClaimRequest", "reviewer", 128),
        ("SkipRequest", "reason", 2000),
        ("SkipRequest", "reviewer", 128),
        ("ReleaseRequest", "reviewer", 128),
    ] {
        let p = &schemas[schema]["properties"][field];
        assert_eq!(p["maxLength"], max, "{schema}.{field}: {p}");
        assert!(
            p["description"]
                .as_str()
                .is_some_and(|d| d.contains(&max.to_string())),
            "{schema}.{field} documents no limit: {p}"
        );
    }
}

#[test]
fn every_operation_documents_the_security_its_route_enforces() {
    let doc = serde_json::to_value(touxiang::openapi::ApiDoc::openapi()).unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete: String = path
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        for m in ["get", "post", "put", "delete", "patch"] {
            let Some(op) = item.get(m) else { continue };
            let method: Method = m.to_uppercase().parse().unwrap();
            let open = access_for(&method, &concrete) == Some(Access::Open);
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            assert_eq!(
                secured, !open,
                "{m} {path}: documented security vs the access its route declares"
            );
            checked += 1;
        }
    }
    assert!(checked >= 28, "{checked}");
    let metrics = &doc["paths"]["/metrics"]["get"];
    assert_eq!(metrics["security"], json!([{"bearer": []}]), "{metrics}");
    for code in ["401", "403"] {
        assert!(metrics["responses"][code].is_object(), "{metrics}");
    }
}

#[tokio::test]
async fn metrics_needs_a_key_with_the_metrics_permission() {
    let mut cfg = test_config();
    cfg.insecure_no_auth = false;
    let ks = KeyStore::open(&cfg.data_dir).unwrap();
    let analyst = ks.create(Role::Analyst, "analyst").unwrap().1;
    let originator = ks.create(Role::Originator, "originator").unwrap().1;
    let app = touxiang::app(AppState::open(cfg, None).unwrap());
    let get = |key: Option<&str>| {
        let mut b = Request::builder().uri("/metrics");
        if let Some(k) = key {
            b = b.header("authorization", format!("Bearer {k}"));
        }
        send_full(&app, b.body(Body::empty()).unwrap())
    };
    assert_contract(
        "no key",
        &get(None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
    );
    assert_contract(
        "originator",
        &get(Some(&originator)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );
    assert_eq!(get(Some(&analyst)).await.0, StatusCode::OK);
}
