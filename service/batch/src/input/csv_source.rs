//! The CSV reader: RFC 4180 records over physical lines, with broken quoting and wrong field
//! counts reported per row.

use std::path::Path;

use super::lines::{decode_field, is_blank, Lines};
use super::{assemble, Cell, RawRow, RowSource, Wanted, N_SLOTS};
use crate::error::BatchError;
use crate::options::InputEncoding;

/// Longest quoted field we accept across lines before declaring the quote unterminated.
const MAX_CONTINUATION_LINES: usize = 50;
const MAX_RECORD_BYTES: usize = 1 << 20;

pub(super) enum Parsed {
    /// A whole record; `malformed` = text after a closing quote (e.g. `"ab"c`).
    Complete {
        fields: Vec<Vec<u8>>,
        malformed: bool,
    },
    /// The record ends inside a quoted field.
    OpenQuote,
}

/// Parse one logical record (RFC 4180: `,` separator, `"` quoting, `""` escape; a quote inside
/// an unquoted field is a literal, as Excel does).
pub(super) fn parse_record(buf: &[u8]) -> Parsed {
    #[derive(PartialEq)]
    enum S {
        Start,
        Unquoted,
        Quoted,
        QuoteInQuoted,
    }
    let mut fields = Vec::new();
    let mut cur = Vec::new();
    let mut s = S::Start;
    let mut malformed = false;
    for &b in buf {
        match s {
            S::Start => match b {
                b'"' => s = S::Quoted,
                b',' => fields.push(std::mem::take(&mut cur)),
                _ => {
                    cur.push(b);
                    s = S::Unquoted;
                }
            },
            S::Unquoted => match b {
                b',' => {
                    fields.push(std::mem::take(&mut cur));
                    s = S::Start;
                }
                _ => cur.push(b),
            },
            S::Quoted => match b {
                b'"' => s = S::QuoteInQuoted,
                _ => cur.push(b),
            },
            S::QuoteInQuoted => match b {
                b'"' => {
                    cur.push(b'"');
                    s = S::Quoted;
                }
                b',' => {
                    fields.push(std::mem::take(&mut cur));
                    s = S::Start;
                }
                _ => {
                    malformed = true;
                    cur.push(b);
                    s = S::Unquoted;
                }
            },
        }
    }
    if s == S::Quoted {
        return Parsed::OpenQuote;
    }
    fields.push(cur);
    Parsed::Complete { fields, malformed }
}

enum CsvRecord {
    Ok {
        line: u64,
        fields: Vec<Vec<u8>>,
    },
    Broken {
        line: u64,
        first: Vec<u8>,
        reason: String,
    },
}

pub(crate) struct CsvSource {
    lines: Lines,
    wanted: Wanted,
    cols: [Option<usize>; N_SLOTS],
    header_len: usize,
    row: u64,
}

impl CsvSource {
    pub(super) fn open(
        path: &Path,
        encoding: InputEncoding,
        wanted: Wanted,
    ) -> Result<CsvSource, BatchError> {
        let mut src = CsvSource {
            lines: Lines::open(path, encoding)?,
            wanted,
            cols: [None; N_SLOTS],
            header_len: 0,
            row: 0,
        };
        let header = match src.next_record(usize::MAX)? {
            None => {
                return Err(BatchError::Input {
                    path: path.to_path_buf(),
                    message: "empty file: no header row".into(),
                })
            }
            Some(CsvRecord::Broken { line, reason, .. }) => {
                return Err(BatchError::Input {
                    path: path.to_path_buf(),
                    message: format!("header (line {line}): {reason}"),
                })
            }
            Some(CsvRecord::Ok { fields, line }) => fields
                .iter()
                .map(|f| {
                    decode_field(f, encoding).map_err(|(_, reason)| BatchError::Input {
                        path: path.to_path_buf(),
                        message: format!("header (line {line}): {reason}"),
                    })
                })
                .collect::<Result<Vec<String>, _>>()?,
        };
        src.cols = src.wanted.resolve(&header, path)?;
        src.header_len = header.len();
        Ok(src)
    }

    fn next_record(&mut self, expected: usize) -> Result<Option<CsvRecord>, BatchError> {
        let (line, first) = loop {
            match self.lines.next()? {
                None => return Ok(None),
                Some((_, l)) if is_blank(&l) => continue,
                Some(x) => break x,
            }
        };
        let mut buf = first.clone();
        let mut extra: Vec<(u64, Vec<u8>)> = Vec::new();
        loop {
            match parse_record(&buf) {
                Parsed::Complete { fields, malformed } => {
                    if !extra.is_empty() && (malformed || fields.len() != expected) {
                        self.lines.push_back(extra);
                        return Ok(Some(CsvRecord::Broken {
                            line,
                            first,
                            reason: "unterminated quoted field (a quote opened on this line is never closed properly)".into(),
                        }));
                    }
                    if malformed {
                        return Ok(Some(CsvRecord::Broken {
                            line,
                            first,
                            reason: "malformed quoting: text after a closing quote".into(),
                        }));
                    }
                    return Ok(Some(CsvRecord::Ok { line, fields }));
                }
                Parsed::OpenQuote => {
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
                            return Ok(Some(CsvRecord::Broken {
                                line,
                                first,
                                reason: "unterminated quoted field (a quote opened on this line is never closed)".into(),
                            }));
                        }
                    }
                }
            }
        }
    }
}

impl RowSource for CsvSource {
    fn next_row(&mut self) -> Result<Option<RawRow>, BatchError> {
        let enc = self.lines.encoding;
        let Some(rec) = self.next_record(self.header_len)? else {
            return Ok(None);
        };
        self.row += 1;
        match rec {
            CsvRecord::Ok { line, fields } => {
                let mut cells: [Option<Cell>; N_SLOTS] = Default::default();
                for (slot, col) in self.cols.iter().enumerate() {
                    if let Some(c) = col {
                        cells[slot] = fields.get(*c).map(|f| decode_field(f, enc));
                    }
                }
                let mut row = assemble(self.row, Some(line), &self.wanted, cells);
                if fields.len() != self.header_len {
                    row.problem = Some((
                        "record".into(),
                        format!(
                            "expected {} fields, found {}",
                            self.header_len,
                            fields.len()
                        ),
                    ));
                }
                Ok(Some(row))
            }
            CsvRecord::Broken {
                line,
                first,
                reason,
            } => {
                // Best-effort id: the id column of the broken line if it parses that far.
                let id = match (parse_record(&first), self.cols[0]) {
                    (Parsed::Complete { fields, .. }, Some(c)) => fields
                        .get(c)
                        .map(|f| String::from_utf8_lossy(f).trim().to_string())
                        .unwrap_or_default(),
                    _ => {
                        let s = String::from_utf8_lossy(&first);
                        if self.cols[0] == Some(0) {
                            s.split(',').next().unwrap_or("").trim().to_string()
                        } else {
                            String::new()
                        }
                    }
                };
                Ok(Some(RawRow {
                    row: self.row,
                    line: Some(line),
                    id,
                    text: String::new(),
                    old_code: None,
                    balance: None,
                    problem: Some(("record".into(), reason)),
                    warnings: Vec::new(),
                }))
            }
        }
    }
}
