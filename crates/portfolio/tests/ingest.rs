//! Ingest: formats, column maps, labeling on ingest, every bad-input case → row-level errors, and
//! AllOrNothing vs CommitValid.

use std::io::Write;
use std::path::PathBuf;

use touxiang_datasets::{Decision, LabelError, LabelResult, Labeler, PathStep};
use touxiang_portfolio::{
    AggQuery, ColumnMap, Dimension, IngestMode, IngestOptions, PortfolioError, PortfolioStore,
    SnapshotSel,
};

/// Fake industry labeler: keyword → class code.
struct KeywordLabeler {
    calls: std::sync::atomic::AtomicUsize,
}

impl KeywordLabeler {
    fn new() -> Self {
        KeywordLabeler {
            calls: Default::default(),
        }
    }
}

const KW: [(&str, &str, [&str; 4]); 3] = [
    ("钢", "3120", ["C", "31", "312", "3120"]),
    ("烤串", "6291", ["H", "62", "629", "6291"]),
    ("住宅", "4710", ["E", "47", "471", "4710"]),
];

impl Labeler for KeywordLabeler {
    fn label(&self, texts: &[&str]) -> Result<Vec<LabelResult>, LabelError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(texts
            .iter()
            .map(|t| match KW.iter().find(|(k, ..)| t.contains(k)) {
                Some((_, code, path)) => LabelResult {
                    code: Some(code.to_string()),
                    level: Some("class".into()),
                    name: None,
                    path: path
                        .iter()
                        .map(|c| PathStep {
                            code: c.to_string(),
                            name: String::new(),
                            confidence: 0.8,
                        })
                        .collect(),
                    confidence: 0.8,
                    decision: Decision::Auto,
                    model_version: "kw-test".into(),
                    taxonomy_version: "gbt4754-2017".into(),
                    evidence: Default::default(),
                },
                None => LabelResult {
                    code: None,
                    level: None,
                    name: None,
                    path: vec![],
                    confidence: 0.0,
                    decision: Decision::Review,
                    model_version: "kw-test".into(),
                    taxonomy_version: "gbt4754-2017".into(),
                    evidence: Default::default(),
                },
            })
            .collect())
    }
    fn model_version(&self) -> String {
        "kw-test".into()
    }
    fn taxonomy_version(&self) -> String {
        "gbt4754-2017".into()
    }
}

const HEADER: &str = "loan_id,purpose_text,amount,balance,overdue_days,region_code,customer_type,product,issue_date,as_of_date,branch";

fn write(dir: &tempfile::TempDir, name: &str, body: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::File::create(&p)
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    p
}

fn opts(mode: IngestMode) -> IngestOptions {
    IngestOptions {
        mode,
        ..IngestOptions::default()
    }
}

fn good_rows() -> String {
    [
        "L1,采购热轧钢卷补充流动资金,1000000,800000,0,110101,中型企业,流动资金贷款,2024-01-15,2025-03-31,支行01",
        "L2,用于烤串店装修及购买冷柜,300000,250000,45,4403,个体工商户,经营性贷款,2024-06-01,2025-03-31,支行02",
        "L3,住宅项目建设,5000000,5000000,0,440000,大型企业,项目贷款,2023-12-01,2025-03-31,支行01",
    ]
    .join("\n")
}

