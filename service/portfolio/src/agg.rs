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

use std::collections::HashMap;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::error::{invalid, PortfolioError, Result};
use crate::ingest::LoanStatus;
use crate::refdata::{industry_name, industry_path};
use crate::store::{read_config, PortfolioConfig, PortfolioStore};

/// A grouping / filtering dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dimension {
    /// GB/T 4754 门类 (letter).
    #[serde(rename = "industry.section")]
    IndustrySection,
    /// 大类 (2 digits).
    #[serde(rename = "industry.division")]
    IndustryDivision,
    /// 中类 (3 digits).
    #[serde(rename = "industry.group")]
    IndustryGroup,
    /// 小类 (4 digits).
    #[serde(rename = "industry.class")]
    IndustryClass,
    /// Province (GB/T 2260 2-digit code, or US state).
    #[serde(rename = "region.province")]
    RegionProvince,
    /// City (4-digit code).
    #[serde(rename = "region.city")]
    RegionCity,
    /// County (6-digit code).
    #[serde(rename = "region.county")]
    RegionCounty,
    /// Customer type as given.
    #[serde(rename = "customer_type")]
    CustomerType,
    /// Purpose code of the portfolio's purpose taxonomy.
    #[serde(rename = "purpose")]
    Purpose,
    /// Product as given.
    #[serde(rename = "product")]
    Product,
    /// Snapshot month `YYYY-MM` (from `as_of_date`).
    #[serde(rename = "month")]
    Month,
    /// Issue month `YYYY-MM` (from `issue_date`).
    #[serde(rename = "issue_month")]
    IssueMonth,
}

pub(crate) const NDIM: usize = 12;

impl Dimension {
    /// All dimensions, in column order.
    pub const ALL: [Dimension; NDIM] = [
        Dimension::IndustrySection,
        Dimension::IndustryDivision,
        Dimension::IndustryGroup,
        Dimension::IndustryClass,
        Dimension::RegionProvince,
        Dimension::RegionCity,
        Dimension::RegionCounty,
        Dimension::CustomerType,
        Dimension::Purpose,
        Dimension::Product,
        Dimension::Month,
        Dimension::IssueMonth,
    ];

    /// API name (`industry.section`, `region.province`, `month`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::IndustrySection => "industry.section",
            Dimension::IndustryDivision => "industry.division",
            Dimension::IndustryGroup => "industry.group",
            Dimension::IndustryClass => "industry.class",
            Dimension::RegionProvince => "region.province",
            Dimension::RegionCity => "region.city",
            Dimension::RegionCounty => "region.county",
            Dimension::CustomerType => "customer_type",
            Dimension::Purpose => "purpose",
            Dimension::Product => "product",
            Dimension::Month => "month",
            Dimension::IssueMonth => "issue_month",
        }
    }

    /// Parse an API name.
    pub fn parse(s: &str) -> Option<Self> {
        Dimension::ALL.into_iter().find(|d| d.as_str() == s.trim())
    }

    pub(crate) fn idx(self) -> usize {
        self as usize
    }

    /// The next coarser level of a hierarchical dimension (division → section, city → province).
    pub fn parent(self) -> Option<Dimension> {
        match self {
            Dimension::IndustryDivision => Some(Dimension::IndustrySection),
            Dimension::IndustryGroup => Some(Dimension::IndustryDivision),
            Dimension::IndustryClass => Some(Dimension::IndustryGroup),
            Dimension::RegionCity => Some(Dimension::RegionProvince),
            Dimension::RegionCounty => Some(Dimension::RegionCity),
            _ => None,
        }
    }

    /// The next finer level (section → division, province → city).
    pub fn child(self) -> Option<Dimension> {
        match self {
            Dimension::IndustrySection => Some(Dimension::IndustryDivision),
            Dimension::IndustryDivision => Some(Dimension::IndustryGroup),
            Dimension::IndustryGroup => Some(Dimension::IndustryClass),
            Dimension::RegionProvince => Some(Dimension::RegionCity),
            Dimension::RegionCity => Some(Dimension::RegionCounty),
            _ => None,
        }
    }
}

