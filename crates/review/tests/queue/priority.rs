//! Priorities: uncertainty × exposure, ageing, and a changed doubling time.

use std::time::Duration;

use touxiang_review::*;

use super::common::{gbt, t};
use super::{cfg, item, open, TTL};

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
