//! The local SQLite files of this crate are opened with an integrity check
//! ([`touxiang_sqlite::open_store`]): an existing file that is empty, corrupt or without its
//! tables is refused ([`crate::VectorError::Store`]) instead of becoming an empty store.

use std::path::Path;

use rusqlite::Connection;
use touxiang_sqlite::StoreSchema;

use crate::Result;

/// `DIR/vectors.sqlite` of the embedded store.
pub(crate) const EMBEDDED: StoreSchema = StoreSchema {
    store: "exemplar store",
    tables: &["meta", "points"],
    migrations: &[
        "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
          CREATE TABLE IF NOT EXISTS points(
              id TEXT PRIMARY KEY,
              vector BLOB NOT NULL,
              payload TEXT NOT NULL);",
    ],
};

/// `DIR/outbox.sqlite` of the resilient wrapper: queued writes and dead letters.
pub(crate) const OUTBOX: StoreSchema = StoreSchema {
    store: "vector write outbox",
    tables: &["ops", "dead_letters"],
    migrations: &["CREATE TABLE IF NOT EXISTS ops(
              seq INTEGER PRIMARY KEY AUTOINCREMENT,
              body TEXT NOT NULL,
              enqueued_at TEXT NOT NULL);
          CREATE TABLE IF NOT EXISTS dead_letters(
              seq INTEGER PRIMARY KEY,
              body TEXT NOT NULL,
              error TEXT NOT NULL,
              failed_at TEXT NOT NULL);"],
};

/// Open (creating it only when the file does not exist) and check a store file.
pub(crate) fn open(path: &Path, schema: &StoreSchema) -> Result<Connection> {
    Ok(touxiang_sqlite::open_store(path, schema)?)
}

/// Check the store files in `dir` (`vectors.sqlite`, `outbox.sqlite`) as the stores' `open`
/// does (integrity, tables) without loading them, e.g. before a server starts. A file that does
/// not exist passes, and nothing is created.
pub fn check_store_files(dir: &Path) -> Result<()> {
    for (name, schema) in [("vectors.sqlite", &EMBEDDED), ("outbox.sqlite", &OUTBOX)] {
        let path = dir.join(name);
        if path.exists() {
            open(&path, schema)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both files at schema version 1 open under the current code and keep their rows.
    #[test]
    fn version_1_stores_open() {
        let d = tempfile::tempdir().unwrap();
        for (name, schema, insert) in [
            (
                "vectors.sqlite",
                &EMBEDDED,
                "INSERT INTO points VALUES ('p1', x'00', '{}')",
            ),
            (
                "outbox.sqlite",
                &OUTBOX,
                "INSERT INTO ops (body, enqueued_at) VALUES ('{}', 'now')",
            ),
        ] {
            let p = d.path().join(name);
            touxiang_sqlite::create_store_at_version(&p, schema, 1).unwrap();
            Connection::open(&p).unwrap().execute(insert, []).unwrap();
        }
        check_store_files(d.path()).unwrap();
        let points: i64 = open(&d.path().join("vectors.sqlite"), &EMBEDDED)
            .unwrap()
            .query_row("SELECT count(*) FROM points", [], |r| r.get(0))
            .unwrap();
        assert_eq!(points, 1);
        let ops: i64 = open(&d.path().join("outbox.sqlite"), &OUTBOX)
            .unwrap()
            .query_row("SELECT count(*) FROM ops", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ops, 1);
    }
}