#[test]
fn csv_ingest_resolves_regions_labels_and_keeps_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let store = PortfolioStore::open(dir.path()).unwrap();
    let f = write(&dir, "a.csv", &format!("{HEADER}\n{}\n", good_rows()));
    let lab = KeywordLabeler::new();
    let rep = store
        .ingest_file("p", &f, &opts(IngestMode::AllOrNothing), Some(&lab))
        .unwrap();
    assert_eq!(rep.accepted, 3, "{:?}", rep.rejected);
    assert!(rep.rejected.is_empty());
    assert!(rep.committed);
    assert_eq!(rep.industry_labeled, 3);
    assert_eq!(
        lab.calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one batch"
    );

    let r = store
        .aggregate(&AggQuery::new(
            "p",
            &[Dimension::IndustrySection, Dimension::RegionProvince],
        ))
        .unwrap();
    let keys: Vec<(String, String)> = r
        .rows
        .iter()
        .map(|x| {
            (
                x.keys[0].code.clone().unwrap(),
                x.keys[1].code.clone().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            ("C".into(), "11".into()),
            ("E".into(), "44".into()),
            ("H".into(), "44".into())
        ]
    );
    assert_eq!(r.rows[0].keys[0].name.as_deref(), Some("制造业"));
    assert_eq!(r.rows[0].keys[1].name.as_deref(), Some("北京市"));
    // Overdue: only L2 (45 days) under > 30; none under > 90.
    assert_eq!(r.totals.metrics.overdue_loans, 1);
    let q = AggQuery {
        overdue: touxiang_portfolio::OverdueDef::DaysGt(90),
        ..AggQuery::new("p", &[])
    };
    assert_eq!(store.aggregate(&q).unwrap().totals.metrics.overdue_loans, 0);
    // City-level code resolves to the city; the 6-digit province form to the province only.
    let r = store
        .aggregate(&AggQuery::new("p", &[Dimension::RegionCity]))
        .unwrap();
    let cities: Vec<Option<String>> = r.rows.iter().map(|x| x.keys[0].code.clone()).collect();
    assert_eq!(cities, vec![Some("1101".into()), Some("4403".into()), None]);
    // Purpose labeled by keyword rules.
    let r = store
        .aggregate(&AggQuery::new("p", &[Dimension::Purpose]))
        .unwrap();
    let purposes: Vec<String> = r
        .rows
        .iter()
        .map(|x| x.keys[0].code.clone().unwrap())
        .collect();
    assert!(purposes.contains(&"project".to_string()), "{purposes:?}");
    assert!(
        purposes.contains(&"working_capital".to_string()),
        "{purposes:?}"
    );
    // Attributes kept.
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    let a: String = conn
        .query_row("SELECT attributes FROM loans WHERE loan_id='L1'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(a, r#"{"branch":"支行01"}"#);
    let (mv, src): (String, String) = conn
        .query_row(
            "SELECT ind_model_version, ind_source FROM loans WHERE loan_id='L2'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((mv.as_str(), src.as_str()), ("kw-test", "model"));
}

/// Each bad-input case yields exactly the expected (row, field) error, in both modes.
#[test]
fn bad_rows_are_reported_with_row_field_reason() {
    let cases: Vec<(&str, &str, &str)> = vec![
        // (row text, field, reason fragment)
        (
            "B1,采购钢材,100,100,0,999999,小型企业,流动资金贷款,2024-01-01,2025-03-31,x",
            "region_code",
            "unknown region",
        ),
        (
            "B2,采购钢材,100,-5,0,110101,小型企业,流动资金贷款,2024-01-01,2025-03-31,x",
            "balance",
            "negative",
        ),
        (
            "B3,采购钢材,-100,5,0,110101,小型企业,流动资金贷款,2024-01-01,2025-03-31,x",
            "amount",
            "negative",
        ),
        (
            "B4,采购钢材,100,5,0,110101,小型企业,流动资金贷款,2024-13-01,2025-03-31,x",
            "issue_date",
            "not a date",
        ),
        (
            "B5,采购钢材,100,5,0,110101,小型企业,流动资金贷款,2024-01-01,31/03/2025,x",
            "as_of_date",
            "not a date",
        ),
        (
            "B6,采购钢材,100,5,1.5,110101,小型企业,流动资金贷款,2024-01-01,2025-03-31,x",
            "overdue_days",
            "not an integer",
        ),
        (
            "B7,采购钢材,100,5,-3,110101,小型企业,流动资金贷款,2024-01-01,2025-03-31,x",
            "overdue_days",
            "negative",
        ),
        (
            "B8,  ,100,5,0,110101,小型企业,流动资金贷款,2024-01-01,2025-03-31,x",
            "purpose_text",
            "empty",
        ),
        (
            "B9,采购钢材,abc,5,0,110101,小型企业,流动资金贷款,2024-01-01,2025-03-31,x",
            "amount",
            "not a number",
        ),
        (
            "L1,采购钢材,100,5,0,110101,小型企业,流动资金贷款,2024-01-01,2025-03-31,x",
            "loan_id",
            "row 2",
        ),
    ];
    for mode in [IngestMode::AllOrNothing, IngestMode::CommitValid] {
        for (row, field, reason) in &cases {
            let dir = tempfile::tempdir().unwrap();
            let store = PortfolioStore::open(dir.path()).unwrap();
            let body = format!("{HEADER}\n{}\n{row}\n", good_rows());
            let f = write(&dir, "b.csv", &body);
            let rep = store.ingest_file("p", &f, &opts(mode), None).unwrap();
            assert_eq!(rep.rejected.len(), 1, "{row}: {:?}", rep.rejected);
            let e = &rep.rejected[0];
            assert_eq!(e.row, 5, "header is row 1, bad row is the 4th data row");
            assert_eq!(e.field, *field, "{row}");
            assert!(e.reason.contains(reason), "{row}: {}", e.reason);
            assert_eq!(rep.rows_read, 4);
            let stored = store
                .aggregate(&AggQuery::new("p", &[]))
                .map(|r| r.totals.metrics.loans)
                .unwrap_or(0);
            match mode {
                IngestMode::AllOrNothing => {
                    assert_eq!(rep.accepted, 0);
                    assert!(!rep.committed);
                    assert_eq!(rep.valid_rows, 3);
                    assert_eq!(stored, 0, "nothing committed");
                }
                IngestMode::CommitValid => {
                    assert_eq!(rep.accepted, 3);
                    assert!(rep.committed);
                    assert_eq!(stored, 3, "valid rows committed");
                }
            }
        }
    }
}

#[test]
fn duplicates_against_the_store_and_several_errors_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = PortfolioStore::open(dir.path()).unwrap();
    let f = write(&dir, "a.csv", &format!("{HEADER}\n{}\n", good_rows()));
    assert_eq!(
        store
            .ingest_file("p", &f, &opts(IngestMode::AllOrNothing), None)
            .unwrap()
            .accepted,
        3
    );
    // Same file again: every row is a duplicate of a stored (loan_id, as_of_date).
    for mode in [IngestMode::AllOrNothing, IngestMode::CommitValid] {
        let rep = store.ingest_file("p", &f, &opts(mode), None).unwrap();
        assert_eq!(rep.accepted, 0);
        assert_eq!(
            rep.rejected.iter().map(|e| e.row).collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
        assert!(rep
            .rejected
            .iter()
            .all(|e| e.field == "loan_id" && e.reason.contains("already stored")));
    }
    // A new snapshot of the same loans is fine.
    let next = good_rows().replace("2025-03-31", "2025-04-30");
    let f2 = write(&dir, "b.csv", &format!("{HEADER}\n{next}\n"));
    let rep = store
        .ingest_file("p", &f2, &opts(IngestMode::AllOrNothing), None)
        .unwrap();
    assert_eq!(rep.accepted, 3);
    let info = store.portfolios().unwrap();
    assert_eq!(info[0].rows, 6);
    assert_eq!(info[0].as_of_dates, vec!["2025-03-31", "2025-04-30"]);

    // Mixed file in AllOrNothing: all problems listed, in row order, nothing written.
    let body = format!(
        "{HEADER}\n{}\n{}\n{}\n",
        "N1,采购钢材,100,5,0,110101,小型企业,流动资金贷款,2024-01-01,2025-05-31,x",
        "N2,采购钢材,100,-5,0,ZZ,小型企业,流动资金贷款,2024-01-01,2025-05-31,x",
        "L1,采购钢材,100,5,0,110101,小型企业,流动资金贷款,2024-01-01,2025-04-30,x",
    );
    let f3 = write(&dir, "c.csv", &body);
    let rep = store
        .ingest_file("p", &f3, &opts(IngestMode::AllOrNothing), None)
        .unwrap();
    let got: Vec<(u64, &str)> = rep
        .rejected
        .iter()
        .map(|e| (e.row, e.field.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![(3, "balance"), (3, "region_code"), (4, "loan_id")]
    );
    assert_eq!(store.portfolios().unwrap()[0].rows, 6);
}

#[test]
fn missing_column_is_a_file_level_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = PortfolioStore::open(dir.path()).unwrap();
    let body = "loan_id,purpose_text,balance,overdue_days,as_of_date\nL1,x,1,0,2025-01-31\n";
    let f = write(&dir, "m.csv", body);
    match store.ingest_file("p", &f, &opts(IngestMode::CommitValid), None) {
        Err(PortfolioError::MissingColumn { column, .. }) => assert_eq!(column, "region_code"),
        other => panic!("expected MissingColumn, got {other:?}"),
    }
    // A map naming an absent source column names both.
    let o = IngestOptions {
        map: ColumnMap::parse("region_code=addr").unwrap(),
        ..opts(IngestMode::CommitValid)
    };
    let err = store.ingest_file("p", &f, &o, None).unwrap_err();
    assert!(err.to_string().contains("region_code") && err.to_string().contains("addr"));
    assert!(ColumnMap::parse("regoin=addr").is_err());
    assert!(store.portfolios().unwrap().is_empty(), "nothing created");
}

#[test]
fn jsonl_and_xlsx_with_map_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let store = PortfolioStore::open(dir.path()).unwrap();
    // JSONL with renamed columns, a status instead of days, numbers as JSON numbers, a bad line.
    let jsonl = [
        r#"{"id":"J1","text":"采购钢材","bal":1000,"state":"overdue","area":"110101","asof":"2025-03-31","extra":{"k":1}}"#,
        r#"{"id":"J2","text":"烤串店","bal":500.5,"state":"current","area":"4403","asof":"2025-03-31","customer_type":"个人"}"#,
        "",
        r#"{"id":"J3","text":"x","bal":1,"state":"weird","area":"4403","asof":"2025-03-31"}"#,
        r#"not json"#,
    ]
    .join("\n");
    let f = write(&dir, "a.jsonl", &jsonl);
    let o = IngestOptions {
        map: ColumnMap::parse("loan_id=id,purpose_text=text,balance=bal,status=state,region_code=area,as_of_date=asof").unwrap(),
        ..opts(IngestMode::CommitValid)
    };
    let rep = store.ingest_file("j", &f, &o, None).unwrap();
    assert_eq!(rep.accepted, 2);
    let got: Vec<(u64, &str)> = rep
        .rejected
        .iter()
        .map(|e| (e.row, e.field.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![(4, "status"), (5, "*")],
        "line numbers, blank line counted"
    );
    let q = AggQuery {
        overdue: touxiang_portfolio::OverdueDef::Status(vec![
            touxiang_portfolio::LoanStatus::Overdue,
        ]),
        ..AggQuery::new("j", &[])
    };
    let t = store.aggregate(&q).unwrap().totals.metrics;
    assert_eq!((t.loans, t.overdue_loans), (2, 1));
    assert!((t.balance - 1500.5).abs() < 1e-9);
    // A canonical key first seen on line 2 is a field, not an attribute.
    let r = store
        .aggregate(&AggQuery::new("j", &[Dimension::CustomerType]))
        .unwrap();
    let ct: Vec<Option<String>> = r.rows.iter().map(|x| x.keys[0].code.clone()).collect();
    assert_eq!(ct, vec![Some("个人".to_string()), None]);

    // XLSX written with rust_xlsxwriter: a real date cell, numbers, a header row.
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    let hdr = [
        "loan_id",
        "purpose_text",
        "balance",
        "overdue_days",
        "region_code",
        "as_of_date",
    ];
    for (c, h) in hdr.iter().enumerate() {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    let datef = Format::new().set_num_format("yyyy-mm-dd");
    for (r, (id, bal, days, reg)) in [
        ("X1", 100.0, 0.0, "110101"),
        ("X2", 200.0, 95.0, "32"),
        ("X3", -1.0, 0.0, "32"),
    ]
    .iter()
    .enumerate()
    {
        let r = r as u32 + 1;
        ws.write_string(r, 0, *id).unwrap();
        ws.write_string(r, 1, "设备购置").unwrap();
        ws.write_number(r, 2, *bal).unwrap();
        ws.write_number(r, 3, *days).unwrap();
        ws.write_string(r, 4, *reg).unwrap();
        ws.write_datetime_with_format(r, 5, ExcelDateTime::from_ymd(2025, 3, 31).unwrap(), &datef)
            .unwrap();
    }
    let p = dir.path().join("b.xlsx");
    wb.save(&p).unwrap();
    let rep = store
        .ingest_file("x", &p, &opts(IngestMode::CommitValid), None)
        .unwrap();
    assert_eq!(rep.accepted, 2, "{:?}", rep.rejected);
    assert_eq!(rep.rejected.len(), 1);
    assert_eq!(
        (rep.rejected[0].row, rep.rejected[0].field.as_str()),
        (4, "balance")
    );
    let r = store
        .aggregate(&AggQuery {
            overdue: touxiang_portfolio::OverdueDef::DaysGt(90),
            snapshot: SnapshotSel::Month("2025-03".into()),
            ..AggQuery::new("x", &[Dimension::RegionProvince])
        })
        .unwrap();
    assert_eq!(r.rows.len(), 2);
    assert_eq!(r.rows[1].keys[0].code.as_deref(), Some("32"));
    assert_eq!(r.rows[1].metrics.overdue_loans, 1);
    assert_eq!(r.as_of_dates, vec!["2025-03-31"]);
}

#[test]
fn industry_code_column_is_validated_and_taken_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let store = PortfolioStore::open(dir.path()).unwrap();
    let body = "loan_id,purpose_text,balance,overdue_days,region_code,as_of_date,industry_code\n\
        I1,采购钢材,10,0,11,2025-01-31,C\n\
        I2,采购钢材,10,0,11,2025-01-31,6291\n\
        I3,采购钢材,10,0,11,2025-01-31,9999\n\
        I4,采购钢材,10,0,11,2025-01-31,\n";
    let f = write(&dir, "i.csv", body);
    let lab = KeywordLabeler::new();
    let rep = store
        .ingest_file("p", &f, &opts(IngestMode::CommitValid), Some(&lab))
        .unwrap();
    assert_eq!(rep.accepted, 3);
    assert_eq!(
        (rep.rejected[0].row, rep.rejected[0].field.as_str()),
        (4, "industry_code")
    );
    assert_eq!((rep.industry_from_input, rep.industry_labeled), (2, 1));
    let r = store
        .aggregate(&AggQuery::new(
            "p",
            &[Dimension::IndustrySection, Dimension::IndustryDivision],
        ))
        .unwrap();
    let k: Vec<(Option<String>, Option<String>, u64)> = r
        .rows
        .iter()
        .map(|x| {
            (
                x.keys[0].code.clone(),
                x.keys[1].code.clone(),
                x.metrics.loans,
            )
        })
        .collect();
    // I1 only known at section level; I4 labeled 3120 by the model; I2 given 6291.
    assert_eq!(
        k,
        vec![
            (Some("C".into()), Some("31".into()), 1),
            (Some("C".into()), None, 1),
            (Some("H".into()), Some("62".into()), 1)
        ]
    );
}
