//! Guarantee circles and a borrower's neighbourhood.
//!
//! A **guarantee circle** (担保圈) is a connected component of the undirected graph whose nodes
//! are the borrowers of a portfolio and whose edges are its `guarantee` relations (direction
//! ignored: money at risk flows both ways through mutual and chained guarantees), with at least
//! two members. Components are found with petgraph's union-find.
//!
//! Exposures are measured on the portfolio's latest snapshot (its latest `as_of_date`): a
//! member's **exposure** is the balance of its loans in that snapshot; a loan is **overdue**
//! when `overdue_days` > `overdue_days_gt` (default 0) or its status is overdue, default or
//! charged off. Per circle:
//! * `total_exposure` — the members' exposure;
//! * `overdue_exposure` — the balance of the members' overdue loans;
//! * `exposure_at_risk` — when any member has an overdue loan, the whole `total_exposure` (every
//!   guarantor of the circle may be called, so contagion puts all of it at risk); 0 otherwise;
//! * `contagion_exposure` — the part of `exposure_at_risk` that is not overdue yet
//!   (`exposure_at_risk - overdue_exposure`).

use petgraph::unionfind::UnionFind;
use rusqlite::{params, Connection};
use rustc_hash::FxHashMap;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::borrowers::{ensure_index, resolve};
use crate::error::{FlowError, Result};
use crate::relations::{self, Relation, RelationKind};
use crate::store::FlowStore;

/// One loan of a borrower in the snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct MemberLoan {
    pub loan_id: String,
    pub balance: f64,
    pub overdue_days: Option<i64>,
    pub overdue: bool,
}

/// A borrower with its exposure.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    /// Borrower key (`borrower_id`, or the normalised name).
    pub key: String,
    pub name: Option<String>,
    pub loans: Vec<MemberLoan>,
    pub exposure: f64,
    pub overdue_exposure: f64,
    pub overdue: bool,
}

/// A guarantee circle.
#[derive(Debug, Clone, Serialize)]
pub struct Circle {
    /// `gc_` + 12 hex digits of a hash of the sorted member keys (stable while the members are).
    pub id: String,
    pub members: Vec<Member>,
    /// Guarantee edges inside the circle.
    pub guarantees: Vec<Relation>,
    pub total_exposure: f64,
    pub overdue_exposure: f64,
    pub overdue_members: usize,
    pub exposure_at_risk: f64,
    pub contagion_exposure: f64,
}

/// Options of the graph read-outs.
#[derive(Debug, Clone, Copy, Default)]
pub struct GraphOptions {
    /// A loan is overdue when `overdue_days` is greater than this.
    pub overdue_days_gt: u32,
}

/// All guarantee circles of a portfolio, largest exposure at risk first, then total exposure.
#[derive(Debug, Clone, Serialize)]
pub struct Circles {
    pub portfolio: String,
    /// Snapshot date of the exposures.
    pub as_of: Option<String>,
    pub circles: Vec<Circle>,
}

fn circle_id(keys: &[String]) -> String {
    let mut h = Sha256::new();
    for k in keys {
        h.update(k.as_bytes());
        h.update([0u8]);
    }
    format!("gc_{}", &hex::encode(h.finalize())[..12])
}

fn member(
    conn: &Connection,
    portfolio: &str,
    as_of: Option<&str>,
    key: &str,
    name: Option<String>,
    opts: GraphOptions,
) -> Result<Member> {
    let mut loans = Vec::new();
    if let Some(as_of) = as_of {
        let mut stmt = conn.prepare_cached(
            "SELECT l.loan_id, l.balance, l.overdue_days, l.status FROM loan_borrowers b INDEXED BY loan_borrowers_key \
             CROSS JOIN pf.loans l ON l.portfolio=b.portfolio AND l.loan_id=b.loan_id AND l.as_of_date=?3 \
             WHERE b.portfolio=?1 AND b.borrower_key=?2 ORDER BY l.loan_id",
        )?;
        let rows = stmt.query_map(params![portfolio, key, as_of], |r| {
            let days: Option<i64> = r.get(2)?;
            let status: Option<String> = r.get(3)?;
            let overdue = days.is_some_and(|d| d > opts.overdue_days_gt as i64)
                || matches!(
                    status.as_deref(),
                    Some("overdue" | "default" | "charged_off")
                );
            Ok(MemberLoan {
                loan_id: r.get(0)?,
                balance: r.get(1)?,
                overdue_days: days,
                overdue,
            })
        })?;
        for l in rows {
            loans.push(l?);
        }
    }
    let exposure = loans.iter().map(|l| l.balance).sum();
    let overdue_exposure = loans.iter().filter(|l| l.overdue).map(|l| l.balance).sum();
    Ok(Member {
        key: key.to_string(),
        name,
        overdue: loans.iter().any(|l| l.overdue),
        loans,
        exposure,
        overdue_exposure,
    })
}

/// Whether the borrower `key` had an overdue loan in the snapshot `as_of` (`false` when it had
/// no loan then).
pub(crate) fn overdue_at(
    conn: &Connection,
    portfolio: &str,
    as_of: &str,
    key: &str,
    opts: GraphOptions,
) -> Result<bool> {
    Ok(member(conn, portfolio, Some(as_of), key, None, opts)?.overdue)
}

