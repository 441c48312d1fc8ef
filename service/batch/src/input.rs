//! Streaming readers for the four input formats.
//!
//! Every reader yields [`RawRow`]s one at a time, so memory is bounded by one row (CSV, JSONL),
//! one row group (Parquet) or the workbook's shared-string table (XLSX: calamine streams the cells
//! of a sheet but keeps the shared strings of the whole workbook in memory, and the XML is parsed
//! on a helper thread that hands rows over a bounded channel).
//!
//! Row numbering is the same for every format: data rows count from 1 after the header; blank
//! lines (CSV/JSONL) and empty sheet rows (XLSX) are not rows. Problems with one row (broken
//! quoting, wrong field count, invalid UTF-8/GBK bytes, invalid JSON) become a row with a
//! `problem`; the reader then goes on with the next row.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};

use crate::error::BatchError;
use crate::options::{BatchOptions, Format, InputEncoding};

/// One input row as read, before normalisation and labeling.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawRow {
    /// 1-based data row number.
    pub row: u64,
    /// Physical line (CSV/JSONL) or sheet row (XLSX) where the row starts.
    pub line: Option<u64>,
    pub id: String,
    pub text: String,
    pub old_code: Option<String>,
    pub balance: Option<f64>,
    /// `(field, reason)` when the row cannot be labeled.
    pub problem: Option<(String, String)>,
    /// `(field, reason)` for problems that do not stop labeling (e.g. a bad balance).
    pub warnings: Vec<(String, String)>,
}

/// A cell value: the text, or (lossy text, reason) when it could not be decoded.
type Cell = Result<String, (String, String)>;

/// Wanted columns: id, text, old code, balance, borrower name, business scope.
const N_SLOTS: usize = 6;

/// Names of the wanted columns, in slot order: id, text, old code, balance, borrower name,
/// business scope.
#[derive(Debug, Clone)]
pub(crate) struct Wanted {
    pub names: [Option<String>; N_SLOTS],
}

impl Wanted {
    pub fn from_options(opts: &BatchOptions) -> Wanted {
        Wanted {
            names: [
                Some(opts.id_column.clone()),
                Some(opts.text_column.clone()),
                opts.old_code_column.clone(),
                opts.balance_column.clone(),
                opts.borrower_name_column.clone(),
                opts.business_scope_column.clone(),
            ],
        }
    }

    /// Column index of each wanted name in `header`; id and text are required.
    fn resolve(
        &self,
        header: &[String],
        path: &Path,
    ) -> Result<[Option<usize>; N_SLOTS], BatchError> {
        let mut out = [None; N_SLOTS];
        for (slot, name) in self.names.iter().enumerate() {
            let Some(name) = name else { continue };
            match header.iter().position(|h| h.trim() == name) {
                Some(i) => out[slot] = Some(i),
                None => {
                    return Err(BatchError::Input {
                        path: path.to_path_buf(),
                        message: format!(
                            "column {name:?} not found; the columns are: {}",
                            header.join(", ")
                        ),
                    })
                }
            }
        }
        Ok(out)
    }
}

const SLOT_NAMES: [&str; N_SLOTS] = [
    "id",
    "text",
    "old_code",
    "balance",
    "borrower_name",
    "business_scope",
];

