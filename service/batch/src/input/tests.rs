//! Unit tests of the CSV record parser.

use super::csv_source::{parse_record, Parsed};

fn fields(s: &str) -> Vec<String> {
    match parse_record(s.as_bytes()) {
        Parsed::Complete { fields, .. } => fields
            .into_iter()
            .map(|f| String::from_utf8(f).unwrap())
            .collect(),
        Parsed::OpenQuote => panic!("open quote"),
    }
}

#[test]
fn csv_parser_rfc4180() {
    assert_eq!(fields("a,b,c"), vec!["a", "b", "c"]);
    assert_eq!(fields("a,\"b,c\",d"), vec!["a", "b,c", "d"]);
    assert_eq!(fields("a,\"b\"\"c\""), vec!["a", "b\"c"]);
    assert_eq!(fields("a,采购\"钢材\""), vec!["a", "采购\"钢材\""]);
    assert_eq!(fields("a,"), vec!["a", ""]);
    assert!(matches!(parse_record(b"a,\"open"), Parsed::OpenQuote));
    assert!(matches!(
        parse_record(b"a,\"x\"y"),
        Parsed::Complete {
            malformed: true,
            ..
        }
    ));
}
