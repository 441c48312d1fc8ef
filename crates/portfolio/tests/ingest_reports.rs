//! Ingest reports: the capped list of row problems, the exact counts, the full CSV report (in
//! row order, also across chunk and settle boundaries), both modes on good+bad mixes, the report
//! options, no report left behind by a failed ingest, and streamed XLSX row numbers.

use std::io::Write;
use std::path::{Path, PathBuf};

use touxiang_datasets::{LabelError, LabelResult, Labeler};
use touxiang_portfolio::{ErrorReport, IngestMode, IngestOptions, PortfolioStore};

const HEADER: &str = "loan_id,purpose_text,amount,balance,overdue_days,region_code,customer_type,product,issue_date,as_of_date,industry_code";

fn good(id: &str, as_of: &str) -> String {
    format!("{id},采购钢材,100,100,0,110101,小型企业,经营贷,2024-01-01,{as_of},3120")
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
    f.write_all(body.as_bytes()).unwrap();
    f.flush().unwrap();
    p
}

fn opts(mode: IngestMode) -> IngestOptions {
    IngestOptions {
        mode,
        ..IngestOptions::default()
    }
}

/// (row, field, reason) of a report CSV, after checking its header.
fn read_report(p: &Path) -> Vec<(u64, String, String)> {
    let mut r = csv::Reader::from_path(p).unwrap();
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        vec!["row", "field", "reason"]
    );
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            (
                rec[0].parse().unwrap(),
                rec[1].to_string(),
                rec[2].to_string(),
            )
        })
        .collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn two_hundred_thousand_bad_rows_are_capped_counted_and_reported_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let store = PortfolioStore::open(dir.path()).unwrap();
    let mut body = format!("{HEADER}\n");
    for _ in 0..200_000 {
        body.push_str("x,y\n");
    }
    let f = write(dir.path(), "bad.csv", &body);
    for mode in [IngestMode::AllOrNothing, IngestMode::CommitValid] {
        let rep = store.ingest_file("p", &f, &opts(mode), None).unwrap();
        assert_eq!(rep.rows_read, 200_000);
        assert_eq!(rep.accepted, 0);
        assert_eq!(rep.rejected.len(), 1000, "capped at the default");
        assert_eq!(rep.rejected_total, 200_000);
        assert_eq!(rep.rejected_rows, 200_000);
        assert!(rep.rejected_truncated);
        assert_eq!(
            rep.rejected.iter().map(|e| e.row).collect::<Vec<_>>(),
            (2..1002).collect::<Vec<u64>>(),
            "the first problems, in row order"
        );
        assert_eq!(rep.rejected[0].field, "*");
        assert_eq!(rep.rejected[0].reason, "row has 2 fields, header has 11");
        let id = rep.report_id.clone().expect("a report id");
        assert_eq!(rep.report_rows, 200_000);
        let info = store.ingest_report("p", &id).unwrap().expect("kept");
        assert_eq!(Some(&info.path), rep.report_path.as_ref());
        assert_eq!(info.meta.rejected_total, 200_000);
        assert_eq!(info.meta.committed, mode == IngestMode::CommitValid);
        let rows = read_report(&info.path);
        assert_eq!(rows.len(), 200_000);
        assert!(rows
            .iter()
            .enumerate()
            .all(|(i, (r, f, _))| *r == i as u64 + 2 && f == "*"));
        assert!(
            store.ingest_report("other", &id).unwrap().is_none(),
            "another portfolio's report is not found"
        );
        assert!(store.ingest_report("p", "ir_nope").unwrap().is_none());
    }
    // All-or-nothing wrote nothing; commit-valid committed an empty ingest.
    let info = store.portfolios().unwrap();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].rows, 0);
}

