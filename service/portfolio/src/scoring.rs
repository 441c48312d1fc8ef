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

use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::agg::{Acc, Dimension, Filter, KeyValue, OverdueDef, Snapshot, SnapshotSel};
use crate::error::{invalid, Result};
use crate::store::PortfolioStore;

/// Upper bound of the prior strength κ (used when no between-segment variance is detectable).
pub const MAX_STRENGTH: f64 = 1.0e6;

/// Fit the beta-binomial prior strength κ by the method of moments over sibling segments given
/// as `(n_i, x_i)`; returns `(m, κ)`. `None` when fewer than `min_siblings` siblings have loans.
pub fn fit_prior_strength(siblings: &[(u64, u64)], min_siblings: usize) -> (f64, Option<f64>) {
    let n_tot: f64 = siblings.iter().map(|s| s.0 as f64).sum();
    let x_tot: f64 = siblings.iter().map(|s| s.1 as f64).sum();
    let m = if n_tot > 0.0 { x_tot / n_tot } else { 0.0 };
    let live: Vec<&(u64, u64)> = siblings.iter().filter(|s| s.0 > 0).collect();
    let k = live.len();
    if k < min_siblings.max(2) {
        return (m, None);
    }
    let s: f64 = live
        .iter()
        .map(|(n, x)| {
            let p = *x as f64 / *n as f64;
            *n as f64 * (p - m) * (p - m)
        })
        .sum();
    let sum_n2: f64 = live.iter().map(|(n, _)| (*n as f64) * (*n as f64)).sum();
    let denom = n_tot - sum_n2 / n_tot;
    let v = m * (1.0 - m);
    if v <= 0.0 || denom <= 0.0 {
        return (m, Some(MAX_STRENGTH));
    }
    let tau2 = ((s - (k as f64 - 1.0) * v) / denom).max(0.0);
    let kappa = if tau2 <= 0.0 {
        MAX_STRENGTH
    } else {
        (v / tau2 - 1.0).clamp(0.0, MAX_STRENGTH)
    };
    (m, Some(kappa))
}

/// Posterior mean `(x + κ m)/(n + κ)`.
pub fn shrink(x: u64, n: u64, m: f64, kappa: f64) -> f64 {
    let d = n as f64 + kappa;
    if d > 0.0 {
        (x as f64 + kappa * m) / d
    } else {
        m
    }
}

/// One-sided two-proportion z-test of `x_c/n_c > x_b/n_b`: `(z, p-value)`.
pub fn two_proportion_z(x_c: u64, n_c: u64, x_b: u64, n_b: u64) -> (f64, f64) {
    if n_c == 0 || n_b == 0 {
        return (0.0, 1.0);
    }
    let (pc, pb) = (x_c as f64 / n_c as f64, x_b as f64 / n_b as f64);
    let p = (x_c + x_b) as f64 / (n_c + n_b) as f64;
    let se = (p * (1.0 - p) * (1.0 / n_c as f64 + 1.0 / n_b as f64)).sqrt();
    if se <= 0.0 {
        return (0.0, 1.0);
    }
    let z = (pc - pb) / se;
    (z, 0.5 * libm::erfc(z / std::f64::consts::SQRT_2))
}

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

