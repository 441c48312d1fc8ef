//! What the store keeps and reports: the append-only audit log, the labels export and the
//! per-queue and per-reviewer stats.

use touxiang_review::*;

use super::common::{gbt, t};
use super::{cfg, item, open, TTL};

#[test]
fn audit_log_is_append_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, cfg());
    let id = s.enqueue(&item("a", 0.5, 10.0), t(0)).unwrap();
    s.claim("default", "r1", TTL, t(1)).unwrap().unwrap();
    s.label(&id, "r1", "6291", None, &gbt, t(2)).unwrap();
    for sql in [
        "UPDATE audit SET actor = 'mallory'",
        "DELETE FROM audit",
        "UPDATE labels SET code = '6210'",
        "DELETE FROM labels",
    ] {
        let e = s.execute_raw_for_tests(sql).unwrap_err();
        assert!(e.to_string().contains("append-only"), "{sql}: {e}");
    }
    assert_eq!(s.audit(&id).unwrap().len(), 3);
    assert_eq!(s.labels(&id).unwrap()[0].code, "6291");
}

#[test]
fn export_labels_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, cfg());
    for (i, code) in ["6291", "13", "H"].iter().enumerate() {
        let id = s
            .enqueue(&item(&format!("文本{i}"), 0.5, 100.0 - i as f64), t(0))
            .unwrap();
        s.claim("default", "r1", TTL, t(1)).unwrap().unwrap();
        s.label(&id, "r1", code, None, &gbt, t(10 + i as i64))
            .unwrap();
    }
    s.enqueue(&item("pending one", 0.5, 1.0), t(0)).unwrap();
    let mut buf = Vec::new();
    let n = s.export_labels(&mut buf, &LabelFilter::default()).unwrap();
    assert_eq!(n, 3);
    let lines: Vec<serde_json::Value> = String::from_utf8(buf)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["text"], "文本0");
    assert_eq!(lines[0]["code"], "6291");
    assert_eq!(lines[1]["code"], "13");
    for l in &lines {
        assert_eq!(l["source"], "reviewed");
        assert_eq!(l["taxonomy"], "gbt");
        assert_eq!(l["reviewer"], "r1");
        assert!(l["labeled_at"].as_str().unwrap().starts_with("20"));
    }
    let since = s
        .labels_since(&LabelFilter {
            since: Some(t(11)),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        since.iter().map(|l| l.code.as_str()).collect::<Vec<_>>(),
        ["13", "H"]
    );
    let other = s
        .labels_since(&LabelFilter {
            taxonomy: Some("other".into()),
            ..Default::default()
        })
        .unwrap();
    assert!(other.is_empty());
    let limited = s
        .labels_since(&LabelFilter {
            limit: Some(1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(limited.len(), 1);
}

#[test]
fn stats_per_queue_and_reviewer() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, cfg());
    for i in 0..5 {
        s.enqueue(&item(&format!("x{i}"), 0.5, 10.0), t(i)).unwrap();
    }
    let mut it = item("y", 0.5, 10.0);
    it.queue = "sme".into();
    s.enqueue(&it, t(0)).unwrap();
    let c = s.claim("default", "r1", TTL, t(100)).unwrap().unwrap();
    s.label(&c.review_id, "r1", "H", None, &gbt, t(101))
        .unwrap();
    s.claim("default", "r2", TTL, t(102)).unwrap().unwrap();
    let st = s.stats(t(200)).unwrap();
    let d = st.queues.iter().find(|q| q.queue == "default").unwrap();
    assert_eq!((d.pending, d.leased, d.labeled), (3, 1, 1));
    assert!(d.oldest_pending_age_secs.unwrap() >= 198.0);
    let r1 = d.reviewers.iter().find(|r| r.reviewer == "r1").unwrap();
    assert_eq!((r1.labeled, r1.leased), (1, 0));
    let r2 = d.reviewers.iter().find(|r| r.reviewer == "r2").unwrap();
    assert_eq!((r2.labeled, r2.leased), (0, 1));
    let sme = st.queues.iter().find(|q| q.queue == "sme").unwrap();
    assert_eq!((sme.pending, sme.leased, sme.labeled), (1, 0, 0));
    assert!(serde_json::to_value(&st).unwrap()["queues"].is_array());
}