/// A mixed file whose problems come from validation, in-file duplicates and duplicates of
/// stored loans (found when a chunk is written), spread over many chunks and settles.
fn mixed(n: usize) -> (String, Vec<(u64, &'static str)>, u64) {
    let mut body = format!("{HEADER}\n");
    let mut want = Vec::new();
    let mut good_n = 0;
    for i in 0..n {
        let row = i as u64 + 2;
        let line = match i % 10 {
            0 | 4 => {
                want.push((row, "balance"));
                format!("B{i},采购钢材,100,-1,0,110101,小型企业,经营贷,2024-01-01,2025-02-28,3120")
            }
            7 => {
                // the same key as row i-1 (i % 10 == 6, a good row)
                want.push((row, "loan_id"));
                good(&format!("G{}", i - 1), "2025-02-28")
            }
            3 => {
                // stored by the first ingest
                want.push((row, "loan_id"));
                good(&format!("S{}", i % 500), "2025-01-31")
            }
            9 if i % 20 == 9 => {
                // two problems in one row
                want.push((row, "balance"));
                want.push((row, "region_code"));
                format!("C{i},采购钢材,100,-1,0,ZZ,小型企业,经营贷,2024-01-01,2025-02-28,3120")
            }
            _ => {
                good_n += 1;
                good(&format!("G{i}"), "2025-02-28")
            }
        };
        body.push_str(&line);
        body.push('\n');
    }
    (body, want, good_n)
}

#[test]
fn good_and_bad_rows_in_both_modes_report_every_problem_in_row_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = PortfolioStore::open(dir.path()).unwrap();
    let base: String = (0..500)
        .map(|i| good(&format!("S{i}"), "2025-01-31") + "\n")
        .collect();
    let f0 = write(dir.path(), "base.csv", &format!("{HEADER}\n{base}"));
    assert_eq!(
        store
            .ingest_file("p", &f0, &opts(IngestMode::AllOrNothing), None)
            .unwrap()
            .accepted,
        500
    );
    let (body, want, good_n) = mixed(30_000);
    let f = write(dir.path(), "mixed.csv", &body);
    let distinct_rows = {
        let mut r: Vec<u64> = want.iter().map(|w| w.0).collect();
        r.dedup();
        r.len() as u64
    };

    // All-or-nothing: nothing written, every problem still reported.
    let rep = store
        .ingest_file("p", &f, &opts(IngestMode::AllOrNothing), None)
        .unwrap();
    assert!(!rep.committed);
    assert_eq!(rep.accepted, 0);
    assert_eq!(rep.rejected_total, want.len() as u64);
    assert_eq!(rep.rejected_rows, distinct_rows);
    assert_eq!(rep.valid_rows, good_n);
    assert_eq!(store.portfolios().unwrap()[0].rows, 500, "nothing written");
    let full = read_report(rep.report_path.as_ref().unwrap());
    let got: Vec<(u64, &str)> = full.iter().map(|(r, f, _)| (*r, f.as_str())).collect();
    assert_eq!(got, want, "all-or-nothing report");
    let listed: Vec<(u64, &str)> = rep
        .rejected
        .iter()
        .map(|e| (e.row, e.field.as_str()))
        .collect();
    assert_eq!(listed, want[..1000].to_vec());

    // Commit-valid: the good rows are committed, the same problems reported; a smaller cap.
    let o = IngestOptions {
        max_reported_row_errors: Some(50),
        ..opts(IngestMode::CommitValid)
    };
    let rep = store.ingest_file("p", &f, &o, None).unwrap();
    assert!(rep.committed);
    assert_eq!(rep.accepted, good_n);
    assert_eq!(rep.rejected.len(), 50);
    assert_eq!(rep.rejected_total, want.len() as u64);
    let full = read_report(rep.report_path.as_ref().unwrap());
    let got: Vec<(u64, &str)> = full.iter().map(|(r, f, _)| (*r, f.as_str())).collect();
    assert_eq!(got, want, "commit-valid report");
    assert!(full
        .iter()
        .filter(|(r, ..)| (*r - 2) % 10 == 3 && *r - 2 < 500)
        .all(|(_, _, reason)| reason.contains("already stored")));
    // Later rows repeat those keys: in-file duplicates first.
    assert!(full
        .iter()
        .filter(|(r, ..)| (*r - 2) % 10 == 3 && *r - 2 >= 500)
        .all(|(_, _, reason)| reason.contains("already appears in row")));
    assert!(full
        .iter()
        .filter(|(r, ..)| (*r - 2) % 10 == 7)
        .all(|(_, _, reason)| reason.contains("already appears in row")));
    assert_eq!(store.portfolios().unwrap()[0].rows, 500 + good_n);
}

