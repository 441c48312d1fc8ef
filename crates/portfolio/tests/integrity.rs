//! A damaged portfolio store is refused at open, instead of opening and then answering
//! "database disk image is malformed" on the first aggregation.

use std::path::Path;

use touxiang_portfolio::{AggQuery, IngestOptions, PortfolioError, PortfolioStore};

const STORE_FILE: &str = touxiang_portfolio::store::STORE_FILE;

/// A store holding one portfolio of 3 000 loans, closed.
fn store_with_data(dir: &Path) {
    let csv = dir.join("book.csv");
    let mut body = String::from(
        "loan_id,purpose_text,amount,balance,overdue_days,region_code,as_of_date,branch\n",
    );
    for i in 0..3000 {
        body.push_str(&format!(
            "L{i},采购原材料补充流动资金 批次{i},{},{},0,110101,2025-03-31,支行{}\n",
            100_000 + i,
            90_000 + i,
            i % 17
        ));
    }
    std::fs::write(&csv, body).unwrap();
    let store = PortfolioStore::open(dir).unwrap();
    let rep = store
        .ingest_file("book", &csv, &IngestOptions::default(), None)
        .unwrap();
    assert_eq!(rep.accepted, 3000, "{:?}", rep.rejected);
    std::fs::remove_file(&csv).unwrap();
}

fn assert_refused(dir: &Path) -> String {
    let file = dir.join(STORE_FILE);
    let e = PortfolioStore::open(dir).err().expect("refused");
    assert!(
        matches!(e, PortfolioError::Store(ref s) if s.is_damaged()),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.contains(&file.display().to_string()), "{msg}");
    assert!(msg.contains("touxiang restore"), "{msg}");
    assert!(msg.contains("move it away"), "{msg}");
    msg
}

#[test]
fn a_half_truncated_portfolio_store_is_refused_at_open() {
    let d = tempfile::tempdir().unwrap();
    store_with_data(d.path());
    let file = d.path().join(STORE_FILE);
    let len = std::fs::metadata(&file).unwrap().len();
    assert!(len > 64 * 1024, "a store of many pages ({len} bytes)");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert_refused(d.path());
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        len / 2,
        "untouched"
    );
}

#[test]
fn an_empty_portfolio_store_is_refused() {
    let d = tempfile::tempdir().unwrap();
    store_with_data(d.path());
    std::fs::File::create(d.path().join(STORE_FILE)).unwrap();
    let msg = assert_refused(d.path());
    assert!(msg.contains("0 bytes"), "{msg}");
}

#[test]
fn a_missing_portfolio_store_is_created_fresh_and_reopens_with_its_data() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join(STORE_FILE);
    assert!(!file.exists());
    assert!(PortfolioStore::open(d.path())
        .unwrap()
        .portfolios()
        .unwrap()
        .is_empty());
    store_with_data(d.path());
    let store = PortfolioStore::open(d.path()).unwrap();
    let r = store.aggregate(&AggQuery::new("book", &[])).unwrap();
    assert_eq!(r.totals.metrics.loans, 3000);
}

/// A store written before `loan_actual` existed (the `flow.section` dimension) opens with its
/// data: the table is created by migration step 2, aggregates by `flow.section` answer (no
/// value for every loan), and actual-use sections written afterwards are grouped.
#[test]
fn a_store_from_before_the_flow_section_table_opens_and_gains_it() {
    use touxiang_portfolio::Dimension;
    let d = tempfile::tempdir().unwrap();
    store_with_data(d.path());
    // the file as an older touxiang left it: schema version 1, no loan_actual table
    let conn = rusqlite::Connection::open(d.path().join(STORE_FILE)).unwrap();
    conn.execute_batch("DROP TABLE loan_actual; PRAGMA user_version = 1;")
        .unwrap();
    drop(conn);
    let store = PortfolioStore::open(d.path()).unwrap();
    let by_flow = AggQuery::new("book", &[Dimension::FlowSection]);
    let r = store.aggregate(&by_flow).unwrap();
    assert_eq!(r.rows.len(), 1);
    assert_eq!(r.rows[0].keys[0].code, None);
    assert_eq!(r.totals.metrics.loans, 3000);
    let n = store
        .set_actual_sections("book", [("L1", "K", 0.9), ("L2", "individual", 1.0)])
        .unwrap();
    assert_eq!(n, 2);
    let r = store.aggregate(&by_flow).unwrap();
    let count = |code: Option<&str>| {
        r.rows
            .iter()
            .find(|x| x.keys[0].code.as_deref() == code)
            .map(|x| x.metrics.loans)
    };
    assert_eq!(count(Some("K")), Some(1));
    assert_eq!(count(Some("individual")), Some(1));
    assert_eq!(count(None), Some(2998));
    assert!(matches!(
        store.set_actual_sections("nope", []),
        Err(PortfolioError::UnknownPortfolio(_))
    ));
}
