//! Query parsing, snapshot cache invalidation, reads during an ingest, and small semantics.

use std::fmt::Write as _;

use touxiang_portfolio::scoring::format_amount;
use touxiang_portfolio::{
    drill_down, AggQuery, Dimension, IngestMode, IngestOptions, LoanStatus, Metric, OverdueDef,
    PortfolioError, PortfolioStore, SnapshotSel,
};

fn params(s: &[(&str, &str)]) -> Vec<(String, String)> {
    s.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn query_params_parse_and_errors_name_the_field() {
    let q = AggQuery::from_params(
        "p",
        &params(&[
            ("by", "industry.section,region.province"),
            ("overdue_days_gt", "30"),
            ("industry.section", "C,F"),
            ("filter.region.province", "11"),
            ("as_of", "2025-03"),
            ("top", "5"),
            ("concentration", "industry.division"),
        ]),
    )
    .unwrap();
    assert_eq!(
        q.by,
        vec![Dimension::IndustrySection, Dimension::RegionProvince]
    );
    assert_eq!(q.overdue, OverdueDef::DaysGt(30));
    assert_eq!(q.filters.len(), 2);
    assert_eq!(q.filters[0].values, vec!["C", "F"]);
    assert_eq!(q.snapshot, SnapshotSel::Month("2025-03".into()));
    assert_eq!((q.sort, q.limit), (Some(Metric::Balance), Some(5)));
    let q =
        AggQuery::from_params("p", &params(&[("overdue_status", "charged_off,default")])).unwrap();
    assert_eq!(
        q.overdue,
        OverdueDef::Status(vec![LoanStatus::ChargedOff, LoanStatus::Default])
    );
    for (k, v) in [
        ("by", "industry.sector"),
        ("overdue_days_gt", "-1"),
        ("as_of", "March"),
        ("sort", "profit"),
        ("colour", "red"),
        ("overdue_status", "late-ish"),
    ] {
        let e = AggQuery::from_params("p", &params(&[(k, v)])).unwrap_err();
        assert_eq!(e.field(), Some(k), "{k}={v}: {e}");
        assert!(matches!(e, PortfolioError::InvalidQuery { .. }), "{e}");
    }
    assert!(drill_down(&q, Dimension::CustomerType, "x").is_err());
    let d = drill_down(
        &AggQuery::new("p", &[Dimension::RegionProvince, Dimension::Product]),
        Dimension::RegionProvince,
        "44",
    )
    .unwrap();
    assert_eq!(d.by, vec![Dimension::RegionCity, Dimension::Product]);
}

#[test]
fn amounts_in_words() {
    assert_eq!(format_amount(1.2e8, "CNY"), "1.2亿元");
    assert_eq!(format_amount(35_000.0, "CNY"), "3.5万元");
    assert_eq!(format_amount(999.0, "CNY"), "999元");
    assert_eq!(format_amount(14_448_200.0, "USD"), "14,448,200 USD");
}

fn book(n: usize, date: &str, prefix: &str) -> String {
    let mut s = String::from(
        "loan_id,purpose_text,balance,overdue_days,region_code,as_of_date,industry_code\n",
    );
    for i in 0..n {
        let _ = writeln!(
            s,
            "{prefix}{i},采购,{},{},{},{date},C",
            100 + i,
            i % 7 * 20,
            ["11", "4403", "320102"][i % 3]
        );
    }
    s
}

#[test]
fn cache_is_invalidated_by_ingest_and_readers_see_committed_state_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = PortfolioStore::open(dir.path()).unwrap();
    let f1 = dir.path().join("a.csv");
    std::fs::write(&f1, book(300, "2025-01-31", "A")).unwrap();
    store
        .ingest_file("p", &f1, &IngestOptions::default(), None)
        .unwrap();
    let r = store.aggregate(&AggQuery::new("p", &[])).unwrap();
    assert_eq!(r.totals.metrics.loans, 300);
    assert!(r.totals.change.is_none(), "no previous month yet");

    // A second handle (e.g. the CLI while the server runs) ingests the next month.
    let other = PortfolioStore::open(dir.path()).unwrap();
    let f2 = dir.path().join("b.csv");
    std::fs::write(&f2, book(450, "2025-02-28", "A")).unwrap();
    // While it ingests, the first handle keeps answering from committed data.
    let reader = std::thread::scope(|s| {
        let h = s.spawn(|| {
            other
                .ingest_file(
                    "p",
                    &f2,
                    &IngestOptions {
                        mode: IngestMode::AllOrNothing,
                        ..Default::default()
                    },
                    None,
                )
                .unwrap()
        });
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(
                store
                    .aggregate(&AggQuery::new("p", &[]))
                    .unwrap()
                    .totals
                    .metrics
                    .loans,
            );
        }
        assert_eq!(h.join().unwrap().accepted, 450);
        seen
    });
    assert!(reader.iter().all(|n| *n == 300 || *n == 450), "{reader:?}");
    let r = store.aggregate(&AggQuery::new("p", &[])).unwrap();
    assert_eq!(
        r.totals.metrics.loans, 450,
        "latest snapshot after the ingest"
    );
    let c = r.totals.change.unwrap();
    assert_eq!((c.prev_month.as_str(), c.prev_loans), ("2025-01", 300));
    // Both months with the month dimension; the earlier month has no change.
    let r = store
        .aggregate(&AggQuery {
            snapshot: SnapshotSel::All,
            ..AggQuery::new("p", &[Dimension::Month])
        })
        .unwrap();
    assert_eq!(r.rows.len(), 2);
    assert!(r.rows[0].change.is_none());
    assert_eq!(r.rows[1].change.as_ref().unwrap().prev_loans, 300);
    // An earlier as-of date in the same month is ignored (the month's latest date is its snapshot).
    let f3 = dir.path().join("c.csv");
    std::fs::write(&f3, book(10, "2025-02-15", "Z")).unwrap();
    store
        .ingest_file("p", &f3, &IngestOptions::default(), None)
        .unwrap();
    let r = store.aggregate(&AggQuery::new("p", &[])).unwrap();
    assert_eq!(r.totals.metrics.loans, 450);
    assert_eq!(r.as_of_dates, vec!["2025-02-28"]);
    // Filters on region accept any spelling; unknown codes are errors, not empty answers.
    let q =
        AggQuery::new("p", &[Dimension::RegionCity]).filter(Dimension::RegionProvince, &["320000"]);
    let r = store.aggregate(&q).unwrap();
    assert_eq!(r.rows.len(), 1);
    assert_eq!(r.rows[0].keys[0].code.as_deref(), Some("3201"));
    assert_eq!(r.rows[0].metrics.loans, 150);
    let q = AggQuery::new("p", &[]).filter(Dimension::RegionProvince, &["99"]);
    assert_eq!(
        store.aggregate(&q).unwrap_err().field(),
        Some("filter.region.province")
    );
    let q = AggQuery::new("p", &[]).filter(Dimension::IndustrySection, &["13"]);
    assert!(
        store.aggregate(&q).is_err(),
        "13 is a division, not a section"
    );
    assert!(matches!(
        store.aggregate(&AggQuery::new("nope", &[])),
        Err(PortfolioError::UnknownPortfolio(_))
    ));
}
