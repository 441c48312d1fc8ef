//! Small helpers shared by the taxonomy and region CSV loaders.

use crate::DatasetError;
use std::collections::HashMap;
use std::io::Read;

/// A parsed CSV: lower-cased header names → column index, and rows with their line numbers.
pub(crate) struct Table {
    columns: HashMap<String, usize>,
    pub rows: Vec<(u64, csv::StringRecord)>,
}

impl Table {
    pub fn read<R: Read>(r: R) -> Result<Table, DatasetError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .from_reader(r);
        let headers = reader.headers().map_err(DatasetError::from_csv)?.clone();
        let mut columns = HashMap::new();
        for (i, h) in headers.iter().enumerate() {
            let h = h.trim_start_matches('\u{feff}').trim().to_ascii_lowercase();
            columns.entry(h).or_insert(i);
        }
        let mut rows = Vec::new();
        for rec in reader.records() {
            let rec = rec.map_err(DatasetError::from_csv)?;
            let line = rec.position().map(|p| p.line()).unwrap_or(0);
            // Skip fully blank lines (e.g. a trailing line with only commas).
            if rec.iter().all(|f| f.is_empty()) {
                continue;
            }
            rows.push((line, rec));
        }
        Ok(Table { columns, rows })
    }

    pub fn require(&self, column: &str) -> Result<usize, DatasetError> {
        self.columns
            .get(column)
            .copied()
            .ok_or_else(|| DatasetError::MissingColumn {
                column: column.to_string(),
            })
    }

    pub fn optional(&self, column: &str) -> Option<usize> {
        self.columns.get(column).copied()
    }
}

/// Field `idx` of `rec`, trimmed; empty when the index is out of range.
pub(crate) fn field(rec: &csv::StringRecord, idx: usize) -> &str {
    rec.get(idx).unwrap_or("").trim()
}

/// Field that must be non-empty.
pub(crate) fn required<'a>(
    rec: &'a csv::StringRecord,
    idx: usize,
    line: u64,
    name: &str,
) -> Result<&'a str, DatasetError> {
    let v = field(rec, idx);
    if v.is_empty() {
        Err(DatasetError::EmptyField {
            line,
            field: name.to_string(),
        })
    } else {
        Ok(v)
    }
}

/// Depth of every node given parent indices; detects cycles.
///
/// `parents[i]` is the index of node i's parent. Returns the depth of each node (0 = root), or a
/// [`DatasetError::Cycle`] listing the codes on the first cycle found (in parent order).
pub(crate) fn depths(
    parents: &[Option<usize>],
    codes: &[String],
) -> Result<Vec<usize>, DatasetError> {
    const UNSEEN: usize = usize::MAX;
    const ON_STACK: usize = usize::MAX - 1;
    let n = parents.len();
    let mut depth = vec![UNSEEN; n];
    let mut stack: Vec<usize> = Vec::new();
    for start in 0..n {
        if depth[start] != UNSEEN {
            continue;
        }
        // Walk up until a node of known depth, a root, or a node already on this walk.
        stack.clear();
        let mut cur = start;
        let base = loop {
            match depth[cur] {
                ON_STACK => {
                    let pos = stack.iter().position(|&x| x == cur).unwrap_or(0);
                    let cycle: Vec<String> =
                        stack[pos..].iter().map(|&i| codes[i].clone()).collect();
                    return Err(DatasetError::Cycle { codes: cycle });
                }
                UNSEEN => {
                    depth[cur] = ON_STACK;
                    stack.push(cur);
                    match parents[cur] {
                        Some(p) => cur = p,
                        None => break None,
                    }
                }
                d => break Some(d),
            }
        };
        // `stack` holds the walk from `start` upwards; its last element is a root (base None) or
        // the child of a node of known depth `base`.
        let first = base.map_or(0, |b| b + 1);
        for (d, &i) in (first..).zip(stack.iter().rev()) {
            depth[i] = d;
        }
    }
    Ok(depth)
}
