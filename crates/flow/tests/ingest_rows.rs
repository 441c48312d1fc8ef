//! Payment and relation ingest: bad rows are row errors `{row, field, reason}`, all-or-nothing
//! writes nothing, commit-valid writes the valid rows, and every format reads alike.

mod common;

use common::{book, write};
use touxiang_flow::synth::FlowSynthSpec;
use touxiang_flow::{FlowError, IngestOptions, Input};
use touxiang_portfolio::{IngestMode, InputFormat, PortfolioStore, RowError};

fn small() -> FlowSynthSpec {
    FlowSynthSpec {
        loans: 40,
        circles: 3,
        ..Default::default()
    }
}

const BAD_PAYMENTS: &str =
    "payment_id,loan_id,payee_name,payee_account,amount,paid_at,memo,channel\n\
X1,L00000001,杭州华鑫泰钢材贸易有限公司,6222,120000,2024-03-02,货款,受托支付\n\
X2,NOPE,杭州华鑫泰钢材贸易有限公司,6222,1000,2024-03-02,,\n\
X3,L00000002,,6222,-5,2024-13-01,,\n\
X4,L00000002,某某小额贷款有限公司,,12a,2024-03-02 10:11:12,,网银\n\
X1,L00000003,张伟,,5000,2024-03-05,工资,自主支付\n\
X6,L00000003,张伟,,5000,2024-03-05T08:00:00,工资,other\n";

#[test]
fn bad_payment_rows_are_row_errors_and_nothing_is_half_written() {
    let b = book(&small(), false);
    let f = write(&b.dir, "bad.csv", BAD_PAYMENTS);
    let s = b
        .flow
        .ingest_payments("book", Input::File(&f, None), &IngestOptions::default())
        .unwrap();
    let got: Vec<(u64, &str)> = s
        .rejected
        .iter()
        .map(|e| (e.row, e.field.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (3, "loan_id"),
            (4, "payee_name"),
            (4, "amount"),
            (4, "paid_at"),
            (5, "amount"),
            (5, "channel"),
            (6, "payment_id"),
        ],
        "{:#?}",
        s.rejected
    );
    assert!(
        s.rejected[0].reason.contains("unknown loan \"NOPE\""),
        "{}",
        s.rejected[0].reason
    );
    assert!(s.rejected[6].reason.contains("earlier in this file"));
    assert_eq!((s.rejected_total, s.rejected_rows, s.rows_read), (7, 4, 6));
    assert!(!s.committed);
    assert_eq!(s.accepted, 0);
    assert_eq!(
        b.flow.payment_count("book").unwrap(),
        0,
        "all-or-nothing wrote nothing"
    );

    // commit-valid: rows 2 and 7 go in; a second run finds them stored
    let opts = IngestOptions {
        mode: IngestMode::CommitValid,
        ..Default::default()
    };
    let s = b
        .flow
        .ingest_payments("book", Input::File(&f, None), &opts)
        .unwrap();
    assert!(s.committed);
    assert_eq!(s.accepted, 2);
    assert_eq!(b.flow.payment_count("book").unwrap(), 2);
    let s = b
        .flow
        .ingest_payments("book", Input::File(&f, None), &opts)
        .unwrap();
    assert_eq!(s.accepted, 0);
    assert!(s
        .rejected
        .iter()
        .any(|e| e.row == 2 && e.reason.contains("already stored")));
    assert_eq!(b.flow.payment_count("book").unwrap(), 2);

    // the cap on listed problems, with exact counts
    let capped = IngestOptions {
        max_reported_row_errors: Some(2),
        ..Default::default()
    };
    let s = b
        .flow
        .ingest_payments("book", Input::File(&f, None), &capped)
        .unwrap();
    assert_eq!(s.rejected.len(), 2);
    assert!(s.rejected_truncated);
    assert!(s.rejected_total >= 7);
}

