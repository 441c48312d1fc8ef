//! Behaviour of the review store: leases, priorities, skip/release, labels, double review,
//! audit, stats, export, agreement.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::{gbt, t};
use touxiang_review::*;

const TTL: Duration = Duration::from_secs(600);

fn cfg() -> ReviewConfig {
    ReviewConfig {
        double_review_rate: 0.0,
        synchronous: Synchronous::Normal,
        seed: Some(1),
        ..ReviewConfig::default()
    }
}

fn item(text: &str, uncertainty: f64, amount: f64) -> NewItem {
    let mut it = NewItem::new("default", text, "gbt", uncertainty);
    it.amount = Some(amount);
    it
}

fn open(dir: &tempfile::TempDir, config: ReviewConfig) -> ReviewStore {
    ReviewStore::open(dir.path(), config).unwrap()
}

#[test]
fn claim_label_final_and_audit() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, cfg());
    let mut it = item("用于烤串店装修及购买冷柜", 0.26, 300_000.0);
    it.external_id = Some("app-2026-0001".into());
    it.suggestions = serde_json::json!([{"code": "6291", "confidence": 0.74}]);
    it.model_version = Some("m1".into());
    let id = s.enqueue(&it, t(0)).unwrap();
    assert!(id.starts_with("rv_") && id.len() == 35, "{id}");

    let c = s
        .claim("default", "r1", TTL, t(10))
        .unwrap()
        .expect("one item");
    assert_eq!(c.review_id, id);
    assert_eq!(c.text, it.text);
    assert_eq!(c.suggestions, it.suggestions);
    assert_eq!(c.stage, Stage::First);
    assert_eq!(c.lease_expires_at, t(610));
    assert!(s.claim("default", "r2", TTL, t(11)).unwrap().is_none());

    let out = s
        .label(&id, "r1", " 6291 ", Some("小吃"), &gbt, t(20))
        .unwrap();
    assert_eq!(out.state, ItemState::Final);
    let f = out.final_label.expect("final");
    assert_eq!(
        (f.code.as_str(), f.reviewer.as_str(), f.source.as_str()),
        ("6291", "r1", "reviewed")
    );
    assert_eq!(f.text, it.text);
    assert_eq!(f.labeled_at, t(20));
    assert_eq!(f.external_id.as_deref(), Some("app-2026-0001"));
    assert!(matches!(
        s.label(&id, "r1", "6291", None, &gbt, t(21)),
        Err(ReviewError::AlreadyLabeled(_))
    ));

    let view = s.get(&id, t(30)).unwrap();
    assert_eq!(view.state, ItemState::Final);
    assert_eq!(view.labels.len(), 1);
    assert_eq!(view.labels[0].comment.as_deref(), Some("小吃"));

    let log = s.audit(&id).unwrap();
    let actions: Vec<_> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["enqueue", "claim", "label"]);
    assert_eq!(log[2].actor, "r1");
    assert_eq!(log[2].detail["code"], "6291");
    assert_eq!(log[2].previous.as_ref().unwrap()["status"], "leased");
    assert_eq!(log[2].previous.as_ref().unwrap()["leased_by"], "r1");
    assert_eq!(s.audit_log(0, None, 100).unwrap().len(), 3);
    assert_eq!(s.audit_log(log[0].seq, None, 100).unwrap().len(), 2);
    assert_eq!(s.audit_log(0, Some(t(15)), 100).unwrap().len(), 1);
}

#[test]
fn label_errors_map_to_http() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, cfg());
    let id = s.enqueue(&item("a", 0.5, 10.0), t(0)).unwrap();
    // Not claimed by anyone.
    let e = s.label(&id, "r1", "6291", None, &gbt, t(1)).unwrap_err();
    assert!(matches!(e, ReviewError::NotLeasedToYou { .. }), "{e}");
    assert_eq!(e.http_status(), 403);
    s.claim("default", "r1", TTL, t(2)).unwrap().unwrap();
    // Someone else.
    let e = s.label(&id, "r2", "6291", None, &gbt, t(3)).unwrap_err();
    assert!(matches!(e, ReviewError::NotLeasedToYou { .. }));
    // Invalid codes (any level is fine, unknown is not).
    for bad in ["9999", "", "62911", "Z", "h"] {
        let e = s.label(&id, "r1", bad, None, &gbt, t(4)).unwrap_err();
        assert!(matches!(e, ReviewError::InvalidCode { .. }), "{bad:?}: {e}");
        assert_eq!(
            (e.http_status(), e.kind(), e.field()),
            (422, "invalid_code", Some("code"))
        );
    }
    let e = s
        .label("rv_nope", "r1", "62", None, &gbt, t(5))
        .unwrap_err();
    assert_eq!(e.http_status(), 404);
    // A division is a valid label.
    let out = s.label(&id, "r1", "62", None, &gbt, t(6)).unwrap();
    assert_eq!(out.final_label.unwrap().code, "62");
    // Failed calls left no label and no audit line.
    assert_eq!(s.labels(&id).unwrap().len(), 1);
    assert_eq!(
        s.audit(&id)
            .unwrap()
            .iter()
            .filter(|e| e.action == "label")
            .count(),
        1
    );
}

