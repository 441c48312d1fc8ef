//! The aggregation request: dimensions, filters, overdue definition, snapshot selection,
//! metrics, HTTP parameter parsing and drill-down.

use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};
use crate::ingest::LoanStatus;

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
    /// Where the loan's money actually went (fund-flow tracing): the GB/T 4754 section that
    /// received the largest share of its payments, `individual` when people did, `unlabeled`
    /// for payees not classified; no value for loans without payments.
    #[serde(rename = "flow.section")]
    FlowSection,
}

pub(crate) const NDIM: usize = 13;

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
        Dimension::FlowSection,
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
            Dimension::FlowSection => "flow.section",
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
