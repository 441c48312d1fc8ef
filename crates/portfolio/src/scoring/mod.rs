//! Segment risk scores (empirical-Bayes shrinkage) and early-warning alerts.
//!
//! ## Shrunk overdue rate
//! A segment `i` (a combination of the `by` dimensions, e.g. division × province) in the current
//! month has `n_i` loans of which `x_i` are overdue. Its **parent** is the segment one step
//! coarser: the last hierarchical dimension moved up a level (class → group → division → section,
//! county → city → province), or, when the last dimension is flat (customer type, purpose, …) or
//! already at the top level, the segment with that dimension dropped (for a single flat
//! dimension: the whole filtered book). **Siblings** are the segments sharing a parent.
//!
//! Model: `x_i ~ Binomial(n_i, θ_i)`, `θ_i ~ Beta(κ·m, κ·(1−m))` where `m = Σx/Σn` over the
//! siblings (the parent's pooled rate) and the strength `κ` is fitted by the method of moments
//! across the `k` siblings (Fleiss / DerSimonian–Laird form):
//!
//! ```text
//!   S  = Σ n_i (p_i − m)²,      p_i = x_i / n_i,   N = Σ n_i
//!   τ² = max(0, (S − (k − 1)·m(1 − m)) / (N − Σ n_i² / N))      (between-segment variance of θ)
//!   κ  = m(1 − m)/τ² − 1        clamped to [0, MAX_STRENGTH]; τ² = 0 → MAX_STRENGTH
//! ```
//!
//! With fewer than [`ScoreQuery::min_siblings`] siblings the moments are not estimable and
//! `κ = `[`ScoreQuery::default_strength`]. The **shrunk rate** is the posterior mean
//! `r̃_i = (x_i + κ·m) / (n_i + κ)`: a segment of 3 loans with 2 overdue sits near its parent's
//! rate, a segment of 30 000 loans near its own — a small segment cannot game its score. The
//! **risk score** is `r̃_i`; **exposure at risk** `EaR_i = balance_i · r̃_i`.
//!
//! **Trend**: `r̃_i − b̃_i`, where `b̃_i` is the same shrinkage applied to the segment's pooled
//! counts over the trailing `T` months before the current one (toward the parent's trailing
//! pooled rate, same κ); `None` without trailing data.
//!
//! ## Alerts
//! For each segment with `n_c ≥ min_loans` current loans, `n_b ≥ min_loans` baseline loans
//! (pooled over the trailing `T` months) and current balance ≥ `min_exposure`, a **one-sided
//! two-proportion z-test** of H0: `θ_current ≤ θ_baseline`:
//!
//! ```text
//!   p̂ = (x_c + x_b)/(n_c + n_b),  z = (x_c/n_c − x_b/n_b) / sqrt(p̂(1 − p̂)(1/n_c + 1/n_b)),
//!   p-value = 1 − Φ(z)
//! ```
//!
//! An alert is raised when `p-value < alpha` (default 0.01). With `bonferroni` the threshold is
//! `alpha / (number of segments tested)`. Caveat: monthly snapshots of the same loans are not
//! independent samples, so the test is a screening rule, not an exact error rate.

use serde::Serialize;

use crate::agg::{Dimension, Filter, KeyValue, OverdueDef, SnapshotSel};
use crate::error::{invalid, Result};
use crate::store::PortfolioStore;

mod format;
mod segments;
mod stats;

pub use format::{format_amount, segment_label};
pub use segments::parent_dims;
pub use stats::{fit_prior_strength, shrink, two_proportion_z, MAX_STRENGTH};

/// A scoring request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreQuery {
    /// Portfolio.
    pub portfolio: String,
    /// Segment dimensions (non-empty; `month` not allowed).
    pub by: Vec<Dimension>,
    /// Filters (ANDed), applied to segments, parents and baselines alike.
    pub filters: Vec<Filter>,
    /// Overdue definition.
    pub overdue: OverdueDef,
    /// Current period: `Latest` or `Month` (not `All`).
    pub snapshot: SnapshotSel,
    /// Trailing months for the baseline (default 3).
    pub trailing: usize,
    /// Minimum siblings for the moment fit (default 3).
    pub min_siblings: usize,
    /// κ when the fit is not possible (default 100 loans' worth of prior).
    pub default_strength: f64,
}

impl ScoreQuery {
    /// Defaults: latest month, overdue_days > 0, 3 trailing months.
    pub fn new(portfolio: &str, by: &[Dimension]) -> Self {
        ScoreQuery {
            portfolio: portfolio.to_string(),
            by: by.to_vec(),
            filters: Vec::new(),
            overdue: OverdueDef::default(),
            snapshot: SnapshotSel::Latest,
            trailing: 3,
            min_siblings: 3,
            default_strength: 100.0,
        }
    }
}

/// Score of one segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentScore {
    /// Segment.
    pub keys: Vec<KeyValue>,
    /// Parent segment (empty = the whole filtered book).
    pub parent: Vec<KeyValue>,
    /// Current month.
    pub month: String,
    /// Loans.
    pub loans: u64,
    /// Overdue loans.
    pub overdue_loans: u64,
    /// Balance.
    pub balance: f64,
    /// Overdue balance.
    pub overdue_balance: f64,
    /// x/n.
    pub raw_rate: f64,
    /// Parent's pooled rate m.
    pub parent_rate: f64,
    /// Fitted prior strength κ.
    pub prior_strength: f64,
    /// Whether κ came from the moment fit (false: default_strength).
    pub prior_fitted: bool,
    /// Posterior mean (x + κm)/(n + κ) — the risk score.
    pub shrunk_rate: f64,
    /// balance × shrunk_rate.
    pub exposure_at_risk: f64,
    /// Shrunk trailing baseline rate.
    pub baseline_rate: Option<f64>,
    /// shrunk_rate − baseline_rate.
    pub trend: Option<f64>,
}

