//! Row sources (part of [`super`]): CSV and JSONL read record by record from any reader; XLSX
//! read cell by cell from the sheet XML on a reader thread (bounded channel), or — for other
//! workbook kinds and in-memory bytes — from calamine's whole-sheet range.
//!
//! Public so that other tabular ingests (payments and relations in `touxiang-flow`) read files
//! exactly as loan ingest does: [`open_file`] / [`open_bytes`] give a [`RowSource`].

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read, Seek};
use std::path::Path;
use std::sync::mpsc;

use crate::error::{PortfolioError, Result};

/// The row source of a file in `format` (XLSX streamed from the sheet XML; CSV and JSONL read
/// record by record).
pub fn open_file(
    path: &Path,
    format: super::InputFormat,
    sheet: Option<&str>,
) -> Result<Box<dyn RowSource + Send>> {
    use super::InputFormat;
    Ok(match format {
        InputFormat::Xlsx => Box::new(XlsxSource::open(path, sheet)?),
        InputFormat::Csv => Box::new(CsvSource::new(BufReader::with_capacity(
            1 << 16,
            File::open(path)?,
        ))?),
        InputFormat::Jsonl => Box::new(JsonlSource::new(BufReader::with_capacity(
            1 << 16,
            File::open(path)?,
        ))?),
    })
}

/// The row source of in-memory bytes in `format`.
pub fn open_bytes(
    bytes: Vec<u8>,
    format: super::InputFormat,
    sheet: Option<&str>,
) -> Result<Box<dyn RowSource + Send>> {
    use super::InputFormat;
    Ok(match format {
        InputFormat::Xlsx => Box::new(XlsxSource::from_reader(Cursor::new(bytes), sheet)?),
        InputFormat::Csv => Box::new(CsvSource::new(Cursor::new(bytes))?),
        InputFormat::Jsonl => Box::new(JsonlSource::new(Cursor::new(bytes))?),
    })
}

/// A stream of rows from one input file.
pub trait RowSource {
    /// Header names, in order.
    fn headers(&self) -> &[String];
    /// Schema-less sources (JSONL) add columns that may appear in later rows only; others
    /// ignore this.
    fn add_columns(&mut self, _names: &[&str]) {}
    /// Next row into `buf` (one string per header; `extra` gets keys beyond the header, JSONL
    /// only). Returns the user-visible row number, or `None` at the end. `Err(Left)` is a row-level
    /// problem (row, reason), `Err(Right)` a file-level one.
    fn next_row(
        &mut self,
        buf: &mut Vec<String>,
        extra: &mut Vec<(String, serde_json::Value)>,
    ) -> Result<Option<std::result::Result<u64, (u64, String)>>>;
}

pub struct CsvSource<R: Read> {
    rdr: csv::Reader<R>,
    headers: Vec<String>,
    rec: csv::StringRecord,
    row: u64,
}

impl<R: Read> CsvSource<R> {
    pub fn new(r: R) -> Result<Self> {
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .from_reader(r);
        let headers = rdr
            .headers()
            .map_err(|e| PortfolioError::Csv(format!("cannot read header: {e}")))?
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
            .collect();
        Ok(CsvSource {
            rdr,
            headers,
            rec: csv::StringRecord::new(),
            row: 1,
        })
    }
}

impl<R: Read> RowSource for CsvSource<R> {
    fn headers(&self) -> &[String] {
        &self.headers
    }
    fn next_row(
        &mut self,
        buf: &mut Vec<String>,
        _extra: &mut Vec<(String, serde_json::Value)>,
    ) -> Result<Option<std::result::Result<u64, (u64, String)>>> {
        self.row += 1;
        match self.rdr.read_record(&mut self.rec) {
            Ok(false) => Ok(None),
            Ok(true) => {
                if self.rec.len() != self.headers.len() {
                    return Ok(Some(Err((
                        self.row,
                        format!(
                            "row has {} fields, header has {}",
                            self.rec.len(),
                            self.headers.len()
                        ),
                    ))));
                }
                buf.clear();
                buf.extend(self.rec.iter().map(str::to_string));
                Ok(Some(Ok(self.row)))
            }
            Err(e) => match e.kind() {
                csv::ErrorKind::Utf8 { .. } => Ok(Some(Err((self.row, "invalid UTF-8".into())))),
                _ => Err(PortfolioError::Csv(format!("near row {}: {e}", self.row))),
            },
        }
    }
}

/// Rows of an XLSX sheet: streamed from a reader thread, or buffered from a whole-sheet range.
pub struct XlsxSource {
    headers: Vec<String>,
    rows: XlsxRows,
}

