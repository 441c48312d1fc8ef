//! Output rows, their encodings in the four formats, and shard merging.
//!
//! CSV cells are written through [`csv_cell`] (OWASP formula-injection protection, see
//! [`touxiang_datasets::csv_safe`]) and read back through [`csv_cell_value`], so every reader of a
//! CSV output or part file gets the original values; XLSX, JSONL and Parquet hold them as is.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use touxiang_datasets::csv_safe;

use crate::error::BatchError;
use crate::options::{suffixed, Format};

/// Output columns, in order (API.md's fixed columns, then `review_id` and `error`).
pub const OUTPUT_COLUMNS: [&str; 14] = [
    "id",
    "code",
    "level",
    "name",
    "confidence",
    "decision",
    "model_version",
    "taxonomy_version",
    "section",
    "division",
    "group",
    "class",
    "review_id",
    "error",
];

/// Most data rows one XLSX sheet can hold (1 048 576 rows less the header).
pub const XLSX_MAX_ROWS: u64 = 1_048_575;

/// One output row. Empty cells are `None`; `error` is set for rows that could not be labeled
/// (they carry no label), `review_id` for rows sent to the review queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputRow {
    pub id: String,
    pub code: Option<String>,
    pub level: Option<String>,
    pub name: Option<String>,
    pub confidence: Option<f32>,
    pub decision: Option<String>,
    pub model_version: String,
    pub taxonomy_version: String,
    pub section: Option<String>,
    pub division: Option<String>,
    pub group: Option<String>,
    pub class: Option<String>,
    pub review_id: Option<String>,
    pub error: Option<String>,
}

impl OutputRow {
    /// Cell texts in [`OUTPUT_COLUMNS`] order (`""` for empty).
    pub fn cells(&self) -> [String; 14] {
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        [
            self.id.clone(),
            o(&self.code),
            o(&self.level),
            o(&self.name),
            self.confidence.map(|c| c.to_string()).unwrap_or_default(),
            o(&self.decision),
            self.model_version.clone(),
            self.taxonomy_version.clone(),
            o(&self.section),
            o(&self.division),
            o(&self.group),
            o(&self.class),
            o(&self.review_id),
            o(&self.error),
        ]
    }

    /// Inverse of [`OutputRow::cells`].
    pub fn from_cells(cells: &[String]) -> Result<OutputRow, String> {
        if cells.len() != OUTPUT_COLUMNS.len() {
            return Err(format!(
                "expected {} columns, found {}",
                OUTPUT_COLUMNS.len(),
                cells.len()
            ));
        }
        let o = |i: usize| (!cells[i].is_empty()).then(|| cells[i].clone());
        let confidence = if cells[4].is_empty() {
            None
        } else {
            Some(
                cells[4]
                    .parse::<f32>()
                    .map_err(|_| format!("confidence {:?} is not a number", cells[4]))?,
            )
        };
        Ok(OutputRow {
            id: cells[0].clone(),
            code: o(1),
            level: o(2),
            name: o(3),
            confidence,
            decision: o(5),
            model_version: cells[6].clone(),
            taxonomy_version: cells[7].clone(),
            section: o(8),
            division: o(9),
            group: o(10),
            class: o(11),
            review_id: o(12),
            error: o(13),
        })
    }
}

/// Append the CSV header line to `buf`.
pub(crate) fn csv_header(buf: &mut Vec<u8>) {
    let mut w = csv::WriterBuilder::new().from_writer(buf);
    w.write_record(OUTPUT_COLUMNS)
        .expect("writing to a Vec cannot fail");
    w.flush().expect("writing to a Vec cannot fail");
}

/// A cell as written to a CSV output: [`csv_safe`] (a formula-like text such as `=1+1` gets a
/// leading `'`; numbers and other text are unchanged), extended to values that already start
/// with `'` in front of such a text (`'=1+1` → `''=1+1`) so that [`csv_cell_value`] restores
/// every value exactly (part files are read back to build XLSX/Parquet outputs and merge shards).
pub(crate) fn csv_cell(cell: &str) -> Cow<'_, str> {
    match csv_safe(cell.trim_start_matches('\'')) {
        Cow::Owned(_) => Cow::Owned(format!("'{cell}")),
        Cow::Borrowed(_) => Cow::Borrowed(cell),
    }
}

