//! A `touxiang-tabular` row source seen as [`RawRow`]s: the wanted columns of each row, with
//! undecodable cells and broken records turned into the row's problem or warnings.

use std::fs::File;
use std::path::{Path, PathBuf};

use touxiang_tabular::{self as tabular, IssueKind, Problem};

use super::{assemble, Cell, RawRow, RowSource, Wanted, N_SLOTS};
use crate::error::BatchError;
use crate::options::{BatchOptions, Format, InputEncoding};

pub(super) fn input_error(path: &Path, e: tabular::TabularError) -> BatchError {
    match e {
        tabular::TabularError::Io(e) => BatchError::io("cannot read input", path, e),
        other => BatchError::Input {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    }
}

pub(super) struct Source {
    inner: Box<dyn tabular::RowSource + Send>,
    path: PathBuf,
    wanted: Wanted,
    cols: [Option<usize>; N_SLOTS],
    row: tabular::Row,
}

impl Source {
    pub(super) fn open(opts: &BatchOptions) -> Result<Source, BatchError> {
        let wanted = Wanted::from_options(opts);
        let path = opts.input.as_path();
        let names: Vec<&str> = wanted.names.iter().flatten().map(String::as_str).collect();
        let topts = tabular::Options {
            encoding: match opts.input_encoding {
                InputEncoding::Utf8 => tabular::Encoding::Utf8,
                InputEncoding::Gb18030 => tabular::Encoding::Gb18030,
            },
            sheet: opts.sheet.as_deref(),
            columns: Some(&names),
        };
        let format = match opts.resolved_input_format()? {
            Format::Csv => tabular::Format::Csv,
            Format::Jsonl => tabular::Format::Jsonl,
            Format::Xlsx => tabular::Format::Xlsx,
            Format::Parquet => tabular::Format::Parquet,
        };
        let opened = match format {
            tabular::Format::Csv | tabular::Format::Jsonl => {
                let f =
                    File::open(path).map_err(|e| BatchError::io("cannot open input", path, e))?;
                tabular::open_reader(tabular::buffered(f), format, &topts)
            }
            _ => tabular::open_file(path, format, &topts),
        };
        let mut inner = opened.map_err(|e| match e {
            tabular::TabularError::Io(e) => BatchError::io("cannot open input", path, e),
            other => input_error(path, other),
        })?;
        // JSONL has no header beyond the first object's keys: a wanted key may come later.
        if format == tabular::Format::Jsonl {
            inner.add_columns(&names);
        }
        let cols = wanted.resolve(inner.headers(), path)?;
        Ok(Source {
            inner,
            path: path.to_path_buf(),
            wanted,
            cols,
            row: tabular::Row::default(),
        })
    }

    /// The cell of column `col`: absent, its text, or (lossy text, reason) when it has an issue.
    fn cell(&self, col: usize) -> Option<Cell> {
        let text = self.row.cells.get(col)?.as_ref()?;
        Some(match self.row.issue(col) {
            None => Ok(text.clone()),
            // A spreadsheet error value has no text worth keeping.
            Some(i) if i.kind == IssueKind::CellError => Err((String::new(), i.reason.clone())),
            Some(i) => Err((text.clone(), i.reason.clone())),
        })
    }
}

impl RowSource for Source {
    fn next_row(&mut self) -> Result<Option<RawRow>, BatchError> {
        let more = self
            .inner
            .next_row(&mut self.row)
            .map_err(|e| input_error(&self.path, e))?;
        if !more {
            return Ok(None);
        }
        let (row, line) = (self.row.row, self.row.line);
        let broken = |id: String, p: &Problem| RawRow {
            row,
            line,
            id,
            text: String::new(),
            old_code: None,
            balance: None,
            problem: Some(("record".into(), p.to_string())),
            warnings: Vec::new(),
        };
        match &self.row.problem {
            // Best-effort id: the id column of the broken line if it parses that far.
            Some(p @ (Problem::UnterminatedQuote | Problem::MalformedQuote)) => {
                let id = self.cols[0]
                    .and_then(|c| self.row.cells.get(c)?.as_deref())
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default();
                return Ok(Some(broken(id, p)));
            }
            Some(
                p @ (Problem::Undecodable(_) | Problem::InvalidJson(_) | Problem::NotAnObject),
            ) => {
                return Ok(Some(broken(String::new(), p)));
            }
            Some(Problem::FieldCount { .. }) | None => {}
        }
        let mut cells: [Option<Cell>; N_SLOTS] = Default::default();
        for (slot, col) in self.cols.iter().enumerate() {
            if let Some(c) = col {
                cells[slot] = self.cell(*c);
            }
        }
        let mut out = assemble(row, line, &self.wanted, cells);
        if let Some(p @ Problem::FieldCount { .. }) = &self.row.problem {
            out.problem = Some(("record".into(), p.to_string()));
        }
        Ok(Some(out))
    }
}
