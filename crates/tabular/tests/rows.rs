//! Rows, row and line numbers and problems of each format, read from files and from memory.

use touxiang_tabular::{
    open_bytes, open_file, Encoding, Format, IssueKind, Options, Problem, Row, RowSource,
    TabularError,
};

fn all(src: &mut dyn RowSource) -> Vec<Row> {
    let mut out = Vec::new();
    let mut row = Row::default();
    while src.next_row(&mut row).unwrap() {
        out.push(row.clone());
    }
    out
}

fn text(r: &Row, col: usize) -> Option<&str> {
    r.cells[col].as_deref()
}

/// BOM, quoted commas and newlines, blank lines, a broken quote, a wrong field count, GBK bytes
/// in a UTF-8 file, text after a closing quote, CRLF.
fn tricky_csv() -> Vec<u8> {
    let (gbk, _, _) = encoding_rs::GBK.encode("A6,种植水稻,600");
    let mut b = Vec::new();
    b.extend_from_slice("\u{feff}loan_id, purpose_text ,balance\r\n".as_bytes()); // line 1
    b.extend_from_slice("A1,\"采购钢材, 热轧\",100\n".as_bytes()); // 2
    b.extend_from_slice(b"\n"); // 3
    b.extend_from_slice("A2,\"多行\r\n\"\"文本\"\"\",200\n".as_bytes()); // 4-5
    b.extend_from_slice("A3,\"unterminated 钢材,300\n".as_bytes()); // 6
    b.extend_from_slice("A4,超市进货,400\n".as_bytes()); // 7
    b.extend_from_slice("A5,楼盘开发\n".as_bytes()); // 8
    b.extend_from_slice(&gbk); // 9
    b.push(b'\n');
    b.extend_from_slice("A7,\"烤串\"店,700\r\n".as_bytes()); // 10
    b.extend_from_slice(b" \t\n"); // 11
    b.extend_from_slice("A8,采购\"钢材\",800".as_bytes()); // 12
    b
}

#[test]
fn csv_rows_problems_and_numbers() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("t.csv");
    std::fs::write(&path, tricky_csv()).unwrap();
    let opts = Options::default();
    let from_file = all(&mut open_file(&path, Format::Csv, &opts).unwrap());
    let mut mem = open_bytes(tricky_csv(), Format::Csv, &opts).unwrap();
    assert_eq!(mem.headers(), ["loan_id", "purpose_text", "balance"]);
    let rows = all(&mut mem);
    assert_eq!(rows, from_file);

    let numbers: Vec<(u64, Option<u64>)> = rows.iter().map(|r| (r.row, r.line)).collect();
    let want: Vec<(u64, Option<u64>)> = [2, 4, 6, 7, 8, 9, 10, 12]
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, Some(*l)))
        .collect();
    assert_eq!(numbers, want);
    let ids: Vec<Option<&str>> = rows.iter().map(|r| text(r, 0)).collect();
    assert_eq!(
        ids,
        ["A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8"].map(Some)
    );
    assert_eq!(text(&rows[0], 1), Some("采购钢材, 热轧"));
    assert_eq!(text(&rows[1], 1), Some("多行\n\"文本\""));
    assert_eq!(rows[2].problem, Some(Problem::UnterminatedQuote));
    assert_eq!(text(&rows[2], 1), None, "only the fields before the quote");
    assert_eq!(
        text(&rows[3], 1),
        Some("超市进货"),
        "read again after the broken row"
    );
    assert_eq!(
        rows[4].problem,
        Some(Problem::FieldCount {
            found: 2,
            expected: 3
        })
    );
    assert_eq!(text(&rows[4], 2), None);
    let issue = rows[5].issue(1).expect("GBK bytes in a UTF-8 file");
    assert_eq!(issue.kind, IssueKind::Encoding);
    assert!(issue.reason.contains("invalid UTF-8") && issue.reason.contains("种植水稻"));
    assert_eq!(text(&rows[5], 0), Some("A6"));
    assert!(rows[5].problem.is_none());
    assert_eq!(rows[6].problem, Some(Problem::MalformedQuote));
    assert_eq!(
        text(&rows[7], 1),
        Some("采购\"钢材\""),
        "a quote inside a field"
    );
    for (i, r) in rows.iter().enumerate() {
        if ![2, 4, 6].contains(&i) {
            assert!(r.problem.is_none(), "{r:?}");
        }
    }
}

#[test]
fn csv_in_gb18030_is_decoded_when_declared() {
    let (bytes, _, _) = encoding_rs::GBK.encode("编号,用途\nG1,\"采购,热轧钢卷\"\n\nG2,超市進貨\n");
    let opts = Options {
        encoding: Encoding::Gb18030,
        ..Default::default()
    };
    let mut src = open_bytes(bytes.to_vec(), Format::Csv, &opts).unwrap();
    assert_eq!(src.headers(), ["编号", "用途"]);
    let rows = all(&mut src);
    assert_eq!(rows.len(), 2);
    assert_eq!(text(&rows[0], 1), Some("采购,热轧钢卷"));
    assert_eq!((rows[1].row, rows[1].line), (2, Some(4)));
    assert_eq!(text(&rows[1], 1), Some("超市進貨"));
    assert!(rows
        .iter()
        .all(|r| r.issues.is_empty() && r.problem.is_none()));
}

