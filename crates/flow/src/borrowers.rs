//! Who borrowed each loan: an index `loan_id → borrower` of a portfolio, rebuilt from the
//! portfolio store whenever the portfolio's generation changes (a committed loan ingest).
//!
//! ## Borrower identity
//! The loan store has no borrower table; a borrower is read from each loan's attributes (the
//! loan file's extra columns): its **key** is the `borrower_id` column when the loan has one,
//! otherwise its `borrower_name` [normalised](crate::names::normalize). Loans with neither have
//! no borrower (their flows have no round-trip check against the borrower, and they are in no
//! guarantee circle). The latest snapshot of each loan decides. Relations name borrowers by
//! either form: an endpoint is looked up as a key first, then as a normalised name.
//!
//! The index also fixes the **as-of date** exposures are measured at: the portfolio's latest
//! snapshot date.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::error::Result;
use crate::names::normalize;
use crate::store::read_generation;

/// A borrower of the portfolio.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Borrower {
    /// `borrower_id`, or the normalised `borrower_name` when the book has no ids.
    pub key: String,
    /// `borrower_name` as written on the latest loan, when given.
    pub name: Option<String>,
}

/// Key and name of the borrower in a loan's attributes JSON.
pub fn borrower_of(attributes: Option<&str>) -> Option<Borrower> {
    let v: serde_json::Value = serde_json::from_str(attributes?).ok()?;
    let text = |k: &str| -> Option<String> {
        match v.get(k)? {
            serde_json::Value::String(s) => Some(s.trim().to_string()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
        .filter(|s| !s.is_empty())
    };
    let name = text("borrower_name");
    let key = text("borrower_id").or_else(|| name.as_deref().map(normalize))?;
    Some(Borrower { key, name })
}

/// Make the borrower index of `portfolio` current; returns the portfolio's latest as-of date.
pub(crate) fn ensure_index(conn: &mut Connection, portfolio: &str) -> Result<Option<String>> {
    let generation = read_generation(conn, portfolio)?;
    let current = |c: &Connection| -> Result<Option<Option<String>>> {
        Ok(c.query_row(
            "SELECT as_of FROM borrower_index WHERE portfolio=?1 AND generation=?2",
            params![portfolio, generation],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()?)
    };
    if let Some(as_of) = current(conn)? {
        return Ok(as_of);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(as_of) = current(&tx)? {
        return Ok(as_of);
    }
    tx.execute("DELETE FROM loan_borrowers WHERE portfolio=?1", [portfolio])?;
    let as_of: Option<String> = tx.query_row(
        "SELECT max(as_of_date) FROM pf.loans WHERE portfolio=?1",
        [portfolio],
        |r| r.get(0),
    )?;
    {
        let mut ins = tx.prepare(
            "INSERT OR REPLACE INTO loan_borrowers (portfolio, loan_id, borrower_key, borrower_name, borrower_norm) \
             VALUES (?1,?2,?3,?4,?5)",
        )?;
        // rows come in key order (loan_id, as_of_date): the last row of a loan is its latest
        let mut sel = tx.prepare(
            "SELECT loan_id, attributes FROM pf.loans WHERE portfolio=?1 ORDER BY loan_id, as_of_date",
        )?;
        let mut rows = sel.query([portfolio])?;
        let mut pending: Option<(String, Option<String>)> = None;
        let mut flush = |p: Option<(String, Option<String>)>| -> Result<()> {
            if let Some((loan, attrs)) = p {
                if let Some(b) = borrower_of(attrs.as_deref()) {
                    let norm = b.name.as_deref().map(normalize);
                    ins.execute(params![portfolio, loan, b.key, b.name, norm])?;
                }
            }
            Ok(())
        };
        while let Some(r) = rows.next()? {
            let loan: String = r.get(0)?;
            let attrs: Option<String> = r.get(1)?;
            if pending.as_ref().is_some_and(|(l, _)| *l != loan) {
                flush(pending.take())?;
            }
            pending = Some((loan, attrs));
        }
        flush(pending.take())?;
    }
    tx.execute(
        "INSERT OR REPLACE INTO borrower_index (portfolio, generation, as_of) VALUES (?1,?2,?3)",
        params![portfolio, generation, as_of],
    )?;
    tx.commit()?;
    Ok(as_of)
}

/// The borrower an endpoint names (a key, else a normalised name), with its display name.
pub(crate) fn resolve(
    conn: &Connection,
    portfolio: &str,
    endpoint: &str,
) -> Result<Option<Borrower>> {
    let by_key: Option<Option<String>> = conn
        .prepare_cached(
            "SELECT borrower_name FROM loan_borrowers INDEXED BY loan_borrowers_key WHERE portfolio=?1 AND borrower_key=?2 LIMIT 1",
        )?
        .query_row(params![portfolio, endpoint], |r| r.get(0))
        .optional()?;
    if let Some(name) = by_key {
        return Ok(Some(Borrower {
            key: endpoint.to_string(),
            name,
        }));
    }
    let norm = normalize(endpoint);
    Ok(conn
        .prepare_cached(
            "SELECT borrower_key, borrower_name FROM loan_borrowers INDEXED BY loan_borrowers_norm WHERE portfolio=?1 AND borrower_norm=?2 LIMIT 1",
        )?
        .query_row(params![portfolio, norm], |r| {
            Ok(Borrower {
                key: r.get(0)?,
                name: r.get(1)?,
            })
        })
        .optional()?)
}