enum XlsxRows {
    Stream(mpsc::Receiver<std::result::Result<(u64, Vec<String>), String>>),
    Buffered(std::vec::IntoIter<(u64, Vec<String>)>),
}

/// Rows the reader thread may read ahead of the ingest.
const XLSX_READ_AHEAD: usize = 256;

fn cell_to_string(c: &calamine::Data) -> String {
    use calamine::Data;
    match c {
        Data::Empty => String::new(),
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
        Data::Error(e) => format!("#ERROR {e:?}"),
    }
}

fn xlsx_err(e: impl std::fmt::Display) -> PortfolioError {
    PortfolioError::Xlsx(e.to_string())
}

impl XlsxSource {
    /// Open a workbook file. An `.xlsx` workbook is streamed (memory bounded by the shared-string
    /// table and [`XLSX_READ_AHEAD`] rows); other kinds calamine reads (xls, ods) are loaded whole.
    pub fn open(path: &Path, sheet: Option<&str>) -> Result<Self> {
        use calamine::Reader;
        let wb = match calamine::Xlsx::new(BufReader::new(File::open(path)?)) {
            Ok(wb) => wb,
            Err(_) => {
                // Not an OOXML workbook: let calamine sniff the kind, from memory.
                let bytes = std::fs::read(path)?;
                return Self::from_reader(Cursor::new(bytes), sheet);
            }
        };
        let name = match sheet {
            Some(s) => {
                if !wb.sheet_names().iter().any(|n| n == s) {
                    return Err(PortfolioError::Xlsx(format!("sheet `{s}`: not found")));
                }
                s.to_string()
            }
            None => wb
                .sheet_names()
                .first()
                .cloned()
                .ok_or_else(|| PortfolioError::Xlsx("workbook has no sheets".into()))?,
        };
        let (tx, rx) = mpsc::sync_channel(XLSX_READ_AHEAD);
        let sheet_name = name.clone();
        std::thread::Builder::new()
            .name("xlsx-reader".into())
            .spawn(move || stream_sheet(wb, &sheet_name, tx))
            .map_err(PortfolioError::Io)?;
        let headers = match rx.recv() {
            Ok(Ok((_, h))) => h.iter().map(|c| c.trim().to_string()).collect(),
            Ok(Err(e)) => return Err(PortfolioError::Xlsx(format!("sheet `{name}`: {e}"))),
            Err(_) => return Err(PortfolioError::Xlsx(format!("sheet `{name}` is empty"))),
        };
        Ok(XlsxSource {
            headers,
            rows: XlsxRows::Stream(rx),
        })
    }

    /// A workbook in memory (any kind calamine reads), loaded as a whole-sheet range.
    pub fn from_reader<RS: Read + Seek + Clone>(rs: RS, sheet: Option<&str>) -> Result<Self> {
        use calamine::Reader;
        let mut wb = calamine::open_workbook_auto_from_rs(rs).map_err(xlsx_err)?;
        let name = match sheet {
            Some(s) => s.to_string(),
            None => wb
                .sheet_names()
                .first()
                .cloned()
                .ok_or_else(|| PortfolioError::Xlsx("workbook has no sheets".into()))?,
        };
        let range = wb
            .worksheet_range(&name)
            .map_err(|e| PortfolioError::Xlsx(format!("sheet `{name}`: {e}")))?;
        let start_row = range.start().map(|(r, _)| r as u64).unwrap_or(0);
        let mut it = range.rows();
        let headers: Vec<String> = it
            .next()
            .ok_or_else(|| PortfolioError::Xlsx(format!("sheet `{name}` is empty")))?
            .iter()
            .map(|c| cell_to_string(c).trim().to_string())
            .collect();
        let rows: Vec<(u64, Vec<String>)> = it
            .enumerate()
            .filter(|(_, r)| r.iter().any(|c| !matches!(c, calamine::Data::Empty)))
            .map(|(i, r)| {
                (
                    start_row + i as u64 + 2,
                    r.iter().map(cell_to_string).collect(),
                )
            })
            .collect();
        Ok(XlsxSource {
            headers,
            rows: XlsxRows::Buffered(rows.into_iter()),
        })
    }
}