#[test]
fn report_options_file_none_and_caps() {
    let dir = tempfile::tempdir().unwrap();
    let store = PortfolioStore::open(dir.path()).unwrap();
    let clean = write(
        dir.path(),
        "clean.csv",
        &format!("{HEADER}\n{}\n", good("A1", "2025-01-31")),
    );
    // A clean file: no kept report, no report directory.
    let rep = store
        .ingest_file("p", &clean, &opts(IngestMode::AllOrNothing), None)
        .unwrap();
    assert_eq!(rep.rejected_total, 0);
    assert!(rep.report_id.is_none() && rep.report_path.is_none());
    assert!(files_in(&store.reports_dir()).is_empty());
    let v = serde_json::to_value(&rep).unwrap();
    assert_eq!(v["rejected"], serde_json::json!([]));
    assert_eq!(v["rejected_truncated"], false);
    assert!(v["report_id"].is_null() && v.get("report_path").is_none());

    // ErrorReport::File: written even when clean (the header alone).
    let out = dir.path().join("errors.csv");
    let o = IngestOptions {
        error_report: ErrorReport::File(out.clone()),
        ..opts(IngestMode::CommitValid)
    };
    let clean2 = write(
        dir.path(),
        "clean2.csv",
        &format!("{HEADER}\n{}\n", good("A2", "2025-01-31")),
    );
    let rep = store.ingest_file("p", &clean2, &o, None).unwrap();
    assert_eq!(rep.report_path.as_deref(), Some(out.as_path()));
    assert!(rep.report_id.is_none());
    assert!(read_report(&out).is_empty());

    let mut body = format!("{HEADER}\n");
    for i in 0..100 {
        body.push_str(&format!(
            "E{i},=cmd|' /C calc'!A0,100,100,0,ZZ,小型企业,经营贷,2024-01-01,2025-01-31,3120\n"
        ));
    }
    let bad = write(dir.path(), "bad.csv", &body);
    let rep = store.ingest_file("p", &bad, &o, None).unwrap();
    let rows = read_report(&out);
    assert_eq!(rows.len(), 100);
    assert_eq!(rows[0].1, "region_code");
    assert!(
        files_in(&store.reports_dir()).is_empty(),
        "not in the store"
    );
    assert_eq!(rep.rejected_total, 100);

    // ErrorReport::None: counts only; a file cap: the count stays exact.
    let o = IngestOptions {
        error_report: ErrorReport::None,
        max_reported_row_errors: Some(0),
        ..opts(IngestMode::CommitValid)
    };
    let rep = store.ingest_file("p", &bad, &o, None).unwrap();
    assert!(rep.rejected.is_empty() && rep.rejected_truncated);
    assert_eq!((rep.rejected_total, rep.report_rows), (100, 0));
    assert!(rep.report_path.is_none());
    let o = IngestOptions {
        max_report_file_rows: Some(10),
        ..opts(IngestMode::CommitValid)
    };
    let rep = store.ingest_file("p", &bad, &o, None).unwrap();
    assert_eq!((rep.rejected_total, rep.report_rows), (100, 10));
    assert_eq!(read_report(rep.report_path.as_ref().unwrap()).len(), 10);

    let kept = files_in(&store.reports_dir());
    assert_eq!(
        kept.len(),
        2,
        "csv + json of the one store report: {kept:?}"
    );
    assert!(kept.iter().all(|f| !f.ends_with(".part")));
}

struct FailingLabeler;

impl Labeler for FailingLabeler {
    fn label(&self, _texts: &[&str]) -> Result<Vec<LabelResult>, LabelError> {
        Err(LabelError("classifier down".into()))
    }
    fn model_version(&self) -> String {
        "x".into()
    }
    fn taxonomy_version(&self) -> String {
        "gbt4754-2017".into()
    }
}

#[test]
fn a_failed_ingest_leaves_no_report_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = PortfolioStore::open(dir.path()).unwrap();
    let mut body = format!("{HEADER}\n");
    // Enough bad rows first that the report file is open (settled) before the labeler fails.
    for _ in 0..5000 {
        body.push_str("x\n");
    }
    for i in 0..5000 {
        // no industry_code: needs the (failing) labeler
        body.push_str(&format!(
            "U{i},采购钢材,100,100,0,110101,小型企业,经营贷,2024-01-01,2025-01-31,\n"
        ));
    }
    let f = write(dir.path(), "u.csv", &body);
    let err = store
        .ingest_file(
            "p",
            &f,
            &opts(IngestMode::CommitValid),
            Some(&FailingLabeler),
        )
        .unwrap_err();
    assert!(err.to_string().contains("classifier down"), "{err}");
    assert!(
        files_in(&store.reports_dir()).is_empty(),
        "{:?}",
        files_in(&store.reports_dir())
    );
    assert!(store.portfolios().unwrap().is_empty());
}