/// Segment label "C 制造业/11 北京市".
pub fn segment_label(keys: &[KeyValue]) -> String {
    keys.iter()
        .map(|k| match (&k.code, &k.name) {
            (Some(c), Some(n)) => format!("{c} {n}"),
            (Some(c), None) => c.clone(),
            (None, _) => "未分类".to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Amount in words: CNY as 亿元/万元/元, other currencies as "1,234,567 USD".
pub fn format_amount(v: f64, currency: &str) -> String {
    if currency.eq_ignore_ascii_case("CNY") || currency == "元" {
        if v.abs() >= 1e8 {
            format!("{:.1}亿元", v / 1e8)
        } else if v.abs() >= 1e4 {
            format!("{:.1}万元", v / 1e4)
        } else {
            format!("{v:.0}元")
        }
    } else {
        let s = format!("{:.0}", v.abs());
        let mut out = String::new();
        for (i, ch) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        format!("{}{out} {currency}", if v < 0.0 { "-" } else { "" })
    }
}

fn format_p(p: f64) -> String {
    if p < 0.001 {
        "p<0.001".to_string()
    } else {
        format!("p={p:.3}")
    }
}

/// Per-segment current and baseline counts, with parent keys.
struct SegmentData {
    /// by-ids → (current, baseline)
    segs: FxHashMap<Vec<u32>, (Acc, Acc)>,
    /// index positions (in scan dims) forming the parent key
    parent_pos: Vec<usize>,
    scan_dims: Vec<Dimension>,
    parent_dims: Vec<Dimension>,
    month: u32,
    baseline_months: Vec<u32>,
}

/// Parent dims of a segment definition (see module docs).
pub fn parent_dims(by: &[Dimension]) -> Vec<Dimension> {
    let mut p = by.to_vec();
    if let Some(last) = p.pop() {
        if let Some(up) = last.parent() {
            if !p.contains(&up) {
                p.push(up);
            }
        }
    }
    p
}

impl Snapshot {
    fn segment_data(
        &self,
        by: &[Dimension],
        filters: &[Filter],
        overdue: &OverdueDef,
        snapshot: &SnapshotSel,
        trailing: usize,
    ) -> Result<SegmentData> {
        if by.is_empty() {
            return Err(invalid("by", "at least one dimension is needed"));
        }
        if by.contains(&Dimension::Month) {
            return Err(invalid(
                "by",
                "month is the time axis here, not a segment dimension",
            ));
        }
        if matches!(snapshot, SnapshotSel::All) {
            return Err(invalid(
                "as_of",
                "scores and alerts need one current month, not all",
            ));
        }
        let months = self.select_months(snapshot)?;
        let Some(&month) = months.first() else {
            return Err(invalid("as_of", "portfolio has no snapshots"));
        };
        let baseline_months: Vec<u32> = (month.saturating_sub(trailing as u32)..month).collect();
        let pdims = parent_dims(by);
        let mut scan_dims = by.to_vec();
        for d in &pdims {
            if !scan_dims.contains(d) {
                scan_dims.push(*d);
            }
        }
        let parent_pos = pdims
            .iter()
            .map(|d| scan_dims.iter().position(|x| x == d).expect("in scan dims"))
            .collect();
        let filters = self.compile_filters(filters)?;
        let mut scan_months = baseline_months.clone();
        scan_months.push(month);
        let groups = self.group(&scan_dims, &scan_months, &filters, overdue)?;
        let mut segs: FxHashMap<Vec<u32>, (Acc, Acc)> = FxHashMap::default();
        for (ids, acc) in groups {
            let e = segs.entry(ids[1..].to_vec()).or_default();
            if ids[0] == month {
                e.0 = acc;
            } else {
                let b = &mut e.1;
                b.loans += acc.loans;
                b.balance += acc.balance;
                b.od_loans += acc.od_loans;
                b.od_balance += acc.od_balance;
            }
        }
        Ok(SegmentData {
            segs,
            parent_pos,
            scan_dims,
            parent_dims: pdims,
            month,
            baseline_months,
        })
    }

    pub(crate) fn scores(&self, q: &ScoreQuery) -> Result<Vec<SegmentScore>> {
        let sd = self.segment_data(&q.by, &q.filters, &q.overdue, &q.snapshot, q.trailing)?;
        // Sibling groups by parent key.
        let mut fam: FxHashMap<Vec<u32>, Vec<&Vec<u32>>> = FxHashMap::default();
        for k in sd.segs.keys() {
            fam.entry(sd.parent_pos.iter().map(|&p| k[p]).collect())
                .or_default()
                .push(k);
        }
        let mut out = Vec::new();
        for (pkey, members) in &fam {
            let cur: Vec<(u64, u64)> = members
                .iter()
                .map(|k| {
                    let a = &sd.segs[*k].0;
                    (a.loans, a.od_loans)
                })
                .collect();
            let base: Vec<(u64, u64)> = members
                .iter()
                .map(|k| {
                    let a = &sd.segs[*k].1;
                    (a.loans, a.od_loans)
                })
                .collect();
            let (m, fitted) = fit_prior_strength(&cur, q.min_siblings);
            let kappa = fitted.unwrap_or(q.default_strength);
            let (mb, _) = fit_prior_strength(&base, usize::MAX);
            let has_base = base.iter().any(|b| b.0 > 0);
            let parent: Vec<KeyValue> = sd
                .parent_dims
                .iter()
                .zip(pkey)
                .map(|(d, id)| self.key_value(*d, *id))
                .collect();
            for k in members {
                let (c, b) = &sd.segs[*k];
                if c.loans == 0 {
                    continue;
                }
                let shrunk = shrink(c.od_loans, c.loans, m, kappa);
                let baseline =
                    (has_base && b.loans > 0).then(|| shrink(b.od_loans, b.loans, mb, kappa));
                out.push(SegmentScore {
                    keys: q
                        .by
                        .iter()
                        .enumerate()
                        .map(|(i, d)| self.key_value(*d, k[i]))
                        .collect(),
                    parent: parent.clone(),
                    month: self.months[sd.month as usize].clone(),
                    loans: c.loans,
                    overdue_loans: c.od_loans,
                    balance: c.balance,
                    overdue_balance: c.od_balance,
                    raw_rate: c.od_loans as f64 / c.loans as f64,
                    parent_rate: m,
                    prior_strength: kappa,
                    prior_fitted: fitted.is_some(),
                    shrunk_rate: shrunk,
                    exposure_at_risk: c.balance * shrunk,
                    baseline_rate: baseline,
                    trend: baseline.map(|b| shrunk - b),
                });
            }
        }
        let _ = &sd.scan_dims;
        out.sort_by(|a, b| {
            b.exposure_at_risk
                .total_cmp(&a.exposure_at_risk)
                .then_with(|| format!("{:?}", a.keys).cmp(&format!("{:?}", b.keys)))
        });
        Ok(out)
    }

    pub(crate) fn alerts(&self, q: &AlertQuery) -> Result<Vec<Alert>> {
        if !(q.alpha > 0.0 && q.alpha < 1.0) {
            return Err(invalid("alpha", "must be in (0, 1)"));
        }
        let sd = self.segment_data(&q.by, &q.filters, &q.overdue, &q.snapshot, q.trailing)?;
        let tested: Vec<(&Vec<u32>, &(Acc, Acc))> = sd
            .segs
            .iter()
            .filter(|(_, (c, b))| {
                c.loans >= q.min_loans.max(1)
                    && b.loans >= q.min_loans.max(1)
                    && c.balance >= q.min_exposure
            })
            .collect();
        let threshold = if q.bonferroni && !tested.is_empty() {
            q.alpha / tested.len() as f64
        } else {
            q.alpha
        };
        let baseline_months: Vec<String> = sd
            .baseline_months
            .iter()
            .map(|m| self.months[*m as usize].clone())
            .collect();
        let mut out = Vec::new();
        for (k, (c, b)) in tested {
            let (z, p) = two_proportion_z(c.od_loans, c.loans, b.od_loans, b.loans);
            if !(p < threshold && z > 0.0) {
                continue;
            }
            let keys: Vec<KeyValue> =
                q.by.iter()
                    .enumerate()
                    .map(|(i, d)| self.key_value(*d, k[i]))
                    .collect();
            let rate = c.od_loans as f64 / c.loans as f64;
            let base = b.od_loans as f64 / b.loans as f64;
            let reason = format!(
                "{}: 逾期率 {:.1}% 高于基线 {:.1}%（z={:.1}, {}，敞口 {}；{} 月 {} 笔中 {} 笔逾期，基线 {} 个月 {} 笔）",
                segment_label(&keys),
                rate * 100.0,
                base * 100.0,
                z,
                format_p(p),
                format_amount(c.balance, &self.config.currency),
                self.months[sd.month as usize],
                c.loans,
                c.od_loans,
                baseline_months.len(),
                b.loans,
            );
            out.push(Alert {
                keys,
                month: self.months[sd.month as usize].clone(),
                baseline_months: baseline_months.clone(),
                loans: c.loans,
                overdue_loans: c.od_loans,
                balance: c.balance,
                overdue_balance: c.od_balance,
                rate,
                baseline_loans: b.loans,
                baseline_rate: base,
                z,
                p_value: p,
                threshold,
                reason,
            });
        }
        out.sort_by(|a, b| b.z.total_cmp(&a.z).then_with(|| a.reason.cmp(&b.reason)));
        Ok(out)
    }
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
