//! Concurrency: simultaneous claims on several connections, and a small load run.

use std::collections::HashSet;
use std::sync::Arc;

use touxiang_review::*;

use super::common::t;
use super::{cfg, item, open, TTL};

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
