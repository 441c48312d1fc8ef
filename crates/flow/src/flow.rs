//! Declared vs actual use of one loan's money.
//!
//! For a loan (its latest snapshot): the **declared** label is the loan's stored industry (from
//! the loan file's `industry_code` or the classifier at loan ingest); the **hops** are its
//! payments in time order, each with the payee's kind and label ([`crate::payees`]), its share
//! of the amount paid, and an **assessment**:
//! * `round_trip` — the payee is the borrower itself (normalised names equal) or a related party
//!   of the borrower (any relation, either direction, by normalised name or borrower key);
//! * `restricted` — the payee's label reaches a restricted code ([`crate::rules::Restricted`]);
//! * `inconsistent` — an organisation whose industry is not consistent with the declared one
//!   ([`crate::rules::consistent`]);
//! * `consistent`;
//! * `unknown` — an individual that is no related party, a payee without a label, or a loan
//!   without a declared industry.
//!
//! The first that applies wins, in that order. The **mismatch score** is the amount share of
//! hops assessed `round_trip`, `restricted` or `inconsistent` (0 = all money went where the
//! purpose says or could not be judged, 1 = all of it went elsewhere); `unknown_share` is the
//! share that could not be judged. **Flags** group the hops with reasons in words: one
//! `restricted_use` per restricted code reached, one `round_trip` per counterpart (borrower or
//! related party), one `inconsistent` per payee.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use touxiang_datasets::Labeler;
use touxiang_portfolio::scoring::format_amount;

use crate::borrowers::{borrower_of, Borrower};
use crate::error::{FlowError, Result};
use crate::names::normalize;
use crate::payees::{labels_for, Label, PayeeKind};
use crate::relations::{self, RelationKind};
use crate::rules::{consistent, name_of, Restricted};
use crate::store::{read_currency, FlowStore};

/// How a hop's payee relates to the declared purpose (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Assessment {
    /// Back to the borrower or a related party.
    RoundTrip,
    /// A restricted use.
    Restricted,
    /// An industry inconsistent with the purpose.
    Inconsistent,
    /// Consistent with the purpose.
    Consistent,
    /// Cannot be judged.
    Unknown,
}

/// Kind of a diversion flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagKind {
    /// Money reached a restricted use.
    RestrictedUse,
    /// Money returned to the borrower or a related party.
    RoundTrip,
    /// A payee's industry is inconsistent with the purpose.
    Inconsistent,
}

/// One payment of the loan, with its evidence.
#[derive(Debug, Clone, Serialize)]
pub struct Hop {
    pub payment_id: String,
    pub payee_name: String,
    pub payee_account: Option<String>,
    pub amount: f64,
    /// Share of the loan's paid amount.
    pub share: f64,
    pub paid_at: String,
    /// `受托支付` / `自主支付` / `other`, when given.
    pub channel: Option<String>,
    pub memo: Option<String>,
    /// `individual` or `organisation`.
    pub kind: PayeeKind,
    /// The payee's industry (organisations the classifier labeled).
    pub label: Option<Label>,
    /// How the payee relates to the borrower: `borrower`, or the relation kind.
    pub relation: Option<String>,
    pub assessment: Assessment,
}

