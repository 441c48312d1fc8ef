//! The aggregation answer: additive accumulators, metrics, period-over-period change, rows,
//! totals, concentration and their flat serialisation.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::query::Dimension;

/// Additive metrics of one segment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Acc {
    pub loans: u64,
    pub balance: f64,
    pub od_loans: u64,
    pub od_balance: f64,
}

impl Acc {
    pub(super) fn add(&mut self, o: &Acc) {
        self.loans += o.loans;
        self.balance += o.balance;
        self.od_loans += o.od_loans;
        self.od_balance += o.od_balance;
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// Metrics of one row (or the totals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// Loan count.
    pub loans: u64,
    /// Σ balance.
    pub balance: f64,
    /// Overdue loan count.
    pub overdue_loans: u64,
    /// Σ balance of overdue loans.
    pub overdue_balance: f64,
    /// overdue_loans / loans (0 when no loans).
    pub overdue_rate_count: f64,
    /// overdue_balance / balance (0 when no balance).
    pub overdue_rate_balance: f64,
    /// balance / totals.balance.
    pub share_of_total: f64,
}

impl Metrics {
    pub(crate) fn from_acc(a: &Acc, total_balance: f64) -> Self {
        Metrics {
            loans: a.loans,
            balance: a.balance,
            overdue_loans: a.od_loans,
            overdue_balance: a.od_balance,
            overdue_rate_count: ratio(a.od_loans as f64, a.loans as f64),
            overdue_rate_balance: ratio(a.od_balance, a.balance),
            share_of_total: ratio(a.balance, total_balance),
        }
    }
}

/// Period-over-period change of a row (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Previous period month.
    pub prev_month: String,
    /// Loans in the previous period.
    pub prev_loans: u64,
    /// Balance in the previous period.
    pub prev_balance: f64,
    /// Overdue balance in the previous period.
    pub prev_overdue_balance: f64,
    /// Overdue rate by count in the previous period.
    pub prev_overdue_rate_count: f64,
    /// Overdue rate by balance in the previous period.
    pub prev_overdue_rate_balance: f64,
    /// balance − prev_balance.
    pub balance_change: f64,
    /// balance_change / prev_balance (None when prev_balance = 0).
    pub balance_change_pct: Option<f64>,
    /// overdue_rate_count − prev_overdue_rate_count.
    pub overdue_rate_count_change: f64,
    /// overdue_rate_balance − prev_overdue_rate_balance.
    pub overdue_rate_balance_change: f64,
}

impl Change {
    pub(super) fn new(prev_month: &str, cur: &Metrics, prev: &Acc) -> Self {
        let p = Metrics::from_acc(prev, 0.0);
        Change {
            prev_month: prev_month.to_string(),
            prev_loans: p.loans,
            prev_balance: p.balance,
            prev_overdue_balance: p.overdue_balance,
            prev_overdue_rate_count: p.overdue_rate_count,
            prev_overdue_rate_balance: p.overdue_rate_balance,
            balance_change: cur.balance - p.balance,
            balance_change_pct: (p.balance > 0.0).then(|| (cur.balance - p.balance) / p.balance),
            overdue_rate_count_change: cur.overdue_rate_count - p.overdue_rate_count,
            overdue_rate_balance_change: cur.overdue_rate_balance - p.overdue_rate_balance,
        }
    }
}

/// One dimension value of a row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyValue {
    /// Dimension.
    pub dim: Dimension,
    /// Code (None = missing, e.g. an unlabeled loan's industry).
    pub code: Option<String>,
    /// Name of the code, when the dimension has names (industry, region, purpose).
    pub name: Option<String>,
}

/// One result row. Serialises flat: `{"industry.section": "C", "industry.section_name": "制造业",
/// "loans": 12, ..., "prev_balance": ..., "balance_change": ...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct AggRow {
    /// Dimension values, in `by` order.
    pub keys: Vec<KeyValue>,
    /// Metrics.
    pub metrics: Metrics,
    /// Change vs the previous period, when computed.
    pub change: Option<Change>,
}