#[test]
fn expired_lease_returns_item() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, cfg());
    let id = s.enqueue(&item("a", 0.5, 10.0), t(0)).unwrap();
    let c = s
        .claim("default", "r1", Duration::from_secs(60), t(0))
        .unwrap()
        .unwrap();
    assert_eq!(c.review_id, id);
    assert!(s.claim("default", "r2", TTL, t(59)).unwrap().is_none());
    assert_eq!(s.stats(t(59)).unwrap().queues[0].leased, 1);
    // Lease ran out: stats show it pending, r1 can no longer label it.
    assert_eq!(s.stats(t(60)).unwrap().queues[0].pending, 1);
    let e = s.label(&id, "r1", "6291", None, &gbt, t(61)).unwrap_err();
    assert!(matches!(e, ReviewError::LeaseExpired { .. }), "{e}");
    assert_eq!(e.http_status(), 409);
    // r2 gets it.
    let c2 = s.claim("default", "r2", TTL, t(62)).unwrap().unwrap();
    assert_eq!(c2.review_id, id);
    let e = s.label(&id, "r1", "6291", None, &gbt, t(63)).unwrap_err();
    assert!(matches!(e, ReviewError::NotLeasedToYou { .. }), "{e}");
    s.label(&id, "r2", "6291", None, &gbt, t(64)).unwrap();
    let actions: Vec<_> = s
        .audit(&id)
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.actor))
        .collect();
    assert!(actions.contains(&("lease_expired".into(), "system".into())));
}

#[test]
fn priority_is_uncertainty_times_exposure() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, cfg());
    let low = s.enqueue(&item("low", 0.9, 1_000.0), t(0)).unwrap();
    let high = s.enqueue(&item("high", 0.3, 1_000_000.0), t(0)).unwrap();
    let mid = s.enqueue(&item("mid", 0.5, 100_000.0), t(0)).unwrap();
    let order: Vec<_> = (0..3)
        .map(|i| {
            s.claim("default", &format!("r{i}"), TTL, t(1))
                .unwrap()
                .unwrap()
                .review_id
        })
        .collect();
    assert_eq!(order, [high, mid, low]);
}

#[test]
fn ageing_lets_an_old_low_item_beat_a_new_high_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = ReviewConfig {
        priority_doubling_time: Duration::from_secs(3600),
        ..cfg()
    };
    let s = open(&dir, config);
    // Base ratio 0.9·1e6 / (0.1·100) = 90 000 ≈ 2^16.5 → the old one must wait ≈ 16.5 h.
    let old = s.enqueue(&item("old", 0.1, 100.0), t(0)).unwrap();
    let h = 3600;
    let new_early = s
        .enqueue(&item("new", 0.9, 1_000_000.0), t(16 * h))
        .unwrap();
    let c = s.claim("default", "r1", TTL, t(16 * h)).unwrap().unwrap();
    assert_eq!(
        c.review_id, new_early,
        "after 16 h the big new item still leads"
    );
    s.label(&c.review_id, "r1", "H", None, &gbt, t(16 * h))
        .unwrap();
    let new_late = s
        .enqueue(&item("new2", 0.9, 1_000_000.0), t(17 * h))
        .unwrap();
    let c = s.claim("default", "r2", TTL, t(17 * h)).unwrap().unwrap();
    assert_eq!(c.review_id, old, "after 17 h the old item has overtaken");
    assert!(c.priority > 0.1 * 100.0 * 2f64.powi(16));
    let c = s.claim("default", "r3", TTL, t(17 * h)).unwrap().unwrap();
    assert_eq!(c.review_id, new_late);
}