/// A diversion flag with its reason in words.
#[derive(Debug, Clone, Serialize)]
pub struct Flag {
    pub kind: FlagKind,
    /// In Chinese, with amounts and payees.
    pub reason: String,
    /// Amount concerned.
    pub amount: f64,
    /// Its share of the paid amount.
    pub share: f64,
    /// Payees concerned.
    pub payees: Vec<String>,
    /// The restricted code (restricted_use) or the payee's code (inconsistent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// Amount reaching one section.
#[derive(Debug, Clone, Serialize)]
pub struct SectionShare {
    /// Section letter; `individual` for people, `unlabeled` for payees without a label.
    pub section: String,
    pub name: Option<String>,
    pub amount: f64,
    pub share: f64,
}

/// Where one loan's money went.
#[derive(Debug, Clone, Serialize)]
pub struct LoanFlow {
    pub portfolio: String,
    pub loan_id: String,
    /// Snapshot the loan fields come from.
    pub as_of_date: String,
    pub borrower: Option<Borrower>,
    pub purpose_text: String,
    /// Loan amount (when given).
    pub amount: Option<f64>,
    pub balance: f64,
    /// The loan's stored industry.
    pub declared: Option<Label>,
    /// Sum of the payments.
    pub paid_total: f64,
    pub hops: Vec<Hop>,
    /// Amount-weighted sections the money reached, largest first.
    pub actual: Vec<SectionShare>,
    pub mismatch_score: f64,
    pub unknown_share: f64,
    /// Organisation payees not classified yet (no labeler available and nothing cached).
    pub unclassified_payees: u64,
    pub flags: Vec<Flag>,
    /// The restricted codes applied.
    pub restricted: Vec<String>,
}

/// Options of a flow analysis.
#[derive(Debug, Clone, Default)]
pub struct FlowOptions {
    /// Restricted uses (default [`crate::rules::DEFAULT_RESTRICTED`]).
    pub restricted: Restricted,
}

struct LoanRow {
    as_of_date: String,
    purpose_text: String,
    amount: Option<f64>,
    balance: f64,
    ind_code: Option<String>,
    ind_confidence: Option<f64>,
    ind_decision: Option<String>,
    attributes: Option<String>,
}

struct PaymentRow {
    payment_id: String,
    payee_name: String,
    payee_norm: String,
    payee_account: Option<String>,
    amount: f64,
    paid_at: String,
    memo: Option<String>,
    channel: Option<String>,
}

fn load_loan(conn: &Connection, portfolio: &str, loan_id: &str) -> Result<Option<LoanRow>> {
    Ok(conn
        .prepare_cached(
            "SELECT as_of_date, purpose_text, amount, balance, ind_code, ind_confidence, ind_decision, attributes \
             FROM pf.loans WHERE portfolio=?1 AND loan_id=?2 ORDER BY as_of_date DESC LIMIT 1",
        )?
        .query_row(params![portfolio, loan_id], |r| {
            Ok(LoanRow {
                as_of_date: r.get(0)?,
                purpose_text: r.get(1)?,
                amount: r.get(2)?,
                balance: r.get(3)?,
                ind_code: r.get(4)?,
                ind_confidence: r.get(5)?,
                ind_decision: r.get(6)?,
                attributes: r.get(7)?,
            })
        })
        .optional()?)
}

fn load_payments(conn: &Connection, portfolio: &str, loan_id: &str) -> Result<Vec<PaymentRow>> {
    Ok(conn
        .prepare_cached(
            "SELECT payment_id, payee_name, payee_norm, payee_account, amount, paid_at, memo, channel \
             FROM payments INDEXED BY payments_loan WHERE portfolio=?1 AND loan_id=?2 ORDER BY paid_at, payment_id",
        )?
        .query_map(params![portfolio, loan_id], |r| {
            Ok(PaymentRow {
                payment_id: r.get(0)?,
                payee_name: r.get(1)?,
                payee_norm: r.get(2)?,
                payee_account: r.get(3)?,
                amount: r.get(4)?,
                paid_at: r.get(5)?,
                memo: r.get(6)?,
                channel: r.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?)
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// The flow of one loan on an open connection (see the module documentation).
pub(crate) fn analyse(
    conn: &Connection,
    portfolio: &str,
    loan_id: &str,
    opts: &FlowOptions,
    labeler: Option<&dyn Labeler>,
    currency: &str,
) -> Result<LoanFlow> {
    let loan = load_loan(conn, portfolio, loan_id)?.ok_or_else(|| FlowError::UnknownLoan {
        portfolio: portfolio.to_string(),
        loan_id: loan_id.to_string(),
    })?;
    let borrower = borrower_of(loan.attributes.as_deref());
    let declared = loan
        .ind_code
        .as_deref()
        .and_then(|c| Label::from_code(c, loan.ind_confidence, loan.ind_decision.clone()));
    let declared_path = declared.as_ref().map(Label::codes).unwrap_or_default();
    let payments = load_payments(conn, portfolio, loan_id)?;
    let names: Vec<&str> = payments.iter().map(|p| p.payee_name.as_str()).collect();
    let labels = labels_for(conn, &names, labeler)?;
    // who counts as the borrower or a related party: normalised name / key → relation
    let mut related: Vec<(String, String, String)> = Vec::new(); // (match key, relation, display)
    if let Some(b) = &borrower {
        let display = b.name.clone().unwrap_or_else(|| b.key.clone());
        related.push((b.key.clone(), "borrower".into(), display.clone()));
        if let Some(n) = &b.name {
            related.push((normalize(n), "borrower".into(), display));
        }
        for r in relations::load(conn, portfolio, Some(&b.key))? {
            let (key, name) = if r.from == b.key {
                (r.to, r.to_name)
            } else {
                (r.from, r.from_name)
            };
            let display = name.clone().unwrap_or_else(|| key.clone());
            related.push((normalize(&key), r.kind.as_str().into(), display.clone()));
            if let Some(n) = name {
                related.push((normalize(&n), r.kind.as_str().into(), display));
            }
        }
    }
    let unclassified_payees = labels.values().filter(|l| !l.classified).count() as u64;
    let total: f64 = payments.iter().map(|p| p.amount).sum();
    let share = |a: f64| if total > 0.0 { a / total } else { 0.0 };
    let mut hops = Vec::with_capacity(payments.len());
    for p in payments {
        let pl = labels.get(&p.payee_norm).cloned();
        let kind = pl.as_ref().map_or(PayeeKind::Organisation, |l| l.kind);
        let label = pl.and_then(|l| l.label);
        let rel = related.iter().find(|(k, _, _)| *k == p.payee_norm);
        let path = label.as_ref().map(Label::codes).unwrap_or_default();
        let assessment = if rel.is_some() {
            Assessment::RoundTrip
        } else if opts.restricted.hit(&path, &declared_path).is_some() {
            Assessment::Restricted
        } else if kind == PayeeKind::Individual || label.is_none() || declared.is_none() {
            Assessment::Unknown
        } else if consistent(&path, &declared_path) {
            Assessment::Consistent
        } else {
            Assessment::Inconsistent
        };
        hops.push(Hop {
            share: share(p.amount),
            payment_id: p.payment_id,
            payee_name: p.payee_name,
            payee_account: p.payee_account,
            amount: p.amount,
            paid_at: p.paid_at,
            channel: p.channel,
            memo: p.memo,
            kind,
            label,
            relation: rel.map(|(_, r, _)| r.clone()),
            assessment,
        });
    }
    let flags = flags(&hops, &related, &declared, opts, currency, total);
    let mut actual: Vec<SectionShare> = Vec::new();
    for h in &hops {
        let section = crate::actual::actual_section(&h.kind, h.label.as_ref());
        match actual.iter_mut().find(|s| s.section == section) {
            Some(s) => s.amount += h.amount,
            None => actual.push(SectionShare {
                name: name_of(&section),
                section,
                amount: h.amount,
                share: 0.0,
            }),
        }
    }
    for s in &mut actual {
        s.share = share(s.amount);
    }
    actual.sort_by(|a, b| b.amount.total_cmp(&a.amount));
    let sum_of = |f: &dyn Fn(Assessment) -> bool| -> f64 {
        share(
            hops.iter()
                .filter(|h| f(h.assessment))
                .map(|h| h.amount)
                .sum(),
        )
    };
    Ok(LoanFlow {
        portfolio: portfolio.to_string(),
        loan_id: loan_id.to_string(),
        as_of_date: loan.as_of_date,
        borrower,
        purpose_text: loan.purpose_text,
        amount: loan.amount,
        balance: loan.balance,
        declared,
        paid_total: total,
        mismatch_score: sum_of(&|a| {
            matches!(
                a,
                Assessment::RoundTrip | Assessment::Restricted | Assessment::Inconsistent
            )
        }),
        unknown_share: sum_of(&|a| a == Assessment::Unknown),
        unclassified_payees,
        hops,
        actual,
        flags,
        restricted: opts.restricted.0.clone(),
    })
}

fn flags(
    hops: &[Hop],
    related: &[(String, String, String)],
    declared: &Option<Label>,
    opts: &FlowOptions,
    currency: &str,
    total: f64,
) -> Vec<Flag> {
    let money = |a: f64| format_amount(a, currency);
    let share = |a: f64| if total > 0.0 { a / total } else { 0.0 };
    let declared_path = declared.as_ref().map(Label::codes).unwrap_or_default();
    let mut out: Vec<Flag> = Vec::new();
    // restricted uses, one flag per restricted code
    for code in &opts.restricted.0 {
        let hit: Vec<&Hop> = hops
            .iter()
            .filter(|h| {
                h.assessment == Assessment::Restricted
                    && h.label.as_ref().is_some_and(|l| {
                        opts.restricted.hit(&l.codes(), &declared_path) == Some(code.as_str())
                    })
            })
            .collect();
        if hit.is_empty() {
            continue;
        }
        let amount: f64 = hit.iter().map(|h| h.amount).sum();
        let list = payee_list(&hit, &money);
        out.push(Flag {
            kind: FlagKind::RestrictedUse,
            reason: format!(
                "贷款资金{}（占已支付{}）流向限制用途行业 {} {}：{}",
                money(amount),
                pct(share(amount)),
                code,
                name_of(code).unwrap_or_default(),
                list
            ),
            amount,
            share: share(amount),
            payees: names(&hit),
            code: Some(code.clone()),
        });
    }
    // round trips, one flag per counterpart
    let mut seen: Vec<&str> = Vec::new();
    for h in hops
        .iter()
        .filter(|h| h.assessment == Assessment::RoundTrip)
    {
        let Some((_, rel, display)) = related
            .iter()
            .find(|(k, _, _)| *k == normalize(&h.payee_name))
        else {
            continue;
        };
        if seen.contains(&display.as_str()) {
            continue;
        }
        seen.push(display);
        let hit: Vec<&Hop> = hops
            .iter()
            .filter(|x| {
                x.assessment == Assessment::RoundTrip
                    && related
                        .iter()
                        .any(|(k, _, d)| d == display && *k == normalize(&x.payee_name))
            })
            .collect();
        let amount: f64 = hit.iter().map(|h| h.amount).sum();
        let whom = if rel == "borrower" {
            format!("借款人本人（收款人户名与借款人“{display}”相同）")
        } else {
            let kind = RelationKind::parse(rel).map_or("关联", RelationKind::zh);
            format!("借款人的关联方“{display}”（{kind}关系）")
        };
        out.push(Flag {
            kind: FlagKind::RoundTrip,
            reason: format!(
                "贷款资金{}（占已支付{}）回流{}：{}",
                money(amount),
                pct(share(amount)),
                whom,
                payee_list(&hit, &money)
            ),
            amount,
            share: share(amount),
            payees: names(&hit),
            code: None,
        });
    }
    // inconsistent payees, one flag per payee
    let mut done: Vec<String> = Vec::new();
    for h in hops
        .iter()
        .filter(|h| h.assessment == Assessment::Inconsistent)
    {
        let norm = normalize(&h.payee_name);
        if done.contains(&norm) {
            continue;
        }
        let hit: Vec<&Hop> = hops
            .iter()
            .filter(|x| {
                x.assessment == Assessment::Inconsistent && normalize(&x.payee_name) == norm
            })
            .collect();
        done.push(norm);
        let amount: f64 = hit.iter().map(|h| h.amount).sum();
        let (Some(l), Some(d)) = (&h.label, declared) else {
            continue;
        };
        let conf = l
            .confidence
            .map(|c| format!("，置信度{c:.2}"))
            .unwrap_or_default();
        out.push(Flag {
            kind: FlagKind::Inconsistent,
            reason: format!(
                "{}（占已支付{}）付给“{}”（{} {}{}），与申报用途行业 {} {} 不一致",
                money(amount),
                pct(share(amount)),
                h.payee_name,
                l.code,
                l.name,
                conf,
                d.code,
                d.name
            ),
            amount,
            share: share(amount),
            payees: vec![h.payee_name.clone()],
            code: Some(l.code.clone()),
        });
    }
    out
}

fn names(hops: &[&Hop]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for h in hops {
        if !v.contains(&h.payee_name) {
            v.push(h.payee_name.clone());
        }
    }
    v
}

fn payee_list(hops: &[&Hop], money: &dyn Fn(f64) -> String) -> String {
    let mut per: Vec<(String, f64)> = Vec::new();
    for h in hops {
        match per.iter_mut().find(|(n, _)| *n == h.payee_name) {
            Some((_, a)) => *a += h.amount,
            None => per.push((h.payee_name.clone(), h.amount)),
        }
    }
    per.iter()
        .map(|(n, a)| format!("“{n}” {}", money(*a)))
        .collect::<Vec<_>>()
        .join("、")
}

impl FlowStore {
    /// Where one loan's money went (see the module documentation). Payees not in the label
    /// cache are classified with `labeler` when given (and cached).
    pub fn loan_flow(
        &self,
        portfolio: &str,
        loan_id: &str,
        opts: &FlowOptions,
        labeler: Option<&dyn Labeler>,
    ) -> Result<LoanFlow> {
        let conn = self.connect(portfolio)?;
        let currency = read_currency(&conn, portfolio)?.unwrap_or_else(|| "CNY".into());
        analyse(&conn, portfolio, loan_id, opts, labeler, &currency)
    }

    /// The flows of every loan of `portfolio` that has payments, in loan order (`limit` loans
    /// at most). Payees are classified first in batches when a labeler is given.
    pub fn portfolio_flows(
        &self,
        portfolio: &str,
        opts: &FlowOptions,
        labeler: Option<&dyn Labeler>,
        limit: Option<usize>,
    ) -> Result<Vec<LoanFlow>> {
        if let Some(l) = labeler {
            self.label_payees(portfolio, l)?;
        }
        let conn = self.connect(portfolio)?;
        let currency = read_currency(&conn, portfolio)?.unwrap_or_else(|| "CNY".into());
        let loans: Vec<String> = conn
            .prepare("SELECT DISTINCT loan_id FROM payments INDEXED BY payments_loan WHERE portfolio=?1 ORDER BY loan_id")?
            .query_map([portfolio], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let n = limit.unwrap_or(usize::MAX);
        loans
            .iter()
            .take(n)
            .map(|l| analyse(&conn, portfolio, l, opts, labeler, &currency))
            .collect()
    }
}
