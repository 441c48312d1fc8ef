//! The Parquet reader: a projection of the wanted columns, read row by row.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::lines::decode_field;
use super::{assemble, Cell, RawRow, RowSource, Wanted, N_SLOTS};
use crate::error::BatchError;
use crate::options::InputEncoding;

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

    pub(super) fn count(path: &Path) -> Result<u64, BatchError> {
        use parquet::file::reader::FileReader;
        Ok(Self::reader(path)?
            .metadata()
            .file_metadata()
            .num_rows()
            .max(0) as u64)
    }

    pub(super) fn open(path: &Path, wanted: Wanted) -> Result<ParquetSource, BatchError> {
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