/// The rows of a kept report CSV (`row,field,reason`).
fn report_rows(data: &std::path::Path, id: &str) -> Vec<RowError> {
    let info = PortfolioStore::open(data)
        .unwrap()
        .ingest_report("book", id)
        .unwrap()
        .expect("the report is kept for the portfolio");
    assert!(PortfolioStore::open(data)
        .unwrap()
        .ingest_report("other", id)
        .unwrap()
        .is_none());
    let mut r = csv::Reader::from_path(&info.path).unwrap();
    assert_eq!(r.headers().unwrap(), vec!["row", "field", "reason"]);
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            RowError {
                row: rec[0].parse().unwrap(),
                field: rec[1].to_string(),
                reason: rec[2].to_string(),
            }
        })
        .collect()
}

#[test]
fn every_row_problem_goes_to_the_report_file() {
    let b = book(&small(), false);
    // 12 bad rows (row 4 has two problems), one good row (7) between them
    let mut body = String::from("payment_id,loan_id,payee_name,payee_account,amount,paid_at\n");
    for i in 0..13 {
        let (amount, date) = match i {
            2 => ("-1", "2024-13-01"),
            5 => ("5000", "2024-03-02"),
            _ => ("12x", "2024-03-02"),
        };
        body.push_str(&format!("R{i},L00000001,王芳,,{amount},{date}\n"));
    }
    let f = write(&b.dir, "many-bad.csv", &body);
    let input = || Input::File(&f, None);

    // uncapped: the whole list, to compare the report with
    let all = b
        .flow
        .ingest_payments("book", input(), &IngestOptions::default())
        .unwrap();
    assert_eq!((all.rejected_total, all.rejected_rows), (13, 12));
    assert!(!all.rejected_truncated);

    let capped = IngestOptions {
        max_reported_row_errors: Some(3),
        source_name: Some("many-bad.csv".into()),
        ..Default::default()
    };
    let s = b.flow.ingest_payments("book", input(), &capped).unwrap();
    assert!(!s.committed);
    assert_eq!(s.rejected, all.rejected[..3].to_vec());
    assert_eq!((s.rejected_total, s.rejected_rows), (13, 12));
    assert!(s.rejected_truncated);
    let id = s.report_id.as_deref().expect("a report id");
    assert_eq!(s.report_rows, 13);
    let rows = report_rows(&b.data, id);
    assert_eq!(rows, all.rejected, "every problem, in row order");
    assert!(rows.windows(2).all(|w| w[0].row <= w[1].row));
    assert_eq!((rows[3].row, rows[3].field.as_str()), (4, "paid_at"));
    let meta = PortfolioStore::open(&b.data)
        .unwrap()
        .ingest_report("book", id)
        .unwrap()
        .unwrap()
        .meta;
    assert_eq!(
        (meta.source.as_str(), meta.mode, meta.committed, meta.rows),
        ("many-bad.csv", IngestMode::AllOrNothing, false, 13)
    );
    assert_eq!(b.flow.payment_count("book").unwrap(), 0);

    // commit-valid keeps its report too (committed)
    let opts = IngestOptions {
        mode: IngestMode::CommitValid,
        max_reported_row_errors: Some(3),
        ..Default::default()
    };
    let s = b.flow.ingest_payments("book", input(), &opts).unwrap();
    assert!(s.committed);
    assert_eq!(s.accepted, 1);
    let id2 = s.report_id.clone().expect("a report id");
    assert_ne!(id2, id);
    assert_eq!(report_rows(&b.data, &id2), all.rejected);

    // relations get one as well
    let f = write(
        &b.dir,
        "rel-bad.csv",
        "from,to,kind\nB0000001,NOBODY,control\nB0000001,B0000002,friendship\n",
    );
    let s = b
        .flow
        .ingest_relations("book", Input::File(&f, None), &IngestOptions::default())
        .unwrap();
    let rows = report_rows(&b.data, s.report_id.as_deref().expect("a report id"));
    assert_eq!(rows, s.rejected);

    // an all-good file has no report
    let f = write(
        &b.dir,
        "good.csv",
        "payment_id,loan_id,payee_name,amount,paid_at\nG1,L00000001,王芳,3000,2024-02-01\n",
    );
    let s = b
        .flow
        .ingest_payments("book", Input::File(&f, None), &IngestOptions::default())
        .unwrap();
    assert!(s.committed && s.rejected_total == 0);
    assert_eq!((s.report_id.as_deref(), s.report_rows), (None, 0));
    // a report per ingest with rejected rows (four), none for the good one, no partial file
    let names: Vec<String> = std::fs::read_dir(b.data.join("ingest-reports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".part")), "{names:?}");
    assert_eq!(names.iter().filter(|n| n.ends_with(".csv")).count(), 4);
}

#[test]
fn file_level_problems_and_other_formats() {
    let b = book(&small(), false);
    // a missing required column is a file-level error naming it
    let f = write(
        &b.dir,
        "nocol.csv",
        "payment_id,loan_id,amount,paid_at\nA,L00000001,1,2024-01-01\n",
    );
    let e = b
        .flow
        .ingest_payments("book", Input::File(&f, None), &IngestOptions::default())
        .unwrap_err();
    assert!(
        matches!(&e, FlowError::MissingColumn(c) if c == "payee_name"),
        "{e}"
    );
    // unknown portfolio
    let e = b
        .flow
        .ingest_payments("nobook", Input::File(&f, None), &IngestOptions::default())
        .unwrap_err();
    assert!(matches!(e, FlowError::UnknownPortfolio(_)));
    // JSONL, read by the portfolio crate's reader: line numbers, keys in any order
    let jsonl = "{\"payment_id\":\"J1\",\"loan_id\":\"L00000001\",\"payee_name\":\"王芳\",\"amount\":3000,\"paid_at\":\"2024-02-01\"}\n\
                 {\"loan_id\":\"L00000001\",\"payment_id\":\"J2\",\"payee_name\":\"王芳\",\"amount\":\"x\",\"paid_at\":\"2024-02-01\"}\n";
    let s = b
        .flow
        .ingest_payments(
            "book",
            Input::Bytes(jsonl.as_bytes().to_vec(), InputFormat::Jsonl),
            &IngestOptions::default(),
        )
        .unwrap();
    assert_eq!(s.rejected.len(), 1);
    assert_eq!(
        (s.rejected[0].row, s.rejected[0].field.as_str()),
        (2, "amount")
    );
    assert_eq!(b.flow.payment_count("book").unwrap(), 0);
}

#[test]
fn bad_relation_rows_are_row_errors() {
    let b = book(&small(), false);
    let f = write(
        &b.dir,
        "rel.csv",
        "from,to,kind\nB0000001,B0000002,guarantee\nB0000001,NOBODY,control\nB0000003,B0000003,担保\nB0000002,B0000003,friendship\nB0000001,B0000002,担保\n",
    );
    let s = b
        .flow
        .ingest_relations("book", Input::File(&f, None), &IngestOptions::default())
        .unwrap();
    let got: Vec<(u64, &str)> = s
        .rejected
        .iter()
        .map(|e| (e.row, e.field.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![(3, "to"), (4, "to"), (5, "kind"), (6, "kind")],
        "{:#?}",
        s.rejected
    );
    assert!(s.rejected[0].reason.contains("unknown borrower \"NOBODY\""));
    assert!(s.rejected[3].reason.contains("duplicate"));
    assert!(!s.committed);
    assert!(
        b.flow
            .circles("book", Default::default())
            .unwrap()
            .circles
            .is_empty(),
        "nothing written"
    );
    // borrowers may be named by name instead of id
    let name = std::fs::read_to_string(b.dir.join("loans.csv")).unwrap();
    let first: Vec<String> = name
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let f = write(
        &b.dir,
        "rel2.csv",
        &format!("from,to,kind\n{},B0000099,guarantee\n", first[12]),
    );
    let s = b
        .flow
        .ingest_relations("book", Input::File(&f, None), &IngestOptions::default())
        .unwrap();
    // B0000099 may not exist in a 40-loan book: then the name end still resolved
    assert!(
        s.rejected.iter().all(|e| e.field == "to"),
        "{:?}",
        s.rejected
    );
}
