//! CSV: records parsed by `csv-core` (RFC 4180: `,` separator, `"` quoting, `""` escape; a quote
//! inside an unquoted field is a literal, as Excel does), assembled from physical lines so that
//! a broken quote costs one row, not the rest of the file.
//!
//! A record starts on a non-blank line; while a quoted field is open the next lines are joined
//! (with `\n`). If that never closes the quote properly — end of input, more than
//! [`MAX_CONTINUATION_LINES`] lines, or a joined record with text after a closing quote or the
//! wrong field count — the first line alone is the (broken) row and the joined lines are read
//! again as rows of their own.

use std::io::BufRead;

use crate::lines::{decode_cell, decode_field, Lines};
use crate::{Encoding, Problem, Result, Row, RowSource, TabularError};

/// Lines a quoted field may span before the quote counts as unterminated.
const MAX_CONTINUATION_LINES: usize = 50;
/// Bytes a record may reach while a quoted field is open.
const MAX_RECORD_BYTES: usize = 1 << 20;

#[derive(Debug, PartialEq)]
pub(crate) enum Parsed {
    /// A whole record; `malformed` = text after a closing quote (e.g. `"ab"c`), or a record
    /// that ends before the joined lines do.
    Complete {
        fields: Vec<Vec<u8>>,
        malformed: bool,
    },
    /// The record ends inside a quoted field; `fields` are the complete ones before it.
    OpenQuote { fields: Vec<Vec<u8>> },
}

fn record_reader() -> csv_core::Reader {
    csv_core::ReaderBuilder::new()
        .terminator(csv_core::Terminator::Any(b'\n'))
        .build()
}

/// Parse one logical record with a new `csv-core` reader.
#[cfg(test)]
pub(crate) fn parse_record(buf: &[u8]) -> Parsed {
    parse_with(&mut record_reader(), buf)
}

/// Parse one logical record with `rdr` (reset first).
pub(crate) fn parse_with(rdr: &mut csv_core::Reader, buf: &[u8]) -> Parsed {
    rdr.reset();
    if buf.is_empty() {
        // csv-core skips empty lines; an empty record is one empty field.
        return Parsed::Complete {
            fields: vec![Vec::new()],
            malformed: false,
        };
    }
    let mut data = Vec::with_capacity(buf.len() + 1);
    data.extend_from_slice(buf);
    data.push(b'\n');
    let mut out = vec![0u8; data.len()];
    let (mut at, mut fields, mut malformed) = (0, Vec::new(), false);
    let mut cur = Vec::new();
    let mut field_start = 0;
    loop {
        let (res, nin, nout) = rdr.read_field(&data[at..], &mut out);
        at += nin;
        cur.extend_from_slice(&out[..nout]);
        match res {
            csv_core::ReadFieldResult::Field { record_end } => {
                // The raw field, without the separator or terminator that ended it.
                let mut end = at;
                if end > field_start && matches!(data[end - 1], b',' | b'\n') {
                    end -= 1;
                }
                let raw = &data[field_start..end];
                if raw.first() == Some(&b'"') {
                    let quotes = cur.iter().filter(|b| **b == b'"').count();
                    if raw.last() != Some(&b'"') || raw.len() != cur.len() + quotes + 2 {
                        malformed = true;
                    }
                }
                fields.push(std::mem::take(&mut cur));
                field_start = at;
                if record_end {
                    return Parsed::Complete {
                        fields,
                        malformed: malformed || at < data.len(),
                    };
                }
            }
            csv_core::ReadFieldResult::InputEmpty => return Parsed::OpenQuote { fields },
            csv_core::ReadFieldResult::OutputFull => out.resize(out.len() * 2 + 1, 0),
            csv_core::ReadFieldResult::End => {
                return Parsed::Complete { fields, malformed };
            }
        }
    }
}

enum Record {
    Ok {
        line: u64,
        fields: Vec<Vec<u8>>,
    },
    Broken {
        line: u64,
        fields: Vec<Vec<u8>>,
        problem: Problem,
    },
}

/// Rows of a CSV stream.
pub struct CsvSource<R> {
    lines: Lines<R>,
    parser: csv_core::Reader,
    headers: Vec<String>,
    row: u64,
}

impl<R: BufRead> CsvSource<R> {
    /// Read the header; fails on an empty input or a broken header.
    pub fn new(r: R, encoding: Encoding) -> Result<Self> {
        let mut src = CsvSource {
            lines: Lines::new(r, encoding),
            parser: record_reader(),
            headers: Vec::new(),
            row: 0,
        };
        src.headers = match src.next_record(usize::MAX)? {
            None => return Err(TabularError::NoHeader),
            Some(Record::Broken { line, problem, .. }) => {
                return Err(TabularError::Header {
                    line,
                    reason: problem.to_string(),
                })
            }
            Some(Record::Ok { fields, line }) => fields
                .iter()
                .map(|f| match decode_field(f, encoding) {
                    Ok(s) => Ok(s.trim().to_string()),
                    Err((_, reason)) => Err(TabularError::Header { line, reason }),
                })
                .collect::<Result<Vec<String>>>()?,
        };
        Ok(src)
    }