#[test]
fn changing_doubling_time_reorders_existing_items() {
    let dir = tempfile::tempdir().unwrap();
    let a;
    {
        let s = open(&dir, cfg()); // 2 h doubling
        a = s.enqueue(&item("old small", 0.1, 100.0), t(0)).unwrap();
        s.enqueue(&item("new big", 0.2, 1000.0), t(3600)).unwrap();
    }
    // With 2 h doubling the big one (20× base, 1 h younger) leads; with a 6 min doubling time
    // the hour of waiting is worth 2^10 and the old one leads — keys must be recomputed on open.
    let s = open(
        &dir,
        ReviewConfig {
            priority_doubling_time: Duration::from_secs(360),
            ..cfg()
        },
    );
    let c = s.claim("default", "r", TTL, t(3600)).unwrap().unwrap();
    assert_eq!(c.review_id, a);
}

#[test]
fn skip_keeps_item_away_from_that_reviewer_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, cfg()); // 1 h cooldown
    const LONG: Duration = Duration::from_secs(10 * 3600);
    let a = s.enqueue(&item("a", 0.9, 1000.0), t(0)).unwrap();
    let b = s.enqueue(&item("b", 0.1, 1000.0), t(0)).unwrap();
    assert_eq!(
        s.claim("default", "r1", LONG, t(1))
            .unwrap()
            .unwrap()
            .review_id,
        a
    );
    s.skip(&a, "r1", Some("unclear"), t(2)).unwrap();
    // r1 gets the lower one, then nothing; r2 gets the skipped one.
    assert_eq!(
        s.claim("default", "r1", LONG, t(3))
            .unwrap()
            .unwrap()
            .review_id,
        b
    );
    s.release(&b, "r1", t(4)).unwrap();
    assert_eq!(
        s.claim("default", "r1", LONG, t(5))
            .unwrap()
            .unwrap()
            .review_id,
        b
    );
    assert!(s.claim("default", "r1", LONG, t(6)).unwrap().is_none());
    assert_eq!(
        s.claim("default", "r2", LONG, t(7))
            .unwrap()
            .unwrap()
            .review_id,
        a
    );
    s.release(&a, "r2", t(8)).unwrap();
    // After the cooldown r1 may have it again.
    assert!(s.claim("default", "r1", LONG, t(3000)).unwrap().is_none());
    assert_eq!(
        s.claim("default", "r1", LONG, t(3603))
            .unwrap()
            .unwrap()
            .review_id,
        a
    );
    // Skip / release need the lease.
    assert!(matches!(
        s.skip(&a, "r2", None, t(3604)),
        Err(ReviewError::NotLeasedToYou { .. })
    ));
    let st = s.stats(t(3605)).unwrap();
    let r1 = st.reviewers.iter().find(|r| r.reviewer == "r1").unwrap();
    assert_eq!((r1.skipped, r1.leased), (1, 2));
    let actions: Vec<_> = s.audit(&a).unwrap().into_iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        ["enqueue", "claim", "skip", "claim", "release", "claim"]
    );
}

#[test]
fn queues_are_separate_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, cfg());
    let mut it = item("x", 0.5, 1.0);
    it.queue = "branch-11".into();
    let id = s.enqueue(&it, t(0)).unwrap();
    assert!(s.claim("default", "r1", TTL, t(1)).unwrap().is_none());
    assert_eq!(
        s.claim("branch-11", "r1", TTL, t(1))
            .unwrap()
            .unwrap()
            .review_id,
        id
    );
    let bad = |f: &dyn Fn(&mut NewItem), field: &str| {
        let mut it = item("x", 0.5, 1.0);
        f(&mut it);
        match s.enqueue(&it, t(0)) {
            Err(e @ ReviewError::InvalidInput { .. }) => {
                assert_eq!(e.field(), Some(field));
                assert_eq!(e.http_status(), 422);
            }
            other => panic!("{field}: {other:?}"),
        }
    };
    bad(&|i| i.queue = "".into(), "queue");
    bad(&|i| i.queue = "a b".into(), "queue");
    bad(&|i| i.queue = "adjudication".into(), "queue");
    bad(&|i| i.text = "  ".into(), "text");
    bad(&|i| i.amount = Some(-1.0), "amount");
    bad(&|i| i.amount = Some(f64::NAN), "amount");
    bad(&|i| i.uncertainty = 1.5, "uncertainty");
    assert!(matches!(
        s.claim("default", "", TTL, t(1)),
        Err(ReviewError::InvalidInput {
            field: "reviewer",
            ..
        })
    ));
}

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
fn double_review_agreement_is_final() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, cfg());
    let mut it = item("a", 0.5, 10.0);
    it.double_review = Some(true);
    let id = s.enqueue(&it, t(0)).unwrap();
    s.claim("default", "r1", TTL, t(1)).unwrap().unwrap();
    let o1 = s.label(&id, "r1", "6291", None, &gbt, t(2)).unwrap();
    assert_eq!(o1.state, ItemState::Pending);
    assert_eq!(o1.next_stage, Some(Stage::Second));
    assert!(o1.final_label.is_none());
    // r1 never sees it again; r2 does, as the second review.
    assert!(s.claim("default", "r1", TTL, t(3)).unwrap().is_none());
    let c = s.claim("default", "r2", TTL, t(4)).unwrap().unwrap();
    assert_eq!(
        (c.review_id.as_str(), c.stage),
        (id.as_str(), Stage::Second)
    );
    let st = s.stats(t(4)).unwrap();
    assert_eq!(st.queues[0].leased, 1);
    let o2 = s.label(&id, "r2", "6291", None, &gbt, t(5)).unwrap();
    assert_eq!(o2.state, ItemState::Final);
    let f = o2.final_label.unwrap();
    assert_eq!((f.code.as_str(), f.reviewer.as_str()), ("6291", "r2"));
}

