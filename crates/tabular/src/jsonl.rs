//! JSONL: one JSON object per line. The header is the first object's keys (more may be added
//! with [`RowSource::add_columns`]); keys beyond it travel in [`Row::extra`]. A line that does not
//! decode, is not JSON or is not an object is a row with a [`Problem`].

use std::io::BufRead;

use crate::lines::{decode_field, Lines};
use crate::{CellIssue, Encoding, IssueKind, Problem, Result, Row, RowSource};

type Object = serde_json::Map<String, serde_json::Value>;

/// Rows of a JSONL stream.
pub struct JsonlSource<R> {
    lines: Lines<R>,
    headers: Vec<String>,
    /// The first non-blank line, read to find the header and not yet returned.
    first: Option<(u64, std::result::Result<Object, Problem>)>,
    row: u64,
}

impl<R: BufRead> JsonlSource<R> {
    /// Read up to the first non-blank line. Its keys are the header when it is an object;
    /// otherwise the header is empty and the line is the first row, with its problem.
    pub fn new(r: R, encoding: Encoding) -> Result<Self> {
        let mut src = JsonlSource {
            lines: Lines::new(r, encoding),
            headers: Vec::new(),
            first: None,
            row: 0,
        };
        if let Some((line, bytes)) = src.lines.next_non_blank()? {
            let parsed = parse_line(&bytes, encoding);
            if let Ok(m) = &parsed {
                src.headers = m.keys().cloned().collect();
            }
            src.first = Some((line, parsed));
        }
        Ok(src)
    }
}

fn parse_line(bytes: &[u8], encoding: Encoding) -> std::result::Result<Object, Problem> {
    let text = decode_field(bytes, encoding).map_err(|(_, reason)| Problem::Undecodable(reason))?;
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(Problem::NotAnObject),
        Err(e) => Err(Problem::InvalidJson(e.to_string())),
    }
}

impl<R: BufRead> RowSource for JsonlSource<R> {
    fn headers(&self) -> &[String] {
        &self.headers
    }

    fn add_columns(&mut self, names: &[&str]) {
        for n in names {
            if !self.headers.iter().any(|h| h == n) {
                self.headers.push(n.to_string());
            }
        }
    }

    fn next_row(&mut self, row: &mut Row) -> Result<bool> {
        let (line, parsed) = match self.first.take() {
            Some(first) => first,
            None => match self.lines.next_non_blank()? {
                None => return Ok(false),
                Some((line, bytes)) => (line, parse_line(&bytes, self.lines.encoding)),
            },
        };
        self.row += 1;
        row.reset(self.headers.len());
        row.row = self.row;
        row.line = Some(line);
        let m = match parsed {
            Ok(m) => m,
            Err(p) => {
                row.problem = Some(p);
                return Ok(true);
            }
        };
        for (k, v) in m {
            let Some(col) = self.headers.iter().position(|h| *h == k) else {
                row.extra.push((k, v));
                continue;
            };
            row.cells[col] = match v {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s),
                v @ (serde_json::Value::Array(_) | serde_json::Value::Object(_)) => {
                    row.issues.push(CellIssue {
                        col,
                        kind: IssueKind::NotScalar,
                        reason: "expected a string or number, found an array/object".into(),
                    });
                    Some(v.to_string())
                }
                other => Some(other.to_string()),
            };
        }
        Ok(true)
    }
}
