//! Opening touxiang's SQLite stores with an integrity check and ordered schema migrations.
//!
//! Every store (API keys, review queue, portfolios, the exemplar store and its outbox, the batch
//! label cache and review keys) is opened through [`open_store`], which refuses a damaged file
//! instead of starting empty over it:
//!
//! * a file that does not exist is created fresh: built under a temporary name (WAL mode,
//!   every migration step, `PRAGMA user_version`) and linked into place complete, so no process
//!   ever sees a half-created store;
//! * a file that exists but is empty (0 bytes), is not a database, fails `PRAGMA quick_check`,
//!   holds none of the store's tables, or lacks a table of the schema version stamped in it, is
//!   refused with [`StoreError::Damaged`], which names the file and the way back (restore a
//!   backup, or move the file away to start empty);
//! * a store written before schema versions were stamped (`user_version` 0) that holds the
//!   store's tables is accepted, completed and stamped with the current version;
//! * a store stamped with an older version is brought up to date: the steps it lacks run in
//!   order in one transaction, which also stamps the new version, so a failing step leaves the
//!   file as it was ([`StoreError::Migration`]);
//! * a store stamped with a newer version than this build knows is refused
//!   ([`StoreError::TooNew`]).
//!
//! `quick_check` reads every page of the file once, so opening costs about one sequential read
//! of the store.
//!
//! # Schema versions and migrations
//!
//! A store's schema is a list of migration steps ([`StoreSchema::migrations`]), applied with
//! [`rusqlite_migration`]: step 1 creates the first schema, each later step changes the one
//! before, and the schema version stamped in `PRAGMA user_version` is the number of steps a file
//! has had. **To add a migration**, append one SQL step to the store's list (`ALTER TABLE … ADD
//! COLUMN …`, `CREATE INDEX IF NOT EXISTS …`, a new table, a data fix); never edit, reorder or
//! remove a step that has shipped, since files in the field are at its version. Step 1 must stay
//! idempotent (`CREATE … IF NOT EXISTS`): it also completes a legacy unversioned store. A file at
//! version *n* gets steps *n*+1… at its next open, in one `BEGIN IMMEDIATE` transaction (another
//! process opening the same file meanwhile waits, then finds it up to date). A newer version is
//! refused by older builds, so going back to the previous release after a step was added means
//! restoring a backup. With the step, add a test that a file at the version before it (built with
//! [`create_store_at_version`]) opens under the new code and keeps its rows. [`StoreSchema::tables`]
//! lists only tables every version has had: a table added by a later step is not listed.
//!
//! The stores:
//!
//! | store | file (in the data dir) | schema constant | version |
//! |---|---|---|---|
//! | auth key store | `auth.sqlite` | `touxiang-auth` `keys::STORE_SCHEMA` | 1 |
//! | review store | `review.sqlite` | `touxiang-review` `integrity::STORE_SCHEMA` | 1 |
//! | portfolio store | `portfolio.sqlite` | `touxiang-portfolio` `store::STORE_SCHEMA` | 2: `loan_actual` |
//! | fund-flow store | `flow.sqlite` | `touxiang-flow` `store::STORE_SCHEMA` | 2: `payee_reviews` |
//! | exemplar store | `vectors/vectors.sqlite` | `touxiang-vectors` `integrity::EMBEDDED` | 1 |
//! | vector write outbox | `vectors/outbox.sqlite` | `touxiang-vectors` `integrity::OUTBOX` | 1 |
//! | batch label cache | `batch-cache.sqlite` | `touxiang-batch` `cache::STORE_SCHEMA` | 1 |
//! | batch review-key map | `batch-review-keys.sqlite` | `touxiang` `cmd_batch::REVIEW_KEYS_SCHEMA` | 1 |

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

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
    /// The schema as ordered migration steps (SQL, at least one): step 1 creates the first
    /// schema and must be idempotent (`CREATE … IF NOT EXISTS`), each later step changes the
    /// schema of the one before. Append only: see the crate docs.
    pub migrations: &'static [&'static str],
}

impl StoreSchema {
    /// The current schema version, stamped into `PRAGMA user_version`: the number of steps.
    pub const fn version(&self) -> i32 {
        self.migrations.len() as i32
    }
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
    /// Bringing an older store up to date failed; the transaction was rolled back, so the file
    /// still holds its old version and contents.
    #[error(
        "{store} {}: upgrading its schema from version {from} to {to} failed, the file was left \
         unchanged: {problem}",
        .path.display()
    )]
    Migration {
        /// What the store is.
        store: &'static str,
        /// The database file.
        path: PathBuf,
        /// Version stamped in the file.
        from: i32,
        /// Version this build writes.
        to: i32,
        /// Which step failed and why.
        problem: String,
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
            | StoreError::Migration { path, .. }
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

mod migrate;

impl Ctx<'_> {
    fn damaged(&self, problem: impl Into<String>) -> StoreError {
        StoreError::Damaged {
            store: self.schema.store,
            path: self.path.to_path_buf(),
            problem: problem.into(),
        }
    }

    fn too_new(&self, found: i32) -> StoreError {
        StoreError::TooNew {
            store: self.schema.store,
            path: self.path.to_path_buf(),
            found,
            supported: self.schema.version(),
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
            create(&cx, schema.migrations.len())?
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

/// The expected tables exist; an unversioned or older store with them is migrated and stamped.
fn check_schema(cx: &Ctx<'_>, conn: &mut Connection) -> Result<(), StoreError> {
    let s = cx.schema;
    let version: i32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| cx.sql(e))?;
    if version > s.version() {
        return Err(cx.too_new(version));
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
    // Written before versions were stamped, or by an older schema: apply the missing steps.
    migrate::to_latest(cx, conn, version)
}

/// Create a new store file at `path` as a build whose schema had only the first `version`
/// migration steps wrote it (WAL mode, those steps, `user_version` = `version`), the way
/// [`open_store`] creates a missing file; for tests that an older database opens under the
/// current code. Fails when `path` exists, or when `version` is not in `1..=schema.version()`.
pub fn create_store_at_version(
    path: &Path,
    schema: &StoreSchema,
    version: i32,
) -> Result<(), StoreError> {
    let cx = Ctx { schema, path };
    if version < 1 || version > schema.version() {
        return Err(cx.io(
            path,
            std::io::Error::other(format!(
                "schema version {version} is not one of 1..={}",
                schema.version()
            )),
        ));
    }
    if path.exists() {
        return Err(cx.io(
            path,
            std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        ));
    }
    create(&cx, version as usize)
}

/// Create the store (its first `steps` migration steps) under a temporary name and link it
/// into place complete. When another process creates it first, its store is kept (and opened
/// by the caller).
fn create(cx: &Ctx<'_>, steps: usize) -> Result<(), StoreError> {
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
    let built = build(cx, &tmp, steps);
    let placed = built.and_then(|()| {
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

fn build(cx: &Ctx<'_>, tmp: &Path, steps: usize) -> Result<(), StoreError> {
    let mut conn = Connection::open(tmp).map_err(|e| cx.sql(e))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .and_then(|()| conn.pragma_update(None, "synchronous", "FULL"))
        .map_err(|e| cx.sql(e))?;
    migrate::to_version(cx, &mut conn, steps)?;
    // Closing the only connection checkpoints the WAL into the file and removes it.
    conn.close().map_err(|(_, e)| cx.sql(e))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod migrate_tests;