#[test]
fn double_review_disagreement_goes_to_adjudication() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, cfg());
    let mut it = item("a", 0.5, 10.0);
    it.double_review = Some(true);
    let id = s.enqueue(&it, t(0)).unwrap();
    s.claim("default", "r1", TTL, t(1)).unwrap().unwrap();
    s.label(&id, "r1", "6291", None, &gbt, t(2)).unwrap();
    s.claim("default", "r2", TTL, t(3)).unwrap().unwrap();
    let o = s.label(&id, "r2", "6210", None, &gbt, t(4)).unwrap();
    assert_eq!(o.next_stage, Some(Stage::Adjudication));
    assert_eq!(o.next_queue.as_deref(), Some("adjudication"));
    assert!(s.claim("default", "r3", TTL, t(5)).unwrap().is_none());
    // Neither labeler adjudicates.
    assert!(s.claim("adjudication", "r1", TTL, t(5)).unwrap().is_none());
    assert!(s.claim("adjudication", "r2", TTL, t(5)).unwrap().is_none());
    let c = s.claim("adjudication", "lead", TTL, t(6)).unwrap().unwrap();
    assert_eq!(c.stage, Stage::Adjudication);
    let o = s
        .label(&id, "lead", "6299", Some("neither"), &gbt, t(7))
        .unwrap();
    assert_eq!(o.final_label.unwrap().code, "6299");
    let v = s.get(&id, t(8)).unwrap();
    assert_eq!(v.labels.len(), 3);
    assert_eq!(v.origin_queue, "default");
    assert_eq!(v.queue, "adjudication");
    let st = s.stats(t(8)).unwrap();
    let adj = st
        .queues
        .iter()
        .find(|q| q.queue == "adjudication")
        .unwrap();
    assert_eq!(adj.labeled, 1);
}

#[test]
fn double_review_share_is_sampled() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(
        &dir,
        ReviewConfig {
            double_review_rate: 0.3,
            ..cfg()
        },
    );
    let ids: Vec<_> = (0..400)
        .map(|i| s.enqueue(&item(&format!("x{i}"), 0.5, 1.0), t(0)).unwrap())
        .collect();
    let doubles = ids
        .iter()
        .filter(|id| s.get(id, t(0)).unwrap().double_review)
        .count();
    // 400 draws at 0.3: sd ≈ 9.2; allow ±5 sd.
    assert!((74..=166).contains(&doubles), "{doubles}");
}