/// Build a row from the four wanted cells (`None` = absent).
fn assemble(
    row: u64,
    line: Option<u64>,
    wanted: &Wanted,
    cells: [Option<Cell>; N_SLOTS],
) -> RawRow {
    let name = |slot: usize| {
        wanted.names[slot]
            .clone()
            .unwrap_or_else(|| SLOT_NAMES[slot].to_string())
    };
    let [id, text, old, bal, borrower, scope] = cells;
    let mut out = RawRow {
        row,
        line,
        id: String::new(),
        text: String::new(),
        old_code: None,
        balance: None,
        problem: None,
        warnings: Vec::new(),
    };
    match id {
        Some(Ok(s)) => out.id = s.trim().to_string(),
        Some(Err((lossy, reason))) => {
            out.id = lossy.trim().to_string();
            out.problem = Some((name(0), reason));
        }
        None => {}
    }
    if out.id.is_empty() && out.problem.is_none() {
        out.warnings.push((name(0), "empty id".into()));
    }
    match text {
        Some(Ok(s)) => out.text = s,
        Some(Err((lossy, reason))) => {
            out.text = lossy;
            if out.problem.is_none() {
                out.problem = Some((name(1), reason));
            }
        }
        None => {
            if out.problem.is_none() {
                out.problem = Some((name(1), "missing value".into()));
            }
        }
    }
    match old {
        Some(Ok(s)) if !s.trim().is_empty() => out.old_code = Some(s.trim().to_string()),
        Some(Err((_, reason))) => out.warnings.push((name(2), reason)),
        _ => {}
    }
    match bal {
        Some(Ok(s)) if !s.trim().is_empty() => {
            let cleaned: String = s.trim().chars().filter(|c| *c != ',').collect();
            match cleaned.parse::<f64>() {
                Ok(v) if v.is_finite() => out.balance = Some(v),
                _ => out
                    .warnings
                    .push((name(3), format!("not a number: {:?}", s.trim()))),
            }
        }
        Some(Err((_, reason))) => out.warnings.push((name(3), reason)),
        _ => {}
    }
    // The borrower's name and business scope are read with the purpose text, as by
    // /v1/classify: the text that is deduplicated and labeled is the composed one.
    let mut field = |slot: usize, cell: Option<Cell>| match cell {
        Some(Ok(s)) if !s.trim().is_empty() => Some(s),
        Some(Err((_, reason))) => {
            out.warnings.push((name(slot), reason));
            None
        }
        _ => None,
    };
    let (borrower_name, business_scope) = (field(4, borrower), field(5, scope));
    if out.problem.is_none() && (borrower_name.is_some() || business_scope.is_some()) {
        out.text = touxiang_datasets::LoanText {
            text: std::mem::take(&mut out.text),
            borrower_name,
            business_scope,
            declared_industry: None,
        }
        .model_text();
    }
    out
}

/// A source of rows.
pub(crate) trait RowSource {
    fn next_row(&mut self) -> Result<Option<RawRow>, BatchError>;
}

/// Open the input of `opts` as a row source.
pub(crate) fn open(opts: &BatchOptions) -> Result<Box<dyn RowSource + Send>, BatchError> {
    let wanted = Wanted::from_options(opts);
    let path = opts.input.as_path();
    Ok(match opts.resolved_input_format()? {
        Format::Csv => Box::new(CsvSource::open(path, opts.input_encoding, wanted)?),
        Format::Jsonl => Box::new(JsonlSource::open(path, opts.input_encoding, wanted)?),
        Format::Xlsx => Box::new(XlsxSource::open(path, opts.sheet.clone(), wanted)?),
        Format::Parquet => Box::new(ParquetSource::open(path, wanted)?),
    })
}

