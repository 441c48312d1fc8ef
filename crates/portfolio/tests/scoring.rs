//! Shrinkage and alerts on constructed cases where the right answer is known.

use std::fmt::Write as _;

use rand::{Rng, SeedableRng};
use touxiang_portfolio::scoring::{fit_prior_strength, shrink, two_proportion_z, MAX_STRENGTH};
use touxiang_portfolio::{
    AlertQuery, Dimension, IngestMode, IngestOptions, PortfolioStore, ScoreQuery, SnapshotSel,
};

#[test]
fn moment_fit_matches_hand_computation() {
    // n = 100 each, x = 0, 10, 20, 30: m = 0.15, S = 5.0, (k−1)m(1−m) = 0.3825,
    // N − Σn²/N = 300, τ² = 0.0153917, κ = 0.1275/τ² − 1 = 7.2836.
    let (m, k) = fit_prior_strength(&[(100, 0), (100, 10), (100, 20), (100, 30)], 3);
    assert!((m - 0.15).abs() < 1e-12);
    let k = k.unwrap();
    assert!((k - 7.2836).abs() < 1e-3, "κ = {k}");
    // Identical rates: no between-segment variance → complete pooling.
    let (_, k) = fit_prior_strength(&[(200, 10), (400, 20), (100, 5)], 3);
    assert_eq!(k, Some(MAX_STRENGTH));
    // Too few siblings: not estimable.
    assert_eq!(fit_prior_strength(&[(200, 10), (400, 90)], 3).1, None);
    // Posterior mean.
    assert!((shrink(2, 3, 0.05, 97.0) - (2.0 + 97.0 * 0.05) / 100.0).abs() < 1e-15);
}

#[test]
fn moment_fit_recovers_known_strength_on_simulated_siblings() {
    // θ_i ∈ {m − d, m + d} with equal probability: Var θ = d², so κ = m(1−m)/d² − 1 = 99.
    let (m, d) = (0.10f64, 0.03f64);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let sib: Vec<(u64, u64)> = (0..400)
        .map(|_| {
            let theta = if rng.random::<bool>() { m + d } else { m - d };
            let n = 1000u64;
            let x = (0..n).filter(|_| rng.random::<f64>() < theta).count() as u64;
            (n, x)
        })
        .collect();
    let (mh, k) = fit_prior_strength(&sib, 3);
    let k = k.unwrap();
    assert!((mh - m).abs() < 0.005, "m̂ = {mh}");
    assert!((k - 99.0).abs() < 20.0, "κ̂ = {k}, expected ≈ 99");
}

#[test]
fn z_test_matches_formula() {
    // 60/1000 vs 60/3000: p̂ = 0.03, se = sqrt(0.03·0.97·(1/1000 + 1/3000)), z = 0.04/se.
    let (z, p) = two_proportion_z(60, 1000, 60, 3000);
    let se = (0.03f64 * 0.97 * (1.0 / 1000.0 + 1.0 / 3000.0)).sqrt();
    assert!((z - 0.04 / se).abs() < 1e-9);
    assert!(p < 1e-9);
    // 30/1000 vs 60/3000: z ≈ 1.847, one-sided p ≈ 0.0324.
    let (z, p) = two_proportion_z(30, 1000, 60, 3000);
    assert!((z - 1.8466).abs() < 1e-3, "z = {z}");
    assert!((p - 0.0324).abs() < 1e-3, "p = {p}");
}

/// Write loans: (customer_type, month-end, n, overdue, balance each).
fn book(segs: &[(&str, &str, u64, u64, f64)]) -> String {
    let mut s = String::from("loan_id,purpose_text,balance,overdue_days,region_code,customer_type,as_of_date,industry_code\n");
    for (ct, date, n, od, bal) in segs {
        for i in 0..*n {
            let days = if i < *od { 45 } else { 0 };
            let _ = writeln!(s, "{ct}-{i},采购原材料,{bal},{days},110101,{ct},{date},C");
        }
    }
    s
}

fn store_with(body: &str) -> (tempfile::TempDir, PortfolioStore) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("b.csv");
    std::fs::write(&p, body).unwrap();
    let store = PortfolioStore::open(dir.path()).unwrap();
    let rep = store
        .ingest_file(
            "t",
            &p,
            &IngestOptions {
                mode: IngestMode::AllOrNothing,
                ..IngestOptions::default()
            },
            None,
        )
        .unwrap();
    assert!(rep.rejected.is_empty(), "{:?}", rep.rejected.first());
    (dir, store)
}

