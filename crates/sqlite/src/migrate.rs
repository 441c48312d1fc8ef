//! A store's migration steps, applied with [`rusqlite_migration`] in one transaction.

use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};
use rusqlite_migration::{Error, HookError, HookResult, Migrations, M};

use crate::{Ctx, StoreError};

/// How many times a migration is tried again when another process changed the file's schema
/// version while this one was migrating it.
const RETRIES: usize = 3;

/// The error of [`guard`].
const MOVED: &str = "another process changed the schema version meanwhile";

/// `steps` as migrations, each guarded by [`guard`].
fn migrations(steps: &'static [&'static str]) -> Migrations<'static> {
    Migrations::new(
        steps
            .iter()
            .enumerate()
            .map(|(i, sql)| M::up_with_hook(sql, move |tx: &Transaction<'_>| guard(tx, i)))
            .collect(),
    )
}

/// Run inside the migration transaction after step `i` (0-based: it takes version `i` to
/// `i + 1`). rusqlite_migration reads `user_version` before it opens its transaction, so a
/// process that migrated the file in between would have this run apply steps a second time;
/// the transaction sees the version committed in the file (it is stamped only at the end of
/// the run), and a version past `i` fails the run, which rolls it back.
pub(crate) fn guard(tx: &Transaction<'_>, i: usize) -> HookResult {
    let committed: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if committed > i as i64 {
        return Err(HookError::Hook(MOVED.to_string()));
    }
    Ok(())
}

/// Apply the steps a store at version `found` lacks (none when it is current). When the run
/// fails because another process migrated the file meanwhile, look again.
pub(crate) fn to_latest(
    cx: &Ctx<'_>,
    conn: &mut Connection,
    mut found: i32,
) -> Result<(), StoreError> {
    let s = cx.schema;
    let ms = migrations(s.migrations);
    let mut retries = 0;
    while found != s.version() {
        let Err(e) = immediate(conn, |c| ms.to_latest(c)) else {
            return Ok(());
        };
        let now: i32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| cx.sql(e))?;
        if now == found || retries == RETRIES {
            return Err(error(cx, found, s.version(), e));
        }
        if now > s.version() {
            return Err(cx.too_new(now));
        }
        found = now;
        retries += 1;
    }
    Ok(())
}

/// Apply the first `steps` steps to a new, empty database.
pub(crate) fn to_version(
    cx: &Ctx<'_>,
    conn: &mut Connection,
    steps: usize,
) -> Result<(), StoreError> {
    let ms = migrations(&cx.schema.migrations[..steps]);
    immediate(conn, |c| ms.to_latest(c)).map_err(|e| error(cx, 0, steps as i32, e))
}

/// `f` with the connection's transactions begun `IMMEDIATE`: the migration takes the write
/// lock first (waiting for it up to the busy timeout), so it never fails on upgrading a read
/// lock another process's write made stale.
fn immediate<T>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Connection) -> rusqlite_migration::Result<T>,
) -> rusqlite_migration::Result<T> {
    conn.set_transaction_behavior(TransactionBehavior::Immediate);
    let r = f(conn);
    conn.set_transaction_behavior(TransactionBehavior::Deferred);
    r
}

/// A failed migration run as a store error: SQLite's own failures (locked, corrupt, disk full)
/// as at any other point of the open, a failing step or definition as [`StoreError::Migration`].
fn error(cx: &Ctx<'_>, from: i32, to: i32, e: Error) -> StoreError {
    let problem = match e {
        Error::RusqliteError { query, err } => {
            let step = cx.schema.migrations.iter().position(|s| *s == query);
            let corrupt = matches!(
                err.sqlite_error_code(),
                Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
            );
            match step {
                Some(i) if !corrupt => format!("step {} failed: {err}", i + 1),
                _ => return cx.sql(err),
            }
        }
        Error::Hook(h) => h,
        other => other.to_string(),
    };
    StoreError::Migration {
        store: cx.schema.store,
        path: cx.path.to_path_buf(),
        from,
        to,
        problem,
    }
}
