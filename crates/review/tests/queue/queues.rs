//! Skip and release per reviewer, and separate, validated queues.

use std::time::Duration;

use touxiang_review::*;

use super::common::t;
use super::{cfg, item, open, TTL};

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
                assert_eq!(e.kind(), "invalid_input");
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