/// Restrict a dimension to a set of codes (OR within the list; filters are ANDed). Region values
/// may be given at any code length ("11" or "110000"); the empty string matches a missing value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    /// Dimension filtered on.
    pub dim: Dimension,
    /// Allowed codes.
    pub values: Vec<String>,
}

/// When a loan counts as overdue (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverdueDef {
    /// `overdue_days > n` (status fallback for loans without days).
    DaysGt(u32),
    /// `status ∈ set` (days > 0 fallback for loans without status).
    Status(Vec<LoanStatus>),
}

impl Default for OverdueDef {
    fn default() -> Self {
        OverdueDef::DaysGt(0)
    }
}

impl OverdueDef {
    /// Human description, e.g. "overdue_days > 30".
    pub fn describe(&self) -> String {
        match self {
            OverdueDef::DaysGt(n) => format!("overdue_days > {n}"),
            OverdueDef::Status(s) => format!(
                "status in [{}]",
                s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// Which snapshot(s) to aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotSel {
    /// The latest snapshot month (default).
    #[default]
    Latest,
    /// The month `YYYY-MM` (a `YYYY-MM-DD` date selects its month).
    Month(String),
    /// Every month's snapshot.
    All,
}

/// A metric to sort by (top-N).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Loan count.
    Loans,
    /// Balance.
    Balance,
    /// Overdue loan count.
    OverdueLoans,
    /// Overdue balance.
    OverdueBalance,
    /// Overdue loans / loans.
    OverdueRateCount,
    /// Overdue balance / balance.
    OverdueRateBalance,
    /// Balance / total balance of the result.
    ShareOfTotal,
    /// Balance − previous balance.
    BalanceChange,
    /// Overdue rate (count) − previous.
    OverdueRateCountChange,
}

impl Metric {
    /// Parse an API name (`balance`, `overdue_rate_count`, ...).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "loans" => Metric::Loans,
            "balance" => Metric::Balance,
            "overdue_loans" => Metric::OverdueLoans,
            "overdue_balance" => Metric::OverdueBalance,
            "overdue_rate_count" => Metric::OverdueRateCount,
            "overdue_rate_balance" => Metric::OverdueRateBalance,
            "share_of_total" => Metric::ShareOfTotal,
            "balance_change" => Metric::BalanceChange,
            "overdue_rate_count_change" => Metric::OverdueRateCountChange,
            _ => return None,
        })
    }
}

/// An aggregation request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggQuery {
    /// Portfolio name.
    pub portfolio: String,
    /// Group-by dimensions, in output order (may be empty: totals only).
    pub by: Vec<Dimension>,
    /// Filters (ANDed).
    pub filters: Vec<Filter>,
    /// Overdue definition.
    pub overdue: OverdueDef,
    /// Snapshot selection.
    pub snapshot: SnapshotSel,
    /// Attach period-over-period change (default true).
    pub compare_previous: bool,
    /// Sort rows descending by this metric (default: by dimension codes ascending).
    pub sort: Option<Metric>,
    /// Keep only the first `limit` rows after sorting (top-N). Totals are over all rows.
    pub limit: Option<usize>,
    /// Dimensions to compute concentration (HHI, top-5 share of balance) over.
    pub concentration: Vec<Dimension>,
}

impl AggQuery {
    /// A query with defaults: latest snapshot, overdue_days > 0, with change, no filters.
    pub fn new(portfolio: &str, by: &[Dimension]) -> Self {
        AggQuery {
            portfolio: portfolio.to_string(),
            by: by.to_vec(),
            filters: Vec::new(),
            overdue: OverdueDef::default(),
            snapshot: SnapshotSel::Latest,
            compare_previous: true,
            sort: None,
            limit: None,
            concentration: Vec::new(),
        }
    }

    /// Add a filter (builder style).
    pub fn filter(mut self, dim: Dimension, values: &[&str]) -> Self {
        self.filters.push(Filter {
            dim,
            values: values.iter().map(|s| s.to_string()).collect(),
        });
        self
    }

