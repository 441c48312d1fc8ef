//! The fund-flow store: `DIR/flow.sqlite` (WAL), beside the portfolio store `DIR/portfolio.sqlite`.
//!
//! Payments, relations, the payee label cache and an index of each loan's borrower live here;
//! the loans stay in the portfolio store, which every connection of this store attaches
//! read-only as `pf` (so an unknown `loan_id` is one primary-key look-up, and nothing here ever
//! writes to the portfolio store). A data directory without a portfolio store has no portfolio:
//! every call then answers [`FlowError::UnknownPortfolio`] and creates nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{FlowError, Result};

/// File name of the store inside the data directory.
pub const STORE_FILE: &str = "flow.sqlite";

/// How long a writer waits for another writer's lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(120);

/// Migration step 1: the schema of version 1.
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS payments (
    portfolio     TEXT NOT NULL,
    payment_id    TEXT NOT NULL,
    loan_id       TEXT NOT NULL,
    payee_name    TEXT NOT NULL,
    payee_norm    TEXT NOT NULL,
    payee_account TEXT,
    amount        REAL NOT NULL,
    paid_at       TEXT NOT NULL,
    memo          TEXT,
    channel       TEXT,
    attributes    TEXT,
    ingest_id     INTEGER NOT NULL,
    PRIMARY KEY (portfolio, payment_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS payments_loan ON payments (portfolio, loan_id);
CREATE INDEX IF NOT EXISTS payments_payee ON payments (portfolio, payee_norm);
CREATE TABLE IF NOT EXISTS relations (
    portfolio  TEXT NOT NULL,
    from_key   TEXT NOT NULL,
    to_key     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    from_name  TEXT,
    to_name    TEXT,
    ingest_id  INTEGER NOT NULL,
    PRIMARY KEY (portfolio, from_key, to_key, kind)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS relations_to ON relations (portfolio, to_key);
CREATE TABLE IF NOT EXISTS payee_labels (
    scope         TEXT NOT NULL,
    norm          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    code          TEXT,
    level         TEXT,
    name          TEXT,
    confidence    REAL,
    decision      TEXT,
    path          TEXT,
    model_version TEXT,
    labeled_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
    PRIMARY KEY (scope, norm)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS payee_labels_norm ON payee_labels (norm);
CREATE TABLE IF NOT EXISTS loan_borrowers (
    portfolio     TEXT NOT NULL,
    loan_id       TEXT NOT NULL,
    borrower_key  TEXT NOT NULL,
    borrower_name TEXT,
    borrower_norm TEXT,
    PRIMARY KEY (portfolio, loan_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS loan_borrowers_key ON loan_borrowers (portfolio, borrower_key);
CREATE INDEX IF NOT EXISTS loan_borrowers_norm ON loan_borrowers (portfolio, borrower_norm);
CREATE TABLE IF NOT EXISTS borrower_index (
    portfolio  TEXT PRIMARY KEY,
    generation INTEGER NOT NULL,
    as_of      TEXT
);
CREATE TABLE IF NOT EXISTS ingests (
    id          INTEGER PRIMARY KEY,
    portfolio   TEXT NOT NULL,
    what        TEXT NOT NULL,
    source      TEXT NOT NULL,
    mode        TEXT NOT NULL,
    accepted    INTEGER NOT NULL,
    rejected    INTEGER NOT NULL,
    finished_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
);
"#;

/// Migration step 2: payees sent to the reviewers' `payees` queue. `IF NOT EXISTS`: builds
/// before schema migrations created this table in stores they stamped version 1.
const STEP2_PAYEE_REVIEWS: &str = "
CREATE TABLE IF NOT EXISTS payee_reviews (
    norm      TEXT PRIMARY KEY,
    review_id TEXT NOT NULL,
    queued_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
) WITHOUT ROWID;
";

/// The store's shape for the integrity check and migrations at open
/// ([`touxiang_sqlite::open_store`]).
const STORE_SCHEMA: touxiang_sqlite::StoreSchema = touxiang_sqlite::StoreSchema {
    store: "fund-flow store",
    tables: &[
        "payments",
        "relations",
        "payee_labels",
        "loan_borrowers",
        "borrower_index",
        "ingests",
    ],
    migrations: &[SCHEMA, STEP2_PAYEE_REVIEWS],
};

/// Handle on the fund-flow store (cheap; each operation opens its own connection).
#[derive(Debug, Clone)]
pub struct FlowStore {
    path: PathBuf,
    portfolio_path: PathBuf,
}

impl FlowStore {
    /// Open (creating if needed) `data_dir/flow.sqlite`; the portfolio store is
    /// `data_dir/portfolio.sqlite`.
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        Self::open_files(
            &data_dir.join(STORE_FILE),
            &data_dir.join(touxiang_portfolio::store::STORE_FILE),
        )
    }

    /// Open the store at `path` with the portfolio store at `portfolio_path`. An existing file
    /// that is damaged is refused ([`FlowError::Store`]).
    pub fn open_files(path: &Path, portfolio_path: &Path) -> Result<Self> {
        let conn = touxiang_sqlite::open_store(path, &STORE_SCHEMA)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        Ok(FlowStore {
            path: path.to_path_buf(),
            portfolio_path: portfolio_path.to_path_buf(),
        })
    }

    /// Path of the SQLite file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Path of the portfolio store it reads.
    pub fn portfolio_path(&self) -> &Path {
        &self.portfolio_path
    }

    /// A connection with the portfolio store attached read-only as `pf`; the portfolio must
    /// exist.
    pub(crate) fn connect(&self, portfolio: &str) -> Result<Connection> {
        let conn = Connection::open(&self.path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        if !self.portfolio_path.is_file() {
            return Err(FlowError::UnknownPortfolio(portfolio.to_string()));
        }
        conn.execute("ATTACH DATABASE ?1 AS pf", [uri(&self.portfolio_path)])?;
        if read_currency(&conn, portfolio)?.is_none() {
            return Err(FlowError::UnknownPortfolio(portfolio.to_string()));
        }
        Ok(conn)
    }

    /// A connection without the portfolio store (the payee label cache).
    pub(crate) fn connect_plain(&self) -> Result<Connection> {
        let conn = Connection::open(&self.path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(conn)
    }
}

/// `file:` URI opening `p` read-only (characters special in URIs percent-encoded).
fn uri(p: &Path) -> String {
    let mut out = String::from("file:");
    for ch in p.to_string_lossy().chars() {
        match ch {
            '?' | '#' | '%' => out.push_str(&format!("%{:02X}", ch as u32)),
            c => out.push(c),
        }
    }
    out.push_str("?mode=ro");
    out
}

/// Currency of a portfolio, `None` when it does not exist.
pub(crate) fn read_currency(conn: &Connection, portfolio: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT currency FROM pf.portfolios WHERE name=?1",
            params![portfolio],
            |r| r.get(0),
        )
        .optional()?)
}

/// Generation of a portfolio (bumped by every committed loan ingest).
pub(crate) fn read_generation(conn: &Connection, portfolio: &str) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT generation FROM pf.portfolios WHERE name=?1",
        params![portfolio],
        |r| r.get(0),
    )?)
}

#[cfg(test)]
mod migration_tests {
    use super::*;

    /// A store at schema version 1 (before `payee_reviews`) opens under the current code, keeps
    /// its rows and is brought up to date.
    #[test]
    fn a_version_1_store_opens_and_is_migrated() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(STORE_FILE);
        touxiang_sqlite::create_store_at_version(&p, &STORE_SCHEMA, 1).unwrap();
        let c = Connection::open(&p).unwrap();
        assert!(!c.table_exists(None, "payee_reviews").unwrap());
        c.execute(
            "INSERT INTO payee_labels (scope, norm, kind, code) VALUES ('model', '某钢铁公司', 'org', '3120')",
            [],
        )
        .unwrap();
        c.close().unwrap();

        let store = FlowStore::open_files(&p, &d.path().join("portfolio.sqlite")).unwrap();
        let c = store.connect_plain().unwrap();
        let code: String = c
            .query_row(
                "SELECT code FROM payee_labels WHERE norm='某钢铁公司'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(code, "3120");
        // the table of step 2 is there
        c.execute(
            "INSERT INTO payee_reviews (norm, review_id) VALUES ('某钢铁公司', 'r-1')",
            [],
        )
        .unwrap();
        let version: i32 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, STORE_SCHEMA.version());
        assert_eq!(version, 2);
    }
}
