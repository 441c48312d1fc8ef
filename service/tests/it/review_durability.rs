//! A label acknowledged with 200 survives `kill -9` of the server: a real `touxiang serve`
//! child process, items enqueued through the review store library in the same data directory
//! before the start, claims and labels over HTTP, SIGKILL right after the last 200, then the
//! store is reopened and every acknowledged label must be there.

use crate::raw_http;

use chrono::Utc;
use serde_json::json;
use touxiang_review::{LabelFilter, NewItem, ReviewConfig, ReviewStore};

#[test]
fn acknowledged_labels_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let n = 30;
    {
        let cfg = ReviewConfig {
            checkpoint_interval: None,
            ..ReviewConfig::default()
        };
        let store = ReviewStore::open(dir.path(), cfg).unwrap();
        for i in 0..n {
            let mut it = NewItem::new(
                "default",
                &format!("用于烤串店{i}号店装修"),
                "gbt4754-2017",
                0.5,
            );
            it.double_review = Some(false);
            store.enqueue(&it, Utc::now()).unwrap();
        }
    }
    let addr = raw_http::free_addr();
    let mut child = raw_http::spawn_server(dir.path(), &addr, &[]);
    // `serve` set up its compute pool (`touxiang::compute`) and says how.
    let (st, metrics) = raw_http::request(&addr, "GET", "/metrics", None).unwrap();
    assert_eq!(st, 200, "{metrics}");
    let gauge = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    };
    assert_eq!(
        gauge("touxiang_compute_threads") as usize,
        touxiang::compute::default_threads()
    );
    assert!([0.0, 1.0].contains(&gauge("touxiang_compute_threads_pinned")));
    let mut acked = Vec::new();
    for _ in 0..n {
        let (st, body) = raw_http::request(
            &addr,
            "POST",
            "/v1/review/claim",
            Some(&json!({"queue": "default", "reviewer": "r1"})),
        )
        .unwrap();
        assert_eq!(st, 200, "{body}");
        let id = raw_http::json(&body)["review_id"]
            .as_str()
            .unwrap()
            .to_string();
        let (st, body) = raw_http::request(
            &addr,
            "POST",
            &format!("/v1/review/{id}/label"),
            Some(&json!({"code": "6291", "reviewer": "r1"})),
        )
        .unwrap();
        assert_eq!(st, 200, "{body}");
        acked.push(id);
    }
    // SIGKILL at once: no graceful shutdown, no checkpoint.
    child.kill().unwrap();
    child.wait().unwrap();

    let cfg = ReviewConfig {
        checkpoint_interval: None,
        ..ReviewConfig::default()
    };
    let store = ReviewStore::open(dir.path(), cfg).unwrap();
    let finals = store.labels_since(&LabelFilter::default()).unwrap();
    for id in &acked {
        let f = finals
            .iter()
            .find(|f| &f.review_id == id)
            .unwrap_or_else(|| panic!("label of {id} lost"));
        assert_eq!(f.code, "6291");
    }
    assert_eq!(finals.len(), acked.len());
}
