//! Answering a query from a snapshot: current vs previous period, totals, sorting, top-N and
//! concentration.

use rustc_hash::FxHashMap;

use super::query::{AggQuery, Dimension, Metric, OverdueDef};
use super::result::{
    Acc, AggResult, AggRow, Change, Concentration, ConcentrationItem, Metrics, Totals,
};
use super::snapshot::Snapshot;
use crate::error::Result;

impl Snapshot {
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
