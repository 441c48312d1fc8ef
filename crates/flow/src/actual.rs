//! The `flow.section` dimension of `/v1/aggregate`: for every loan with payments, the section
//! that received the largest share of its paid amount, written to the portfolio store so every
//! aggregate view (heatmaps, trends, exports) works on the actual use of funds.

use rustc_hash::FxHashMap;
use touxiang_portfolio::PortfolioStore;

use crate::error::Result;
use crate::names::is_individual;
use crate::payee_review::REVIEWED_SCOPE;
use crate::payees::{Label, PayeeKind};
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

/// A cached payee label as the pass needs it: (rank of its scope, its section, labeled at).
type Cached = (u8, Option<String>, String);

/// The section of every cached payee label, keyed by normalised name, chosen as
/// [`crate::payees::read_cached`] chooses one label (a reviewer's first, then `scope`'s, or
/// without a scope the newest of any): one scan of the cache instead of two lookups per payee
/// (1 M loans and 2 M payees: the pass took 114 s with per-payee lookups). `None` = the
/// classifier abstained.
fn cached_sections(
    conn: &rusqlite::Connection,
    scope: Option<&str>,
) -> Result<FxHashMap<String, Cached>> {
    let mut out: FxHashMap<String, Cached> = FxHashMap::default();
    let mut st = conn.prepare("SELECT norm, scope, code, labeled_at FROM payee_labels")?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let sc: String = r.get(1)?;
        let rank = if sc == REVIEWED_SCOPE {
            3
        } else if Some(sc.as_str()) == scope {
            2
        } else if scope.is_none() {
            1
        } else {
            continue;
        };
        let norm: String = r.get(0)?;
        let at: String = r.get(3)?;
        let better = match out.get(&norm) {
            None => true,
            Some((k, _, when)) => rank > *k || (rank == *k && at > *when),
        };
        if better {
            let code: Option<String> = r.get(2)?;
            let section = code.and_then(|c| crate::rules::path_of(&c).into_iter().next());
            out.insert(norm, (rank, section, at));
        }
    }
    Ok(out)
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
    /// each distinct payee's label as cached — under `scope` (a labeler's
    /// [`cache_scope`](touxiang_datasets::Labeler::cache_scope)) or, without, the newest; the
    /// caller classifies new payees first ([`FlowStore::label_payees`]). `portfolios` is the
    /// portfolio store this flow store reads its loans from. Returns the number of loans
    /// written.
    pub fn refresh_actual_sections(
        &self,
        portfolio: &str,
        scope: Option<&str>,
        portfolios: &PortfolioStore,
    ) -> Result<u64> {
        let conn = self.connect(portfolio)?;
        let cached = cached_sections(&conn, scope)?;
        let mut st = conn.prepare(
            "SELECT payee_norm, min(payee_name) FROM payments WHERE portfolio=?1 GROUP BY payee_norm",
        )?;
        let mut section: FxHashMap<String, String> = FxHashMap::default();
        let mut q = st.query([portfolio])?;
        while let Some(r) = q.next()? {
            let norm: String = r.get(0)?;
            let name: String = r.get(1)?;
            let s = if is_individual(&name) {
                "individual".to_string()
            } else {
                cached
                    .get(&norm)
                    .and_then(|c| c.1.clone())
                    .unwrap_or_else(|| "unlabeled".to_string())
            };
            section.insert(norm, s);
        }
        drop(q);
        drop(st);
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
                    .get(&norm)
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
