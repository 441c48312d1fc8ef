//! Batch jobs in-process: start from a server-side path and from an upload, poll to the end,
//! download the output (one row per input row, in order), cancel and resume, path confinement.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use touxiang::AppState;
use touxiang_testkit::KeywordLabeler;
use tower::ServiceExt;

const TEXTS: [&str; 6] = [
    "采购钢材",
    "烤串店装修",
    "补充流动资金",
    "超市进货",
    "水稻种植",
    "楼盘开发",
];

/// `n` rows; row 7 has an empty text (reported, still in the output). `unique` makes every
/// text distinct (so every chunk calls the labeler).
fn input_csv(n: usize, unique: bool) -> String {
    let mut s = String::from("loan_id,purpose_text,balance\n");
    for i in 0..n {
        let t = if i == 6 {
            String::new()
        } else if unique {
            format!("{}第{i}批", TEXTS[i % TEXTS.len()])
        } else {
            TEXTS[i % TEXTS.len()].to_string()
        };
        s.push_str(&format!("L{i:05},{t},{}\n", 1000 + i));
    }
    s
}

fn state_with(labeler: KeywordLabeler) -> AppState {
    let s = AppState::open(common::test_config(), None).unwrap();
    s.set_labeler_override(Arc::new(labeler));
    s
}