/// The reader thread: send the sheet's non-empty rows as (user-visible row number, cells by
/// absolute column), the first one being the header; stop early when the ingest hangs up.
fn stream_sheet<RS: Read + Seek>(
    mut wb: calamine::Xlsx<RS>,
    name: &str,
    tx: mpsc::SyncSender<std::result::Result<(u64, Vec<String>), String>>,
) {
    let mut cells = match wb.worksheet_cells_reader(name) {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(Err(e.to_string()));
            return;
        }
    };
    let mut cur: Option<u32> = None;
    let mut row: Vec<String> = Vec::new();
    let send = |r: u32, row: &mut Vec<String>| -> bool {
        if row.iter().all(|c| c.is_empty()) {
            row.clear();
            return true;
        }
        tx.send(Ok((r as u64 + 1, std::mem::take(row)))).is_ok()
    };
    loop {
        match cells.next_cell() {
            Ok(Some(cell)) => {
                let (r, c) = cell.get_position();
                if cur != Some(r) {
                    if let Some(prev) = cur {
                        if !send(prev, &mut row) {
                            return;
                        }
                    }
                    cur = Some(r);
                }
                let v = cell_to_string(&calamine::Data::from(cell.get_value().clone()));
                let c = c as usize;
                if !v.is_empty() {
                    if row.len() <= c {
                        row.resize(c + 1, String::new());
                    }
                    row[c] = v;
                }
            }
            Ok(None) => {
                if let Some(prev) = cur {
                    send(prev, &mut row);
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
    fn next_row(
        &mut self,
        buf: &mut Vec<String>,
        _extra: &mut Vec<(String, serde_json::Value)>,
    ) -> Result<Option<std::result::Result<u64, (u64, String)>>> {
        let next = match &mut self.rows {
            XlsxRows::Buffered(it) => it.next(),
            XlsxRows::Stream(rx) => match rx.recv() {
                Ok(Ok(r)) => Some(r),
                Ok(Err(e)) => return Err(PortfolioError::Xlsx(e)),
                Err(_) => None,
            },
        };
        Ok(next.map(|(n, mut r)| {
            r.resize(self.headers.len(), String::new());
            *buf = r;
            Ok(n)
        }))
    }
}

pub struct JsonlSource<R: BufRead> {
    lines: std::io::Lines<R>,
    headers: Vec<String>,
    first: Option<(u64, serde_json::Map<String, serde_json::Value>)>,
    line: u64,
}

fn json_to_string(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl<R: BufRead> JsonlSource<R> {
    pub fn new(r: R) -> Result<Self> {
        let mut lines = r.lines();
        let mut line = 0u64;
        loop {
            let Some(l) = lines.next() else {
                return Err(PortfolioError::Json("no JSON object in input".into()));
            };
            let l = l?;
            line += 1;
            if l.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(&l)
                .map_err(|e| PortfolioError::Json(format!("line {line}: {e}")))?;
            let serde_json::Value::Object(m) = v else {
                return Err(PortfolioError::Json(format!(
                    "line {line}: not a JSON object"
                )));
            };
            let headers = m.keys().cloned().collect();
            return Ok(JsonlSource {
                lines,
                headers,
                first: Some((line, m)),
                line,
            });
        }
    }

    fn fill(
        &self,
        m: serde_json::Map<String, serde_json::Value>,
        buf: &mut Vec<String>,
        extra: &mut Vec<(String, serde_json::Value)>,
    ) {
        buf.clear();
        buf.resize(self.headers.len(), String::new());
        extra.clear();
        for (k, v) in m {
            match self.headers.iter().position(|h| *h == k) {
                Some(i) => buf[i] = json_to_string(&v),
                None => extra.push((k, v)),
            }
        }
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
    fn next_row(
        &mut self,
        buf: &mut Vec<String>,
        extra: &mut Vec<(String, serde_json::Value)>,
    ) -> Result<Option<std::result::Result<u64, (u64, String)>>> {
        if let Some((n, m)) = self.first.take() {
            self.fill(m, buf, extra);
            return Ok(Some(Ok(n)));
        }
        loop {
            let Some(l) = self.lines.next() else {
                return Ok(None);
            };
            self.line += 1;
            let l = match l {
                Ok(l) => l,
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    return Ok(Some(Err((self.line, "invalid UTF-8".into()))))
                }
                Err(e) => return Err(e.into()),
            };
            if l.trim().is_empty() {
                continue;
            }
            return Ok(Some(match serde_json::from_str::<serde_json::Value>(&l) {
                Ok(serde_json::Value::Object(m)) => {
                    self.fill(m, buf, extra);
                    Ok(self.line)
                }
                Ok(_) => Err((self.line, "line is not a JSON object".into())),
                Err(e) => Err((self.line, format!("invalid JSON: {e}"))),
            }));
        }
    }
}
