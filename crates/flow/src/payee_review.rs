//! Payees the classifier was unsure of go to the reviewers (the `payees` queue of the review
//! workbench), and the reviewed label comes back to the payee cache, where it wins over every
//! model's label in every flow ([`crate::payees`]).
//!
//! A payee is proposed once ([`FlowStore::payees_to_review`], then
//! [`FlowStore::mark_payees_queued`]): an organisation whose cached label is not `auto` (the
//! classifier abstained or asked for review), largest amount paid first.

use rusqlite::params;
use serde::Serialize;

use crate::error::Result;
use crate::names::is_individual;
use crate::payees::{read_cached, write_cached, Label};
use crate::store::FlowStore;

/// Cache scope of reviewed payee labels.
pub const REVIEWED_SCOPE: &str = "reviewed";

/// `external_id` prefix of a payee's review item (`payee:` + normalised name).
pub const EXTERNAL_PREFIX: &str = "payee:";

/// A payee for the reviewers.
#[derive(Debug, Clone, Serialize)]
pub struct PayeeToReview {
    /// Normalised name (the cache key).
    pub norm: String,
    /// The name as paid.
    pub name: String,
    /// The classifier's label, when it gave one.
    pub label: Option<Label>,
    /// Amount the portfolio paid it.
    pub paid: f64,
    /// Loans that paid it.
    pub loans: u64,
}

impl FlowStore {
    /// Organisation payees of `portfolio` whose cached label is not `auto`, not sent to review
    /// yet, largest amount paid first (`max` at most). Payees never classified are left out.
    pub fn payees_to_review(&self, portfolio: &str, max: usize) -> Result<Vec<PayeeToReview>> {
        let conn = self.connect(portfolio)?;
        let mut st = conn.prepare(
            "SELECT p.payee_norm, min(p.payee_name), sum(p.amount), count(DISTINCT p.loan_id) \
             FROM payments p WHERE p.portfolio=?1 \
             AND NOT EXISTS (SELECT 1 FROM payee_reviews r WHERE r.norm=p.payee_norm) \
             GROUP BY p.payee_norm ORDER BY sum(p.amount) DESC, p.payee_norm",
        )?;
        let rows = st.query_map([portfolio], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, f64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (norm, name, paid, loans) = row?;
            if out.len() >= max {
                break;
            }
            if is_individual(&name) {
                continue;
            }
            let label = match read_cached(&conn, None, &norm)? {
                None => continue,
                Some(None) => None,
                Some(Some(l)) if l.decision.as_deref() == Some("auto") => continue,
                Some(Some(l)) if l.decision.as_deref() == Some(REVIEWED_SCOPE) => continue,
                Some(Some(l)) => Some(l),
            };
            out.push(PayeeToReview {
                norm,
                name,
                label,
                paid,
                loans: loans.max(0) as u64,
            });
        }
        Ok(out)
    }

    /// Record the review items made for payees (`(normalised name, review_id)`): they are not
    /// proposed again.
    pub fn mark_payees_queued(&self, items: &[(String, String)]) -> Result<()> {
        let mut conn = self.connect_plain()?;
        let tx = conn.transaction()?;
        {
            let mut ins = tx.prepare(
                "INSERT OR REPLACE INTO payee_reviews (norm, review_id) VALUES (?1, ?2)",
            )?;
            for (norm, id) in items {
                ins.execute(params![norm, id])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// A reviewer's final code for the payee `norm`: cached under [`REVIEWED_SCOPE`], so every
    /// flow uses it from now on. `false` when `code` is not a GB/T 4754 code.
    pub fn set_reviewed_payee(&self, norm: &str, code: &str) -> Result<bool> {
        let Some(label) = Label::from_code(code, Some(1.0), Some(REVIEWED_SCOPE.to_string()))
        else {
            return Ok(false);
        };
        let conn = self.connect_plain()?;
        write_cached(&conn, REVIEWED_SCOPE, norm, Some(&label), REVIEWED_SCOPE)?;
        Ok(true)
    }
}