fn jobs_dir(s: &AppState) -> std::path::PathBuf {
    let d = s.config().data_dir.join("jobs");
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn wait_done(app: &Router, id: &str) -> Value {
    let t = Instant::now();
    loop {
        let (st, v) = common::call(app, "GET", &format!("/v1/jobs/{id}"), None).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        if v["state"] != "running" {
            return v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "job did not finish: {v}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

async fn download(app: &Router, id: &str) -> (StatusCode, String) {
    let req = Request::get(format!("/v1/jobs/{id}/output"))
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let st = resp.status();
    let b = resp.into_body().collect().await.unwrap().to_bytes();
    (st, String::from_utf8_lossy(&b).into_owned())
}

/// Ids of a CSV output (first column), header skipped.
fn ids(csv: &str) -> Vec<String> {
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn job_from_server_path_runs_to_completion() {
    let s = state_with(KeywordLabeler::new());
    let app = touxiang::app(s.clone());
    let n = 300;
    std::fs::write(jobs_dir(&s).join("book.csv"), input_csv(n, false)).unwrap();

    let (st, v) = common::call(
        &app,
        "POST",
        "/v1/jobs",
        Some(json!({"input": "book.csv", "chunk_size": 64})),
    )
    .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("job_"));

    let done = wait_done(&app, &id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["progress"]["rows_done"], n as u64);
    let c = &done["summary"]["counters"];
    assert_eq!(c["rows"], n as u64);
    assert_eq!(c["errors"], 1, "the empty text: {done}");
    let issue = &done["summary"]["issues"][0];
    assert_eq!(issue["row"], 7);
    assert_eq!(issue["field"], "purpose_text");
    // Dedup: 6 distinct texts (+ the empty one) → few labeler texts, the rest from the cache.
    assert!(c["labeled_texts"].as_u64().unwrap() <= 6, "{c}");

    let (st, out) = download(&app, &id).await;
    assert_eq!(st, StatusCode::OK);
    let want: Vec<String> = (0..n).map(|i| format!("L{i:05}")).collect();
    assert_eq!(ids(&out), want, "one output row per input row, in order");
    assert!(out
        .lines()
        .next()
        .unwrap()
        .starts_with("id,code,level,name,confidence,decision"));
    let steel = out.lines().nth(1).unwrap();
    assert!(steel.contains(",3120,class,"), "{steel}");

    let (st, list) = common::call(&app, "GET", "/v1/jobs", None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|j| j["id"] == id.as_str()));
    // The output lies beside the input, named after it.
    assert!(jobs_dir(&s).join("book.out.csv").is_file());
    // Finished jobs cannot be cancelled.
    let (st, _) = common::call(&app, "POST", &format!("/v1/jobs/{id}/cancel"), None).await;
    assert_eq!(st, StatusCode::CONFLICT);
}

#[tokio::test]
async fn cancel_then_resume_gives_the_full_output() {
    let s = state_with(KeywordLabeler::new().with_delay(Duration::from_millis(25)));
    let app = touxiang::app(s.clone());
    let n = 2000;
    std::fs::write(jobs_dir(&s).join("big.csv"), input_csv(n, true)).unwrap();
    let body = json!({"input": "big.csv", "output": "out/big.csv", "chunk_size": 20});

    let (st, v) = common::call(&app, "POST", "/v1/jobs", Some(body.clone())).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    // A second job on the same output is refused while the first runs.
    let (st, _) = common::call(&app, "POST", "/v1/jobs", Some(body.clone())).await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, _) = download(&app, &id).await;
    assert_eq!(st, StatusCode::CONFLICT, "no output while running");

    tokio::time::sleep(Duration::from_millis(150)).await;
    let (st, v) = common::call(&app, "POST", &format!("/v1/jobs/{id}/cancel"), None).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let done = wait_done(&app, &id).await;
    assert_eq!(done["state"], "cancelled", "{done}");
    assert_eq!(done["error"]["code"], "cancelled");
    let partial = done["progress"]["rows_done"].as_u64().unwrap();
    assert!(partial < n as u64, "cancelled before the end: {partial}");

    let mut resume = body.clone();
    resume["resume"] = json!(true);
    let (st, v) = common::call(&app, "POST", "/v1/jobs", Some(resume)).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let id2 = v["id"].as_str().unwrap().to_string();
    let done = wait_done(&app, &id2).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["summary"]["resumed_rows"], partial);
    let (st, out) = download(&app, &id2).await;
    assert_eq!(st, StatusCode::OK);
    let want: Vec<String> = (0..n).map(|i| format!("L{i:05}")).collect();
    assert_eq!(ids(&out), want, "every row exactly once, in order");
}

#[tokio::test]
async fn uploaded_job_and_option_errors() {
    let s = state_with(KeywordLabeler::new());
    let app = touxiang::app(s.clone());
    let n = 50;
    let boundary = "JOBBOUNDARY";
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"options\"\r\nContent-Type: application/json\r\n\r\n{{\"output_format\": \"jsonl\"}}\r\n").as_bytes());
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.csv\"\r\nContent-Type: text/csv\r\n\r\n").as_bytes());
    body.extend_from_slice(input_csv(n, false).as_bytes());
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let (st, v) = common::call_raw(
        &app,
        "POST",
        "/v1/jobs",
        &format!("multipart/form-data; boundary={boundary}"),
        body,
    )
    .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let input = v["options"]["input"].as_str().unwrap().to_string();
    assert!(
        input.starts_with(s.config().data_dir.join("jobs").to_str().unwrap()),
        "{input}"
    );
    let id = v["id"].as_str().unwrap().to_string();
    let done = wait_done(&app, &id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let (st, out) = download(&app, &id).await;
    assert_eq!(st, StatusCode::OK);
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), n);
    assert_eq!(rows[0]["id"], "L00000");
    assert_eq!(rows[n - 1]["id"], format!("L{:05}", n - 1));

    // Paths are confined to DATA_DIR/jobs; options are checked and named.
    for (body, field) in [
        (json!({"input": "../admin.key"}), "input"),
        (json!({"input": "/etc/passwd"}), "input"),
        (json!({"input": "missing.csv"}), "input"),
        (json!({}), "input"),
        (json!({"input": "in.csv", "shard": "3/2"}), "shard"),
        (
            json!({"input": "in.csv", "output_format": "pdf"}),
            "output_format",
        ),
        (json!({"input": "in.csv", "surprise": 1}), "surprise"),
    ] {
        std::fs::write(jobs_dir(&s).join("in.csv"), input_csv(3, false)).unwrap();
        let (st, v) = common::call(&app, "POST", "/v1/jobs", Some(body.clone())).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert!(
            v["error"]["field"].as_str().unwrap_or("").contains(field)
                || v["error"]["message"].as_str().unwrap_or("").contains(field),
            "{body}: {v}"
        );
    }
    let (st, _) = common::call(&app, "GET", "/v1/jobs/job_nope", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = common::call(&app, "POST", "/v1/jobs/job_nope/cancel", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn job_without_classifier_is_refused() {
    let s = AppState::open(common::test_config(), None).unwrap();
    let app = touxiang::app(s.clone());
    std::fs::write(jobs_dir(&s).join("in.csv"), input_csv(3, false)).unwrap();
    let (st, v) = common::call(&app, "POST", "/v1/jobs", Some(json!({"input": "in.csv"}))).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
}

/// `review: true` routes the job's `review` rows into the server's own review store: the items
/// carry their row's balance, and follow the double-review rate an admin set at run time.
#[tokio::test]
async fn job_review_rows_go_to_the_servers_review_store() {
    let s = state_with(KeywordLabeler::new());
    s.review().set_double_review_rate(1.0).unwrap();
    let app = touxiang::app(s.clone());
    std::fs::write(jobs_dir(&s).join("book.csv"), input_csv(60, false)).unwrap();
    let (st, v) = common::call(
        &app,
        "POST",
        "/v1/jobs",
        Some(json!({"input": "book.csv", "review": true, "balance_column": "balance"})),
    )
    .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let done = wait_done(&app, v["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let enqueued = done["summary"]["counters"]["reviews_enqueued"]
        .as_u64()
        .unwrap();
    assert!(enqueued > 0, "{done}");
    let (st, out) = download(&app, v["id"].as_str().unwrap()).await;
    assert_eq!(st, StatusCode::OK);
    let store = s.review().store.clone();
    let mut seen = 0;
    for line in out.lines().skip(1) {
        let Some(rv) = line.split(',').find(|c| c.starts_with("rv_")) else {
            continue;
        };
        let item = store.get(rv, chrono::Utc::now()).unwrap();
        let row: f64 = line[1..6].parse().unwrap();
        assert_eq!(item.amount, Some(1000.0 + row), "{line}");
        assert!(
            item.double_review,
            "the rate set on the server's store: {line}"
        );
        seen += 1;
    }
    assert_eq!(seen, enqueued);
}