    fn next_record(&mut self, expected: usize) -> Result<Option<Record>> {
        let Some((line, first)) = self.lines.next_non_blank()? else {
            return Ok(None);
        };
        let mut buf = first.clone();
        let mut extra: Vec<(u64, Vec<u8>)> = Vec::new();
        loop {
            match parse_with(&mut self.parser, &buf) {
                Parsed::Complete { fields, malformed } => {
                    if !extra.is_empty() && (malformed || fields.len() != expected) {
                        self.lines.push_back(extra);
                        return Ok(Some(broken_first_line(&mut self.parser, line, &first)));
                    }
                    if malformed {
                        return Ok(Some(Record::Broken {
                            line,
                            fields,
                            problem: Problem::MalformedQuote,
                        }));
                    }
                    return Ok(Some(Record::Ok { line, fields }));
                }
                Parsed::OpenQuote { .. } => {
                    let next =
                        if extra.len() >= MAX_CONTINUATION_LINES || buf.len() > MAX_RECORD_BYTES {
                            None
                        } else {
                            self.lines.next()?
                        };
                    match next {
                        Some((l, bytes)) => {
                            buf.push(b'\n');
                            buf.extend_from_slice(&bytes);
                            extra.push((l, bytes));
                        }
                        None => {
                            self.lines.push_back(extra);
                            return Ok(Some(broken_first_line(&mut self.parser, line, &first)));
                        }
                    }
                }
            }
        }
    }
}

/// The first line of a record whose quote never closes properly: its complete fields before
/// the open quote, as a best effort.
fn broken_first_line(parser: &mut csv_core::Reader, line: u64, first: &[u8]) -> Record {
    let fields = match parse_with(parser, first) {
        Parsed::OpenQuote { fields } => fields,
        Parsed::Complete { fields, .. } => fields,
    };
    Record::Broken {
        line,
        fields,
        problem: Problem::UnterminatedQuote,
    }
}

impl<R: BufRead> RowSource for CsvSource<R> {
    fn headers(&self) -> &[String] {
        &self.headers
    }

    fn next_row(&mut self, row: &mut Row) -> Result<bool> {
        let Some(rec) = self.next_record(self.headers.len())? else {
            return Ok(false);
        };
        self.row += 1;
        row.reset(self.headers.len());
        row.row = self.row;
        let (line, fields) = match rec {
            Record::Ok { line, fields } => {
                if fields.len() != self.headers.len() {
                    row.problem = Some(Problem::FieldCount {
                        found: fields.len(),
                        expected: self.headers.len(),
                    });
                }
                (line, fields)
            }
            Record::Broken {
                line,
                fields,
                problem,
            } => {
                row.problem = Some(problem);
                (line, fields)
            }
        };
        row.line = Some(line);
        for (col, f) in fields.iter().enumerate().take(self.headers.len()) {
            row.cells[col] = Some(decode_cell(f, self.lines.encoding, col, &mut row.issues));
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_record, Parsed};

    fn fields(s: &str) -> Vec<String> {
        match parse_record(s.as_bytes()) {
            Parsed::Complete { fields, malformed } => {
                assert!(!malformed, "{s}");
                fields
                    .into_iter()
                    .map(|f| String::from_utf8(f).unwrap())
                    .collect()
            }
            Parsed::OpenQuote { .. } => panic!("open quote"),
        }
    }

    #[test]
    fn records_follow_rfc4180() {
        assert_eq!(fields("a,b,c"), vec!["a", "b", "c"]);
        assert_eq!(fields("a,\"b,c\",d"), vec!["a", "b,c", "d"]);
        assert_eq!(fields("a,\"b\"\"c\""), vec!["a", "b\"c"]);
        assert_eq!(fields("a,\"\""), vec!["a", ""]);
        assert_eq!(fields("a,采购\"钢材\""), vec!["a", "采购\"钢材\""]);
        assert_eq!(fields("a,"), vec!["a", ""]);
        assert_eq!(fields(""), vec![""]);
        assert_eq!(fields("a,\"x\ny\",b"), vec!["a", "x\ny", "b"]);
        assert_eq!(fields("a\rb,c"), vec!["a\rb", "c"]);
    }

    #[test]
    fn open_and_malformed_quotes_are_told() {
        assert_eq!(
            parse_record(b"a,\"open"),
            Parsed::OpenQuote {
                fields: vec![b"a".to_vec()]
            }
        );
        for s in ["a,\"x\"y", "a,\"x\"y\"", "\"a\"b,c"] {
            assert!(
                matches!(
                    parse_record(s.as_bytes()),
                    Parsed::Complete {
                        malformed: true,
                        ..
                    }
                ),
                "{s}"
            );
        }
        // A record that ends before the joined lines do.
        assert!(matches!(
            parse_record(b"a,\"x\"\nb,c"),
            Parsed::Complete {
                malformed: true,
                ..
            }
        ));
    }
}