#[test]
fn csv_without_header_or_with_a_broken_one_is_refused() {
    let opts = Options::default();
    let e = open_bytes(b"\n \n".to_vec(), Format::Csv, &opts)
        .err()
        .unwrap();
    assert!(matches!(e, TabularError::NoHeader), "{e}");
    let e = open_bytes(b"a,\"b\nc\n".to_vec(), Format::Csv, &opts)
        .err()
        .unwrap();
    assert!(matches!(e, TabularError::Header { line: 1, .. }), "{e}");
}

#[test]
fn jsonl_rows_header_extra_and_bad_lines() {
    let body = "{\"id\":1,\"text\":\"采购\"}\n\n{broken\n[1]\n{\"id\":\"x\",\"late\":true,\"more\":[1]}\n{\"id\":null,\"text\":{\"a\":1}}\n";
    let mut src = open_bytes(body.as_bytes().to_vec(), Format::Jsonl, &Options::default()).unwrap();
    assert_eq!(src.headers(), ["id", "text"]);
    src.add_columns(&["late", "id"]);
    assert_eq!(src.headers(), ["id", "text", "late"]);
    let rows = all(&mut src);
    let numbers: Vec<(u64, Option<u64>)> = rows.iter().map(|r| (r.row, r.line)).collect();
    assert_eq!(
        numbers,
        [
            (1, Some(1)),
            (2, Some(3)),
            (3, Some(4)),
            (4, Some(5)),
            (5, Some(6))
        ]
    );
    assert_eq!(text(&rows[0], 0), Some("1"));
    assert!(matches!(rows[1].problem, Some(Problem::InvalidJson(_))));
    assert_eq!(rows[2].problem, Some(Problem::NotAnObject));
    assert_eq!(text(&rows[3], 2), Some("true"));
    assert_eq!(text(&rows[3], 1), None);
    assert_eq!(
        rows[3].extra,
        [("more".to_string(), serde_json::json!([1]))]
    );
    assert_eq!(text(&rows[4], 0), None, "null is absent");
    assert_eq!(rows[4].issue(1).unwrap().kind, IssueKind::NotScalar);

    // A first line that is not an object: no header, and the line is the first row.
    let mut src = open_bytes(
        b"[1]\n{\"a\":1}\n".to_vec(),
        Format::Jsonl,
        &Options::default(),
    )
    .unwrap();
    assert!(src.headers().is_empty());
    let rows = all(&mut src);
    assert_eq!(rows[0].problem, Some(Problem::NotAnObject));
    assert_eq!(rows[1].extra.len(), 1);
}

#[test]
fn xlsx_streamed_and_in_memory_read_alike() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("t.xlsx");
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, " loan_id ").unwrap();
    ws.write_string(0, 1, "purpose_text").unwrap();
    ws.write_string(0, 2, "balance").unwrap();
    ws.write_string(1, 0, "X1").unwrap();
    ws.write_string(1, 1, "采购钢材").unwrap();
    ws.write_number(1, 2, 1200.0).unwrap();
    // Sheet row 3 is empty: not a row.
    ws.write_string(3, 0, "X2").unwrap();
    ws.write_number(3, 2, 12.5).unwrap();
    ws.write_string(3, 5, "beyond the header").unwrap();
    wb.save(&path).unwrap();

    let opts = Options::default();
    let mut streamed = open_file(&path, Format::Xlsx, &opts).unwrap();
    assert_eq!(streamed.headers(), ["loan_id", "purpose_text", "balance"]);
    let rows = all(&mut streamed);
    let mut mem = open_bytes(std::fs::read(&path).unwrap(), Format::Xlsx, &opts).unwrap();
    assert_eq!(all(&mut mem), rows);
    let numbers: Vec<(u64, Option<u64>)> = rows.iter().map(|r| (r.row, r.line)).collect();
    assert_eq!(numbers, [(1, Some(2)), (2, Some(4))]);
    assert_eq!(
        rows[0].cells,
        [
            Some("X1".to_string()),
            Some("采购钢材".into()),
            Some("1200".into())
        ]
    );
    assert_eq!(
        rows[1].cells,
        [Some("X2".to_string()), None, Some("12.5".into())]
    );

    let e = open_file(
        &path,
        Format::Xlsx,
        &Options {
            sheet: Some("nope"),
            ..Default::default()
        },
    )
    .err()
    .unwrap();
    assert_eq!(e.to_string(), "sheet `nope`: not found");
}

#[test]
fn arbitrary_bytes_are_rows_or_errors_never_panics() {
    let alphabet: &[u8] = b"a,\"\n\r \xff\xe4\xb8\xad{}:[]1";
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..3000 {
        let mut bytes = Vec::new();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        for _ in 0..(seed % 60) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            bytes.push(alphabet[(seed % alphabet.len() as u64) as usize]);
        }
        for format in [Format::Csv, Format::Jsonl] {
            for encoding in [Encoding::Utf8, Encoding::Gb18030] {
                let opts = Options {
                    encoding,
                    ..Default::default()
                };
                if let Ok(mut src) = open_bytes(bytes.clone(), format, &opts) {
                    let width = src.headers().len();
                    let mut row = Row::default();
                    let mut last = 0;
                    while src.next_row(&mut row).unwrap() {
                        assert_eq!(row.row, last + 1);
                        last = row.row;
                        assert_eq!(row.cells.len(), width);
                    }
                }
            }
        }
    }
}
