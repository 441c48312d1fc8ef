//! The SQLite portfolio store: schema, connections and per-portfolio configuration.
//!
//! One file, `DIR/portfolio.sqlite`, in WAL mode: readers (the HTTP server's aggregations) never
//! block on a writer (an ingest), and writers wait up to [`BUSY_TIMEOUT`] for each other.
//! Loans are keyed by `(portfolio, loan_id, as_of_date)`: every as-of date is one snapshot.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::agg::Snapshot;
use crate::error::{PortfolioError, Result};
use crate::refdata::{PurposeScheme, RegionScheme};

/// How long a writer waits for another writer's lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(120);

/// File name of the store inside the data directory.
pub const STORE_FILE: &str = "portfolio.sqlite";

/// Migration step 1: the schema of version 1.
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS portfolios (
    name           TEXT PRIMARY KEY,
    region_scheme  TEXT NOT NULL,
    purpose_scheme TEXT NOT NULL,
    currency       TEXT NOT NULL,
    generation     INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
);
CREATE TABLE IF NOT EXISTS loans (
    portfolio      TEXT NOT NULL,
    loan_id        TEXT NOT NULL,
    as_of_date     TEXT NOT NULL,
    purpose_text   TEXT NOT NULL,
    amount         REAL,
    balance        REAL NOT NULL,
    overdue_days   INTEGER,
    status         TEXT,
    region_code    TEXT NOT NULL,
    province       TEXT,
    city           TEXT,
    county         TEXT,
    customer_type  TEXT,
    product        TEXT,
    issue_date     TEXT,
    ind_code       TEXT,
    ind_section    TEXT,
    ind_division   TEXT,
    ind_group      TEXT,
    ind_class      TEXT,
    ind_confidence REAL,
    ind_decision   TEXT,
    ind_source     TEXT NOT NULL,
    ind_model_version    TEXT,
    ind_taxonomy_version TEXT,
    purpose_code   TEXT,
    purpose_confidence REAL,
    purpose_source TEXT,
    purpose_model_version TEXT,
    purpose_taxonomy_version TEXT,
    attributes     TEXT,
    ingest_id      INTEGER NOT NULL,
    PRIMARY KEY (portfolio, loan_id, as_of_date)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ingests (
    id          INTEGER PRIMARY KEY,
    portfolio   TEXT NOT NULL,
    source      TEXT NOT NULL,
    mode        TEXT NOT NULL,
    accepted    INTEGER NOT NULL,
    rejected    INTEGER NOT NULL,
    finished_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
);
"#;

/// Migration step 2: where each loan's money actually went (fund-flow tracing, touxiang-flow),
/// the GB/T 4754 section that received the largest share of its payments ('individual' for
/// people, 'unlabeled' for payees not classified). `IF NOT EXISTS`: builds before schema
/// migrations created this table in stores they stamped version 1.
const STEP2_LOAN_ACTUAL: &str = "
CREATE TABLE IF NOT EXISTS loan_actual (
    portfolio TEXT NOT NULL,
    loan_id   TEXT NOT NULL,
    section   TEXT NOT NULL,
    share     REAL NOT NULL,
    PRIMARY KEY (portfolio, loan_id)
) WITHOUT ROWID;
";

/// The store's shape for the integrity check and migrations at open
/// ([`touxiang_sqlite::open_store`]).
const STORE_SCHEMA: touxiang_sqlite::StoreSchema = touxiang_sqlite::StoreSchema {
    store: "portfolio store",
    tables: &["portfolios", "loans", "ingests"],
    migrations: &[SCHEMA, STEP2_LOAN_ACTUAL],
};

/// Configuration fixed when a portfolio is first ingested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortfolioConfig {
    /// Region table for `region_code`.
    pub region_scheme: RegionScheme,
    /// Flat purpose taxonomy for the purpose dimension.
    pub purpose_scheme: PurposeScheme,
    /// Currency of `amount`/`balance` ("CNY" renders 万元/亿元 in alert texts).
    pub currency: String,
}

impl Default for PortfolioConfig {
    fn default() -> Self {
        PortfolioConfig {
            region_scheme: RegionScheme::China,
            purpose_scheme: PurposeScheme::builtin(),
            currency: "CNY".to_string(),
        }
    }
}

/// Summary of one stored portfolio.
#[derive(Debug, Clone, Serialize)]
pub struct PortfolioInfo {
    /// Portfolio name.
    pub name: String,
    /// Stored configuration.
    pub config: PortfolioConfig,
    /// Number of loan snapshot rows.
    pub rows: u64,
    /// Distinct as-of dates, ascending.
    pub as_of_dates: Vec<String>,
    /// Bumped by every committed ingest (cache key).
    pub generation: i64,
}

/// Handle on the portfolio store. Cheap to share (`Send + Sync`); each operation opens its own
/// SQLite connection, and aggregation snapshots are cached in memory per portfolio, invalidated
/// when the portfolio's `generation` changes (also by ingests from other processes, e.g. the CLI
/// while the server runs).
pub struct PortfolioStore {
    path: PathBuf,
    pub(crate) cache: Mutex<HashMap<String, Arc<Snapshot>>>,
}

