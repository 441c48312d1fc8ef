//! Double review: agreement, disagreement and adjudication, the sampled share, and the agreement
//! report with kappa.

use touxiang_review::*;

use super::common::{gbt, t};
use super::{cfg, item, open, TTL};

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