/// The portfolio's snapshot (`as_of_date`) before `as_of`, if any.
pub(crate) fn previous_as_of(
    conn: &Connection,
    portfolio: &str,
    as_of: &str,
) -> Result<Option<String>> {
    Ok(conn.query_row(
        "SELECT max(as_of_date) FROM pf.loans WHERE portfolio=?1 AND as_of_date < ?2",
        params![portfolio, as_of],
        |r| r.get(0),
    )?)
}

/// Circles of the guarantee relations `rels` (see the module documentation).
fn circles_of(
    conn: &Connection,
    portfolio: &str,
    as_of: Option<&str>,
    rels: &[Relation],
    opts: GraphOptions,
) -> Result<Vec<Circle>> {
    let guarantees: Vec<&Relation> = rels
        .iter()
        .filter(|r| r.kind == RelationKind::Guarantee)
        .collect();
    let mut index: FxHashMap<&str, usize> = FxHashMap::default();
    let mut names: Vec<(&str, Option<String>)> = Vec::new();
    for r in &guarantees {
        for (k, n) in [(&r.from, &r.from_name), (&r.to, &r.to_name)] {
            if !index.contains_key(k.as_str()) {
                index.insert(k, names.len());
                names.push((k, n.clone()));
            }
        }
    }
    let mut uf = UnionFind::<usize>::new(names.len());
    for r in &guarantees {
        uf.union(index[r.from.as_str()], index[r.to.as_str()]);
    }
    let mut groups: FxHashMap<usize, Vec<usize>> = FxHashMap::default();
    for i in 0..names.len() {
        groups.entry(uf.find(i)).or_default().push(i);
    }
    let mut out = Vec::new();
    for (_, idx) in groups {
        if idx.len() < 2 {
            continue;
        }
        let mut keys: Vec<String> = idx.iter().map(|&i| names[i].0.to_string()).collect();
        keys.sort();
        let mut members = Vec::with_capacity(keys.len());
        for k in &keys {
            let name = names[index[k.as_str()]].1.clone();
            members.push(member(conn, portfolio, as_of, k, name, opts)?);
        }
        let total: f64 = members.iter().map(|m| m.exposure).sum();
        let overdue: f64 = members.iter().map(|m| m.overdue_exposure).sum();
        let overdue_members = members.iter().filter(|m| m.overdue).count();
        let at_risk = if overdue_members > 0 { total } else { 0.0 };
        let edges = guarantees
            .iter()
            .filter(|r| keys.binary_search(&r.from).is_ok())
            .map(|r| (*r).clone())
            .collect();
        out.push(Circle {
            id: circle_id(&keys),
            members,
            guarantees: edges,
            total_exposure: total,
            overdue_exposure: overdue,
            overdue_members,
            exposure_at_risk: at_risk,
            contagion_exposure: at_risk - overdue,
        });
    }
    out.sort_by(|a, b| {
        b.exposure_at_risk
            .total_cmp(&a.exposure_at_risk)
            .then(b.total_exposure.total_cmp(&a.total_exposure))
            .then(a.id.cmp(&b.id))
    });
    Ok(out)
}

/// A borrower, its loans, its relations and its guarantee circle.
#[derive(Debug, Clone, Serialize)]
pub struct BorrowerGraph {
    pub portfolio: String,
    pub as_of: Option<String>,
    pub borrower: Member,
    /// Relations touching the borrower (either direction).
    pub relations: Vec<Relation>,
    /// The borrower's guarantee circle, when it is in one.
    pub circle: Option<Circle>,
}

impl FlowStore {
    /// Every guarantee circle of `portfolio`.
    pub fn circles(&self, portfolio: &str, opts: GraphOptions) -> Result<Circles> {
        let mut conn = self.connect(portfolio)?;
        let as_of = ensure_index(&mut conn, portfolio)?;
        let rels = relations::load(&conn, portfolio, None)?;
        let circles = circles_of(&conn, portfolio, as_of.as_deref(), &rels, opts)?;
        Ok(Circles {
            portfolio: portfolio.to_string(),
            as_of,
            circles,
        })
    }

    /// One borrower (by `borrower_id` or name) with its relations and circle.
    pub fn borrower_graph(
        &self,
        portfolio: &str,
        borrower: &str,
        opts: GraphOptions,
    ) -> Result<BorrowerGraph> {
        let mut conn = self.connect(portfolio)?;
        let as_of = ensure_index(&mut conn, portfolio)?;
        let b = resolve(&conn, portfolio, borrower)?.ok_or_else(|| FlowError::UnknownBorrower {
            portfolio: portfolio.to_string(),
            borrower: borrower.to_string(),
        })?;
        let me = member(&conn, portfolio, as_of.as_deref(), &b.key, b.name, opts)?;
        let relations = relations::load(&conn, portfolio, Some(&me.key))?;
        let circle = if relations.iter().any(|r| r.kind == RelationKind::Guarantee) {
            let all = relations::load(&conn, portfolio, None)?;
            circles_of(&conn, portfolio, as_of.as_deref(), &all, opts)?
                .into_iter()
                .find(|c| c.members.iter().any(|m| m.key == me.key))
        } else {
            None
        };
        Ok(BorrowerGraph {
            portfolio: portfolio.to_string(),
            as_of,
            borrower: me,
            relations,
            circle,
        })
    }
}
