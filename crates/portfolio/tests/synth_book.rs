//! A generated Chinese book of 100 000 loans × 2 monthly snapshots (200 000 rows): the API's
//! aggregates against a straightforward fold over the generated rows done here.

use std::collections::HashMap;

use touxiang_datasets::Taxonomy;
use touxiang_portfolio::synth::{generate, write_rows_csv, NameMatchLabeler, SynthLoan, SynthSpec};
use touxiang_portfolio::{
    drill_down, export, AggQuery, AggResult, Dimension, IngestMode, IngestOptions, Metric,
    OverdueDef, PortfolioStore, SnapshotSel,
};

#[derive(Default, Debug, Clone, Copy)]
struct A {
    loans: u64,
    balance: f64,
    od: u64,
    od_bal: f64,
}

impl A {
    fn add(&mut self, bal: f64, od: bool) {
        self.loans += 1;
        self.balance += bal;
        if od {
            self.od += 1;
            self.od_bal += bal;
        }
    }
}

type Key = Vec<Option<String>>;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-7 * a.abs().max(b.abs()).max(1.0)
}

fn check(r: &AggResult, want: &HashMap<Key, A>, what: &str) {
    assert_eq!(r.total_rows, want.len(), "{what}: row count");
    let mut tot = A::default();
    for a in want.values() {
        tot.loans += a.loans;
        tot.balance += a.balance;
        tot.od += a.od;
        tot.od_bal += a.od_bal;
    }
    for row in &r.rows {
        let k: Key = row.keys.iter().map(|k| k.code.clone()).collect();
        let e = want
            .get(&k)
            .unwrap_or_else(|| panic!("{what}: unexpected row {k:?}"));
        let m = &row.metrics;
        assert_eq!(m.loans, e.loans, "{what} {k:?} loans");
        assert_eq!(m.overdue_loans, e.od, "{what} {k:?} overdue_loans");
        assert!(close(m.balance, e.balance), "{what} {k:?} balance");
        assert!(close(m.overdue_balance, e.od_bal), "{what} {k:?}");
        assert!(close(m.overdue_rate_count, e.od as f64 / e.loans as f64));
        assert!(close(m.share_of_total, e.balance / tot.balance));
    }
    assert_eq!(r.totals.metrics.loans, tot.loans, "{what} totals");
    assert_eq!(r.totals.metrics.overdue_loans, tot.od, "{what} totals");
    assert!(close(r.totals.metrics.balance, tot.balance));
}

/// (province, city, county) the way the book's region_code spells it.
fn region_of(code: &str) -> [Option<String>; 3] {
    if code.len() == 6 && code.ends_with("0000") {
        [Some(code[..2].into()), None, None]
    } else if code.len() == 4 {
        [Some(code[..2].into()), Some(code.into()), None]
    } else {
        [
            Some(code[..2].into()),
            Some(code[..4].into()),
            Some(code.into()),
        ]
    }
}