/// Inverse of [`csv_cell`]: the value of a cell read from a CSV output.
pub(crate) fn csv_cell_value(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if matches!(csv_safe(rest.trim_start_matches('\'')), Cow::Owned(_)) => rest,
        _ => cell,
    }
}

/// Append rows as CSV lines (no header) to `buf`; every cell goes through [`csv_cell`].
pub(crate) fn encode_csv(rows: &[OutputRow], buf: &mut Vec<u8>) {
    let mut w = csv::WriterBuilder::new().from_writer(buf);
    for r in rows {
        let cells = r.cells();
        let safe: Vec<Cow<'_, str>> = cells.iter().map(|c| csv_cell(c)).collect();
        w.write_record(safe.iter().map(|c| c.as_bytes()))
            .expect("writing to a Vec cannot fail");
    }
    w.flush().expect("writing to a Vec cannot fail");
}

/// Append rows as JSON lines to `buf`.
pub(crate) fn encode_jsonl(rows: &[OutputRow], buf: &mut Vec<u8>) {
    for r in rows {
        serde_json::to_writer(&mut *buf, r).expect("an OutputRow always serialises");
        buf.push(b'\n');
    }
}

fn out_err(path: &Path, e: impl std::fmt::Display) -> BatchError {
    BatchError::Output {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Writers

enum Inner {
    Csv(BufWriter<File>),
    Jsonl(BufWriter<File>),
    Xlsx(Box<rust_xlsxwriter::Workbook>, u32),
    Parquet(Box<ParquetRowWriter>),
}

/// Writes whole output files row by row (used to assemble XLSX/Parquet outputs from the CSV part
/// file and to merge shards). The file appears at `path` (atomic rename) on [`RowWriter::finish`].
pub(crate) struct RowWriter {
    inner: Inner,
    path: PathBuf,
    tmp: PathBuf,
    rows: u64,
}

impl RowWriter {
    pub fn create(path: &Path, format: Format) -> Result<RowWriter, BatchError> {
        let tmp = suffixed(path, ".tmp");
        let open = || {
            File::create(&tmp)
                .map(|f| BufWriter::with_capacity(1 << 16, f))
                .map_err(|e| BatchError::io("cannot create", &tmp, e))
        };
        let inner = match format {
            Format::Csv => {
                let mut w = open()?;
                let mut b = Vec::new();
                csv_header(&mut b);
                w.write_all(&b)
                    .map_err(|e| BatchError::io("cannot write", &tmp, e))?;
                Inner::Csv(w)
            }
            Format::Jsonl => Inner::Jsonl(open()?),
            Format::Xlsx => {
                let mut wb = rust_xlsxwriter::Workbook::new();
                let ws = wb
                    .add_worksheet_with_constant_memory()
                    .map_err(|e| out_err(path, e))?;
                ws.set_name("labels").map_err(|e| out_err(path, e))?;
                for (c, name) in OUTPUT_COLUMNS.iter().enumerate() {
                    ws.write_string(0, c as u16, *name)
                        .map_err(|e| out_err(path, e))?;
                }
                Inner::Xlsx(Box::new(wb), 1)
            }
            Format::Parquet => {
                let f = File::create(&tmp).map_err(|e| BatchError::io("cannot create", &tmp, e))?;
                Inner::Parquet(Box::new(ParquetRowWriter::new(f, path)?))
            }
        };
        Ok(RowWriter {
            inner,
            path: path.to_path_buf(),
            tmp,
            rows: 0,
        })
    }

    pub fn write(&mut self, row: &OutputRow) -> Result<(), BatchError> {
        self.rows += 1;
        let path = &self.path;
        match &mut self.inner {
            Inner::Csv(w) => {
                let mut b = Vec::with_capacity(256);
                encode_csv(std::slice::from_ref(row), &mut b);
                w.write_all(&b)
                    .map_err(|e| BatchError::io("cannot write", &self.tmp, e))
            }
            Inner::Jsonl(w) => {
                let mut b = Vec::with_capacity(256);
                encode_jsonl(std::slice::from_ref(row), &mut b);
                w.write_all(&b)
                    .map_err(|e| BatchError::io("cannot write", &self.tmp, e))
            }
            Inner::Xlsx(wb, next) => {
                if self.rows > XLSX_MAX_ROWS {
                    return Err(out_err(
                        path,
                        format!("an XLSX sheet holds at most {XLSX_MAX_ROWS} data rows; use csv, jsonl or parquet output"),
                    ));
                }
                let ws = wb.worksheet_from_index(0).map_err(|e| out_err(path, e))?;
                for (c, v) in row.cells().iter().enumerate() {
                    if v.is_empty() {
                        continue;
                    }
                    if c == 4 {
                        let n: f64 = v.parse().map_err(|e| out_err(path, e))?;
                        ws.write_number(*next, c as u16, n)
                            .map_err(|e| out_err(path, e))?;
                    } else {
                        ws.write_string(*next, c as u16, v)
                            .map_err(|e| out_err(path, e))?;
                    }
                }
                *next += 1;
                Ok(())
            }
            Inner::Parquet(p) => p.push(row),
        }
    }

    pub fn finish(self) -> Result<u64, BatchError> {
        let path = self.path.clone();
        match self.inner {
            Inner::Csv(mut w) | Inner::Jsonl(mut w) => {
                w.flush()
                    .map_err(|e| BatchError::io("cannot write", &self.tmp, e))?;
                let f = w.into_inner().map_err(|e| out_err(&path, e))?;
                f.sync_all()
                    .map_err(|e| BatchError::io("cannot sync", &self.tmp, e))?;
            }
            Inner::Xlsx(mut wb, _) => {
                wb.save(&self.tmp).map_err(|e| out_err(&path, e))?;
            }
            Inner::Parquet(p) => p.close()?,
        }
        std::fs::rename(&self.tmp, &path)
            .map_err(|e| BatchError::io("cannot rename to", &path, e))?;
        Ok(self.rows)
    }
}

/// Parquet writer: every column optional UTF-8 except `id` (required) and `confidence` (FLOAT).
pub(crate) struct ParquetRowWriter {
    writer: parquet::file::writer::SerializedFileWriter<File>,
    buf: Vec<OutputRow>,
    path: PathBuf,
}

const PARQUET_ROW_GROUP: usize = 65_536;

impl ParquetRowWriter {
    fn new(file: File, path: &Path) -> Result<Self, BatchError> {
        use parquet::basic::Compression;
        use parquet::file::properties::WriterProperties;
        use parquet::schema::parser::parse_message_type;
        let mut schema =
            String::from("message touxiang_batch {\n  REQUIRED BYTE_ARRAY id (UTF8);\n");
        for c in &OUTPUT_COLUMNS[1..] {
            if *c == "confidence" {
                schema.push_str("  OPTIONAL FLOAT confidence;\n");
            } else {
                schema.push_str(&format!("  OPTIONAL BYTE_ARRAY {c} (UTF8);\n"));
            }
        }
        schema.push('}');
        let schema = Arc::new(parse_message_type(&schema).map_err(|e| out_err(path, e))?);
        let props = Arc::new(
            WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .build(),
        );
        let writer = parquet::file::writer::SerializedFileWriter::new(file, schema, props)
            .map_err(|e| out_err(path, e))?;
        Ok(ParquetRowWriter {
            writer,
            buf: Vec::new(),
            path: path.to_path_buf(),
        })
    }

    fn push(&mut self, row: &OutputRow) -> Result<(), BatchError> {
        self.buf.push(row.clone());
        if self.buf.len() >= PARQUET_ROW_GROUP {
            self.flush_group()?;
        }
        Ok(())
    }

    fn flush_group(&mut self) -> Result<(), BatchError> {
        use parquet::data_type::{ByteArray, ByteArrayType, FloatType};
        if self.buf.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let e = |e: parquet::errors::ParquetError| out_err(&path, e);
        let cells: Vec<[String; 14]> = self.buf.iter().map(|r| r.cells()).collect();
        let mut rg = self.writer.next_row_group().map_err(e)?;
        let mut ci = 0;
        while let Some(mut col) = rg.next_column().map_err(e)? {
            if OUTPUT_COLUMNS[ci] == "confidence" {
                let vals: Vec<f32> = self.buf.iter().filter_map(|r| r.confidence).collect();
                let defs: Vec<i16> = self
                    .buf
                    .iter()
                    .map(|r| r.confidence.is_some() as i16)
                    .collect();
                col.typed::<FloatType>()
                    .write_batch(&vals, Some(&defs), None)
                    .map_err(e)?;
            } else {
                let vals: Vec<ByteArray> = cells
                    .iter()
                    .filter(|c| ci == 0 || !c[ci].is_empty())
                    .map(|c| ByteArray::from(c[ci].as_str()))
                    .collect();
                let defs: Vec<i16> = cells.iter().map(|c| (!c[ci].is_empty()) as i16).collect();
                let defs = if ci == 0 { None } else { Some(defs.as_slice()) };
                col.typed::<ByteArrayType>()
                    .write_batch(&vals, defs, None)
                    .map_err(e)?;
            }
            col.close().map_err(e)?;
            ci += 1;
        }
        rg.close().map_err(e)?;
        self.buf.clear();
        Ok(())
    }

    fn close(mut self) -> Result<(), BatchError> {
        self.flush_group()?;
        self.writer.close().map_err(|e| out_err(&self.path, e))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Readers

/// Call `f` for every row of an output file written by this crate, in order. Streams CSV, JSONL
/// and Parquet; an XLSX output is loaded whole (calamine).
pub fn for_each_output_row(
    path: &Path,
    format: Format,
    mut f: impl FnMut(OutputRow) -> Result<(), BatchError>,
) -> Result<u64, BatchError> {
    let bad = |row: u64, m: String| BatchError::Input {
        path: path.to_path_buf(),
        message: format!("output row {row}: {m}"),
    };
    let mut n = 0u64;
    match format {
        Format::Csv => {
            let mut r = csv::ReaderBuilder::new()
                .has_headers(true)
                .from_path(path)
                .map_err(|e| bad(0, e.to_string()))?;
            let header: Vec<String> = r
                .headers()
                .map_err(|e| bad(0, e.to_string()))?
                .iter()
                .map(String::from)
                .collect();
            if header != OUTPUT_COLUMNS {
                return Err(bad(0, format!("unexpected header {header:?}")));
            }
            for rec in r.records() {
                n += 1;
                let rec = rec.map_err(|e| bad(n, e.to_string()))?;
                let cells: Vec<String> =
                    rec.iter().map(|c| csv_cell_value(c).to_string()).collect();
                f(OutputRow::from_cells(&cells).map_err(|m| bad(n, m))?)?;
            }
        }
        Format::Jsonl => {
            let file = File::open(path).map_err(|e| BatchError::io("cannot open", path, e))?;
            for line in BufReader::new(file).lines() {
                let line = line.map_err(|e| BatchError::io("cannot read", path, e))?;
                if line.trim().is_empty() {
                    continue;
                }
                n += 1;
                f(serde_json::from_str(&line).map_err(|e| bad(n, e.to_string()))?)?;
            }
        }
        Format::Xlsx => {
            use calamine::{open_workbook, Reader, Xlsx};
            let mut wb: Xlsx<_> =
                open_workbook(path).map_err(|e: calamine::XlsxError| bad(0, e.to_string()))?;
            let range = wb
                .worksheet_range_at(0)
                .ok_or_else(|| bad(0, "no sheet".into()))?
                .map_err(|e| bad(0, e.to_string()))?;
            for (i, r) in range.rows().enumerate() {
                let cells: Vec<String> = (0..OUTPUT_COLUMNS.len())
                    .map(|c| r.get(c).map(|d| d.to_string()).unwrap_or_default())
                    .collect();
                if i == 0 {
                    if cells != OUTPUT_COLUMNS {
                        return Err(bad(0, format!("unexpected header {cells:?}")));
                    }
                    continue;
                }
                n += 1;
                f(OutputRow::from_cells(&cells).map_err(|m| bad(n, m))?)?;
            }
        }
        Format::Parquet => {
            use parquet::record::Field;
            let file = File::open(path).map_err(|e| BatchError::io("cannot open", path, e))?;
            let reader = parquet::file::serialized_reader::SerializedFileReader::new(file)
                .map_err(|e| bad(0, e.to_string()))?;
            for row in parquet::record::reader::RowIter::from_file_into(Box::new(reader)) {
                n += 1;
                let row = row.map_err(|e| bad(n, e.to_string()))?;
                let mut cells = vec![String::new(); OUTPUT_COLUMNS.len()];
                for (name, v) in row.get_column_iter() {
                    let Some(i) = OUTPUT_COLUMNS.iter().position(|c| c == name) else {
                        continue;
                    };
                    cells[i] = match v {
                        Field::Null => String::new(),
                        Field::Str(s) => s.clone(),
                        Field::Float(x) => x.to_string(),
                        other => other.to_string(),
                    };
                }
                f(OutputRow::from_cells(&cells).map_err(|m| bad(n, m))?)?;
            }
        }
    }
    Ok(n)
}

/// All rows of an output file (convenience for tests and small files).
pub fn read_output(path: &Path, format: Format) -> Result<Vec<OutputRow>, BatchError> {
    let mut v = Vec::new();
    for_each_output_row(path, format, |r| {
        v.push(r);
        Ok(())
    })?;
    Ok(v)
}

/// Concatenate shard outputs (in shard order) into one output with every row once, in input
/// order. The byte-level rule for the streaming formats, which this function applies:
/// JSONL = plain concatenation; CSV = the first file whole, then each further file without its
/// first line (the header, which never spans lines). XLSX/Parquet are re-encoded row by row.
/// Returns the number of data rows written.
pub fn merge_shards(parts: &[PathBuf], output: &Path, format: Format) -> Result<u64, BatchError> {
    let mut w = RowWriter::create(output, format)?;
    for p in parts {
        let pf = Format::from_path(p).unwrap_or(format);
        for_each_output_row(p, pf, |r| w.write(&r))?;
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, error: Option<&str>) -> OutputRow {
        OutputRow {
            id: id.to_string(),
            code: Some("3120".into()),
            level: Some("class".into()),
            name: Some("@SUM(A1)".into()),
            confidence: Some(0.5),
            decision: Some("auto".into()),
            model_version: "m".into(),
            taxonomy_version: "t".into(),
            section: Some("C".into()),
            division: Some("31".into()),
            group: Some("312".into()),
            class: Some("3120".into()),
            review_id: None,
            error: error.map(String::from),
        }
    }

    #[test]
    fn csv_cells_neutralise_formulas_and_round_trip() {
        for (value, written) in [
            ("=1+1", "'=1+1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tfoo", "'\tfoo"),
            ("-12.5", "-12.5"),
            ("'=1+1", "''=1+1"),
            ("''@x", "'''@x"),
            ("'abc", "'abc"),
            ("'", "'"),
            ("", ""),
            ("采购热轧钢卷", "采购热轧钢卷"),
        ] {
            assert_eq!(csv_cell(value), written, "{value:?}");
            assert_eq!(csv_cell_value(written), value, "{written:?}");
        }
    }

    #[test]
    fn csv_output_neutralises_formula_cells_and_reads_back_the_values() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("out.csv");
        let rows = vec![
            row("=1+1", None),
            row("-12.5", Some("=HYPERLINK(\"http://x\",\"y\")")),
            row("'=1+1", None),
        ];
        let mut w = RowWriter::create(&path, Format::Csv).unwrap();
        for r in &rows {
            w.write(r).unwrap();
        }
        assert_eq!(w.finish().unwrap(), 3);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].starts_with("'=1+1,3120,class,'@SUM(A1),0.5,"),
            "{text}"
        );
        assert!(lines[2].starts_with("-12.5,3120,"), "{text}");
        assert!(
            lines[2].ends_with(",\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""),
            "{text}"
        );
        assert!(lines[3].starts_with("''=1+1,"), "{text}");
        // Readers (XLSX/Parquet assembly, shard merges) get the original values back.
        assert_eq!(read_output(&path, Format::Csv).unwrap(), rows);
    }
}
