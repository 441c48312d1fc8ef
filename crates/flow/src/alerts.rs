//! Fund-flow early warnings (served beside the overdue-rate alerts of `GET /v1/alerts`).
//!
//! * **Diversion alerts** — loans with a `restricted_use` or `round_trip` flag
//!   ([`crate::flow`]), largest flagged amount first, each with the flags' reasons. Candidates
//!   are found without analysing every loan: loans paying a payee whose cached label is
//!   restricted (index on the payee), or paying a payee that bears a borrower's name (round
//!   trips go to the borrower or to a related borrower); each candidate is then analysed in
//!   full. (`inconsistent` payees alone raise no alert: they are in each loan's flow.)
//! * **Circle warnings** — every guarantee circle with an overdue member: who is overdue, the
//!   exposure put at risk and the performing part of it ([`crate::graph`]). The early warning
//!   is a member that **became** overdue since the previous snapshot (overdue now, not overdue
//!   or not yet a borrower then): such circles come first and their reason says so.

use std::collections::BTreeSet;

use serde::Serialize;
use touxiang_datasets::Labeler;
use touxiang_portfolio::scoring::format_amount;

use crate::error::Result;
use crate::flow::{analyse, FlagKind, FlowOptions};
use crate::graph::GraphOptions;
use crate::payees::Label;
use crate::store::{read_currency, FlowStore};

/// A loan whose money reached a restricted use or went back.
#[derive(Debug, Clone, Serialize)]
pub struct DiversionAlert {
    pub loan_id: String,
    pub borrower: Option<String>,
    /// `restricted_use` and/or `round_trip`.
    pub kinds: Vec<FlagKind>,
    /// Amount of the flagged payments.
    pub amount: f64,
    pub mismatch_score: f64,
    /// The flags' reasons, joined.
    pub reason: String,
}

/// A guarantee circle with an overdue member.
#[derive(Debug, Clone, Serialize)]
pub struct CircleWarning {
    pub circle_id: String,
    pub members: usize,
    /// Names (or keys) of the overdue members.
    pub overdue_members: Vec<String>,
    /// The overdue members that were not overdue at `previous_as_of` (empty without an earlier
    /// snapshot).
    pub newly_overdue_members: Vec<String>,
    /// The snapshot compared with: the one before the circles' own, if any.
    pub previous_as_of: Option<String>,
    pub total_exposure: f64,
    pub overdue_exposure: f64,
    pub exposure_at_risk: f64,
    pub contagion_exposure: f64,
    pub reason: String,
}

/// Fund-flow alerts of a portfolio.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FlowAlerts {
    pub diversions: Vec<DiversionAlert>,
    pub circle_warnings: Vec<CircleWarning>,
    /// Candidate loans analysed.
    pub loans_checked: u64,
    /// More candidates than `max_loans`: only the first were analysed.
    pub truncated: bool,
}

