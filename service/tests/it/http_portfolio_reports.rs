//! Portfolio uploads in bounded memory: the body is spooled to disk, the summary lists at most
//! `limits.max_reported_row_errors` problems and counts them all, and the full report is
//! downloadable. Raw and multipart bodies, both ingest modes, the upload limit while streaming.

use crate::common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use touxiang::AppState;
use touxiang_testkit::KeywordLabeler;
use tower::ServiceExt;

const HEADER: &str = "loan_id,purpose_text,amount,balance,overdue_days,region_code,customer_type,product,issue_date,as_of_date,industry_code";

fn state_with(cfg: touxiang::config::Config) -> AppState {
    let s = AppState::open(cfg, None).unwrap();
    s.set_labeler_override(Arc::new(KeywordLabeler::new()));
    s
}

fn good(id: &str) -> String {
    format!("{id},采购钢材,100,100,0,110101,小型企业,经营贷,2024-01-01,2025-01-31,3120")
}

async fn get_raw(app: &Router, uri: &str) -> (StatusCode, String, Vec<u8>) {
    let req = Request::builder().uri(uri).body(Body::empty()).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let st = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let b = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (st, ct, b)
}

fn multipart(file_name: &str, file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "XBOUNDARYX";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nignored\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The report behind `report_url`, as (row, field) pairs, after checking the header.
pub(crate) async fn report(app: &Router, v: &Value) -> Vec<(u64, String)> {
    let url = v["report_url"].as_str().expect("report_url");
    let (st, ct, body) = get_raw(app, url).await;
    assert_eq!(st, StatusCode::OK, "{url}");
    assert!(ct.starts_with("text/csv"), "{ct}");
    let mut r = csv::Reader::from_reader(body.as_slice());
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        vec!["row", "field", "reason"]
    );
    r.records()
        .map(|x| {
            let x = x.unwrap();
            (x[0].parse().unwrap(), x[1].to_string())
        })
        .collect()
}

