//! Parquet: records read row by row (memory: one row group), optionally only some columns.

use std::fs::File;
use std::path::Path;

use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::SerializedFileReader;

use crate::lines::decode_cell;
use crate::{Encoding, Result, Row, RowSource, TabularError};

fn parquet_err(e: impl std::fmt::Display) -> TabularError {
    TabularError::Parquet(e.to_string())
}

fn reader(path: &Path) -> Result<SerializedFileReader<File>> {
    SerializedFileReader::new(File::open(path)?).map_err(parquet_err)
}

pub(crate) fn row_count(path: &Path) -> Result<u64> {
    Ok(reader(path)?.metadata().file_metadata().num_rows().max(0) as u64)
}

/// Rows of a Parquet file.
pub struct ParquetSource {
    iter: parquet::record::reader::RowIter<'static>,
    headers: Vec<String>,
    row: u64,
}

impl ParquetSource {
    /// Open a file; with `columns`, read only those of them that are in the schema (the header
    /// is still every top-level column; the others are absent in every row).
    pub fn open(path: &Path, columns: Option<&[&str]>) -> Result<Self> {
        use parquet::schema::types::Type;
        let reader = reader(path)?;
        let schema = reader.metadata().file_metadata().schema();
        let fields = schema.get_fields();
        let headers: Vec<String> = fields.iter().map(|f| f.name().to_string()).collect();
        let proj = match columns {
            None => None,
            Some(names) => {
                let selected = fields
                    .iter()
                    .filter(|f| names.contains(&f.name()))
                    .cloned()
                    .collect();
                Some(
                    Type::group_type_builder(schema.name())
                        .with_fields(selected)
                        .build()
                        .map_err(parquet_err)?,
                )
            }
        };
        let iter = parquet::record::reader::RowIter::from_file_into(Box::new(reader))
            .project(proj)
            .map_err(parquet_err)?;
        Ok(ParquetSource {
            iter,
            headers,
            row: 0,
        })
    }
}

impl RowSource for ParquetSource {
    fn headers(&self) -> &[String] {
        &self.headers
    }

    fn next_row(&mut self, row: &mut Row) -> Result<bool> {
        use parquet::record::Field;
        let Some(r) = self.iter.next() else {
            return Ok(false);
        };
        let r = r.map_err(parquet_err)?;
        self.row += 1;
        row.reset(self.headers.len());
        row.row = self.row;
        for (name, field) in r.get_column_iter() {
            let Some(col) = self.headers.iter().position(|h| h == name) else {
                continue;
            };
            row.cells[col] = match field {
                Field::Null => None,
                Field::Str(s) => Some(s.clone()),
                Field::Bytes(b) => {
                    Some(decode_cell(b.data(), Encoding::Utf8, col, &mut row.issues))
                }
                other => Some(other.to_string()),
            };
        }
        Ok(true)
    }
}