/// Number of data rows of the input (a full read for CSV/JSONL/XLSX, metadata for Parquet).
pub(crate) fn count_rows(opts: &BatchOptions) -> Result<u64, BatchError> {
    if opts.resolved_input_format()? == Format::Parquet {
        return ParquetSource::count(&opts.input);
    }
    let mut src = open(opts)?;
    let mut n = 0;
    while src.next_row()?.is_some() {
        n += 1;
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------------------
// Line reading shared by CSV and JSONL.

struct Lines {
    rdr: BufReader<File>,
    path: PathBuf,
    encoding: InputEncoding,
    line_no: u64,
    pending: VecDeque<(u64, Vec<u8>)>,
}

impl Lines {
    fn open(path: &Path, encoding: InputEncoding) -> Result<Lines, BatchError> {
        let f = File::open(path).map_err(|e| BatchError::io("cannot open input", path, e))?;
        Ok(Lines {
            rdr: BufReader::with_capacity(1 << 16, f),
            path: path.to_path_buf(),
            encoding,
            line_no: 0,
            pending: VecDeque::new(),
        })
    }

    /// Next physical line without its terminator (`\n` or `\r\n`), decoded to UTF-8 when the
    /// input is GB18030 (undecodable lines are kept as raw bytes and fail UTF-8 validation).
    fn next(&mut self) -> Result<Option<(u64, Vec<u8>)>, BatchError> {
        if let Some(l) = self.pending.pop_front() {
            return Ok(Some(l));
        }
        let mut buf = Vec::new();
        let n = self
            .rdr
            .read_until(b'\n', &mut buf)
            .map_err(|e| BatchError::io("cannot read input", &self.path, e))?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        if self.line_no == 1 && buf.starts_with(b"\xEF\xBB\xBF") {
            buf.drain(..3);
        }
        if self.encoding == InputEncoding::Gb18030 {
            if let Some(s) =
                encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(&buf)
            {
                buf = s.into_owned().into_bytes();
            }
        }
        Ok(Some((self.line_no, buf)))
    }

    fn push_back(&mut self, lines: Vec<(u64, Vec<u8>)>) {
        for l in lines.into_iter().rev() {
            self.pending.push_front(l);
        }
    }
}

fn is_blank(b: &[u8]) -> bool {
    b.iter().all(|c| c.is_ascii_whitespace())
}

/// Decode one field as UTF-8, explaining what is wrong otherwise.
fn decode_field(bytes: &[u8], encoding: InputEncoding) -> Cell {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(e) => {
            let lossy = String::from_utf8_lossy(bytes).into_owned();
            let reason = match encoding {
                InputEncoding::Gb18030 => "bytes are not valid GB18030".to_string(),
                InputEncoding::Utf8 => {
                    let mut r = format!("invalid UTF-8 at byte {} of the field", e.valid_up_to());
                    if let Some(g) =
                        encoding_rs::GBK.decode_without_bom_handling_and_without_replacement(bytes)
                    {
                        r.push_str(&format!(
                            " (it decodes as GBK: {:?}; if the whole file is GBK, set the input encoding to gb18030)",
                            g
                        ));
                    }
                    r
                }
            };
            Err((lossy, reason))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CSV

/// Longest quoted field we accept across lines before declaring the quote unterminated.
const MAX_CONTINUATION_LINES: usize = 50;
const MAX_RECORD_BYTES: usize = 1 << 20;

enum Parsed {
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
fn parse_record(buf: &[u8]) -> Parsed {
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
    fn open(path: &Path, encoding: InputEncoding, wanted: Wanted) -> Result<CsvSource, BatchError> {
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

// ---------------------------------------------------------------------------------------------
// JSONL

pub(crate) struct JsonlSource {
    lines: Lines,
    wanted: Wanted,
    row: u64,
}

impl JsonlSource {
    fn open(
        path: &Path,
        encoding: InputEncoding,
        wanted: Wanted,
    ) -> Result<JsonlSource, BatchError> {
        Ok(JsonlSource {
            lines: Lines::open(path, encoding)?,
            wanted,
            row: 0,
        })
    }
}

fn json_cell(v: &serde_json::Value) -> Option<Cell> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(Ok(s.clone())),
        serde_json::Value::Number(n) => Some(Ok(n.to_string())),
        serde_json::Value::Bool(b) => Some(Ok(b.to_string())),
        other => Some(Err((
            other.to_string(),
            "expected a string or number, found an array/object".into(),
        ))),
    }
}

impl RowSource for JsonlSource {
    fn next_row(&mut self) -> Result<Option<RawRow>, BatchError> {
        let (line, bytes) = loop {
            match self.lines.next()? {
                None => return Ok(None),
                Some((_, l)) if is_blank(&l) => continue,
                Some(x) => break x,
            }
        };
        self.row += 1;
        let broken = |id: String, field: &str, reason: String| RawRow {
            row: self.row,
            line: Some(line),
            id,
            text: String::new(),
            old_code: None,
            balance: None,
            problem: Some((field.to_string(), reason)),
            warnings: Vec::new(),
        };
        let text = match decode_field(&bytes, self.lines.encoding) {
            Ok(s) => s,
            Err((_, reason)) => return Ok(Some(broken(String::new(), "record", reason))),
        };
        let obj = match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(m)) => m,
            Ok(_) => {
                return Ok(Some(broken(
                    String::new(),
                    "record",
                    "not a JSON object".into(),
                )))
            }
            Err(e) => {
                return Ok(Some(broken(
                    String::new(),
                    "record",
                    format!("invalid JSON: {e}"),
                )))
            }
        };
        let mut cells: [Option<Cell>; N_SLOTS] = Default::default();
        for (slot, name) in self.wanted.names.iter().enumerate() {
            if let Some(name) = name {
                cells[slot] = obj.get(name).and_then(json_cell);
            }
        }
        Ok(Some(assemble(self.row, Some(line), &self.wanted, cells)))
    }
}

// ---------------------------------------------------------------------------------------------
// XLSX

/// A sheet row: its 0-based index and its non-empty cells (column, value).
type CellsOfRow = (u32, Vec<(u32, Cell)>);
type SheetRow = Result<CellsOfRow, String>;

pub(crate) struct XlsxSource {
    rx: Receiver<SheetRow>,
    path: PathBuf,
    wanted: Wanted,
    cols: [Option<usize>; N_SLOTS],
    row: u64,
}

impl XlsxSource {
    fn open(path: &Path, sheet: Option<String>, wanted: Wanted) -> Result<XlsxSource, BatchError> {
        use calamine::{open_workbook, Data, Reader, Xlsx};
        let mut wb: Xlsx<_> = open_workbook(path).map_err(|e| BatchError::Input {
            path: path.to_path_buf(),
            message: format!("cannot open workbook: {e}"),
        })?;
        let sheet = match sheet {
            Some(s) => s,
            None => wb
                .sheet_names()
                .first()
                .cloned()
                .ok_or_else(|| BatchError::Input {
                    path: path.to_path_buf(),
                    message: "workbook has no sheets".into(),
                })?,
        };
        let (tx, rx) = sync_channel::<SheetRow>(256);
        std::thread::Builder::new()
            .name("xlsx-reader".into())
            .spawn(move || {
                let mut cells = match wb.worksheet_cells_reader(&sheet) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send(Err(format!("sheet {sheet:?}: {e}")));
                        return;
                    }
                };
                let mut cur_row: Option<u32> = None;
                let mut cur: Vec<(u32, Cell)> = Vec::new();
                loop {
                    match cells.next_cell() {
                        Ok(Some(c)) => {
                            let (r, col) = c.get_position();
                            let v: Data = c.get_value().clone().into();
                            let cell: Cell = match &v {
                                Data::Empty => continue,
                                Data::Error(e) => Err((String::new(), format!("cell error {e}"))),
                                Data::String(s) => Ok(s.clone()),
                                other => Ok(other.to_string()),
                            };
                            if cur_row != Some(r) {
                                if let Some(pr) = cur_row {
                                    if tx.send(Ok((pr, std::mem::take(&mut cur)))).is_err() {
                                        return;
                                    }
                                }
                                cur_row = Some(r);
                            }
                            cur.push((col, cell));
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let _ = tx.send(Err(e.to_string()));
                            return;
                        }
                    }
                }
                if let Some(pr) = cur_row {
                    let _ = tx.send(Ok((pr, cur)));
                }
            })
            .map_err(|e| BatchError::io("cannot start xlsx reader thread for", path, e))?;
        let mut src = XlsxSource {
            rx,
            path: path.to_path_buf(),
            wanted,
            cols: [None; N_SLOTS],
            row: 0,
        };
        let header = match src.recv()? {
            None => {
                return Err(BatchError::Input {
                    path: path.to_path_buf(),
                    message: "empty sheet: no header row".into(),
                })
            }
            Some((_, cells)) => {
                let width = cells.iter().map(|(c, _)| *c + 1).max().unwrap_or(0) as usize;
                let mut h = vec![String::new(); width];
                for (c, v) in cells {
                    h[c as usize] = v.unwrap_or_else(|(lossy, _)| lossy);
                }
                h
            }
        };
        src.cols = src.wanted.resolve(&header, path)?;
        Ok(src)
    }

    fn recv(&mut self) -> Result<Option<CellsOfRow>, BatchError> {
        match self.rx.recv() {
            Err(_) => Ok(None),
            Ok(Ok(r)) => Ok(Some(r)),
            Ok(Err(message)) => Err(BatchError::Input {
                path: self.path.clone(),
                message,
            }),
        }
    }
}

impl RowSource for XlsxSource {
    fn next_row(&mut self) -> Result<Option<RawRow>, BatchError> {
        let Some((sheet_row, cells)) = self.recv()? else {
            return Ok(None);
        };
        self.row += 1;
        let mut wanted: [Option<Cell>; N_SLOTS] = Default::default();
        for (col, cell) in cells {
            for (slot, c) in self.cols.iter().enumerate() {
                if *c == Some(col as usize) {
                    wanted[slot] = Some(cell.clone());
                }
            }
        }
        Ok(Some(assemble(
            self.row,
            Some(sheet_row as u64 + 1),
            &self.wanted,
            wanted,
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// Parquet

pub(crate) struct ParquetSource {
    iter: parquet::record::reader::RowIter<'static>,
    path: PathBuf,
    wanted: Wanted,
    row: u64,
}

fn parquet_err(path: &Path, e: impl std::fmt::Display) -> BatchError {
    BatchError::Input {
        path: path.to_path_buf(),
        message: format!("parquet: {e}"),
    }
}

impl ParquetSource {
    fn reader(
        path: &Path,
    ) -> Result<parquet::file::serialized_reader::SerializedFileReader<File>, BatchError> {
        let f = File::open(path).map_err(|e| BatchError::io("cannot open input", path, e))?;
        parquet::file::serialized_reader::SerializedFileReader::new(f)
            .map_err(|e| parquet_err(path, e))
    }

    fn count(path: &Path) -> Result<u64, BatchError> {
        use parquet::file::reader::FileReader;
        Ok(Self::reader(path)?
            .metadata()
            .file_metadata()
            .num_rows()
            .max(0) as u64)
    }

    fn open(path: &Path, wanted: Wanted) -> Result<ParquetSource, BatchError> {
        use parquet::file::reader::FileReader;
        use parquet::schema::types::Type;
        let reader = Self::reader(path)?;
        let schema = reader.metadata().file_metadata().schema();
        let fields = schema.get_fields();
        let header: Vec<String> = fields.iter().map(|f| f.name().to_string()).collect();
        let cols = wanted.resolve(&header, path)?;
        let mut selected = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for c in cols.iter().flatten() {
            if seen.insert(*c) {
                selected.push(fields[*c].clone());
            }
        }
        let proj = Type::group_type_builder(schema.name())
            .with_fields(selected)
            .build()
            .map_err(|e| parquet_err(path, e))?;
        let iter = parquet::record::reader::RowIter::from_file_into(Box::new(reader))
            .project(Some(proj))
            .map_err(|e| parquet_err(path, e))?;
        Ok(ParquetSource {
            iter,
            path: path.to_path_buf(),
            wanted,
            row: 0,
        })
    }
}

fn parquet_cell(f: &parquet::record::Field) -> Option<Cell> {
    use parquet::record::Field;
    match f {
        Field::Null => None,
        Field::Str(s) => Some(Ok(s.clone())),
        Field::Bytes(b) => Some(decode_field(b.data(), InputEncoding::Utf8)),
        other => Some(Ok(other.to_string())),
    }
}

impl RowSource for ParquetSource {
    fn next_row(&mut self) -> Result<Option<RawRow>, BatchError> {
        let Some(r) = self.iter.next() else {
            return Ok(None);
        };
        let r = r.map_err(|e| parquet_err(&self.path, e))?;
        self.row += 1;
        let mut cells: [Option<Cell>; N_SLOTS] = Default::default();
        for (name, field) in r.get_column_iter() {
            for (slot, wanted) in self.wanted.names.iter().enumerate() {
                if wanted.as_deref() == Some(name.as_str()) {
                    cells[slot] = parquet_cell(field);
                }
            }
        }
        Ok(Some(assemble(self.row, None, &self.wanted, cells)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