impl PortfolioStore {
    /// Open (creating if needed) `data_dir/portfolio.sqlite`.
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        Self::open_file(&data_dir.join(STORE_FILE))
    }

    /// Open the store at an explicit file path, creating it only when the file does not exist.
    /// An existing file that is empty, corrupt (`PRAGMA quick_check`) or without the store's
    /// tables is refused with [`PortfolioError::Store`], naming the file and the recovery step.
    pub fn open_file(path: &Path) -> Result<Self> {
        let conn = touxiang_sqlite::open_store(path, &STORE_SCHEMA)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        Ok(PortfolioStore {
            path: path.to_path_buf(),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Path of the SQLite file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn connect(&self) -> Result<Connection> {
        let conn = Connection::open(&self.path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(conn)
    }

    /// Configuration and generation of a portfolio, `None` when it does not exist.
    pub fn config(&self, portfolio: &str) -> Result<Option<(PortfolioConfig, i64)>> {
        let conn = self.connect()?;
        read_config(&conn, portfolio)
    }

    /// All portfolios with row counts and snapshot dates.
    pub fn portfolios(&self) -> Result<Vec<PortfolioInfo>> {
        let conn = self.connect()?;
        let names: Vec<String> = conn
            .prepare("SELECT name FROM portfolios ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::new();
        for name in names {
            let (config, generation) = read_config(&conn, &name)?
                .ok_or_else(|| PortfolioError::UnknownPortfolio(name.clone()))?;
            let mut stmt = conn.prepare(
                "SELECT as_of_date, count(*) FROM loans WHERE portfolio=?1 GROUP BY as_of_date ORDER BY as_of_date",
            )?;
            let mut rows = 0u64;
            let mut dates = Vec::new();
            for r in stmt.query_map([&name], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })? {
                let (d, n) = r?;
                rows += n as u64;
                dates.push(d);
            }
            out.push(PortfolioInfo {
                name,
                config,
                rows,
                as_of_dates: dates,
                generation,
            });
        }
        Ok(out)
    }

    /// Replace the actual-use sections of `portfolio`'s loans (the `flow.section` dimension):
    /// `(loan_id, section, share of the paid amount)` for every loan with payments; loans not
    /// listed have none. One transaction; aggregates see it at once (the generation moves).
    pub fn set_actual_sections<'a>(
        &self,
        portfolio: &str,
        rows: impl IntoIterator<Item = (&'a str, &'a str, f64)>,
    ) -> Result<u64> {
        let mut conn = self.connect()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if read_config(&tx, portfolio)?.is_none() {
            return Err(PortfolioError::UnknownPortfolio(portfolio.to_string()));
        }
        tx.execute("DELETE FROM loan_actual WHERE portfolio=?1", [portfolio])?;
        let mut n = 0u64;
        {
            let mut ins = tx.prepare(
                "INSERT OR REPLACE INTO loan_actual (portfolio, loan_id, section, share) VALUES (?1,?2,?3,?4)",
            )?;
            for (loan, section, share) in rows {
                ins.execute(rusqlite::params![portfolio, loan, section, share])?;
                n += 1;
            }
        }
        tx.execute(
            "UPDATE portfolios SET generation = generation + 1 WHERE name=?1",
            [portfolio],
        )?;
        tx.commit()?;
        Ok(n)
    }

    /// Delete a portfolio and all its loans (one transaction). Returns the number of loan rows.
    pub fn delete_portfolio(&self, portfolio: &str) -> Result<u64> {
        let mut conn = self.connect()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM loan_actual WHERE portfolio=?1", [portfolio])?;
        let n = tx.execute("DELETE FROM loans WHERE portfolio=?1", [portfolio])?;
        tx.execute("DELETE FROM portfolios WHERE name=?1", [portfolio])?;
        tx.commit()?;
        self.cache.lock().expect("cache lock").remove(portfolio);
        Ok(n as u64)
    }
}

pub(crate) fn read_config(
    conn: &Connection,
    portfolio: &str,
) -> Result<Option<(PortfolioConfig, i64)>> {
    let row: Option<(String, String, String, i64)> = conn
        .query_row(
            "SELECT region_scheme, purpose_scheme, currency, generation FROM portfolios WHERE name=?1",
            params![portfolio],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((rs, ps, currency, generation)) = row else {
        return Ok(None);
    };
    let region_scheme = RegionScheme::parse(&rs).ok_or_else(|| {
        PortfolioError::ConfigConflict(format!("stored region scheme {rs:?} is unknown"))
    })?;
    let purpose_scheme: PurposeScheme = serde_json::from_str(&ps).map_err(|e| {
        PortfolioError::ConfigConflict(format!("stored purpose scheme unreadable: {e}"))
    })?;
    Ok(Some((
        PortfolioConfig {
            region_scheme,
            purpose_scheme,
            currency,
        },
        generation,
    )))
}

#[cfg(test)]
mod migration_tests {
    use super::*;

    /// A store at schema version 1 (before `loan_actual`) opens under the current code, keeps
    /// its portfolios and is brought up to date.
    #[test]
    fn a_version_1_store_opens_and_is_migrated() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(STORE_FILE);
        touxiang_sqlite::create_store_at_version(&p, &STORE_SCHEMA, 1).unwrap();
        let c = Connection::open(&p).unwrap();
        assert!(!c.table_exists(None, "loan_actual").unwrap());
        let cfg = PortfolioConfig::default();
        c.execute(
            "INSERT INTO portfolios (name, region_scheme, purpose_scheme, currency, generation)
             VALUES ('old', ?1, ?2, ?3, 7)",
            params![
                cfg.region_scheme.as_str(),
                serde_json::to_string(&cfg.purpose_scheme).unwrap(),
                cfg.currency
            ],
        )
        .unwrap();
        c.close().unwrap();

        let store = PortfolioStore::open_file(&p).unwrap();
        assert_eq!(store.config("old").unwrap(), Some((cfg, 7)));
        // the table of step 2 is there and used
        assert_eq!(
            store
                .set_actual_sections("old", [("L1", "C", 0.8)])
                .unwrap(),
            1
        );
        let version: i32 = store
            .connect()
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, STORE_SCHEMA.version());
        assert_eq!(version, 2);
    }
}
