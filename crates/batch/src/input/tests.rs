//! One file, read for batch and for portfolio ingest: the same rows, row numbers and problems
//! (issue 12: the two used to have readers of their own).

use touxiang_portfolio::ingest::read::open_file;
use touxiang_portfolio::InputFormat;

use super::{open, RawRow};
use crate::options::BatchOptions;

/// A CSV with a BOM, quoted commas and newlines, blank lines, a broken quote, a wrong field
/// count, GBK bytes in a UTF-8 file, text after a closing quote and CRLF.
fn tricky_csv() -> Vec<u8> {
    let (gbk, _, _) = encoding_rs::GBK.encode("A6,种植水稻,600");
    let mut b = Vec::new();
    b.extend_from_slice("\u{feff}loan_id,purpose_text,balance\n".as_bytes()); // line 1
    b.extend_from_slice("A1,\"采购钢材, 热轧\",100\n".as_bytes()); // line 2, row 1
    b.extend_from_slice(b"\n"); // line 3: blank
    b.extend_from_slice("A2,\"多行\n文本\",200\n".as_bytes()); // lines 4-5, row 2
    b.extend_from_slice("A3,\"unterminated 钢材,300\n".as_bytes()); // line 6, row 3
    b.extend_from_slice("A4,超市进货,400\n".as_bytes()); // line 7, row 4
    b.extend_from_slice("A5,楼盘开发\n".as_bytes()); // line 8, row 5
    b.extend_from_slice(&gbk); // line 9, row 6
    b.push(b'\n');
    b.extend_from_slice("A7,\"烤串\"店,700\r\n".as_bytes()); // line 10, row 7
    b.extend_from_slice(b" \n\n"); // lines 11-12: blank
    b.extend_from_slice("A8,餐厅装修,800".as_bytes()); // line 13, row 8, no terminator
    b
}

#[test]
fn batch_and_portfolio_ingest_read_one_csv_alike() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("in.csv");
    std::fs::write(&path, tricky_csv()).unwrap();

    let mut opts = BatchOptions::new(&path, d.path().join("out.csv"));
    opts.balance_column = Some("balance".into());
    let mut src = open(&opts).unwrap();
    let mut batch: Vec<RawRow> = Vec::new();
    while let Some(r) = src.next_row().unwrap() {
        batch.push(r);
    }

    let mut ingest = Vec::new();
    let mut src = open_file(&path, InputFormat::Csv, None).unwrap();
    assert_eq!(src.headers(), ["loan_id", "purpose_text", "balance"]);
    let (mut buf, mut extra) = (Vec::new(), Vec::new());
    while let Some(r) = src.next_row(&mut buf, &mut extra).unwrap() {
        ingest.push(r.map(|n| (n, buf.clone())));
    }

    let ids: Vec<&str> = batch.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8"]);
    let lines: Vec<Option<u64>> = batch.iter().map(|r| r.line).collect();
    let want: Vec<Option<u64>> = [2, 4, 6, 7, 8, 9, 10, 13].map(Some).to_vec();
    assert_eq!(lines, want);
    assert_eq!(batch[0].text, "采购钢材, 热轧");
    assert_eq!(batch[1].text, "多行\n文本");
    let problems: Vec<(u64, &str)> = batch
        .iter()
        .filter_map(|r| Some((r.row, r.problem.as_ref()?.0.as_str())))
        .collect();
    assert_eq!(
        problems,
        [
            (3, "record"),
            (5, "record"),
            (6, "purpose_text"),
            (7, "record")
        ]
    );
    assert!(batch[2]
        .problem
        .as_ref()
        .unwrap()
        .1
        .contains("unterminated"));
    assert!(batch[4]
        .problem
        .as_ref()
        .unwrap()
        .1
        .contains("expected 3 fields, found 2"));
    assert!(batch[5].problem.as_ref().unwrap().1.contains("种植水稻"));
    assert!(batch[6].problem.as_ref().unwrap().1.contains("quote"));

    // The same rows in the same order, the ingest row number being the data row + 1 (the header
    // is row 1); a row is rejected by ingest exactly when batch cannot label it for a reading
    // problem, and the accepted ones have the same cells.
    assert_eq!(ingest.len(), batch.len());
    for (b, i) in batch.iter().zip(&ingest) {
        match i {
            Ok((n, cells)) => {
                assert_eq!(*n, b.row + 1);
                assert!(b.problem.is_none(), "{b:?}");
                assert_eq!(cells[0], b.id);
                assert_eq!(cells[1], b.text);
                assert_eq!(cells[2].parse::<f64>().ok(), b.balance);
            }
            Err((n, reason)) => {
                assert_eq!(*n, b.row + 1);
                assert!(b.problem.is_some(), "{b:?} / {reason}");
            }
        }
    }
    let rejected: Vec<(u64, &str)> = ingest
        .iter()
        .filter_map(|r| r.as_ref().err().map(|(n, s)| (*n, s.as_str())))
        .collect();
    assert_eq!(rejected[1], (6, "row has 2 fields, header has 3"));
    assert_eq!(rejected[2], (7, "invalid UTF-8"));
}
