//! Persistence of the embedded store: opening `vectors.sqlite` and loading it into memory.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::mem::Mem;
use crate::{Payload, Result, VectorError};

pub(super) fn open_db(path: &Path, dim: usize) -> Result<Connection> {
    // refuses an existing file that is empty, corrupt or without the tables (crate::integrity)
    let conn = crate::integrity::open(path, &crate::integrity::EMBEDDED)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let stored: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'dim'", [], |r| r.get(0))
        .optional()?;
    match stored {
        None => {
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('dim', ?1)",
                params![dim.to_string()],
            )?;
        }
        Some(s) if s == dim.to_string() => {}
        Some(s) => {
            return Err(VectorError::invalid(
                "dim",
                format!(
                    "configured {dim} but the store at {} holds dimension {s}",
                    path.display()
                ),
            ))
        }
    }
    Ok(conn)
}

pub(super) fn load(conn: &Connection, dim: usize) -> Result<Mem> {
    let mut mem = Mem::new(dim);
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM points", [], |r| r.get(0))?;
    mem.vectors.reserve(n as usize * dim);
    mem.scales.reserve(n as usize);
    if let Some(codes) = &mut mem.codes {
        codes.reserve(n as usize);
    }
    let mut stmt = conn.prepare("SELECT id, vector, payload FROM points ORDER BY rowid")?;
    let mut rows = stmt.query([])?;
    let mut v = Vec::with_capacity(dim);
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        let blob = row.get_ref(1)?.as_blob()?;
        if blob.len() != dim * 4 {
            return Err(VectorError::Corrupt(format!(
                "point {id}: vector has {} bytes, expected {}",
                blob.len(),
                dim * 4
            )));
        }
        v.clear();
        v.extend(
            blob.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        let payload: Payload = serde_json::from_str(row.get_ref(2)?.as_str()?)
            .map_err(|e| VectorError::Corrupt(format!("point {id}: payload: {e}")))?;
        mem.push(id, &v, payload);
    }
    Ok(mem)
}

pub(super) fn encode_vec(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