    /// Build from HTTP query parameters (`GET /v1/aggregate`):
    ///
    /// * `by=industry.section,region.province` (comma list of dimensions);
    /// * `overdue_days_gt=N` or `overdue_status=charged_off,default` (default `overdue_days_gt=0`);
    /// * `as_of=latest|all|YYYY-MM|YYYY-MM-DD` (default latest);
    /// * `sort=<metric>`, `limit=N` (top-N); `top=N` is a synonym of `limit` with `sort`
    ///   defaulting to `balance`;
    /// * `compare=false` to omit period-over-period change;
    /// * `concentration=industry.section,region.province`;
    /// * any dimension name as a filter: `industry.section=C`, `region.province=11,44`
    ///   (also `filter.<dim>=...`).
    ///
    /// Unknown parameters are an error (naming the parameter); `portfolio` is taken separately.
    pub fn from_params(portfolio: &str, params: &[(String, String)]) -> Result<Self> {
        let mut q = AggQuery::new(portfolio, &[]);
        let mut top = None;
        for (k, v) in params {
            let k = k.trim();
            match k {
                "portfolio" | "format" => {}
                "by" => q.by = parse_dims(v, "by")?,
                "overdue_days_gt" => {
                    q.overdue = OverdueDef::DaysGt(v.trim().parse().map_err(|_| {
                        invalid("overdue_days_gt", format!("{v:?} is not an integer ≥ 0"))
                    })?)
                }
                "overdue_status" => {
                    let mut s = Vec::new();
                    for x in v.split(',').filter(|x| !x.trim().is_empty()) {
                        s.push(LoanStatus::parse(x).ok_or_else(|| {
                            invalid("overdue_status", format!("unknown status {x:?}"))
                        })?);
                    }
                    q.overdue = OverdueDef::Status(s);
                }
                "as_of" | "snapshot" => {
                    q.snapshot = match v.trim() {
                        "" | "latest" => SnapshotSel::Latest,
                        "all" => SnapshotSel::All,
                        m => SnapshotSel::Month(normalize_month(m).ok_or_else(|| {
                            invalid(
                                k,
                                format!("{m:?} is not latest, all, YYYY-MM or YYYY-MM-DD"),
                            )
                        })?),
                    }
                }
                "sort" => {
                    q.sort = Some(
                        Metric::parse(v)
                            .ok_or_else(|| invalid("sort", format!("unknown metric {v:?}")))?,
                    )
                }
                "limit" | "top" => {
                    let n: usize = v
                        .trim()
                        .parse()
                        .map_err(|_| invalid(k, format!("{v:?} is not a count")))?;
                    if k == "top" {
                        top = Some(n);
                    }
                    q.limit = Some(n);
                }
                "compare" => {
                    q.compare_previous = match v.trim() {
                        "true" | "1" | "" => true,
                        "false" | "0" => false,
                        _ => return Err(invalid("compare", "expected true or false")),
                    }
                }
                "concentration" => q.concentration = parse_dims(v, "concentration")?,
                other => {
                    let name = other.strip_prefix("filter.").unwrap_or(other);
                    let dim = Dimension::parse(name)
                        .ok_or_else(|| invalid(other, "unknown parameter or dimension"))?;
                    q.filters.push(Filter {
                        dim,
                        values: v.split(',').map(|s| s.trim().to_string()).collect(),
                    });
                }
            }
        }
        if top.is_some() && q.sort.is_none() {
            q.sort = Some(Metric::Balance);
        }
        Ok(q)
    }
}

fn parse_dims(v: &str, field: &str) -> Result<Vec<Dimension>> {
    let mut out = Vec::new();
    for s in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let d = Dimension::parse(s).ok_or_else(|| {
            invalid(
                field,
                format!(
                    "unknown dimension {s:?} (one of {})",
                    Dimension::ALL.map(|d| d.as_str()).join(", ")
                ),
            )
        })?;
        if out.contains(&d) {
            return Err(invalid(field, format!("dimension {s:?} given twice")));
        }
        out.push(d);
    }
    Ok(out)
}

pub(crate) fn normalize_month(s: &str) -> Option<String> {
    let s = s.trim();
    if s.len() == 7 {
        crate::ingest::parse_date(&format!("{s}-01")).map(|_| s.to_string())
    } else {
        crate::ingest::parse_date(s).map(|d| d[..7].to_string())
    }
}