fn ser_flat<S: SerializeMap>(
    m: &mut S,
    keys: &[KeyValue],
    metrics: &Metrics,
    change: &Option<Change>,
) -> std::result::Result<(), S::Error> {
    for k in keys {
        m.serialize_entry(k.dim.as_str(), &k.code)?;
        if let Some(n) = &k.name {
            m.serialize_entry(&format!("{}_name", k.dim.as_str()), n)?;
        }
    }
    m.serialize_entry("loans", &metrics.loans)?;
    m.serialize_entry("balance", &metrics.balance)?;
    m.serialize_entry("overdue_loans", &metrics.overdue_loans)?;
    m.serialize_entry("overdue_balance", &metrics.overdue_balance)?;
    m.serialize_entry("overdue_rate_count", &metrics.overdue_rate_count)?;
    m.serialize_entry("overdue_rate_balance", &metrics.overdue_rate_balance)?;
    m.serialize_entry("share_of_total", &metrics.share_of_total)?;
    if let Some(c) = change {
        m.serialize_entry("prev_month", &c.prev_month)?;
        m.serialize_entry("prev_loans", &c.prev_loans)?;
        m.serialize_entry("prev_balance", &c.prev_balance)?;
        m.serialize_entry("prev_overdue_balance", &c.prev_overdue_balance)?;
        m.serialize_entry("prev_overdue_rate_count", &c.prev_overdue_rate_count)?;
        m.serialize_entry("prev_overdue_rate_balance", &c.prev_overdue_rate_balance)?;
        m.serialize_entry("balance_change", &c.balance_change)?;
        m.serialize_entry("balance_change_pct", &c.balance_change_pct)?;
        m.serialize_entry("overdue_rate_count_change", &c.overdue_rate_count_change)?;
        m.serialize_entry(
            "overdue_rate_balance_change",
            &c.overdue_rate_balance_change,
        )?;
    }
    Ok(())
}

impl Serialize for AggRow {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        ser_flat(&mut m, &self.keys, &self.metrics, &self.change)?;
        m.end()
    }
}

/// Totals of a result (same metric fields as a row, no dimension keys).
#[derive(Debug, Clone, PartialEq)]
pub struct Totals {
    /// Metrics over all filtered loans of the selected snapshot(s).
    pub metrics: Metrics,
    /// Change vs the previous period (when exactly one month is selected).
    pub change: Option<Change>,
}

impl Serialize for Totals {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        ser_flat(&mut m, &[], &self.metrics, &self.change)?;
        m.end()
    }
}

/// One top segment of a concentration measure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConcentrationItem {
    /// Code.
    pub code: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Balance.
    pub balance: f64,
    /// Share of the total balance.
    pub share: f64,
}

/// Concentration of exposure (balance) along one dimension.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Concentration {
    /// Dimension.
    pub dimension: Dimension,
    /// Number of distinct values with balance.
    pub segments: usize,
    /// Herfindahl–Hirschman index Σ s_i² (0..1].
    pub hhi: f64,
    /// 10 000 × hhi.
    pub hhi_points: f64,
    /// Share of the five largest segments.
    pub top5_share: f64,
    /// The five largest segments.
    pub top: Vec<ConcentrationItem>,
}

/// Answer of [`PortfolioStore::aggregate`] (API shape: `rows`, `totals`, plus context).
///
/// [`PortfolioStore::aggregate`]: crate::store::PortfolioStore::aggregate
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AggResult {
    /// Portfolio.
    pub portfolio: String,
    /// Dimensions, in order.
    pub by: Vec<Dimension>,
    /// Snapshot months aggregated.
    pub months: Vec<String>,
    /// As-of date used for each of `months`.
    pub as_of_dates: Vec<String>,
    /// Previous period month (when one month is selected and an earlier one exists).
    pub previous_month: Option<String>,
    /// Overdue definition used, in words.
    pub overdue_definition: String,
    /// Number of rows before `limit`.
    pub total_rows: usize,
    /// Rows.
    pub rows: Vec<AggRow>,
    /// Totals over all filtered loans (not only the first `limit` rows).
    pub totals: Totals,
    /// Requested concentration measures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub concentration: Vec<Concentration>,
}
