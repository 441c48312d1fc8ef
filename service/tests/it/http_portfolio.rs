//! Portfolio routes in-process: upload (CSV raw, JSONL multipart), row-level errors,
//! aggregate vs the library and vs an in-test fold, CSV/XLSX export, concentration, scores,
//! alerts, parameter errors. The classifier is the deterministic keyword fake.

use crate::common;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use touxiang::AppState;
use touxiang_portfolio::{AggQuery, PortfolioStore};
use touxiang_testkit::KeywordLabeler;
use tower::ServiceExt;

const HEADER: &str = "loan_id,purpose_text,amount,balance,overdue_days,region_code,customer_type,product,issue_date,as_of_date,industry_code";

/// (text, industry_code given or empty, section of the loan)
const KINDS: [(&str, &str, &str); 5] = [
    ("采购钢坯及废钢", "3120", "C"),
    ("大米加工厂流动资金", "1311", "C"),
    ("烤串店装修", "", "H"),   // labeled by the fake
    ("水稻种植承包", "", "A"), // labeled by the fake
    ("超市进货", "", "F"),     // labeled by the fake
];
const REGIONS: [&str; 4] = ["110101", "440300", "310000", "4401"];

struct Loan {
    id: String,
    text: &'static str,
    balance: f64,
    overdue_days: u32,
    region: &'static str,
    customer: &'static str,
    as_of: &'static str,
    code: &'static str,
    section: &'static str,
}

/// A small two-month book, deterministic.
fn book() -> Vec<Loan> {
    let mut out = Vec::new();
    for (m, as_of) in ["2025-01-31", "2025-02-28"].into_iter().enumerate() {
        for i in 0..60usize {
            let (text, code, section) = KINDS[i % KINDS.len()];
            let od = if (i * 7 + m * 3) % 5 == 0 {
                ((i % 4) * 30) as u32
            } else {
                0
            };
            out.push(Loan {
                id: format!("L{i:03}"),
                text,
                balance: 10_000.0 + (i * 1_237 % 9_000) as f64 + m as f64 * 100.0,
                overdue_days: od,
                region: REGIONS[(i / 3) % REGIONS.len()],
                customer: if i % 2 == 0 { "小型企业" } else { "个人" },
                as_of,
                code,
                section,
            });
        }
    }
    out
}

fn csv_of(loans: &[Loan]) -> String {
    let mut s = format!("{HEADER}\n");
    for l in loans {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},经营贷,2024-06-01,{},{}\n",
            l.id,
            l.text,
            l.balance,
            l.balance,
            l.overdue_days,
            l.region,
            l.customer,
            l.as_of,
            l.code
        ));
    }
    s
}

fn state() -> AppState {
    let s = AppState::open(common::test_config(), None).unwrap();
    s.set_labeler_override(Arc::new(KeywordLabeler::new()));
    s
}

async fn raw(app: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let st = resp.status();
    let h = resp.headers().clone();
    let b = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (st, h, b)
}

async fn get(app: &Router, uri: &str) -> (StatusCode, Value) {
    common::call(app, "GET", uri, None).await
}

async fn upload_csv(app: &Router, name: &str, query: &str, body: String) -> (StatusCode, Value) {
    common::call_raw(
        app,
        "POST",
        &format!("/v1/portfolios/{name}/loans?{query}"),
        "text/csv",
        body.into_bytes(),
    )
    .await
}

fn enc(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
            o.push(b as char)
        } else {
            o.push_str(&format!("%{b:02X}"))
        }
    }
    o
}