/// Drill-down: the query for the children of `code` at `dim` (a section's divisions, a
/// province's cities). Adds the filter `dim = code` (replacing any filter on `dim`) and replaces
/// `dim` in `by` by its child level (appending the child when `dim` was not grouped).
pub fn drill_down(q: &AggQuery, dim: Dimension, code: &str) -> Result<AggQuery> {
    let child = dim
        .child()
        .ok_or_else(|| invalid("drill", format!("{} has no finer level", dim.as_str())))?;
    let mut out = q.clone();
    out.filters.retain(|f| f.dim != dim);
    out.filters.push(Filter {
        dim,
        values: vec![code.to_string()],
    });
    match out.by.iter().position(|d| *d == dim) {
        Some(i) => out.by[i] = child,
        None => {
            if !out.by.contains(&child) {
                out.by.push(child)
            }
        }
    }
    Ok(out)
}

/// Additive metrics of one segment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Acc {
    pub loans: u64,
    pub balance: f64,
    pub od_loans: u64,
    pub od_balance: f64,
}

impl Acc {
    fn add(&mut self, o: &Acc) {
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
    fn new(prev_month: &str, cur: &Metrics, prev: &Acc) -> Self {
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

/// In-memory columnar snapshot of one portfolio.
pub struct Snapshot {
    pub(crate) generation: i64,
    pub(crate) config: PortfolioConfig,
    /// Snapshot months ascending, and the as-of date used for each.
    pub(crate) months: Vec<String>,
    pub(crate) month_dates: Vec<String>,
    pub(crate) cols: Vec<Vec<u32>>,
    pub(crate) dicts: Vec<Vec<Option<String>>>,
    pub(crate) balance: Vec<f64>,
    pub(crate) days: Vec<i32>,
    pub(crate) status: Vec<u8>,
}

const NO_STATUS: u8 = 255;

struct Interner {
    map: FxHashMap<String, u32>,
    null: Option<u32>,
    dict: Vec<Option<String>>,
}

impl Interner {
    fn new() -> Self {
        Interner {
            map: FxHashMap::default(),
            null: None,
            dict: Vec::new(),
        }
    }
    fn id(&mut self, s: Option<&str>) -> u32 {
        match s {
            None => *self.null.get_or_insert_with(|| {
                self.dict.push(None);
                (self.dict.len() - 1) as u32
            }),
            Some(s) => {
                if let Some(&i) = self.map.get(s) {
                    return i;
                }
                let i = self.dict.len() as u32;
                self.dict.push(Some(s.to_string()));
                self.map.insert(s.to_string(), i);
                i
            }
        }
    }
}

impl Snapshot {
    /// Number of loan rows held.
    pub fn len(&self) -> usize {
        self.balance.len()
    }

    /// Whether the snapshot holds no rows.
    pub fn is_empty(&self) -> bool {
        self.balance.is_empty()
    }

    fn load(
        conn: &rusqlite::Connection,
        portfolio: &str,
        config: PortfolioConfig,
        generation: i64,
    ) -> Result<Self> {
        let mut months = Vec::new();
        let mut month_dates = Vec::new();
        {
            let mut st = conn.prepare(
                "SELECT substr(as_of_date,1,7), max(as_of_date) FROM loans WHERE portfolio=?1 GROUP BY 1 ORDER BY 1",
            )?;
            for r in st.query_map([portfolio], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })? {
                let (m, d) = r?;
                months.push(m);
                month_dates.push(d);
            }
        }
        let date_idx: HashMap<&str, u32> = month_dates
            .iter()
            .enumerate()
            .map(|(i, d)| (d.as_str(), i as u32))
            .collect();
        let mut interners: Vec<Interner> = (0..NDIM).map(|_| Interner::new()).collect();
        let mut cols: Vec<Vec<u32>> = vec![Vec::new(); NDIM];
        let mut balance = Vec::new();
        let mut days = Vec::new();
        let mut status = Vec::new();
        let mut st = conn.prepare(
            "SELECT as_of_date, ind_section, ind_division, ind_group, ind_class, province, city, county, \
             customer_type, purpose_code, product, issue_date, balance, overdue_days, status \
             FROM loans WHERE portfolio=?1",
        )?;
        let mut rows = st.query([portfolio])?;
        while let Some(r) = rows.next()? {
            let asof = r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
            // Only the latest as-of date of each month is a snapshot.
            let Some(&m) = date_idx.get(asof) else {
                continue;
            };
            for d in 0..NDIM {
                let id = match Dimension::ALL[d] {
                    Dimension::Month => m,
                    Dimension::IssueMonth => {
                        let v = r
                            .get_ref(11)?
                            .as_str_or_null()
                            .map_err(rusqlite::Error::from)?;
                        interners[d].id(v.map(|s| &s[..s.len().min(7)]))
                    }
                    _ => {
                        let v = r
                            .get_ref(d + 1)?
                            .as_str_or_null()
                            .map_err(rusqlite::Error::from)?;
                        interners[d].id(v)
                    }
                };
                cols[d].push(id);
            }
            balance.push(r.get::<_, f64>(12)?);
            days.push(match r.get::<_, Option<i64>>(13)? {
                Some(v) => v.clamp(0, i32::MAX as i64) as i32,
                None => -1,
            });
            status.push(
                match r
                    .get_ref(14)?
                    .as_str_or_null()
                    .map_err(rusqlite::Error::from)?
                {
                    Some(s) => LoanStatus::from_stored(s)
                        .or_else(|| LoanStatus::parse(s))
                        .map(|x| x.id())
                        .unwrap_or(NO_STATUS),
                    None => NO_STATUS,
                },
            );
        }
        let mut dicts: Vec<Vec<Option<String>>> = interners.into_iter().map(|i| i.dict).collect();
        dicts[Dimension::Month.idx()] = months.iter().cloned().map(Some).collect();
        Ok(Snapshot {
            generation,
            config,
            months,
            month_dates,
            cols,
            dicts,
            balance,
            days,
            status,
        })
    }

    fn name_of(&self, dim: Dimension, code: &str) -> Option<String> {
        match dim {
            Dimension::IndustrySection
            | Dimension::IndustryDivision
            | Dimension::IndustryGroup
            | Dimension::IndustryClass => industry_name(code),
            Dimension::RegionProvince | Dimension::RegionCity | Dimension::RegionCounty => {
                self.config.region_scheme.name(code)
            }
            Dimension::Purpose => self.config.purpose_scheme.name(code).map(str::to_string),
            _ => None,
        }
    }

    /// `KeyValue` for a dictionary id.
    pub(crate) fn key_value(&self, dim: Dimension, id: u32) -> KeyValue {
        let code = self.dicts[dim.idx()][id as usize].clone();
        let name = code.as_deref().and_then(|c| self.name_of(dim, c));
        KeyValue { dim, code, name }
    }

    /// Month indices selected.
    pub(crate) fn select_months(&self, sel: &SnapshotSel) -> Result<Vec<u32>> {
        if self.months.is_empty() {
            return Ok(Vec::new());
        }
        Ok(match sel {
            SnapshotSel::Latest => vec![(self.months.len() - 1) as u32],
            SnapshotSel::All => (0..self.months.len() as u32).collect(),
            SnapshotSel::Month(m) => {
                let m = normalize_month(m)
                    .ok_or_else(|| invalid("as_of", format!("{m:?} is not a month YYYY-MM")))?;
                let i = self.months.iter().position(|x| *x == m).ok_or_else(|| {
                    invalid(
                        "as_of",
                        format!("no snapshot in {m}; available: {}", self.months.join(", ")),
                    )
                })?;
                vec![i as u32]
            }
        })
    }

    /// Compile filters to per-dimension allow-lists over dictionary ids.
    pub(crate) fn compile_filters(&self, filters: &[Filter]) -> Result<Vec<(usize, Vec<bool>)>> {
        let mut out: Vec<(usize, Vec<bool>)> = Vec::new();
        for f in filters {
            let d = f.dim.idx();
            let field = format!("filter.{}", f.dim.as_str());
            let mut wanted: Vec<Option<String>> = Vec::new();
            for v in &f.values {
                let v = v.trim();
                if v.is_empty() {
                    wanted.push(None);
                    continue;
                }
                let norm = match f.dim {
                    Dimension::RegionProvince | Dimension::RegionCity | Dimension::RegionCounty => {
                        let r =
                            self.config.region_scheme.resolve(v).ok_or_else(|| {
                                invalid(&field, format!("unknown region code {v:?}"))
                            })?;
                        let lvl = f.dim.idx() - Dimension::RegionProvince.idx();
                        r[lvl].clone().ok_or_else(|| {
                            invalid(
                                &field,
                                format!("region {v:?} has no {} level", f.dim.as_str()),
                            )
                        })?
                    }
                    Dimension::IndustrySection
                    | Dimension::IndustryDivision
                    | Dimension::IndustryGroup
                    | Dimension::IndustryClass => {
                        let p = industry_path(v).ok_or_else(|| {
                            invalid(&field, format!("{v:?} is not a GB/T 4754-2017 code"))
                        })?;
                        let lvl = f.dim.idx() - Dimension::IndustrySection.idx();
                        if p[lvl].as_deref() != Some(v) {
                            return Err(invalid(
                                &field,
                                format!("{v:?} is not a code at level {}", f.dim.as_str()),
                            ));
                        }
                        v.to_string()
                    }
                    Dimension::Month | Dimension::IssueMonth => normalize_month(v)
                        .ok_or_else(|| invalid(&field, format!("{v:?} is not a month YYYY-MM")))?,
                    Dimension::Purpose => {
                        if !self.config.purpose_scheme.contains(v) {
                            return Err(invalid(
                                &field,
                                format!(
                                    "{v:?} is not a code of purpose taxonomy {}",
                                    self.config.purpose_scheme.id
                                ),
                            ));
                        }
                        v.to_string()
                    }
                    _ => v.to_string(),
                };
                wanted.push(Some(norm));
            }
            let allow: Vec<bool> = self.dicts[d]
                .iter()
                .map(|c| wanted.iter().any(|w| w == c))
                .collect();
            // Several filters on one dimension intersect.
            match out.iter_mut().find(|(od, _)| *od == d) {
                Some((_, a)) => a.iter_mut().zip(allow).for_each(|(x, y)| *x = *x && y),
                None => out.push((d, allow)),
            }
        }
        Ok(out)
    }

    /// The core scan: group the selected rows by `(month, dims...)`.
    ///
    /// Returns a map from dictionary ids `[month, dims...]` to additive metrics.
    pub(crate) fn group(
        &self,
        dims: &[Dimension],
        months: &[u32],
        filters: &[(usize, Vec<bool>)],
        overdue: &OverdueDef,
    ) -> Result<Vec<(Vec<u32>, Acc)>> {
        let mut key_cols: Vec<usize> = vec![Dimension::Month.idx()];
        key_cols.extend(dims.iter().map(|d| d.idx()));
        let mut radix: Vec<u128> = Vec::with_capacity(key_cols.len());
        let mut mult: u128 = 1;
        for &c in &key_cols {
            radix.push(mult);
            mult = mult
                .checked_mul(self.dicts[c].len().max(1) as u128)
                .ok_or_else(|| invalid("by", "too many dimension combinations"))?;
        }
        let mut month_ok = vec![false; self.months.len()];
        for &m in months {
            month_ok[m as usize] = true;
        }
        let mut smask = [false; 256];
        let (days_gt, status_mode) = match overdue {
            OverdueDef::DaysGt(n) => {
                for s in [
                    LoanStatus::Overdue,
                    LoanStatus::Default,
                    LoanStatus::ChargedOff,
                ] {
                    smask[s.id() as usize] = true;
                }
                (*n as i32, false)
            }
            OverdueDef::Status(set) => {
                for s in set {
                    smask[s.id() as usize] = true;
                }
                (0, true)
            }
        };
        let mcol = &self.cols[Dimension::Month.idx()];
        let fcols: Vec<(&[u32], &[bool])> = filters
            .iter()
            .map(|(d, a)| (self.cols[*d].as_slice(), a.as_slice()))
            .collect();
        let kcols: Vec<(&[u32], u128)> = key_cols
            .iter()
            .zip(&radix)
            .map(|(c, r)| (self.cols[*c].as_slice(), *r))
            .collect();
        let mut map: FxHashMap<u128, Acc> = FxHashMap::default();
        'rows: for i in 0..self.balance.len() {
            if !month_ok[mcol[i] as usize] {
                continue;
            }
            for (c, a) in &fcols {
                if !a[c[i] as usize] {
                    continue 'rows;
                }
            }
            let mut key: u128 = 0;
            for (c, r) in &kcols {
                key += c[i] as u128 * r;
            }
            let days = self.days[i];
            let st = self.status[i];
            let od = if status_mode {
                if st != NO_STATUS {
                    smask[st as usize]
                } else {
                    days > 0
                }
            } else if days >= 0 {
                days > days_gt
            } else {
                smask[st as usize]
            };
            let b = self.balance[i];
            let acc = map.entry(key).or_default();
            acc.loans += 1;
            acc.balance += b;
            if od {
                acc.od_loans += 1;
                acc.od_balance += b;
            }
        }
        let mut out = Vec::with_capacity(map.len());
        for (mut k, acc) in map {
            let mut ids = Vec::with_capacity(key_cols.len());
            for &c in &key_cols {
                let n = self.dicts[c].len().max(1) as u128;
                ids.push((k % n) as u32);
                k /= n;
            }
            out.push((ids, acc));
        }
        Ok(out)
    }

    fn prev_month(&self, m: u32) -> Option<u32> {
        m.checked_sub(1)
    }

    pub(crate) fn aggregate(&self, q: &AggQuery) -> Result<AggResult> {
        let months = self.select_months(&q.snapshot)?;
        let filters = self.compile_filters(&q.filters)?;
        let month_in_by = q.by.contains(&Dimension::Month);
        let single = months.len() == 1;
        let mut scan_months = months.clone();
        if q.compare_previous {
            for &m in &months {
                if let Some(p) = self.prev_month(m) {
                    if !scan_months.contains(&p) {
                        scan_months.push(p);
                    }
                }
            }
        }
        let groups = self.group(&q.by, &scan_months, &filters, &q.overdue)?;
        let selected: Vec<bool> = (0..self.months.len() as u32)
            .map(|m| months.contains(&m))
            .collect();
        let month_pos = q.by.iter().position(|d| *d == Dimension::Month);
        // cur: by-ids → acc; prev: by-ids (of the *current* row it compares with) → acc
        let mut cur: FxHashMap<Vec<u32>, Acc> = FxHashMap::default();
        let mut prev: FxHashMap<Vec<u32>, Acc> = FxHashMap::default();
        let mut total_cur = Acc::default();
        let mut total_prev = Acc::default();
        let prev_of_single = if single {
            self.prev_month(months[0])
        } else {
            None
        };
        for (ids, acc) in &groups {
            let m = ids[0];
            let by_ids = ids[1..].to_vec();
            if selected[m as usize] {
                cur.entry(by_ids.clone()).or_default().add(acc);
                total_cur.add(acc);
            }
            if q.compare_previous {
                if month_in_by {
                    let next = m + 1;
                    if (next as usize) < self.months.len() && selected[next as usize] {
                        let mut k = by_ids.clone();
                        k[month_pos.expect("month in by")] = next;
                        prev.entry(k).or_default().add(acc);
                    }
                } else if Some(m) == prev_of_single {
                    prev.entry(by_ids).or_default().add(acc);
                    total_prev.add(acc);
                }
            }
        }
        let total_metrics = Metrics::from_acc(&total_cur, total_cur.balance);
        let mut rows: Vec<AggRow> = cur
            .iter()
            .map(|(ids, acc)| {
                let metrics = Metrics::from_acc(acc, total_cur.balance);
                let change = if !q.compare_previous {
                    None
                } else if let Some(mp) = month_pos {
                    let m = ids[mp];
                    self.prev_month(m).map(|p| {
                        Change::new(
                            &self.months[p as usize],
                            &metrics,
                            prev.get(ids).unwrap_or(&Acc::default()),
                        )
                    })
                } else {
                    prev_of_single.map(|p| {
                        Change::new(
                            &self.months[p as usize],
                            &metrics,
                            prev.get(ids).unwrap_or(&Acc::default()),
                        )
                    })
                };
                AggRow {
                    keys: q
                        .by
                        .iter()
                        .zip(ids)
                        .map(|(d, id)| self.key_value(*d, *id))
                        .collect(),
                    metrics,
                    change,
                }
            })
            .collect();
        sort_rows(&mut rows, q.sort);
        let total_rows = rows.len();
        if let Some(n) = q.limit {
            rows.truncate(n);
        }
        let totals = Totals {
            metrics: total_metrics,
            change: if q.compare_previous && !month_in_by {
                prev_of_single
                    .map(|p| Change::new(&self.months[p as usize], &total_metrics, &total_prev))
            } else {
                None
            },
        };
        let mut concentration = Vec::new();
        for &d in &q.concentration {
            concentration.push(self.concentration(d, &months, &filters, &q.overdue)?);
        }
        Ok(AggResult {
            portfolio: q.portfolio.clone(),
            by: q.by.clone(),
            months: months
                .iter()
                .map(|m| self.months[*m as usize].clone())
                .collect(),
            as_of_dates: months
                .iter()
                .map(|m| self.month_dates[*m as usize].clone())
                .collect(),
            previous_month: prev_of_single.map(|p| self.months[p as usize].clone()),
            overdue_definition: q.overdue.describe(),
            total_rows,
            rows,
            totals,
            concentration,
        })
    }

    fn concentration(
        &self,
        dim: Dimension,
        months: &[u32],
        filters: &[(usize, Vec<bool>)],
        overdue: &OverdueDef,
    ) -> Result<Concentration> {
        let groups = self.group(&[dim], months, filters, overdue)?;
        let mut by: FxHashMap<u32, f64> = FxHashMap::default();
        for (ids, acc) in &groups {
            *by.entry(ids[1]).or_default() += acc.balance;
        }
        let total: f64 = by.values().sum();
        let mut v: Vec<(u32, f64)> = by.into_iter().filter(|(_, b)| *b > 0.0).collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let hhi: f64 = v.iter().map(|(_, b)| (b / total).powi(2)).sum();
        let top5: f64 = v.iter().take(5).map(|(_, b)| b / total).sum();
        Ok(Concentration {
            dimension: dim,
            segments: v.len(),
            hhi: if total > 0.0 { hhi } else { 0.0 },
            hhi_points: if total > 0.0 { hhi * 10_000.0 } else { 0.0 },
            top5_share: if total > 0.0 { top5 } else { 0.0 },
            top: v
                .iter()
                .take(5)
                .map(|(id, b)| {
                    let kv = self.key_value(dim, *id);
                    ConcentrationItem {
                        code: kv.code,
                        name: kv.name,
                        balance: *b,
                        share: b / total,
                    }
                })
                .collect(),
        })
    }
}

fn metric_value(r: &AggRow, m: Metric) -> f64 {
    let x = &r.metrics;
    match m {
        Metric::Loans => x.loans as f64,
        Metric::Balance => x.balance,
        Metric::OverdueLoans => x.overdue_loans as f64,
        Metric::OverdueBalance => x.overdue_balance,
        Metric::OverdueRateCount => x.overdue_rate_count,
        Metric::OverdueRateBalance => x.overdue_rate_balance,
        Metric::ShareOfTotal => x.share_of_total,
        Metric::BalanceChange => r
            .change
            .as_ref()
            .map_or(f64::NEG_INFINITY, |c| c.balance_change),
        Metric::OverdueRateCountChange => r
            .change
            .as_ref()
            .map_or(f64::NEG_INFINITY, |c| c.overdue_rate_count_change),
    }
}

fn cmp_keys(a: &AggRow, b: &AggRow) -> std::cmp::Ordering {
    for (x, y) in a.keys.iter().zip(&b.keys) {
        let o = match (&x.code, &y.code) {
            (Some(p), Some(q)) => p.cmp(q),
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, None) => std::cmp::Ordering::Equal,
        };
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    std::cmp::Ordering::Equal
}

fn sort_rows(rows: &mut [AggRow], sort: Option<Metric>) {
    match sort {
        None => rows.sort_by(cmp_keys),
        Some(m) => rows.sort_by(|a, b| {
            metric_value(b, m)
                .total_cmp(&metric_value(a, m))
                .then_with(|| cmp_keys(a, b))
        }),
    }
}

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
