//! The XLSX reader: calamine streams the sheet's cells on a helper thread over a bounded channel.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};

use super::{assemble, Cell, RawRow, RowSource, Wanted, N_SLOTS};
use crate::error::BatchError;

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
    pub(super) fn open(
        path: &Path,
        sheet: Option<String>,
        wanted: Wanted,
    ) -> Result<XlsxSource, BatchError> {
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
