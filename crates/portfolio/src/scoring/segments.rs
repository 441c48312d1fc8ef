//! Per-segment current and baseline counts from a snapshot, and the scores and alerts computed
//! from them.

use rustc_hash::FxHashMap;

use super::format::{format_amount, format_p, segment_label};
use super::stats::{fit_prior_strength, shrink, two_proportion_z};
use super::{Alert, AlertQuery, ScoreQuery, SegmentScore};
use crate::agg::{Acc, Dimension, Filter, KeyValue, OverdueDef, Snapshot, SnapshotSel};
use crate::error::{invalid, Result};

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
