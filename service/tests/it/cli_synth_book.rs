//! `touxiang datasets synth-book` through the binary: the book ingests with `touxiang ingest`
//! (no model), and `GET /v1/alerts` finds the shock `--shock` plants.

use crate::common;

use std::process::Command;

use axum::http::StatusCode;
use common::{call, test_config};
use serde_json::{json, Value};
use touxiang::AppState;

fn touxiang(args: &[&str], extra: &[&std::path::Path]) -> std::process::Output {
    let o = Command::new(env!("CARGO_BIN_EXE_touxiang"))
        .args(args)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "touxiang {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Write a synthetic book through the binary (`args` after `--out FILE`), ingest it through
/// the binary; returns the summary and an app over the data dir.
fn synth_book(args: &[&str]) -> (Value, axum::Router) {
    let d = tempfile::tempdir().unwrap().keep();
    let book = d.join("book.csv");
    let mut all = vec!["datasets", "synth-book"];
    all.extend_from_slice(args);
    all.push("--out");
    let o = touxiang(&all, &[&book]);
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    let data = d.join("data");
    let o = touxiang(
        &["ingest", "--portfolio", "book", "--data-dir"],
        &[&data, &book],
    );
    let ingest: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(ingest["accepted"], summary["rows"], "{ingest}");
    assert_eq!(
        ingest["industry_from_input"], summary["rows"],
        "no model needed"
    );
    let mut cfg = test_config();
    cfg.data_dir = data;
    (summary, touxiang::app(AppState::open(cfg, None).unwrap()))
}

async fn alerts(app: &axum::Router, extra: &str) -> Vec<Value> {
    let (st, b) = call(
        app,
        "GET",
        &format!("/v1/alerts?portfolio=book{extra}"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    b["alerts"].as_array().unwrap().clone()
}

#[tokio::test]
async fn synth_book_writes_an_ingestable_book_and_its_shock_is_alerted() {
    // Defaults: 2000 loans × 6 months, seed 42.
    let (summary, app) = synth_book(&[]);
    assert_eq!(
        (
            &summary["rows"],
            &summary["loans"],
            &summary["months"],
            &summary["seed"]
        ),
        (&json!(12000), &json!(2000), &json!(6), &json!(42)),
        "{summary}"
    );
    assert_eq!(summary["shock"], false);
    let path = std::path::PathBuf::from(summary["path"].as_str().unwrap());
    assert!(path.is_absolute() && path.exists(), "{summary}");
    let csv = std::fs::read_to_string(&path).unwrap();
    assert!(
        csv.starts_with("loan_id,purpose_text,amount,balance,overdue_days,region_code"),
        "{}",
        &csv[..80]
    );
    let (st, b) = call(
        &app,
        "GET",
        "/v1/aggregate?portfolio=book&by=month&as_of=all",
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["rows"].as_array().unwrap().len(), 6, "{b}");

    // The shock (建筑业 × 广东, last month) needs a book large enough for the segment to be
    // tested: it is the strongest alert of the last month and absent the month before.
    let (summary, app) = synth_book(&["--loans", "50000", "--months", "4", "--shock"]);
    assert_eq!(summary["rows"], 200_000);
    let shocked = |a: &Value| {
        a["reason"]
            .as_str()
            .unwrap()
            .starts_with("E 建筑业/44 广东省")
    };
    let now = alerts(&app, "").await;
    assert!(!now.is_empty() && shocked(&now[0]), "{now:#?}");
    let before = alerts(&app, "&as_of=2025-03").await;
    assert!(!before.iter().any(shocked), "{before:#?}");

    // A shock needs months to compare with.
    let o = Command::new(env!("CARGO_BIN_EXE_touxiang"))
        .args([
            "datasets",
            "synth-book",
            "--months",
            "1",
            "--shock",
            "--out",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--months"));
}