#[test]
fn generated_book_aggregates_match_fold() {
    let spec = SynthSpec {
        loans: 100_000,
        months: 2,
        seed: 42,
        unlabeled_share: 0.05,
        shock: true,
        ..SynthSpec::default()
    };
    let mut rows: Vec<SynthLoan> = Vec::with_capacity(200_000);
    generate(&spec, |r| rows.push(r.clone()));
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("book.csv");
    assert_eq!(write_rows_csv(&rows, &csv).unwrap(), rows.len() as u64);
    let store = PortfolioStore::open(dir.path()).unwrap();
    let lab = NameMatchLabeler::new();
    let rep = store
        .ingest_file(
            "cn",
            &csv,
            &IngestOptions {
                mode: IngestMode::AllOrNothing,
                ..IngestOptions::default()
            },
            Some(&lab),
        )
        .unwrap();
    assert!(
        rep.rejected.is_empty(),
        "{:?}",
        &rep.rejected[..rep.rejected.len().min(5)]
    );
    assert_eq!(rep.accepted, 200_000);
    assert!(rep.industry_labeled > 5_000, "5% left to the labeler");

    let tax = Taxonomy::gbt4754();
    let sec = |c: &str| tax.ancestor_at(c, 0).map(|n| n.code.clone());
    let div = |c: &str| tax.ancestor_at(c, 1).map(|n| n.code.clone());
    let latest = "2025-02-28";
    let first = "2025-01-31";

    // Q1: section × province, small/micro enterprises, overdue > 30, latest month, with change.
    let mut want: HashMap<Key, A> = HashMap::new();
    let mut prev: HashMap<Key, A> = HashMap::new();
    for r in &rows {
        if !["小型企业", "微型企业"].contains(&r.customer_type) {
            continue;
        }
        let k = vec![sec(&r.true_class), region_of(&r.region_code)[0].clone()];
        let m = if r.as_of_date == latest {
            &mut want
        } else {
            &mut prev
        };
        m.entry(k).or_default().add(r.balance, r.overdue_days > 30);
    }
    let q = AggQuery {
        overdue: OverdueDef::DaysGt(30),
        ..AggQuery::new(
            "cn",
            &[Dimension::IndustrySection, Dimension::RegionProvince],
        )
        .filter(Dimension::CustomerType, &["小型企业", "微型企业"])
    };
    let r = store.aggregate(&q).unwrap();
    check(&r, &want, "Q1");
    assert_eq!(r.previous_month.as_deref(), Some("2025-01"));
    for row in &r.rows {
        let k: Key = row.keys.iter().map(|k| k.code.clone()).collect();
        let p = prev.get(&k).copied().unwrap_or_default();
        let c = row.change.as_ref().unwrap();
        assert_eq!(c.prev_loans, p.loans);
        assert!(close(c.balance_change, row.metrics.balance - p.balance));
        let prate = if p.loans > 0 {
            p.od as f64 / p.loans as f64
        } else {
            0.0
        };
        assert!(close(
            c.overdue_rate_count_change,
            row.metrics.overdue_rate_count - prate
        ));
        assert!(row.keys[0].name.is_some() && row.keys[1].name.is_some());
    }

    // Q2: city × customer type, section C, overdue > 0, first month; filter by 6-digit province.
    let mut want: HashMap<Key, A> = HashMap::new();
    for r in rows.iter().filter(|r| r.as_of_date == first) {
        let reg = region_of(&r.region_code);
        if sec(&r.true_class).as_deref() != Some("C") || reg[0].as_deref() != Some("44") {
            continue;
        }
        want.entry(vec![reg[1].clone(), Some(r.customer_type.to_string())])
            .or_default()
            .add(r.balance, r.overdue_days > 0);
    }
    let q = AggQuery {
        snapshot: SnapshotSel::Month("2025-01".into()),
        ..AggQuery::new("cn", &[Dimension::RegionCity, Dimension::CustomerType])
            .filter(Dimension::IndustrySection, &["C"])
            .filter(Dimension::RegionProvince, &["440000"])
    };
    check(&store.aggregate(&q).unwrap(), &want, "Q2");

    // Q3: month × product over all snapshots.
    let mut want: HashMap<Key, A> = HashMap::new();
    for r in &rows {
        want.entry(vec![
            Some(r.as_of_date[..7].to_string()),
            Some(r.product.to_string()),
        ])
        .or_default()
        .add(r.balance, r.overdue_days > 90);
    }
    let q = AggQuery {
        snapshot: SnapshotSel::All,
        overdue: OverdueDef::DaysGt(90),
        ..AggQuery::new("cn", &[Dimension::Month, Dimension::Product])
    };
    check(&store.aggregate(&q).unwrap(), &want, "Q3");

    // Q4: top-10 classes by overdue balance (latest).
    let mut want: HashMap<Key, A> = HashMap::new();
    for r in rows.iter().filter(|r| r.as_of_date == latest) {
        want.entry(vec![Some(r.true_class.clone())])
            .or_default()
            .add(r.balance, r.overdue_days > 0);
    }
    let q = AggQuery {
        sort: Some(Metric::OverdueBalance),
        limit: Some(10),
        ..AggQuery::new("cn", &[Dimension::IndustryClass])
    };
    let r = store.aggregate(&q).unwrap();
    check(&r, &want, "Q4");
    let mut top: Vec<(&Key, &A)> = want.iter().collect();
    top.sort_by(|a, b| b.1.od_bal.total_cmp(&a.1.od_bal));
    let want_top: Vec<&Key> = top.iter().take(10).map(|x| x.0).collect();
    let got_top: Vec<Key> = r
        .rows
        .iter()
        .map(|x| x.keys.iter().map(|k| k.code.clone()).collect())
        .collect();
    assert_eq!(got_top.iter().collect::<Vec<_>>(), want_top);

    // Q5: concentration by division and by province (latest).
    let q = AggQuery {
        concentration: vec![Dimension::IndustryDivision, Dimension::RegionProvince],
        ..AggQuery::new("cn", &[])
    };
    let r = store.aggregate(&q).unwrap();
    for (ci, f) in [
        (
            0usize,
            Box::new(|r: &SynthLoan| div(&r.true_class))
                as Box<dyn Fn(&SynthLoan) -> Option<String>>,
        ),
        (
            1,
            Box::new(|r: &SynthLoan| region_of(&r.region_code)[0].clone()),
        ),
    ] {
        let mut bal: HashMap<Option<String>, f64> = HashMap::new();
        for r in rows.iter().filter(|r| r.as_of_date == latest) {
            *bal.entry(f(r)).or_default() += r.balance;
        }
        let tot: f64 = bal.values().sum();
        let hhi: f64 = bal.values().map(|b| (b / tot).powi(2)).sum();
        let mut v: Vec<f64> = bal.values().copied().collect();
        v.sort_by(|a, b| b.total_cmp(a));
        let top5: f64 = v.iter().take(5).sum::<f64>() / tot;
        let c = &r.concentration[ci];
        assert!(close(c.hhi, hhi), "hhi {} vs {}", c.hhi, hhi);
        assert!(close(c.top5_share, top5));
        assert_eq!(c.segments, bal.len());
    }

    // Q6: drill-down C → its divisions.
    let base = AggQuery::new("cn", &[Dimension::IndustrySection]);
    let q = drill_down(&base, Dimension::IndustrySection, "C").unwrap();
    assert_eq!(q.by, vec![Dimension::IndustryDivision]);
    let mut want: HashMap<Key, A> = HashMap::new();
    for r in rows.iter().filter(|r| r.as_of_date == latest) {
        if sec(&r.true_class).as_deref() == Some("C") {
            want.entry(vec![div(&r.true_class)])
                .or_default()
                .add(r.balance, r.overdue_days > 0);
        }
    }
    let r = store.aggregate(&q).unwrap();
    check(&r, &want, "Q6 drill-down");

    // Exports of a result: CSV parses back to the same numbers; XLSX re-reads.
    let mut buf = Vec::new();
    export::to_csv(&r, &mut buf).unwrap();
    let mut rd = csv::Reader::from_reader(buf.as_slice());
    let recs: Vec<csv::StringRecord> = rd.records().map(|x| x.unwrap()).collect();
    assert_eq!(recs.len(), r.rows.len() + 1);
    for (rec, row) in recs.iter().zip(&r.rows) {
        assert_eq!(Some(&rec[0]), row.keys[0].code.as_deref());
        assert_eq!(rec[2].parse::<u64>().unwrap(), row.metrics.loans);
        assert!(close(rec[3].parse::<f64>().unwrap(), row.metrics.balance));
    }
    assert_eq!(&recs.last().unwrap()[0], "TOTAL");
    let xlsx = export::to_xlsx(&r).unwrap();
    use calamine::Reader;
    let mut wb = calamine::open_workbook_auto_from_rs(std::io::Cursor::new(xlsx)).unwrap();
    let range = wb.worksheet_range("aggregate").unwrap();
    assert_eq!(range.height(), r.rows.len() + 2);

    // Early warning: the generator's shock (E 建筑业 × 44 广东 risk ×4 in the last month) is
    // the strongest alert.
    let aq = touxiang_portfolio::AlertQuery {
        alpha: 0.001,
        min_loans: 100,
        ..touxiang_portfolio::AlertQuery::new(
            "cn",
            &[Dimension::IndustrySection, Dimension::RegionProvince],
        )
    };
    let alerts = store.alerts(&aq).unwrap();
    assert!(!alerts.is_empty());
    assert!(
        alerts[0].reason.starts_with("E 建筑业/44 广东省: 逾期率"),
        "{}",
        alerts[0].reason
    );
    assert!(
        alerts.len() <= 3,
        "few false alarms at alpha 0.001: {alerts:#?}"
    );
    println!("{}", alerts[0].reason);

    // JSON shape of the API.
    let v = serde_json::to_value(&r).unwrap();
    assert!(v["rows"][0]["industry.division"].is_string());
    assert!(v["rows"][0]["overdue_rate_balance"].is_number());
    assert!(v["totals"]["loans"].is_u64());
}