impl FlowStore {
    /// Diversion alerts and circle warnings of `portfolio` (at most `max_loans` candidate
    /// loans analysed).
    pub fn alerts(
        &self,
        portfolio: &str,
        opts: &FlowOptions,
        labeler: Option<&dyn Labeler>,
        max_loans: usize,
    ) -> Result<FlowAlerts> {
        if let Some(l) = labeler {
            self.label_payees(portfolio, l)?;
        }
        let mut conn = self.connect(portfolio)?;
        crate::borrowers::ensure_index(&mut conn, portfolio)?;
        let currency = read_currency(&conn, portfolio)?.unwrap_or_else(|| "CNY".into());
        // restricted payees in the label cache (any scope), then the loans paying them
        let mut restricted_norms: BTreeSet<String> = BTreeSet::new();
        {
            let mut stmt =
                conn.prepare("SELECT norm, path FROM payee_labels WHERE path IS NOT NULL")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let path: String = r.get(1)?;
                let Ok(l) = serde_json::from_str::<Label>(&path) else {
                    continue;
                };
                if opts.restricted.hit(&l.codes(), &[]).is_some() {
                    restricted_norms.insert(r.get(0)?);
                }
            }
        }
        let mut loans: BTreeSet<String> = BTreeSet::new();
        {
            let mut by_payee = conn.prepare(
                "SELECT DISTINCT loan_id FROM payments INDEXED BY payments_payee WHERE portfolio=?1 AND payee_norm=?2",
            )?;
            for n in &restricted_norms {
                for l in by_payee
                    .query_map(rusqlite::params![portfolio, n], |r| r.get::<_, String>(0))?
                {
                    loans.insert(l?);
                }
            }
            let mut named = conn.prepare(
                "SELECT DISTINCT p.loan_id FROM loan_borrowers b INDEXED BY loan_borrowers_norm CROSS JOIN payments p INDEXED BY payments_payee \
                 ON p.portfolio=b.portfolio AND p.payee_norm=b.borrower_norm \
                 WHERE b.portfolio=?1 AND b.borrower_norm IS NOT NULL",
            )?;
            for l in named.query_map([portfolio], |r| r.get::<_, String>(0))? {
                loans.insert(l?);
            }
        }
        let mut out = FlowAlerts {
            truncated: loans.len() > max_loans,
            ..Default::default()
        };
        for loan in loans.iter().take(max_loans) {
            out.loans_checked += 1;
            let f = analyse(&conn, portfolio, loan, opts, labeler, &currency)?;
            let flags: Vec<_> = f
                .flags
                .iter()
                .filter(|x| matches!(x.kind, FlagKind::RestrictedUse | FlagKind::RoundTrip))
                .collect();
            if flags.is_empty() {
                continue;
            }
            let mut kinds: Vec<FlagKind> = Vec::new();
            for x in &flags {
                if !kinds.contains(&x.kind) {
                    kinds.push(x.kind);
                }
            }
            out.diversions.push(DiversionAlert {
                loan_id: f.loan_id.clone(),
                borrower: f
                    .borrower
                    .as_ref()
                    .map(|b| b.name.clone().unwrap_or_else(|| b.key.clone())),
                kinds,
                amount: flags.iter().map(|x| x.amount).sum(),
                mismatch_score: f.mismatch_score,
                reason: format!(
                    "贷款 {}：{}",
                    f.loan_id,
                    flags
                        .iter()
                        .map(|x| x.reason.as_str())
                        .collect::<Vec<_>>()
                        .join("；")
                ),
            });
        }
        drop(conn);
        out.diversions.sort_by(|a, b| {
            b.amount
                .total_cmp(&a.amount)
                .then(a.loan_id.cmp(&b.loan_id))
        });
        let money = |a: f64| format_amount(a, &currency);
        let quoted = |v: &[String]| {
            v.iter()
                .map(|n| format!("“{n}”"))
                .collect::<Vec<_>>()
                .join("、")
        };
        let graph = GraphOptions::default();
        let circles = self.circles(portfolio, graph)?;
        let conn = self.connect(portfolio)?;
        let previous = match &circles.as_of {
            Some(a) => crate::graph::previous_as_of(&conn, portfolio, a)?,
            None => None,
        };
        for c in circles.circles {
            if c.overdue_members == 0 {
                continue;
            }
            let display =
                |m: &crate::graph::Member| m.name.clone().unwrap_or_else(|| m.key.clone());
            let overdue: Vec<String> = c
                .members
                .iter()
                .filter(|m| m.overdue)
                .map(display)
                .collect();
            let mut newly = Vec::new();
            if let Some(prev) = &previous {
                for m in c.members.iter().filter(|m| m.overdue) {
                    if !crate::graph::overdue_at(&conn, portfolio, prev, &m.key, graph)? {
                        newly.push(display(m));
                    }
                }
            }
            let news = match (&previous, newly.is_empty()) {
                (Some(p), false) => format!("【新增】{}较上期（{p}）新转逾期；", quoted(&newly)),
                _ => String::new(),
            };
            out.circle_warnings.push(CircleWarning {
                reason: format!(
                    "{news}担保圈 {}（{}户，总敞口{}）中{}已逾期（逾期敞口{}），圈内未逾期敞口{}因相互担保受牵连",
                    c.id,
                    c.members.len(),
                    money(c.total_exposure),
                    quoted(&overdue),
                    money(c.overdue_exposure),
                    money(c.contagion_exposure)
                ),
                circle_id: c.id,
                members: c.members.len(),
                overdue_members: overdue,
                newly_overdue_members: newly,
                previous_as_of: previous.clone(),
                total_exposure: c.total_exposure,
                overdue_exposure: c.overdue_exposure,
                exposure_at_risk: c.exposure_at_risk,
                contagion_exposure: c.contagion_exposure,
            });
        }
        // the early warnings first; otherwise the circles' order (largest exposure at risk)
        out.circle_warnings
            .sort_by_key(|w| w.newly_overdue_members.is_empty());
        Ok(out)
    }
}
