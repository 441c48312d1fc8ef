//! Aggregation over an in-memory columnar snapshot of a portfolio.
//!
//! On the first query of a portfolio its loans are loaded once into dictionary-encoded `u32`
//! columns (one per dimension) plus `f64` balances, overdue days and status; the snapshot is cached
//! and rebuilt when the portfolio's `generation` changes (every committed ingest bumps it). A query
//! is one pass over the rows with a filter check per row and a hash-map update keyed by the
//! mixed-radix combination of the grouped dictionary ids.
//!
//! ## Snapshots and months
//! Loans are stored per `as_of_date`. The *snapshot of a month* is the latest `as_of_date` within
//! that calendar month (earlier dates in the same month are ignored, so a loan is never counted
//! twice within a month). [`SnapshotSel::Latest`] (the default) aggregates the latest month's
//! snapshot; [`SnapshotSel::Month`] a given month; [`SnapshotSel::All`] every month's snapshot —
//! sums across months then count a loan once per month it appears in, so use `All` with the
//! `month` dimension, or for books where each loan appears in one snapshot only (a vintage book
//! such as Lending Club, where `as_of_date` is the issue month).
//!
//! ## Period-over-period change
//! The *previous period* of month `m` is the latest snapshot month before `m` present in the
//! portfolio (not necessarily the calendar month before). For every row, `prev_*` are the same
//! segment's metrics in the previous period (zeros when the segment did not exist then), and
//! `balance_change = balance − prev_balance`, `balance_change_pct = balance_change / prev_balance`
//! (null when `prev_balance = 0`), `overdue_rate_count_change = overdue_rate_count −
//! prev_overdue_rate_count` (a difference of fractions, i.e. percentage points / 100), likewise
//! `overdue_rate_balance_change`. With `month` among the dimensions each row is compared with its
//! own previous month; without it, change is given when exactly one month is selected.
//!
//! ## Overdue
//! [`OverdueDef::DaysGt`]`(n)`: overdue ⇔ `overdue_days > n`; loans without `overdue_days` fall
//! back to status ∈ {overdue, default, charged_off}. [`OverdueDef::Status`]`(set)`: overdue ⇔
//! status ∈ set; loans without a status fall back to `overdue_days > 0`.
//!
//! ## Concentration
//! For a dimension D over the selected rows: shares `s_i = balance_i / Σ balance` of each value
//! of D; `hhi = Σ s_i²` (1/number of segments … 1; `hhi_points = 10 000 · hhi`, the antitrust
//! convention), `top5_share = Σ` of the five largest `s_i`.

use std::sync::Arc;

use crate::error::{invalid, PortfolioError, Result};
use crate::store::{read_config, PortfolioStore};

mod compute;
mod query;
mod result;
mod snapshot;

pub use query::{drill_down, AggQuery, Dimension, Filter, Metric, OverdueDef, SnapshotSel};
pub(crate) use result::Acc;
pub use result::{
    AggResult, AggRow, Change, Concentration, ConcentrationItem, KeyValue, Metrics, Totals,
};
pub use snapshot::Snapshot;

impl PortfolioStore {
    /// The cached columnar snapshot of a portfolio, (re)built when its generation changed.
    pub fn snapshot(&self, portfolio: &str) -> Result<Arc<Snapshot>> {
        let conn = self.connect()?;
        let (config, generation) = read_config(&conn, portfolio)?
            .ok_or_else(|| PortfolioError::UnknownPortfolio(portfolio.to_string()))?;
        if let Some(s) = self.cache.lock().expect("cache lock").get(portfolio) {
            if s.generation == generation {
                return Ok(s.clone());
            }
        }
        // Read the generation and the rows in one read transaction so they agree.
        conn.execute_batch("BEGIN")?;
        let loaded = read_config(&conn, portfolio).and_then(|c| {
            let (config2, generation2) =
                c.ok_or_else(|| PortfolioError::UnknownPortfolio(portfolio.to_string()))?;
            let _ = config;
            Snapshot::load(&conn, portfolio, config2, generation2)
        });
        conn.execute_batch("COMMIT")?;
        let snap = Arc::new(loaded?);
        self.cache
            .lock()
            .expect("cache lock")
            .insert(portfolio.to_string(), snap.clone());
        Ok(snap)
    }

    /// Answer an aggregation query (see the module docs for semantics).
    pub fn aggregate(&self, q: &AggQuery) -> Result<AggResult> {
        if q.by.iter().enumerate().any(|(i, d)| q.by[..i].contains(d)) {
            return Err(invalid("by", "a dimension is given twice"));
        }
        self.snapshot(&q.portfolio)?.aggregate(q)
    }
}
