//! Opening touxiang's SQLite stores with an integrity check.
//!
//! Every store (API keys, review queue, portfolios, the exemplar store and its outbox, the batch
//! label cache and review keys) is opened through [`open_store`], which refuses a damaged file
//! instead of starting empty over it:
//!
//! * a file that does not exist is created fresh: built under a temporary name (WAL mode,
//!   schema, `PRAGMA user_version`) and linked into place complete, so no process ever sees a
//!   half-created store;
//! * a file that exists but is empty (0 bytes), is not a database, fails `PRAGMA quick_check`,
//!   holds none of the store's tables, or lacks a table of the schema version stamped in it, is
//!   refused with [`StoreError::Damaged`], which names the file and the way back (restore a
//!   backup, or move the file away to start empty);
//! * a store written before schema versions were stamped (`user_version` 0) that holds the
//!   store's tables is accepted, completed and stamped with the current version;
//! * a store stamped with a newer version than this build knows is refused
//!   ([`StoreError::TooNew`]).
//!
//! `quick_check` reads every page of the file once, so opening costs about one sequential read
//! of the store.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

/// What an operator does about a damaged store (part of [`StoreError::Damaged`]'s message).
pub const RECOVERY: &str = "restore it from a backup with `touxiang restore --from BACKUP_DIR \
    --force` (service stopped), or move it away together with its -wal and -shm files to start \
    with an empty store";

/// How long the check waits for another process's lock (e.g. a checkpoint) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// At most this many `quick_check` findings are quoted in the error.
const MAX_FINDINGS: usize = 3;

/// The shape of one store.
#[derive(Debug, Clone, Copy)]
pub struct StoreSchema {
    /// What the store is, for messages ("review store").
    pub store: &'static str,
    /// Tables every version of the store has had; a stamped store must hold all of them, and
    /// a file holding none of them is not (any longer) this store.
    pub tables: &'static [&'static str],
    /// Idempotent DDL (`CREATE … IF NOT EXISTS`) creating the current schema; run at every open.
    pub ddl: &'static str,
    /// Current schema version, stamped into `PRAGMA user_version` (≥ 1).
    pub version: i32,
}

/// Why a store could not be opened. Every message names the store's file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file exists but is empty, corrupt or not this store: refused, nothing was changed.
    #[error("{store} {} is damaged: {problem}. Refusing to open it: {}", .path.display(), RECOVERY)]
    Damaged {
        /// What the store is.
        store: &'static str,
        /// The database file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The file was written by a newer touxiang (higher schema version).
    #[error(
        "{store} {} has schema version {found}, newer than this touxiang supports ({supported}): \
         run the newer touxiang, or restore a backup written by this version",
        .path.display()
    )]
    TooNew {
        /// What the store is.
        store: &'static str,
        /// The database file.
        path: PathBuf,
        /// Version stamped in the file.
        found: i32,
        /// Version this build writes.
        supported: i32,
    },
    /// SQLite failed for another reason (locked, read-only, disk full, …).
    #[error("{store} {}: {error}", .path.display())]
    Sqlite {
        /// What the store is.
        store: &'static str,
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        error: rusqlite::Error,
    },
    /// The file system failed.
    #[error("{store} {}: {error}", .path.display())]
    Io {
        /// What the store is.
        store: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
}

impl StoreError {
    /// True when the file is damaged (as opposed to a locked, unreadable or newer store).
    pub fn is_damaged(&self) -> bool {
        matches!(self, StoreError::Damaged { .. })
    }

    /// The database file concerned.
    pub fn path(&self) -> &Path {
        match self {
            StoreError::Damaged { path, .. }
            | StoreError::TooNew { path, .. }
            | StoreError::Sqlite { path, .. }
            | StoreError::Io { path, .. } => path,
        }
    }
}

/// Errors of one open, bound to its store and file.
struct Ctx<'a> {
    schema: &'a StoreSchema,
    path: &'a Path,
}

impl Ctx<'_> {
    fn damaged(&self, problem: impl Into<String>) -> StoreError {
        StoreError::Damaged {
            store: self.schema.store,
            path: self.path.to_path_buf(),
            problem: problem.into(),
        }
    }

    fn io(&self, path: &Path, error: std::io::Error) -> StoreError {
        StoreError::Io {
            store: self.schema.store,
            path: path.to_path_buf(),
            error,
        }
    }

    /// A SQLite error: corruption and "not a database" are damage, the rest is not.
    fn sql(&self, error: rusqlite::Error) -> StoreError {
        match error.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                self.damaged(error.to_string())
            }
            _ => StoreError::Sqlite {
                store: self.schema.store,
                path: self.path.to_path_buf(),
                error,
            },
        }
    }
}