fn spooled(s: &AppState) -> Vec<String> {
    std::fs::read_dir(s.config().data_dir.join("tmp"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn http_portfolio_reports_200k_bad_rows_capped_body_full_report() {
    let s = state_with(common::test_config());
    let app = touxiang::app(s.clone());
    let mut body = format!("{HEADER}\n");
    for _ in 0..200_000 {
        body.push_str("x,y\n");
    }
    let (st, v) = common::call_raw(
        &app,
        "POST",
        "/v1/portfolios/big/loans",
        "text/csv",
        body.into_bytes(),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"]["code"], "rows_rejected", "{}", v["error"]);
    assert_eq!(v["error"]["field"], "rows[2].*");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("200000 row problem(s) in 200000 row(s)"),
        "{msg}"
    );
    assert!(msg.contains(v["report_url"].as_str().unwrap()), "{msg}");
    assert_eq!(v["rejected"].as_array().unwrap().len(), 1000);
    assert_eq!(v["rejected_total"], 200_000);
    assert_eq!(v["rejected_rows"], 200_000);
    assert_eq!(v["rejected_truncated"], true);
    assert_eq!(v["report_rows"], 200_000);
    assert!(v.get("report_path").is_none(), "no server paths: {v}");
    let id = v["report_id"].as_str().unwrap().to_string();
    assert_eq!(
        v["report_url"],
        format!("/v1/portfolios/big/ingest-reports/{id}")
    );
    let rows = report(&app, &v).await;
    assert_eq!(rows.len(), 200_000);
    assert_eq!(rows[0], (2, "*".to_string()));
    assert_eq!(rows[199_999].0, 200_001);
    // Nothing written; no spool file left.
    let (st, _) = common::call(&app, "GET", "/v1/aggregate?portfolio=big", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(spooled(&s).is_empty(), "{:?}", spooled(&s));
    // Reports are per portfolio; unknown or malformed ids are 404.
    for uri in [
        format!("/v1/portfolios/other/ingest-reports/{id}"),
        "/v1/portfolios/big/ingest-reports/ir_00000000000000000000000000000000".to_string(),
        "/v1/portfolios/big/ingest-reports/..%2F..%2Fportfolio.sqlite".to_string(),
    ] {
        let (st, v) = common::call(&app, "GET", &uri, None).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{uri}: {v}");
        assert_eq!(v["error"]["code"], "not_found", "{v}");
    }
}

#[tokio::test]
async fn http_portfolio_reports_mixed_file_raw_and_multipart_both_modes() {
    let mut cfg = common::test_config();
    cfg.limits.max_reported_row_errors = 10;
    let s = state_with(cfg);
    let app = touxiang::app(s.clone());
    // 3000 rows: every third has a bad balance; the rest are good.
    let mut file = format!("{HEADER}\n");
    let mut bad_rows = Vec::new();
    for i in 0..3000u64 {
        if i % 3 == 0 {
            bad_rows.push(i + 2);
            file.push_str(&format!(
                "B{i},采购钢材,100,-1,0,110101,小型企业,经营贷,2024-01-01,2025-01-31,3120\n"
            ));
        } else {
            file.push_str(&good(&format!("G{i}")));
            file.push('\n');
        }
    }
    // Raw body, all-or-nothing: 422, nothing written, the full report downloadable.
    let (st, v) = common::call_raw(
        &app,
        "POST",
        "/v1/portfolios/mix/loans",
        "text/csv",
        file.clone().into_bytes(),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["accepted"], 0);
    assert_eq!(v["committed"], false);
    assert_eq!(
        v["rejected"].as_array().unwrap().len(),
        10,
        "the config cap"
    );
    assert_eq!(v["rejected_total"], 1000);
    assert_eq!(v["valid_rows"], 2000);
    let rows = report(&app, &v).await;
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), bad_rows);
    assert!(rows.iter().all(|r| r.1 == "balance"));
    let (st, _) = common::call(&app, "GET", "/v1/aggregate?portfolio=mix", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "nothing written");

    // Multipart, commit-valid: the good rows are committed.
    let (ct, body) = multipart("book.csv", file.as_bytes());
    let (st, v) = common::call_raw(
        &app,
        "POST",
        "/v1/portfolios/mix/loans?mode=commit-valid",
        &ct,
        body,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"], 2000);
    assert_eq!(v["committed"], true);
    assert_eq!(v["rejected_total"], 1000);
    assert_eq!(v["rejected_truncated"], true);
    assert_ne!(v["report_id"], Value::Null);
    let rows = report(&app, &v).await;
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), bad_rows);
    let (_, agg) = common::call(&app, "GET", "/v1/aggregate?portfolio=mix", None).await;
    assert_eq!(agg["totals"]["loans"], 2000);

    // A clean multipart JSONL upload: no report.
    let jsonl = r#"{"loan_id":"J1","purpose_text":"钢材采购","balance":5,"overdue_days":0,"region_code":"110101","as_of_date":"2025-03-31"}"#;
    let (ct, body) = multipart("b.jsonl", jsonl.as_bytes());
    let (st, v) = common::call_raw(&app, "POST", "/v1/portfolios/mix/loans", &ct, body).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"], 1);
    assert_eq!(v["rejected_total"], 0);
    assert_eq!(v["report_id"], Value::Null);
    assert_eq!(v["report_url"], Value::Null);
    assert!(spooled(&s).is_empty(), "{:?}", spooled(&s));
}

#[tokio::test]
async fn http_portfolio_reports_upload_limit_holds_while_streaming() {
    let mut cfg = common::test_config();
    cfg.limits.max_upload_bytes = 4096;
    let s = state_with(cfg);
    let app = touxiang::app(s.clone());
    let mut file = format!("{HEADER}\n");
    for i in 0..200 {
        file.push_str(&good(&format!("L{i}")));
        file.push('\n');
    }
    assert!(file.len() > 4096);
    // Raw body without a Content-Length: counted while spooled, cut at the limit.
    let (st, v) = common::call_raw(
        &app,
        "POST",
        "/v1/portfolios/lim/loans",
        "text/csv",
        file.clone().into_bytes(),
    )
    .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"]["code"], "payload_too_large", "{v}");
    // With a Content-Length over the limit: refused before reading.
    let req = Request::builder()
        .method("POST")
        .uri("/v1/portfolios/lim/loans")
        .header("content-type", "text/csv")
        .header("content-length", file.len().to_string())
        .body(Body::from(file.clone()))
        .unwrap();
    let (st, v) = common::send(&app, req).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Content-Length"),
        "{v}"
    );
    // Multipart over the limit.
    let (ct, body) = multipart("a.csv", file.as_bytes());
    let (st, v) = common::call_raw(&app, "POST", "/v1/portfolios/lim/loans", &ct, body).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    // An unknown format is refused before the body is spooled.
    let (st, v) = common::call_raw(
        &app,
        "POST",
        "/v1/portfolios/lim/loans",
        "application/octet-stream",
        vec![0; 10],
    )
    .await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    assert!(spooled(&s).is_empty(), "{:?}", spooled(&s));
    let (st, _) = common::call(&app, "GET", "/v1/aggregate?portfolio=lim", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn http_portfolio_reports_openapi_documents_the_report() {
    let app = touxiang::app(state_with(common::test_config()));
    let (st, doc) = common::call(&app, "GET", "/openapi.json", None).await;
    assert_eq!(st, StatusCode::OK);
    let op = &doc["paths"]["/v1/portfolios/{name}/ingest-reports/{report_id}"]["get"];
    assert!(op.is_object(), "report route missing from OpenAPI");
    assert!(
        op["responses"]["200"]["content"]["text/csv"].is_object(),
        "{op}"
    );
    let props = &doc["components"]["schemas"]["IngestSummary"]["properties"];
    for f in [
        "rejected",
        "rejected_total",
        "rejected_rows",
        "rejected_truncated",
        "report_id",
        "report_url",
        "report_rows",
    ] {
        assert!(props[f].is_object(), "IngestSummary.{f} undocumented");
    }
}

#[test]
fn http_portfolio_reports_cli_ingest_prints_the_capped_summary_and_writes_the_report() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let mut file = format!("{HEADER}\n{}\n", good("C1"));
    for _ in 0..1500 {
        file.push_str("x,y\n");
    }
    file.push_str(&good("C2"));
    file.push('\n');
    let input = d.path().join("book.csv");
    std::fs::write(&input, file).unwrap();
    let errors = d.path().join("errors.csv");
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_touxiang"))
            .args(["ingest", "--portfolio", "cli", "--no-label", "--data-dir"])
            .arg(&data)
            .args(extra)
            .arg(&input)
            .output()
            .unwrap()
    };
    // All-or-nothing with --errors: exit 2, the capped summary, every problem in the file.
    let o = run(&["--errors", errors.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["rejected"].as_array().unwrap().len(), 1000);
    assert_eq!(v["rejected_total"], 1500);
    assert_eq!(v["rejected_truncated"], true);
    assert_eq!(v["report_path"], errors.to_str().unwrap());
    assert_eq!(v["report_id"], Value::Null);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(errors.to_str().unwrap()), "{err}");
    let n = csv::Reader::from_path(&errors).unwrap().records().count();
    assert_eq!(n, 1500);
    // Commit-valid, default destination: the store's report directory.
    let o = run(&["--mode", "commit-valid"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["accepted"], 2);
    let id = v["report_id"].as_str().unwrap();
    let path = std::path::PathBuf::from(v["report_path"].as_str().unwrap());
    assert_eq!(
        path,
        data.join("ingest-reports").join(format!("{id}.csv")),
        "{v}"
    );
    assert_eq!(
        csv::Reader::from_path(&path).unwrap().records().count(),
        1500
    );
}