#[test]
fn streamed_xlsx_keeps_spreadsheet_row_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let store = PortfolioStore::open(dir.path()).unwrap();
    let p = dir.path().join("book.xlsx");
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    // Two empty rows and an empty first column before the table.
    let head: Vec<&str> = HEADER.split(',').collect();
    for (c, h) in head.iter().enumerate() {
        ws.write_string(2, c as u16 + 1, *h).unwrap();
    }
    let date = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
    for i in 0..3000u32 {
        let r = 3 + i;
        let cells = good(&format!("X{i}"), "2025-01-31");
        for (c, v) in cells.split(',').enumerate() {
            let col = c as u16 + 1;
            match c {
                3 if i % 100 == 7 => ws.write_number(r, col, -1.0).map(|_| ()),
                2..=4 => ws
                    .write_number(r, col, v.parse::<f64>().unwrap())
                    .map(|_| ()),
                9 => {
                    let d = rust_xlsxwriter::ExcelDateTime::from_ymd(2025, 1, 31).unwrap();
                    ws.write_datetime_with_format(r, col, d, &date).map(|_| ())
                }
                _ => ws.write_string(r, col, v).map(|_| ()),
            }
            .unwrap();
        }
    }
    wb.save(&p).unwrap();
    let rep = store
        .ingest_file("p", &p, &opts(IngestMode::CommitValid), None)
        .unwrap();
    assert_eq!(rep.rows_read, 3000);
    assert_eq!(rep.accepted, 2970);
    // Data row i sits on spreadsheet row 4 + i.
    let want: Vec<u64> = (0..3000u64)
        .filter(|i| i % 100 == 7)
        .map(|i| i + 4)
        .collect();
    assert_eq!(rep.rejected.iter().map(|e| e.row).collect::<Vec<_>>(), want);
    assert!(rep.rejected.iter().all(|e| e.field == "balance"));
    assert_eq!(
        store.portfolios().unwrap()[0].as_of_dates,
        vec!["2025-01-31"]
    );
}

#[test]
fn a_pending_chunk_is_settled_before_later_rows_so_the_report_stays_in_row_order() {
    // Row 2 is a duplicate of a stored loan, found only when its chunk is written (or, with
    // nothing to commit, checked); thousands of bad rows follow before the chunk fills.
    let dir = tempfile::tempdir().unwrap();
    let store = PortfolioStore::open(dir.path()).unwrap();
    let f0 = write(
        dir.path(),
        "base.csv",
        &format!("{HEADER}\n{}\n", good("S1", "2025-01-31")),
    );
    store
        .ingest_file("p", &f0, &opts(IngestMode::AllOrNothing), None)
        .unwrap();
    let mut body = format!("{HEADER}\n{}\n", good("S1", "2025-01-31"));
    for _ in 0..10_000 {
        body.push_str("x,y\n");
    }
    body.push_str(&good("N1", "2025-01-31"));
    body.push('\n');
    let f = write(dir.path(), "f.csv", &body);
    for mode in [IngestMode::AllOrNothing, IngestMode::CommitValid] {
        let rep = store.ingest_file("p", &f, &opts(mode), None).unwrap();
        assert_eq!(rep.rejected_total, 10_001);
        assert_eq!(rep.rejected[0].row, 2, "{:?}", &rep.rejected[..2]);
        assert!(rep.rejected[0].reason.contains("already stored"));
        let rows: Vec<u64> = read_report(rep.report_path.as_ref().unwrap())
            .iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(rows, (2..10_003).collect::<Vec<u64>>());
        assert_eq!(rep.accepted, u64::from(mode == IngestMode::CommitValid));
    }
}

#[test]
fn the_public_log_keeps_a_store_report_and_discards_or_drops_it() {
    use touxiang_portfolio::ingest::report::RejectLog;
    use touxiang_portfolio::RowError;
    let dir = tempfile::tempdir().unwrap();
    let store = PortfolioStore::open(dir.path()).unwrap();
    let err = |row: u64, field: &str| RowError {
        row,
        field: field.into(),
        reason: format!("bad {field}"),
    };
    let files_in = |d: &Path| std::fs::read_dir(d).map_or(0, |r| r.count());
    // dropped unfinished (a failed ingest): the partial file goes
    let mut log = RejectLog::new(&store, 2, 100);
    log.push(err(2, "a"));
    log.settle().unwrap();
    drop(log);
    assert_eq!(files_in(&store.reports_dir()), 0);
    // finished: listed, counted, kept with its metadata; discarded, gone
    let mut log = RejectLog::new(&store, 2, 100);
    for e in [err(3, "b"), err(2, "a"), err(3, "c"), err(5, "d")] {
        log.push(e);
    }
    let s = log
        .finish("p", "f.csv", IngestMode::CommitValid, true)
        .unwrap();
    assert_eq!(s.rejected, vec![err(2, "a"), err(3, "b")]);
    assert_eq!(
        (s.rejected_total, s.rejected_rows, s.rejected_truncated),
        (4, 3, true)
    );
    assert_eq!(s.report_rows, 4);
    let info = store
        .ingest_report("p", s.report_id.as_deref().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        (info.meta.source.as_str(), info.meta.committed),
        ("f.csv", true)
    );
    assert_eq!(read_report(&info.path).len(), 4);
    s.files.discard();
    assert_eq!(files_in(&store.reports_dir()), 0);
    // nothing rejected: no report
    let s = RejectLog::new(&store, 2, 100).finish("p", "f", IngestMode::AllOrNothing, true);
    assert!(s.unwrap().report_id.is_none());
}
