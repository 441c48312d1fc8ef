//! XLSX: an `.xlsx` file is streamed cell by cell from the sheet XML on a helper thread that
//! hands rows over a bounded channel (memory: the workbook's shared-string table and
//! [`XLSX_READ_AHEAD`] rows); other workbook kinds calamine reads (xls, ods) and workbooks in
//! memory are read as a whole-sheet range.

use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek};
use std::path::Path;
use std::sync::mpsc;

use crate::{CellIssue, IssueKind, Result, Row, RowSource, TabularError};

/// Rows the reader thread may read ahead.
const XLSX_READ_AHEAD: usize = 256;

/// A non-empty sheet row: 1-based sheet row number, cells by absolute column, cell issues.
type SheetRow = (u64, Vec<Option<String>>, Vec<CellIssue>);

/// Rows of a sheet.
pub struct XlsxSource {
    headers: Vec<String>,
    rows: Rows,
    row: u64,
}

enum Rows {
    Stream(mpsc::Receiver<std::result::Result<SheetRow, String>>),
    Buffered(std::vec::IntoIter<SheetRow>),
}

/// The text of a cell (`None` = empty), and its issue.
fn cell_text(c: &calamine::Data, col: usize) -> (Option<String>, Option<CellIssue>) {
    use calamine::Data;
    let text = match c {
        Data::Empty => return (None, None),
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => {
            if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{}", *f as i64)
            } else {
                f.to_string()
            }
        }
        Data::Bool(b) => b.to_string(),
        Data::DateTime(d) => {
            let (y, m, day, ..) = d.to_ymd_hms_milli();
            format!("{y:04}-{m:02}-{day:02}")
        }
        Data::DateTimeIso(s) => s.chars().take(10).collect(),
        Data::DurationIso(s) => s.clone(),
        Data::Error(e) => {
            let issue = CellIssue {
                col,
                kind: IssueKind::CellError,
                reason: format!("cell error {e}"),
            };
            return (Some(format!("#ERROR {e:?}")), Some(issue));
        }
    };
    if text.is_empty() {
        (None, None)
    } else {
        (Some(text), None)
    }
}

fn xlsx_err(e: impl std::fmt::Display) -> TabularError {
    TabularError::Xlsx(e.to_string())
}

fn first_sheet(names: &[String]) -> Result<String> {
    names
        .first()
        .cloned()
        .ok_or_else(|| TabularError::Xlsx("workbook has no sheets".into()))
}

fn header_of(cells: Vec<Option<String>>) -> Vec<String> {
    cells
        .into_iter()
        .map(|c| c.unwrap_or_default().trim().to_string())
        .collect()
}

impl XlsxSource {
    /// Open a workbook file: an `.xlsx` workbook is streamed, other kinds are loaded whole.
    pub fn open(path: &Path, sheet: Option<&str>) -> Result<Self> {
        use calamine::Reader;
        let wb = match calamine::Xlsx::new(BufReader::new(File::open(path)?)) {
            Ok(wb) => wb,
            // Not an OOXML workbook: let calamine sniff the kind, from memory.
            Err(_) => return Self::from_bytes(std::fs::read(path)?, sheet),
        };
        let name = match sheet {
            Some(s) => {
                if !wb.sheet_names().iter().any(|n| n == s) {
                    return Err(TabularError::Xlsx(format!("sheet `{s}`: not found")));
                }
                s.to_string()
            }
            None => first_sheet(&wb.sheet_names())?,
        };
        let (tx, rx) = mpsc::sync_channel(XLSX_READ_AHEAD);
        let sheet_name = name.clone();
        std::thread::Builder::new()
            .name("xlsx-reader".into())
            .spawn(move || stream_sheet(wb, &sheet_name, tx))?;
        let headers = match rx.recv() {
            Ok(Ok((_, h, _))) => header_of(h),
            Ok(Err(e)) => return Err(TabularError::Xlsx(format!("sheet `{name}`: {e}"))),
            Err(_) => return Err(TabularError::Xlsx(format!("sheet `{name}` is empty"))),
        };
        Ok(XlsxSource {
            headers,
            rows: Rows::Stream(rx),
            row: 0,
        })
    }

    /// A workbook in memory (any kind calamine reads), loaded as a whole-sheet range.
    pub fn from_bytes(bytes: Vec<u8>, sheet: Option<&str>) -> Result<Self> {
        Self::from_reader(Cursor::new(bytes), sheet)
    }

