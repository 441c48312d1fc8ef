//! The `flow.section` dimension of `/v1/aggregate`: for every loan with payments, the section
//! that received the largest share of its paid amount, written to the portfolio store so every
//! aggregate view (heatmaps, trends, exports) works on the actual use of funds.

use rustc_hash::FxHashMap;
use touxiang_datasets::Labeler;
use touxiang_portfolio::PortfolioStore;

use crate::error::Result;
use crate::payees::{labels_for, Label, PayeeKind};
use crate::store::FlowStore;

/// The section a payment to a payee counts for: `individual` for people, the label's section
/// for classified organisations, `unlabeled` otherwise (as in a loan's `actual` shares).
pub(crate) fn actual_section(kind: &PayeeKind, label: Option<&Label>) -> String {
    match (kind, label) {
        (PayeeKind::Individual, _) => "individual".to_string(),
        (_, Some(l)) => l.path.first().map_or(l.code.clone(), |s| s.code.clone()),
        (_, None) => "unlabeled".to_string(),
    }
}

/// The dominant section of one loan's `(section, amount)` payments and its share of the total
/// (ties: the section first in code order).
fn dominant(amounts: &[(String, f64)]) -> Option<(String, f64)> {
    let total: f64 = amounts.iter().map(|a| a.1).sum();
    let mut by: Vec<(&str, f64)> = Vec::new();
    for (s, a) in amounts {
        match by.iter_mut().find(|(x, _)| x == s) {
            Some(e) => e.1 += a,
            None => by.push((s, *a)),
        }
    }
    by.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(y.0)));
    by.first().map(|(s, a)| {
        let share = if total > 0.0 { a / total } else { 0.0 };
        (s.to_string(), share)
    })
}

impl FlowStore {
    /// Recompute the actual-use section of every loan of `portfolio` with payments and store it
    /// in the portfolio store (replacing the previous ones): one pass over the payments, with
    /// each distinct payee's label from the cache (classified first with `labeler` when given
    /// and not cached). `portfolios` is the portfolio store this flow store reads its loans
    /// from. Returns the number of loans written.
    pub fn refresh_actual_sections(
        &self,
        portfolio: &str,
        labeler: Option<&dyn Labeler>,
        portfolios: &PortfolioStore,
    ) -> Result<u64> {
        let conn = self.connect(portfolio)?;
        let names: Vec<(String, String)> = conn
            .prepare(
                "SELECT payee_norm, min(payee_name) FROM payments WHERE portfolio=?1 GROUP BY payee_norm",
            )?
            .query_map([portfolio], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let refs: Vec<&str> = names.iter().map(|n| n.1.as_str()).collect();
        let labels = labels_for(&conn, &refs, labeler)?;
        let section: FxHashMap<&str, String> = names
            .iter()
            .map(|(norm, _)| {
                let s = match labels.get(norm) {
                    Some(p) => actual_section(&p.kind, p.label.as_ref()),
                    None => "unlabeled".to_string(),
                };
                (norm.as_str(), s)
            })
            .collect();
        let mut rows: Vec<(String, String, f64)> = Vec::new();
        {
            let mut st = conn.prepare(
                "SELECT loan_id, payee_norm, amount FROM payments INDEXED BY payments_loan \
                 WHERE portfolio=?1 ORDER BY loan_id",
            )?;
            let mut q = st.query([portfolio])?;
            let mut current: Option<String> = None;
            let mut amounts: Vec<(String, f64)> = Vec::new();
            let mut flush = |loan: Option<String>, amounts: &mut Vec<(String, f64)>| {
                if let (Some(l), Some((s, share))) = (loan, dominant(amounts)) {
                    rows.push((l, s, share));
                }
                amounts.clear();
            };
            while let Some(r) = q.next()? {
                let loan: String = r.get(0)?;
                let norm: String = r.get(1)?;
                let amount: f64 = r.get(2)?;
                if current.as_deref() != Some(loan.as_str()) {
                    flush(current.take(), &mut amounts);
                    current = Some(loan);
                }
                let s = section
                    .get(norm.as_str())
                    .cloned()
                    .unwrap_or_else(|| "unlabeled".into());
                amounts.push((s, amount));
            }
            flush(current.take(), &mut amounts);
        }
        Ok(portfolios.set_actual_sections(
            portfolio,
            rows.iter().map(|(l, s, sh)| (l.as_str(), s.as_str(), *sh)),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::dominant;

    #[test]
    fn the_largest_section_wins_with_its_share_and_ties_go_to_code_order() {
        let a = |v: &[(&str, f64)]| -> Vec<(String, f64)> {
            v.iter().map(|(s, x)| (s.to_string(), *x)).collect()
        };
        assert_eq!(
            dominant(&a(&[("C", 30.0), ("K", 50.0), ("C", 40.0)])),
            Some(("C".into(), 0.5833333333333334))
        );
        assert_eq!(
            dominant(&a(&[("K", 10.0), ("C", 10.0)])),
            Some(("C".into(), 0.5))
        );
        assert_eq!(dominant(&[]), None);
    }
}