/// Open the store at `path` with the checks described in the crate docs, creating it when the
/// file does not exist. The connection has a 30 s busy timeout; callers set their own pragmas.
pub fn open_store(path: &Path, schema: &StoreSchema) -> Result<Connection, StoreError> {
    let cx = Ctx { schema, path };
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => {
            return Err(cx.io(
                path,
                std::io::Error::other("exists but is not a regular file"),
            ))
        }
        Ok(m) if m.len() == 0 => {
            return Err(cx.damaged("the file is empty (0 bytes), the data it held is gone"))
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // SQLite would replay a leftover write-ahead log into the new file
            let wal = suffixed(path, "-wal");
            if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
                return Err(cx.damaged(format!(
                    "the file is missing but its write-ahead log {} is still there (the \
                     store's latest changes without the store)",
                    wal.display()
                )));
            }
            create(&cx)?
        }
        Err(e) => return Err(cx.io(path, e)),
    }
    // No CREATE flag: a file removed since the check above is an error, not a new empty store.
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| cx.sql(e))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| cx.sql(e))?;
    quick_check(&cx, &conn)?;
    check_schema(&cx, &mut conn)?;
    Ok(conn)
}

/// `PRAGMA quick_check` must answer the single row "ok".
fn quick_check(cx: &Ctx<'_>, conn: &Connection) -> Result<(), StoreError> {
    let rows: Vec<String> = conn
        .prepare("PRAGMA quick_check")
        .and_then(|mut st| {
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<_>>()
        })
        .map_err(|e| cx.sql(e))?;
    if rows.len() == 1 && rows[0] == "ok" {
        return Ok(());
    }
    let mut quoted: Vec<&str> = rows.iter().take(MAX_FINDINGS).map(String::as_str).collect();
    if rows.len() > MAX_FINDINGS {
        quoted.push("…");
    }
    Err(cx.damaged(format!(
        "PRAGMA quick_check reports {} problem(s): {}",
        rows.len(),
        quoted.join("; ")
    )))
}

/// The expected tables exist; an unversioned store with them is stamped.
fn check_schema(cx: &Ctx<'_>, conn: &mut Connection) -> Result<(), StoreError> {
    let s = cx.schema;
    let version: i32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| cx.sql(e))?;
    if version > s.version {
        return Err(StoreError::TooNew {
            store: s.store,
            path: cx.path.to_path_buf(),
            found: version,
            supported: s.version,
        });
    }
    let present: HashSet<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut st| {
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<_>>()
        })
        .map_err(|e| cx.sql(e))?;
    let missing: Vec<&str> = s
        .tables
        .iter()
        .copied()
        .filter(|t| !present.contains(*t))
        .collect();
    if missing.len() == s.tables.len() {
        return Err(cx.damaged(if present.is_empty() {
            "it holds no tables (a store file that existed but lost its contents)".to_string()
        } else {
            format!(
                "it holds none of the {}'s tables ({}): not this store, or its contents are gone",
                s.store,
                s.tables.join(", ")
            )
        }));
    }
    if version > 0 && !missing.is_empty() {
        return Err(cx.damaged(format!(
            "tables {} of its schema version {version} are missing",
            missing.join(", ")
        )));
    }
    if version < s.version {
        // Written before versions were stamped (or by an older schema): complete and stamp it.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| cx.sql(e))?;
        tx.execute_batch(s.ddl).map_err(|e| cx.sql(e))?;
        tx.pragma_update(None, "user_version", s.version)
            .map_err(|e| cx.sql(e))?;
        tx.commit().map_err(|e| cx.sql(e))?;
    } else {
        conn.execute_batch(s.ddl).map_err(|e| cx.sql(e))?;
    }
    Ok(())
}

/// Create the store under a temporary name and link it into place complete. When another
/// process creates it first, its store is kept (and opened by the caller).
fn create(cx: &Ctx<'_>) -> Result<(), StoreError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let path = cx.path;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "store".into());
    let tmp = dir.join(format!(
        ".{name}.new-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let built = build(&tmp, cx.schema);
    let placed = built.map_err(|e| cx.sql(e)).and_then(|()| {
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(()),
            // another process created the store meanwhile: use theirs
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            // a file system without hard links
            Err(_) if !path.exists() => std::fs::rename(&tmp, path).map_err(|e| cx.io(path, e)),
            Err(_) => Ok(()),
        }
    });
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(suffixed(&tmp, suffix));
    }
    placed?;
    // Make the new directory entry durable (best effort): a store that vanished after a crash
    // would be created empty again, silently.
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `path` with `suffix` appended to its file name (`x.sqlite` → `x.sqlite-wal`).
fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_os_string();
    p.push(suffix);
    PathBuf::from(p)
}

fn build(tmp: &Path, s: &StoreSchema) -> rusqlite::Result<()> {
    let mut conn = Connection::open(tmp)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(s.ddl)?;
    tx.pragma_update(None, "user_version", s.version)?;
    tx.commit()?;
    // Closing the only connection checkpoints the WAL into the file and removes it.
    conn.close().map_err(|(_, e)| e)
}

#[cfg(test)]
mod tests;
