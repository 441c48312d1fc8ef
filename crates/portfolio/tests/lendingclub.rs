//! Proof on the real Lending Club book: ingest via the mapping, then compare the API's aggregates
//! with a straightforward fold over the CSV rows done here, independently of the crate.

use std::collections::HashMap;

use touxiang_portfolio::{lendingclub, AggQuery, Dimension, PortfolioStore, SnapshotSel};

#[derive(Default, Debug, Clone, Copy)]
struct A {
    loans: u64,
    balance: f64,
    od: u64,
    od_bal: f64,
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

/// Reads `../shared/datasets`, which a checkout alone does not have: run by
/// `.ci/shared-data-tests` where it is present.
#[test]
#[ignore = "needs ../shared/datasets (Lending Club loans.csv); .ci/shared-data-tests runs it"]
fn lending_club_book_matches_independent_fold() {
    let path = lendingclub::default_path();
    assert!(
        path.exists(),
        "{} not found (this test needs ../shared/datasets)",
        path.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let store = PortfolioStore::open(dir.path()).unwrap();
    let rep = lendingclub::ingest(&store, "lc", &path).unwrap();

    // Independent fold over the raw CSV.
    let mut rdr = csv::Reader::from_path(&path).unwrap();
    let h = rdr.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    let (ci, ct, cp, cs, cd, ca, cl) = (
        col("loan_id"),
        col("title"),
        col("purpose"),
        col("addr_state"),
        col("issue_d"),
        col("loan_amnt"),
        col("loan_status"),
    );
    let mut by_ps: HashMap<(String, String), A> = HashMap::new();
    let mut by_month: HashMap<String, A> = HashMap::new();
    let mut total = A::default();
    let mut empty_title_rows = Vec::new();
    for (i, r) in rdr.records().enumerate() {
        let r = r.unwrap();
        assert!(!r[ci].is_empty());
        if r[ct].trim().is_empty() {
            empty_title_rows.push(i as u64 + 2); // header is row 1
            continue;
        }
        let bal: f64 = r[ca].parse().unwrap();
        let od = r[cl].ends_with("Charged Off");
        for a in [
            by_ps
                .entry((r[cp].to_string(), r[cs].to_string()))
                .or_default(),
            by_month.entry(r[cd][..7].to_string()).or_default(),
            &mut total,
        ] {
            a.loans += 1;
            a.balance += bal;
            if od {
                a.od += 1;
                a.od_bal += bal;
            }
        }
    }
    // Ingest report: the empty titles, and nothing else, rejected.
    let rej_rows: Vec<u64> = rep.rejected.iter().map(|e| e.row).collect();
    assert_eq!(rej_rows, empty_title_rows, "{:?}", rep.rejected);
    assert!(rep.rejected.iter().all(|e| e.field == "purpose_text"));
    assert_eq!(rep.accepted, total.loans);
    assert!(rep.committed);

    let q = AggQuery {
        overdue: lendingclub::overdue(),
        snapshot: SnapshotSel::All,
        compare_previous: false,
        ..AggQuery::new("lc", &[Dimension::Purpose, Dimension::RegionProvince])
    };
    let r = store.aggregate(&q).unwrap();
    assert_eq!(r.rows.len(), by_ps.len());
    for row in &r.rows {
        let key = (
            row.keys[0].code.clone().unwrap(),
            row.keys[1].code.clone().unwrap(),
        );
        let e = by_ps[&key];
        assert_eq!(row.metrics.loans, e.loans, "{key:?}");
        assert_eq!(row.metrics.overdue_loans, e.od, "{key:?}");
        assert!(close(row.metrics.balance, e.balance), "{key:?}");
        assert!(close(row.metrics.overdue_balance, e.od_bal), "{key:?}");
        assert!(close(row.metrics.share_of_total, e.balance / total.balance));
        assert!(row.keys[1].name.is_some(), "state names attached");
    }
    assert_eq!(r.totals.metrics.loans, total.loans);
    assert_eq!(r.totals.metrics.overdue_loans, total.od);
    assert!(close(
        r.totals.metrics.overdue_rate_count,
        total.od as f64 / total.loans as f64
    ));

    // By month (as_of = issue month), with period-over-period change vs the previous month.
    let q = AggQuery {
        overdue: lendingclub::overdue(),
        snapshot: SnapshotSel::All,
        ..AggQuery::new("lc", &[Dimension::Month])
    };
    let r = store.aggregate(&q).unwrap();
    assert_eq!(r.rows.len(), by_month.len());
    let mut months: Vec<&String> = by_month.keys().collect();
    months.sort();
    for (i, row) in r.rows.iter().enumerate() {
        let m = row.keys[0].code.as_ref().unwrap();
        assert_eq!(m, months[i]);
        let e = by_month[m];
        assert_eq!(row.metrics.loans, e.loans);
        assert_eq!(row.metrics.overdue_loans, e.od);
        match &row.change {
            None => assert_eq!(i, 0),
            Some(c) => {
                let p = by_month[months[i - 1]];
                assert_eq!(&c.prev_month, months[i - 1]);
                assert!(close(c.balance_change, e.balance - p.balance));
                assert!(close(
                    c.overdue_rate_count_change,
                    e.od as f64 / e.loans as f64 - p.od as f64 / p.loans as f64
                ));
            }
        }
    }

    let report = lendingclub::report(&store, "lc").unwrap();
    println!("{report}");
    assert!(report.contains("debt_consolidation"));
}
