//! Claims, labels and leases: the path to a final label and its audit trail, label errors and
//! their HTTP status, expired leases.

use std::time::Duration;

use touxiang_review::*;

use super::common::{gbt, t};
use super::{cfg, item, open, TTL};

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
    assert_eq!(e.kind(), "not_leased_to_you");
    s.claim("default", "r1", TTL, t(2)).unwrap().unwrap();
    // Someone else.
    let e = s.label(&id, "r2", "6291", None, &gbt, t(3)).unwrap_err();
    assert!(matches!(e, ReviewError::NotLeasedToYou { .. }));
    // Invalid codes (any level is fine, unknown is not).
    for bad in ["9999", "", "62911", "Z", "h"] {
        let e = s.label(&id, "r1", bad, None, &gbt, t(4)).unwrap_err();
        assert!(matches!(e, ReviewError::InvalidCode { .. }), "{bad:?}: {e}");
        assert_eq!((e.kind(), e.field()), ("invalid_code", Some("code")));
    }
    let e = s
        .label("rv_nope", "r1", "62", None, &gbt, t(5))
        .unwrap_err();
    assert!(matches!(e, ReviewError::NotFound(_)), "{e}");
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
    assert_eq!(e.kind(), "lease_expired");
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