#[test]
fn agreement_report_with_kappa() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, cfg());
    // Four double-reviewed items: (r1, r2) codes
    //   6291/6291 agree; 6291/6299 same group; 6291/1311 different section; 1311/1311 agree.
    let pairs = [
        ("6291", "6291"),
        ("6291", "6299"),
        ("6291", "1311"),
        ("1311", "1311"),
    ];
    for (i, (a, b)) in pairs.iter().enumerate() {
        let mut it = item(&format!("x{i}"), 0.5, 10.0 - i as f64);
        it.double_review = Some(true);
        let id = s.enqueue(&it, t(0)).unwrap();
        assert_eq!(
            s.claim("default", "r1", TTL, t(1))
                .unwrap()
                .unwrap()
                .review_id,
            id
        );
        s.label(&id, "r1", a, None, &gbt, t(2)).unwrap();
        assert_eq!(
            s.claim("default", "r2", TTL, t(3))
                .unwrap()
                .unwrap()
                .review_id,
            id
        );
        s.label(&id, "r2", b, None, &gbt, t(4)).unwrap();
        if a != b {
            s.claim("adjudication", "r3", TTL, t(5)).unwrap().unwrap();
            s.label(&id, "r3", a, None, &gbt, t(6)).unwrap();
        }
    }
    let r = s.agreement_report(Some("gbt"), &gbt).unwrap();
    assert_eq!(r.pairs, 4);
    assert_eq!(r.exact_agreement, Some(0.5));
    // credits 1, 0.75, 0, 1 → mean 0.6875
    assert!((r.mean_partial_credit.unwrap() - 0.6875).abs() < 1e-12);
    // Section level: pairs (H,H) (H,H) (H,C) (C,C): p_o = 3/4;
    // r1 marginals H 3/4, C 1/4; r2 H 2/4, C 2/4 → p_e = 3/8 + 1/8 = 1/2; κ = 0.25/0.5 = 0.5.
    let k1 = &r.kappa[0];
    assert_eq!((k1.depth, k1.level.as_str(), k1.pairs), (1, "section", 4));
    assert!((k1.kappa.unwrap() - 0.5).abs() < 1e-12, "{k1:?}");
    // Class level: p_o = 2/4; r1: 6291 3/4, 1311 1/4; r2: 6291 1/4, 6299 1/4, 1311 2/4
    // p_e = 3/16 + 2/16 = 5/16; κ = (8/16 − 5/16)/(11/16) = 3/11.
    let k4 = &r.kappa[3];
    assert_eq!(k4.level, "class");
    assert!((k4.kappa.unwrap() - 3.0 / 11.0).abs() < 1e-12, "{k4:?}");
    // Per reviewer: r1 agrees with the final label every time (adjudicator sided with r1),
    // r2 in 2 of 4.
    let r1 = r.reviewers.iter().find(|x| x.reviewer == "r1").unwrap();
    let r2 = r.reviewers.iter().find(|x| x.reviewer == "r2").unwrap();
    assert_eq!((r1.pairs, r1.agreement_with_final), (4, Some(1.0)));
    assert_eq!(r2.agreement_with_final, Some(0.5));
    // Per code: 6291 given 4 times (3 by r1, 1 by r2), both once → specific 2·1/4 = 0.5.
    let c = r.codes.iter().find(|c| c.code == "6291").unwrap();
    assert_eq!((c.assigned, c.both), (4, 1));
    assert!((c.specific_agreement - 0.5).abs() < 1e-12);
    // pairs involving 6291: credits 1, 0.75, 0 → 0.5833…
    assert!((c.mean_partial_credit - 1.75 / 3.0).abs() < 1e-12);
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

/// Many threads on several connections claim at once: no item is handed out twice, none is lost.
#[test]
fn concurrent_claims_never_hand_out_an_item_twice() {
    let dir = tempfile::tempdir().unwrap();
    let n_items = 300;
    let ids: HashSet<String> = {
        let s = open(&dir, cfg());
        (0..n_items)
            .map(|i| {
                s.enqueue(&item(&format!("x{i}"), 0.5, i as f64), t(0))
                    .unwrap()
            })
            .collect()
    };
    // 4 store instances (4 SQLite connections), 4 threads each.
    let stores: Vec<Arc<ReviewStore>> = (0..4).map(|_| Arc::new(open(&dir, cfg()))).collect();
    let barrier = Arc::new(std::sync::Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|k| {
            let s = stores[k % 4].clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut got = Vec::new();
                while let Some(c) = s.claim("default", &format!("r{k}"), TTL, t(1)).unwrap() {
                    got.push(c.review_id);
                }
                got
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().unwrap());
    }
    let unique: HashSet<String> = all.iter().cloned().collect();
    assert_eq!(all.len(), n_items, "every item claimed exactly once");
    assert_eq!(unique, ids);
    let st = stores[0].stats(t(2)).unwrap();
    assert_eq!(
        (st.queues[0].leased, st.queues[0].pending),
        (n_items as u64, 0)
    );
}

#[test]
fn small_load_run_has_no_duplicates_or_lost_labels() {
    let dir = tempfile::tempdir().unwrap();
    let report = run_load(
        dir.path(),
        &LoadOptions {
            reviewers: 6,
            items: 120,
            extra_items: 20,
            enqueue_rps: 0.0,
            double_review_rate: 0.3,
            separate_connections: true,
            synchronous: Synchronous::Normal,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(report.duplicate_claims, 0, "{report:?}");
    assert_eq!(report.lost_labels, 0, "{report:?}");
    assert_eq!(report.items, 140);
    assert_eq!(report.items_final, 140, "{report:?}");
    assert!(report.labels_acked >= 140);
    assert_eq!(report.labels_acked, report.claims);
}
