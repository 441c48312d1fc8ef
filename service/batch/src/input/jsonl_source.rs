//! The JSONL reader: one JSON object per line, bad lines reported per row.

use std::path::Path;

use super::lines::{decode_field, is_blank, Lines};
use super::{assemble, Cell, RawRow, RowSource, Wanted, N_SLOTS};
use crate::error::BatchError;
use crate::options::InputEncoding;

pub(crate) struct JsonlSource {
    lines: Lines,
    wanted: Wanted,
    row: u64,
}

impl JsonlSource {
    pub(super) fn open(
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