/// Equal JSON, numbers within 1e-12 relative (serde_json's default float parser is not
/// round-trip exact in the last bit).
fn assert_json_close(a: &Value, b: &Value, path: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-12 * x.abs().max(y.abs()).max(1.0),
                "{path}: {x} != {y}"
            );
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: lengths");
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                assert_json_close(u, v, &format!("{path}[{i}]"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            let kx: Vec<&String> = x.keys().collect();
            let ky: Vec<&String> = y.keys().collect();
            assert_eq!(kx, ky, "{path}: keys");
            for (k, u) in x {
                assert_json_close(u, &y[k], &format!("{path}.{k}"));
            }
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

#[tokio::test]
async fn aggregate_matches_library_and_independent_fold() {
    let s = state();
    let app = touxiang::app(s.clone());
    let loans = book();
    let (st, rep) = upload_csv(&app, "book", "mode=all-or-nothing", csv_of(&loans)).await;
    assert_eq!(st, StatusCode::OK, "{rep}");
    assert_eq!(rep["accepted"], loans.len() as u64);
    assert_eq!(rep["rejected"].as_array().unwrap().len(), 0);
    let n_fake = loans.iter().filter(|l| l.code.is_empty()).count() as u64;
    assert_eq!(rep["industry_labeled"], n_fake, "{rep}");
    assert_eq!(rep["industry_from_input"], loans.len() as u64 - n_fake);

    let (st, list) = get(&app, "/v1/portfolios").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list["portfolios"][0]["name"], "book");
    assert_eq!(list["portfolios"][0]["rows"], loans.len() as u64);

    let qs = "by=industry.section,region.province&overdue_days_gt=0";
    let (st, http) = get(&app, &format!("/v1/aggregate?portfolio=book&{qs}")).await;
    assert_eq!(st, StatusCode::OK, "{http}");

    // 1. Same answer as the library on the same store.
    let store = PortfolioStore::open(&s.config().data_dir).unwrap();
    let params: Vec<(String, String)> = vec![
        ("by".into(), "industry.section,region.province".into()),
        ("overdue_days_gt".into(), "0".into()),
    ];
    let lib = store
        .aggregate(&AggQuery::from_params("book", &params).unwrap())
        .unwrap();
    assert_json_close(&http, &serde_json::to_value(&lib).unwrap(), "$");

    // 2. Same numbers as a plain fold over the latest snapshot.
    let mut fold: BTreeMap<(String, String), (u64, f64, u64, f64)> = BTreeMap::new();
    for l in loans.iter().filter(|l| l.as_of == "2025-02-28") {
        let e = fold
            .entry((l.section.to_string(), l.region[..2].to_string()))
            .or_default();
        e.0 += 1;
        e.1 += l.balance;
        if l.overdue_days > 0 {
            e.2 += 1;
            e.3 += l.balance;
        }
    }
    let rows = http["rows"].as_array().unwrap();
    assert_eq!(rows.len(), fold.len());
    for r in rows {
        let key = (
            r["industry.section"].as_str().unwrap().to_string(),
            r["region.province"].as_str().unwrap().to_string(),
        );
        let (n, b, on, ob) = fold[&key];
        assert_eq!(r["loans"], n, "{key:?}");
        assert!((r["balance"].as_f64().unwrap() - b).abs() < 1e-6);
        assert_eq!(r["overdue_loans"], on, "{key:?}");
        assert!((r["overdue_balance"].as_f64().unwrap() - ob).abs() < 1e-6);
        let rate = r["overdue_rate_count"].as_f64().unwrap();
        assert!((rate - on as f64 / n as f64).abs() < 1e-12);
    }
    let total: u64 = fold.values().map(|v| v.0).sum();
    assert_eq!(http["totals"]["loans"], total);
    assert_eq!(http["previous_month"], "2025-01");

    // Filters, top-N and drill-down go through.
    let (st, top) = get(
        &app,
        &format!(
            "/v1/aggregate?portfolio=book&by=region.province&top=2&customer_type={}",
            enc("小型企业")
        ),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{top}");
    assert_eq!(top["rows"].as_array().unwrap().len(), 2);
    let small = loans
        .iter()
        .filter(|l| l.as_of == "2025-02-28" && l.customer == "小型企业")
        .count() as u64;
    assert_eq!(top["totals"]["loans"], small);
    let (st, drill) = get(
        &app,
        "/v1/aggregate?portfolio=book&by=industry.section&drill=industry.section:C",
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{drill}");
    assert_eq!(drill["by"], serde_json::json!(["industry.division"]));
    let divs: Vec<&str> = drill["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["industry.division"].as_str().unwrap())
        .collect();
    assert_eq!(divs, vec!["13", "31"]);

    // Concentration: HHI = Σ share² of the same grouping.
    let (st, conc) = get(&app, "/v1/concentration?portfolio=book&by=industry.section").await;
    assert_eq!(st, StatusCode::OK, "{conc}");
    let (_, by_sec) = get(&app, "/v1/aggregate?portfolio=book&by=industry.section").await;
    let hhi: f64 = by_sec["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["share_of_total"].as_f64().unwrap().powi(2))
        .sum();
    let c = &conc["concentration"][0];
    assert_eq!(c["dimension"], "industry.section");
    assert!((c["hhi"].as_f64().unwrap() - hhi).abs() < 1e-9, "{c}");

    // Scores and alerts answer with their documented shapes.
    let (st, sc) = get(&app, "/v1/scores?portfolio=book&by=industry.section&top=3").await;
    assert_eq!(st, StatusCode::OK, "{sc}");
    let list = sc["scores"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    for x in list {
        let r = x["shrunk_rate"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&r));
        let ear = x["exposure_at_risk"].as_f64().unwrap();
        assert!((ear - r * x["balance"].as_f64().unwrap()).abs() < 1e-6);
    }
    let (st, al) = get(&app, "/v1/alerts?portfolio=book&min_loans=1").await;
    assert_eq!(st, StatusCode::OK, "{al}");
    assert!(al["alerts"].is_array());
    for a in al["alerts"].as_array().unwrap() {
        assert!(!a["reason"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn csv_and_xlsx_export() {
    let s = state();
    let app = touxiang::app(s);
    let (st, _) = upload_csv(&app, "exp", "", csv_of(&book())).await;
    assert_eq!(st, StatusCode::OK);
    let (_, json) = get(&app, "/v1/aggregate?portfolio=exp&by=industry.section").await;
    let n = json["rows"].as_array().unwrap().len();

    let req = Request::get("/v1/aggregate?portfolio=exp&by=industry.section&format=csv")
        .body(Body::empty())
        .unwrap();
    let (st, h, body) = raw(&app, req).await;
    assert_eq!(st, StatusCode::OK);
    assert!(h["content-type"].to_str().unwrap().starts_with("text/csv"));
    let disp = h["content-disposition"].to_str().unwrap();
    assert!(
        disp.starts_with("attachment;") && disp.contains(".csv"),
        "{disp}"
    );
    let text = String::from_utf8(body).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("industry.section,industry.section_name,loans"));
    assert_eq!(lines.len(), 1 + n + 1, "header + rows + TOTAL:\n{text}");
    assert!(lines.last().unwrap().contains("TOTAL"));
    let first = &json["rows"][0];
    assert!(lines[1].starts_with(&format!(
        "{},{},{}",
        first["industry.section"].as_str().unwrap(),
        first["industry.section_name"].as_str().unwrap(),
        first["loans"]
    )));

    let req = Request::get("/v1/aggregate?portfolio=exp&by=industry.section&format=xlsx")
        .body(Body::empty())
        .unwrap();
    let (st, h, body) = raw(&app, req).await;
    assert_eq!(st, StatusCode::OK);
    assert!(h["content-type"]
        .to_str()
        .unwrap()
        .contains("spreadsheetml"));
    use calamine::Reader;
    let mut wb = calamine::Xlsx::new(Cursor::new(body)).unwrap();
    let sheet = wb.sheet_names()[0].clone();
    let range = wb.worksheet_range(&sheet).unwrap();
    assert_eq!(range.height(), 1 + n + 1);
    assert_eq!(
        range.get((1, 0)).unwrap().to_string(),
        first["industry.section"].as_str().unwrap()
    );
}

#[tokio::test]
async fn upload_reports_bad_rows_and_respects_the_mode() {
    let s = state();
    let app = touxiang::app(s);
    let mut body = format!("{HEADER}\n");
    body.push_str("A1,采购钢材,100,100,0,110101,小型企业,经营贷,2024-01-01,2025-01-31,3120\n");
    body.push_str("A2,采购钢材,100,-5,0,110101,小型企业,经营贷,2024-01-01,2025-01-31,3120\n"); // row 3: balance
    body.push_str("A3,采购钢材,100,100,0,999999,小型企业,经营贷,2024-01-01,2025-01-31,3120\n"); // row 4: region
    body.push_str("A4,采购钢材,100,100,0,110101,小型企业,经营贷,2024-01-01,2025-13-45,3120\n"); // row 5: date
    body.push_str("A1,采购钢材,100,100,0,110101,小型企业,经营贷,2024-01-01,2025-01-31,3120\n"); // row 6: duplicate
    body.push_str("A5,烤串店,100,100,3,440300,个人,经营贷,2024-01-01,2025-01-31,\n");

    let (st, v) = upload_csv(&app, "bad", "", body.clone()).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "rows_rejected");
    assert_eq!(v["accepted"], 0);
    assert_eq!(v["committed"], false);
    let rej = v["rejected"].as_array().unwrap();
    let got: Vec<(u64, &str)> = rej
        .iter()
        .map(|r| (r["row"].as_u64().unwrap(), r["field"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            (3, "balance"),
            (4, "region_code"),
            (5, "as_of_date"),
            (6, "loan_id")
        ],
        "{v}"
    );
    // Nothing was written.
    let (st, _) = get(&app, "/v1/aggregate?portfolio=bad").await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    let (st, v) = upload_csv(&app, "bad", "mode=commit-valid", body).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"], 2);
    assert_eq!(v["rejected"].as_array().unwrap().len(), 4);
    let (_, agg) = get(&app, "/v1/aggregate?portfolio=bad&by=industry.section").await;
    assert_eq!(agg["totals"]["loans"], 2);
    assert_eq!(agg["totals"]["overdue_loans"], 1);

    // Missing column → 422 naming it; unknown format → 415; bad mode → 422.
    let (st, v) = upload_csv(&app, "x", "", "loan_id,purpose_text\nA,b\n".into()).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "missing_column");
    assert!(v["error"]["field"].is_string());
    let (st, v) = common::call_raw(
        &app,
        "POST",
        "/v1/portfolios/x/loans",
        "image/png",
        vec![1, 2],
    )
    .await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    let (st, v) = upload_csv(&app, "x", "mode=sometimes", String::new()).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"]["field"], "mode");
    let (st, v) = upload_csv(&app, "x", "bogus=1", String::new()).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"]["field"], "bogus");
}

#[tokio::test]
async fn multipart_jsonl_upload() {
    let s = state();
    let app = touxiang::app(s);
    let lines = [
        r#"{"loan_id":"J1","purpose_text":"钢材采购","balance":500,"overdue_days":0,"region_code":"110101","as_of_date":"2025-03-31"}"#,
        r#"{"loan_id":"J2","purpose_text":"小吃店","balance":300,"overdue_days":45,"region_code":"310000","as_of_date":"2025-03-31"}"#,
    ];
    let file = lines.join("\n") + "\n";
    let boundary = "XBOUNDARYX";
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"book.jsonl\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
    body.extend_from_slice(file.as_bytes());
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let (st, v) = common::call_raw(
        &app,
        "POST",
        "/v1/portfolios/mp/loans",
        &format!("multipart/form-data; boundary={boundary}"),
        body,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"], 2);
    assert_eq!(v["industry_labeled"], 2);
    let (_, agg) = get(&app, "/v1/aggregate?portfolio=mp&by=industry.section").await;
    let secs: Vec<&str> = agg["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["industry.section"].as_str().unwrap())
        .collect();
    assert_eq!(secs, vec!["C", "H"]);
}

#[tokio::test]
async fn bad_query_parameters_name_the_field() {
    let s = state();
    let app = touxiang::app(s);
    let (st, _) = upload_csv(&app, "q", "", csv_of(&book())).await;
    assert_eq!(st, StatusCode::OK);
    for (uri, field) in [
        ("/v1/aggregate?by=industry.section", "portfolio"),
        ("/v1/aggregate?portfolio=q&by=industry.sector", "by"),
        (
            "/v1/aggregate?portfolio=q&overdue_days_gt=-1",
            "overdue_days_gt",
        ),
        ("/v1/aggregate?portfolio=q&format=pdf", "format"),
        ("/v1/aggregate?portfolio=q&sort=profit", "sort"),
        ("/v1/aggregate?portfolio=q&as_of=yesterday", "as_of"),
        ("/v1/aggregate?portfolio=q&colour=red", "colour"),
        (
            "/v1/aggregate?portfolio=q&drill=industry.class:3120",
            "drill",
        ),
        ("/v1/concentration?portfolio=q&by=nope", "by"),
        ("/v1/scores?portfolio=q&by=month", "by"),
        ("/v1/scores?portfolio=q&as_of=all", "as_of"),
        ("/v1/alerts?portfolio=q&alpha=2", "alpha"),
    ] {
        let (st, v) = get(&app, uri).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{uri}: {v}");
        assert_eq!(v["error"]["field"], field, "{uri}: {v}");
    }
    for uri in [
        "/v1/aggregate?portfolio=nobody",
        "/v1/concentration?portfolio=nobody",
        "/v1/scores?portfolio=nobody",
        "/v1/alerts?portfolio=nobody",
    ] {
        let (st, v) = get(&app, uri).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{uri}: {v}");
        assert_eq!(v["error"]["code"], "not_found");
    }
}

#[tokio::test]
async fn upload_without_classifier() {
    // No override and no model loaded: the classifier is unavailable.
    let s = AppState::open(common::test_config(), None).unwrap();
    let app = touxiang::app(s);
    let labeled = format!("{HEADER}\nB1,采购钢材,1,1,0,110101,个人,x,2024-01-01,2025-01-31,3120\n");
    let unlabeled = format!("{HEADER}\nB2,采购钢材,1,1,0,110101,个人,x,2024-01-01,2025-01-31,\n");
    // Rows with industry_code need no classifier.
    let (st, v) = upload_csv(&app, "nc", "", labeled).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // Rows without it fail as a whole, saying why.
    let (st, v) = upload_csv(&app, "nc", "", unlabeled.clone()).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("label=false"),
        "{v}"
    );
    let (_, agg) = get(&app, "/v1/aggregate?portfolio=nc").await;
    assert_eq!(agg["totals"]["loans"], 1);
    // ... unless the caller opts out of labeling.
    let (st, v) = upload_csv(&app, "nc", "label=false", unlabeled).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["industry_missing"], 1);
}

#[tokio::test]
async fn openapi_documents_the_routes() {
    let app = touxiang::app(state());
    let (st, doc) = get(&app, "/openapi.json").await;
    assert_eq!(st, StatusCode::OK);
    for p in [
        "/v1/aggregate",
        "/v1/concentration",
        "/v1/scores",
        "/v1/alerts",
        "/v1/portfolios",
        "/v1/portfolios/{name}/loans",
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/cancel",
        "/v1/jobs/{id}/output",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} missing from OpenAPI");
    }
}

#[tokio::test]
async fn uploads_run_under_their_own_timeout_not_the_request_timeout() {
    let mut cfg = common::test_config();
    // Every ordinary request times out at once; uploads have an hour.
    cfg.limits.request_timeout_secs = 0;
    cfg.limits.upload_timeout_secs = 3600;
    let s = AppState::open(cfg, None).unwrap();
    s.set_labeler_override(Arc::new(KeywordLabeler::new()));
    let app = touxiang::app(s);
    let body = format!("{HEADER}\nT1,采购钢材,1,1,0,110101,个人,x,2024-01-01,2025-01-31,3120\n");
    // The ingest runs on the blocking pool, so under a zero request timeout this was a 408.
    let (st, v) = upload_csv(&app, "t", "", body).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"], 1, "{v}");
}