#[test]
fn a_tiny_segment_cannot_game_its_score() {
    // Five big segments at 5 % ± a little and one tiny one with 2 of 3 overdue, one with 0 of 4.
    let segs = [
        ("大型企业", "2025-03-31", 2000, 90, 1e6),
        ("中型企业", "2025-03-31", 2000, 110, 1e6),
        ("小型企业", "2025-03-31", 2000, 100, 1e6),
        ("微型企业", "2025-03-31", 2000, 120, 1e6),
        ("个体工商户", "2025-03-31", 2000, 80, 1e6),
        ("新客户A", "2025-03-31", 3, 2, 1e6),
        ("新客户B", "2025-03-31", 4, 0, 1e6),
    ];
    let (_d, store) = store_with(&book(&segs));
    let scores = store
        .scores(&ScoreQuery::new("t", &[Dimension::CustomerType]))
        .unwrap();
    assert_eq!(scores.len(), 7);
    let get = |c: &str| {
        scores
            .iter()
            .find(|s| s.keys[0].code.as_deref() == Some(c))
            .unwrap()
    };
    let parent = 502.0 / 10007.0;
    for s in &scores {
        assert!((s.parent_rate - parent).abs() < 1e-12);
        assert!(
            s.parent.is_empty(),
            "flat dimension → parent is the whole book"
        );
        assert!(s.prior_fitted);
        // The documented formula, with the reported κ.
        let want = (s.overdue_loans as f64 + s.prior_strength * parent)
            / (s.loans as f64 + s.prior_strength);
        assert!((s.shrunk_rate - want).abs() < 1e-12);
        assert!((s.exposure_at_risk - s.balance * s.shrunk_rate).abs() < 1e-6);
    }
    // κ from the same counts.
    let counts: Vec<(u64, u64)> = segs.iter().map(|s| (s.2, s.3)).collect();
    let k = fit_prior_strength(&counts, 3).1.unwrap();
    assert!((get("新客户A").prior_strength - k).abs() < 1e-9);
    // Raw 66.7 % → shrunk stays near the parent's 5 %; raw 0 % is not rewarded with 0.
    let a = get("新客户A");
    assert!((a.raw_rate - 2.0 / 3.0).abs() < 1e-12);
    assert!(
        a.shrunk_rate < 0.08,
        "tiny bad segment shrunk to {}",
        a.shrunk_rate
    );
    let b = get("新客户B");
    assert!(
        b.shrunk_rate > 0.04,
        "tiny clean segment shrunk to {}",
        b.shrunk_rate
    );
    // Big segments keep (almost) their own rate.
    let big = get("微型企业");
    assert!(
        (big.shrunk_rate - 0.06).abs() < 0.005,
        "{}",
        big.shrunk_rate
    );
}

#[test]
fn hierarchical_parent_is_one_level_up() {
    // Divisions 13 and 14 (section C) and 47 (section E): parent of a division is its section.
    let mut s = String::from(
        "loan_id,purpose_text,balance,overdue_days,region_code,as_of_date,industry_code\n",
    );
    for (code, n, od) in [("1311", 100, 10), ("1411", 100, 30), ("4710", 100, 50)] {
        for i in 0..n {
            let _ = writeln!(
                s,
                "{code}-{i},x,1,{},11,2025-03-31,{code}",
                if i < od { 10 } else { 0 }
            );
        }
    }
    let (_d, store) = store_with(&s);
    let scores = store
        .scores(&ScoreQuery::new("t", &[Dimension::IndustryDivision]))
        .unwrap();
    for sc in &scores {
        let div = sc.keys[0].code.clone().unwrap();
        let (psec, prate) = if div == "47" { ("E", 0.5) } else { ("C", 0.2) };
        assert_eq!(sc.parent[0].code.as_deref(), Some(psec));
        assert!((sc.parent_rate - prate).abs() < 1e-12, "{div}");
        // Fewer than 3 siblings → default strength 100.
        assert!(!sc.prior_fitted);
        assert_eq!(sc.prior_strength, 100.0);
    }
}

fn alert_book() -> String {
    let mut segs = Vec::new();
    for d in ["2025-01-31", "2025-02-28", "2025-03-31"] {
        segs.push(("RISE", d, 1000, 20, 1e5));
        segs.push(("FLAT", d, 1000, 20, 1e5));
        segs.push(("SMALL", d, 20, 0, 1e5));
        segs.push(("CHEAP", d, 1000, 20, 1.0));
        segs.push(("MILD", d, 1000, 20, 1e5));
    }
    let d = "2025-04-30";
    segs.push(("RISE", d, 1000, 60, 1e5)); // 2 % → 6 %: z ≈ 6.4
    segs.push(("FLAT", d, 1000, 21, 1e5)); // unchanged
    segs.push(("SMALL", d, 20, 10, 1e5)); // 0 % → 50 % but only 20 loans
    segs.push(("CHEAP", d, 1000, 60, 1.0)); // big rise, exposure 1 000
    segs.push(("MILD", d, 1000, 30, 1e5)); // 2 % → 3 %: z ≈ 1.85, p ≈ 0.032
    book(&segs)
}