    fn from_reader<RS: Read + Seek + Clone>(rs: RS, sheet: Option<&str>) -> Result<Self> {
        use calamine::Reader;
        let mut wb = calamine::open_workbook_auto_from_rs(rs).map_err(xlsx_err)?;
        let name = match sheet {
            Some(s) => s.to_string(),
            None => first_sheet(&wb.sheet_names())?,
        };
        let range = wb
            .worksheet_range(&name)
            .map_err(|e| TabularError::Xlsx(format!("sheet `{name}`: {e}")))?;
        // Cells by absolute column, as when streamed.
        let (start_row, start_col) = range.start().unwrap_or((0, 0));
        let absolute = |r: &[calamine::Data]| -> (Vec<Option<String>>, Vec<CellIssue>) {
            let mut issues = Vec::new();
            let mut cells = vec![None; start_col as usize];
            for (i, c) in r.iter().enumerate() {
                let (text, issue) = cell_text(c, start_col as usize + i);
                issues.extend(issue);
                cells.push(text);
            }
            (cells, issues)
        };
        let mut it = range.rows();
        let header = it
            .next()
            .ok_or_else(|| TabularError::Xlsx(format!("sheet `{name}` is empty")))?;
        let mut headers = header_of(absolute(header).0);
        // The streamed header ends at its last non-empty cell.
        while headers.last().is_some_and(String::is_empty) {
            headers.pop();
        }
        let rows: Vec<SheetRow> = it
            .enumerate()
            .filter_map(|(i, r)| {
                let (cells, issues) = absolute(r);
                cells.iter().any(Option::is_some).then_some((
                    start_row as u64 + i as u64 + 2,
                    cells,
                    issues,
                ))
            })
            .collect();
        Ok(XlsxSource {
            headers,
            rows: Rows::Buffered(rows.into_iter()),
            row: 0,
        })
    }
}

/// The reader thread: send the sheet's non-empty rows, the first one being the header; stop
/// early when the reading side hangs up.
fn stream_sheet<RS: Read + Seek>(
    mut wb: calamine::Xlsx<RS>,
    name: &str,
    tx: mpsc::SyncSender<std::result::Result<SheetRow, String>>,
) {
    let mut cells = match wb.worksheet_cells_reader(name) {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(Err(e.to_string()));
            return;
        }
    };
    let mut cur: Option<u32> = None;
    let (mut row, mut issues): (Vec<Option<String>>, Vec<CellIssue>) = (Vec::new(), Vec::new());
    let send = |r: u32, row: &mut Vec<Option<String>>, issues: &mut Vec<CellIssue>| -> bool {
        if row.iter().all(Option::is_none) {
            row.clear();
            issues.clear();
            return true;
        }
        let msg = (r as u64 + 1, std::mem::take(row), std::mem::take(issues));
        tx.send(Ok(msg)).is_ok()
    };
    loop {
        match cells.next_cell() {
            Ok(Some(cell)) => {
                let (r, c) = cell.get_position();
                if cur != Some(r) {
                    if let Some(prev) = cur {
                        if !send(prev, &mut row, &mut issues) {
                            return;
                        }
                    }
                    cur = Some(r);
                }
                let c = c as usize;
                let (text, issue) = cell_text(&calamine::Data::from(cell.get_value().clone()), c);
                if text.is_some() {
                    if row.len() <= c {
                        row.resize(c + 1, None);
                    }
                    row[c] = text;
                    issues.extend(issue);
                }
            }
            Ok(None) => {
                if let Some(prev) = cur {
                    send(prev, &mut row, &mut issues);
                }
                return;
            }
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                return;
            }
        }
    }
}

impl RowSource for XlsxSource {
    fn headers(&self) -> &[String] {
        &self.headers
    }

    fn next_row(&mut self, row: &mut Row) -> Result<bool> {
        let next = match &mut self.rows {
            Rows::Buffered(it) => it.next(),
            Rows::Stream(rx) => match rx.recv() {
                Ok(Ok(r)) => Some(r),
                Ok(Err(e)) => return Err(TabularError::Xlsx(e)),
                Err(_) => None,
            },
        };
        let Some((line, mut cells, issues)) = next else {
            return Ok(false);
        };
        self.row += 1;
        row.reset(0);
        let width = self.headers.len();
        cells.resize(width, None);
        row.row = self.row;
        row.line = Some(line);
        row.cells = cells;
        row.issues = issues.into_iter().filter(|i| i.col < width).collect();
        Ok(true)
    }
}
