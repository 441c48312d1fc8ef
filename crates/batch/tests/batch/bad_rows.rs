//! Bad rows: reported with row and line numbers while the rest of the input proceeds; encodings,
//! broken JSONL lines and missing columns.

use touxiang_batch::{read_output, run, BatchHooks, BatchOptions, Format, InputEncoding};
use touxiang_testkit::KeywordLabeler;

use super::dir;

#[test]
fn bad_rows_are_reported_with_row_numbers_and_the_rest_proceeds() {
    let d = dir();
    let input = d.path().join("in.csv");
    let (gbk, _, _) = encoding_rs::GBK.encode("A7,种植水稻,700");
    let mut bytes: Vec<u8> = Vec::new();
    bytes.extend_from_slice("loan_id,purpose_text,balance\n".as_bytes()); // line 1
    bytes.extend_from_slice("A1,采购热轧钢卷,100\n".as_bytes()); // line 2, row 1
    bytes.extend_from_slice("A2,,200\n".as_bytes()); // row 2: empty text
    bytes.extend_from_slice("A3,\"unterminated 钢材,300\n".as_bytes()); // row 3: broken quote
    bytes.extend_from_slice("A4,超市进货,400\n".as_bytes()); // row 4
    bytes.extend_from_slice("A5,\"烤串\"店,500\n".as_bytes()); // row 5: text after quote
    bytes.extend_from_slice("A6,楼盘开发\n".as_bytes()); // row 6: wrong field count
    bytes.extend_from_slice(&gbk); // row 7: GBK bytes
    bytes.push(b'\n');
    bytes.extend_from_slice(b"A8,\xff\xfe bad,800\r\n"); // row 8: invalid UTF-8
    bytes.extend_from_slice("A9,\"多行\n文本 钢材\",900\n".as_bytes()); // row 9: quoted newline, ok
    bytes.extend_from_slice("\n".as_bytes()); // blank line: not a row
    bytes.extend_from_slice("A10, \u{3000} ,1000\n".as_bytes()); // row 10: whitespace only
    bytes.extend_from_slice("A11,餐厅装修,abc\n".as_bytes()); // row 11: ok, bad balance
    std::fs::write(&input, &bytes).unwrap();

    let out = d.path().join("out.csv");
    let mut opts = BatchOptions::new(&input, &out);
    opts.balance_column = Some("balance".into());
    let labeler = KeywordLabeler::new();
    let s = run(&opts, &labeler, &BatchHooks::default()).unwrap();
    let rows = read_output(&out, Format::Csv).unwrap();

    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        ["A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8", "A9", "A10", "A11"]
    );
    let errored: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.error.is_some())
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(errored, [2, 3, 5, 6, 7, 8, 10]);
    for r in rows.iter().filter(|r| r.error.is_some()) {
        assert!(r.code.is_none() && r.decision.is_none());
    }
    assert_eq!(rows[0].code.as_deref(), Some("3120"));
    assert_eq!(rows[3].code.as_deref(), Some("5211"));
    assert_eq!(rows[8].code.as_deref(), Some("3120"));
    assert_eq!(rows[10].code.as_deref(), Some("6210"));
    assert_eq!(s.counters.rows, 11);
    assert_eq!(s.counters.errors, 7);
    assert_eq!(s.counters.labeled, 4);

    let issue = |row: u64| s.issues.iter().find(|i| i.row == row).unwrap();
    assert_eq!(issue(2).reason, "empty text");
    assert_eq!(issue(2).line, Some(3));
    assert!(issue(3).reason.contains("unterminated"), "{:?}", issue(3));
    assert_eq!(issue(3).line, Some(4));
    assert_eq!(issue(3).id, "A3");
    assert!(issue(5).reason.contains("quote"));
    assert!(issue(6).reason.contains("expected 3 fields, found 2"));
    assert!(issue(7).reason.contains("invalid UTF-8"));
    assert!(
        issue(7).reason.contains("种植水稻"),
        "GBK hint: {}",
        issue(7).reason
    );
    assert_eq!(issue(7).field, "purpose_text");
    assert_eq!(issue(8).line, Some(9));
    assert_eq!(issue(10).reason, "text is only whitespace");
    assert_eq!(issue(10).line, Some(13));
    assert_eq!(issue(11).field, "balance");
    assert!(rows[1].error.as_deref().unwrap().starts_with("row 2:"));
}

#[test]
fn gb18030_input_is_decoded_when_declared() {
    let d = dir();
    let input = d.path().join("in.csv");
    let (bytes, _, _) =
        encoding_rs::GBK.encode("loan_id,purpose_text\nG1,采购热轧钢卷\nG2,超市進貨超市\n");
    std::fs::write(&input, &bytes).unwrap();
    let out = d.path().join("out.jsonl");
    let mut opts = BatchOptions::new(&input, &out);
    opts.input_encoding = InputEncoding::Gb18030;
    run(&opts, &KeywordLabeler::new(), &BatchHooks::default()).unwrap();
    let rows = read_output(&out, Format::Jsonl).unwrap();
    assert_eq!(rows[0].code.as_deref(), Some("3120"));
    assert_eq!(rows[1].code.as_deref(), Some("5211"));
}

#[test]
fn jsonl_bad_lines_are_reported() {
    let d = dir();
    let input = d.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"loan_id\":1,\"purpose_text\":\"采购钢材\"}\n{broken\n[1,2]\n{\"loan_id\":\"x\"}\n\n{\"loan_id\":\"y\",\"purpose_text\":\"超市\"}\n",
    )
    .unwrap();
    let out = d.path().join("out.csv");
    let s = run(
        &BatchOptions::new(&input, &out),
        &KeywordLabeler::new(),
        &BatchHooks::default(),
    )
    .unwrap();
    let rows = read_output(&out, Format::Csv).unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0].id, "1");
    assert_eq!(rows[0].code.as_deref(), Some("3120"));
    assert!(rows[1].error.as_deref().unwrap().contains("invalid JSON"));
    assert!(rows[2]
        .error
        .as_deref()
        .unwrap()
        .contains("not a JSON object"));
    assert!(rows[3].error.as_deref().unwrap().contains("missing"));
    assert_eq!(rows[4].code.as_deref(), Some("5211"));
    let lines: Vec<(u64, Option<u64>)> = s.issues.iter().map(|i| (i.row, i.line)).collect();
    assert_eq!(lines, [(2, Some(2)), (3, Some(3)), (4, Some(4))]);
}

#[test]
fn missing_column_is_a_clear_error() {
    let d = dir();
    let input = d.path().join("in.csv");
    std::fs::write(&input, "id,text\n1,a\n").unwrap();
    let err = run(
        &BatchOptions::new(&input, d.path().join("o.csv")),
        &KeywordLabeler::new(),
        &BatchHooks::default(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("\"loan_id\" not found") && msg.contains("id, text"),
        "{msg}"
    );
}