#[test]
fn alerts_fire_exactly_where_the_rate_rose_significantly() {
    let (_d, store) = store_with(&alert_book());
    let q = AlertQuery {
        min_exposure: 1e6,
        ..AlertQuery::new("t", &[Dimension::CustomerType])
    };
    let alerts = store.alerts(&q).unwrap();
    let who: Vec<&str> = alerts
        .iter()
        .map(|a| a.keys[0].code.as_deref().unwrap())
        .collect();
    assert_eq!(who, vec!["RISE"], "{alerts:#?}");
    let a = &alerts[0];
    let se = (0.03f64 * 0.97 * (1.0 / 1000.0 + 1.0 / 3000.0)).sqrt();
    assert!((a.z - 0.04 / se).abs() < 1e-9);
    assert_eq!(a.baseline_loans, 3000);
    assert_eq!(a.baseline_months, vec!["2025-01", "2025-02", "2025-03"]);
    assert!(
        a.reason
            .starts_with("RISE: 逾期率 6.0% 高于基线 2.0%（z=6.4, p<0.001，敞口 1.0亿元"),
        "{}",
        a.reason
    );

    // alpha 0.05 also catches MILD (p ≈ 0.032); Bonferroni over 4 tested segments does not.
    let q5 = AlertQuery {
        alpha: 0.05,
        ..q.clone()
    };
    let who: Vec<String> = store
        .alerts(&q5)
        .unwrap()
        .iter()
        .map(|a| a.keys[0].code.clone().unwrap())
        .collect();
    assert_eq!(who, vec!["RISE", "MILD"]);
    let qb = AlertQuery {
        bonferroni: true,
        ..q5.clone()
    };
    assert_eq!(store.alerts(&qb).unwrap().len(), 1);
    // Lowering the exposure floor lets CHEAP through; lowering min_loans lets SMALL through.
    let ql = AlertQuery {
        min_exposure: 0.0,
        min_loans: 10,
        ..q.clone()
    };
    let mut who: Vec<String> = store
        .alerts(&ql)
        .unwrap()
        .iter()
        .map(|a| a.keys[0].code.clone().unwrap())
        .collect();
    who.sort();
    assert_eq!(who, vec!["CHEAP", "RISE", "SMALL"]);
    // The previous month shows nothing (rates were flat).
    let qp = AlertQuery {
        snapshot: SnapshotSel::Month("2025-03".into()),
        min_exposure: 0.0,
        ..q
    };
    assert!(store.alerts(&qp).unwrap().is_empty());
    // Trend in scores: RISE's shrunk rate is above its shrunk baseline.
    let sc = store
        .scores(&ScoreQuery::new("t", &[Dimension::CustomerType]))
        .unwrap();
    let rise = sc
        .iter()
        .find(|s| s.keys[0].code.as_deref() == Some("RISE"))
        .unwrap();
    assert!(rise.trend.unwrap() > 0.02);
    let flat = sc
        .iter()
        .find(|s| s.keys[0].code.as_deref() == Some("FLAT"))
        .unwrap();
    assert!(flat.trend.unwrap().abs() < 0.01);
}

#[test]
fn alert_params_parse() {
    let p = |s: &[(&str, &str)]| -> Vec<(String, String)> {
        s.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    let q = AlertQuery::from_params(
        "t",
        &p(&[
            ("by", "customer_type"),
            ("alpha", "0.05"),
            ("min_exposure", "1e6"),
            ("region.province", "11"),
        ]),
    )
    .unwrap();
    assert_eq!(q.by, vec![Dimension::CustomerType]);
    assert_eq!(q.alpha, 0.05);
    assert_eq!(q.min_exposure, 1e6);
    assert_eq!(q.filters.len(), 1);
    let e = AlertQuery::from_params("t", &p(&[("alpha", "2")])).unwrap_err();
    assert_eq!(e.field(), Some("alpha"));
    let e = AlertQuery::from_params("t", &p(&[("bogus", "1")])).unwrap_err();
    assert_eq!(e.field(), Some("bogus"));
}
