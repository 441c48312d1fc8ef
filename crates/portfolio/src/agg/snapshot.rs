//! The in-memory columnar snapshot: loading, dictionary encoding, filter compilation and the
//! core group-by scan.

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use super::query::{normalize_month, Dimension, Filter, OverdueDef, SnapshotSel, NDIM};
use super::result::{Acc, KeyValue};
use crate::error::{invalid, Result};
use crate::ingest::LoanStatus;
use crate::refdata::{industry_name, industry_path};
use crate::store::PortfolioConfig;

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

    pub(super) fn load(
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
            "SELECT l.as_of_date, l.ind_section, l.ind_division, l.ind_group, l.ind_class, l.province, \
             l.city, l.county, l.customer_type, l.purpose_code, l.product, l.issue_date, l.balance, \
             l.overdue_days, l.status, a.section \
             FROM loans l LEFT JOIN loan_actual a ON a.portfolio=l.portfolio AND a.loan_id=l.loan_id \
             WHERE l.portfolio=?1",
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
                    Dimension::FlowSection => {
                        let v = r
                            .get_ref(15)?
                            .as_str_or_null()
                            .map_err(rusqlite::Error::from)?;
                        interners[d].id(v)
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
            Dimension::FlowSection => match code {
                "individual" => Some("个人".to_string()),
                "unlabeled" => Some("未识别".to_string()),
                _ => industry_name(code),
            },
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

    pub(super) fn prev_month(&self, m: u32) -> Option<u32> {
        m.checked_sub(1)
    }
}