/// An early-warning alert request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertQuery {
    /// Portfolio.
    pub portfolio: String,
    /// Segment dimensions (non-empty).
    pub by: Vec<Dimension>,
    /// Filters.
    pub filters: Vec<Filter>,
    /// Overdue definition.
    pub overdue: OverdueDef,
    /// Current period.
    pub snapshot: SnapshotSel,
    /// Trailing months pooled into the baseline (default 3).
    pub trailing: usize,
    /// Significance level of the one-sided test (default 0.01).
    pub alpha: f64,
    /// Divide alpha by the number of segments tested.
    pub bonferroni: bool,
    /// Minimum current balance of a segment to alert (default 0).
    pub min_exposure: f64,
    /// Minimum loans now and in the baseline (default 30).
    pub min_loans: u64,
}

impl AlertQuery {
    /// Defaults: latest month, overdue_days > 0, 3 trailing months, alpha 0.01, 30 loans.
    pub fn new(portfolio: &str, by: &[Dimension]) -> Self {
        AlertQuery {
            portfolio: portfolio.to_string(),
            by: by.to_vec(),
            filters: Vec::new(),
            overdue: OverdueDef::default(),
            snapshot: SnapshotSel::Latest,
            trailing: 3,
            alpha: 0.01,
            bonferroni: false,
            min_exposure: 0.0,
            min_loans: 30,
        }
    }

    /// Build from HTTP query parameters (`GET /v1/alerts`): `by`, `overdue_days_gt` /
    /// `overdue_status`, `as_of`, dimension filters (as for [`crate::AggQuery::from_params`]),
    /// plus `trailing=3`, `alpha=0.01`, `bonferroni=true|false`, `min_exposure=0`,
    /// `min_loans=30`. `by` defaults to `industry.section,region.province`.
    pub fn from_params(portfolio: &str, params: &[(String, String)]) -> Result<Self> {
        let mut rest = Vec::new();
        let mut q = AlertQuery::new(
            portfolio,
            &[Dimension::IndustrySection, Dimension::RegionProvince],
        );
        for (k, v) in params {
            let num = |name: &str| -> Result<f64> {
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| invalid(name, format!("{v:?} is not a number ≥ 0")))
            };
            match k.as_str() {
                "trailing" => q.trailing = num("trailing")? as usize,
                "alpha" => {
                    q.alpha = num("alpha")?;
                    if !(q.alpha > 0.0 && q.alpha < 1.0) {
                        return Err(invalid("alpha", "must be in (0, 1)"));
                    }
                }
                "bonferroni" => q.bonferroni = matches!(v.trim(), "true" | "1"),
                "min_exposure" => q.min_exposure = num("min_exposure")?,
                "min_loans" => q.min_loans = num("min_loans")? as u64,
                "sort" | "limit" | "top" | "compare" | "concentration" => {
                    return Err(invalid(k, "not a parameter of alerts"))
                }
                _ => rest.push((k.clone(), v.clone())),
            }
        }
        let a = crate::agg::AggQuery::from_params(portfolio, &rest)?;
        if !a.by.is_empty() {
            q.by = a.by;
        }
        q.filters = a.filters;
        q.overdue = a.overdue;
        q.snapshot = a.snapshot;
        if q.trailing == 0 {
            return Err(invalid("trailing", "must be ≥ 1"));
        }
        Ok(q)
    }
}

/// One early-warning alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Segment.
    pub keys: Vec<KeyValue>,
    /// Current month.
    pub month: String,
    /// Baseline months pooled.
    pub baseline_months: Vec<String>,
    /// Current loans.
    pub loans: u64,
    /// Current overdue loans.
    pub overdue_loans: u64,
    /// Current balance (exposure).
    pub balance: f64,
    /// Current overdue balance.
    pub overdue_balance: f64,
    /// Current overdue rate (count).
    pub rate: f64,
    /// Baseline loans (pooled).
    pub baseline_loans: u64,
    /// Baseline overdue rate (pooled, count).
    pub baseline_rate: f64,
    /// z statistic.
    pub z: f64,
    /// One-sided p-value.
    pub p_value: f64,
    /// Threshold the p-value was compared with (alpha, or alpha/tests with Bonferroni).
    pub threshold: f64,
    /// The reason in words (Chinese, with numbers).
    pub reason: String,
}

impl PortfolioStore {
    /// Risk scores of every segment of `q.by` in the current month, by exposure at risk
    /// descending (formulas in the module docs).
    pub fn scores(&self, q: &ScoreQuery) -> Result<Vec<SegmentScore>> {
        self.snapshot(&q.portfolio)?.scores(q)
    }

    /// Early-warning alerts, strongest (largest z) first.
    pub fn alerts(&self, q: &AlertQuery) -> Result<Vec<Alert>> {
        self.snapshot(&q.portfolio)?.alerts(q)
    }
}
