//! Payment records (disbursements and payments out of a loan account, 受托支付 records).
//!
//! Columns (CSV header / JSON keys / first XLSX row; other columns are kept as attributes):
//! `payment_id, loan_id, payee_name, payee_account, amount, paid_at, memo, channel`.
//!
//! Validation (each failure is one [`RowError`]; a row may have several):
//! * `payment_id`, `loan_id`, `payee_name`, `amount`, `paid_at` required and non-empty;
//! * `loan_id` a loan of the portfolio (any snapshot) — otherwise "unknown loan";
//! * `amount` a finite number > 0 (thousands separators accepted);
//! * `paid_at` a date `YYYY-MM-DD` or a date-time starting with one;
//! * `channel` empty, or 受托支付 (also `entrusted`, `受托`), 自主支付 (`self`, `自主`) or
//!   `other` (`其他`), stored as `受托支付` / `自主支付` / `other`;
//! * `payment_id` unique within the file and not already stored for the portfolio.

use rusqlite::{params, Connection, OptionalExtension};
use rustc_hash::FxHashSet;
use touxiang_portfolio::RowError;

use crate::error::Result;
use crate::ingest::{
    self, parse_paid_at, parse_positive, Fields, IngestOptions, IngestSummary, Input, Table,
};
use crate::names::normalize;
use crate::store::FlowStore;

/// Canonical payment columns.
pub const PAYMENT_COLUMNS: [&str; 8] = [
    "payment_id",
    "loan_id",
    "payee_name",
    "payee_account",
    "amount",
    "paid_at",
    "memo",
    "channel",
];

const C_ID: usize = 0;
const C_LOAN: usize = 1;
const C_PAYEE: usize = 2;
const C_ACCOUNT: usize = 3;
const C_AMOUNT: usize = 4;
const C_PAID_AT: usize = 5;
const C_MEMO: usize = 6;
const C_CHANNEL: usize = 7;

/// Canonical channel of a payment, `None` when the value is not one.
pub fn parse_channel(s: &str) -> Option<&'static str> {
    match s.trim().to_lowercase().replace(['-', ' '], "_").as_str() {
        "受托支付" | "受托" | "entrusted" | "entrusted_payment" => Some("受托支付"),
        "自主支付" | "自主" | "self" | "self_payment" => Some("自主支付"),
        "other" | "其他" | "其它" => Some("other"),
        _ => None,
    }
}

pub(crate) struct PaymentRow {
    row: u64,
    payment_id: String,
    loan_id: String,
    payee_name: String,
    payee_account: Option<String>,
    amount: f64,
    paid_at: String,
    memo: Option<String>,
    channel: Option<&'static str>,
    attributes: Option<String>,
}

struct Payments<'a> {
    portfolio: &'a str,
    known_loans: FxHashSet<String>,
}

const KNOWN_LOANS_MAX: usize = 1_000_000;

impl Table for Payments<'_> {
    type Row = PaymentRow;
    const NAME: &'static str = "payments";
    const COLUMNS: &'static [&'static str] = &PAYMENT_COLUMNS;
    const REQUIRED: &'static [&'static str] =
        &["payment_id", "loan_id", "payee_name", "amount", "paid_at"];

    fn validate(
        &mut self,
        tx: &Connection,
        row: u64,
        f: &Fields<'_>,
        attributes: Option<String>,
        errs: &mut Vec<RowError>,
    ) -> Result<Option<PaymentRow>> {
        let n0 = errs.len();
        let mut err = |field: &str, reason: String| {
            errs.push(RowError {
                row,
                field: field.to_string(),
                reason,
            })
        };
        let payment_id = f.get(C_ID);
        if payment_id.is_none() {
            err("payment_id", "empty payment_id".into());
        }
        let loan_id = f.get(C_LOAN);
        match loan_id {
            None => err("loan_id", "empty loan_id".into()),
            Some(l) if !self.known_loans.contains(l) => {
                let exists = tx
                    .prepare_cached(
                        "SELECT 1 FROM pf.loans WHERE portfolio=?1 AND loan_id=?2 LIMIT 1",
                    )?
                    .query_row(params![self.portfolio, l], |_| Ok(()))
                    .optional()?
                    .is_some();
                if exists {
                    if self.known_loans.len() >= KNOWN_LOANS_MAX {
                        self.known_loans.clear();
                    }
                    self.known_loans.insert(l.to_string());
                } else {
                    err(
                        "loan_id",
                        format!(
                            "unknown loan {l:?}: not a loan of portfolio {:?}",
                            self.portfolio
                        ),
                    );
                }
            }
            Some(_) => {}
        }
        let payee_name = f.get(C_PAYEE);
        if payee_name.is_none() {
            err("payee_name", "empty payee_name".into());
        }
        let amount = match f.get(C_AMOUNT).map(parse_positive) {
            None => {
                err("amount", "empty amount".into());
                None
            }
            Some(Err(e)) => {
                err("amount", e);
                None
            }
            Some(Ok(v)) => Some(v),
        };
        let paid_at = match f.get(C_PAID_AT) {
            None => {
                err("paid_at", "empty paid_at".into());
                None
            }
            Some(s) => {
                let d = parse_paid_at(s);
                if d.is_none() {
                    err(
                        "paid_at",
                        format!(
                            "{s:?} is not a date YYYY-MM-DD (or a date-time starting with one)"
                        ),
                    );
                }
                d
            }
        };
        let channel = match f.get(C_CHANNEL) {
            None => None,
            Some(c) => {
                let p = parse_channel(c);
                if p.is_none() {
                    err(
                        "channel",
                        format!("unknown channel {c:?} (受托支付, 自主支付 or other)"),
                    );
                }
                p
            }
        };
        if errs.len() > n0 {
            return Ok(None);
        }
        Ok(Some(PaymentRow {
            row,
            payment_id: payment_id.unwrap_or_default().to_string(),
            loan_id: loan_id.unwrap_or_default().to_string(),
            payee_name: payee_name.unwrap_or_default().to_string(),
            payee_account: f.get(C_ACCOUNT).map(str::to_string),
            amount: amount.unwrap_or_default(),
            paid_at: paid_at.unwrap_or_default(),
            memo: f.get(C_MEMO).map(str::to_string),
            channel,
            attributes,
        }))
    }

    fn insert(
        &mut self,
        tx: &Connection,
        r: &PaymentRow,
        ingest_id: i64,
    ) -> Result<Option<RowError>> {
        let res = tx
            .prepare_cached(
                "INSERT INTO payments (portfolio, payment_id, loan_id, payee_name, payee_norm, payee_account, \
                 amount, paid_at, memo, channel, attributes, ingest_id) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)",
            )?
            .execute(params![
                self.portfolio,
                r.payment_id,
                r.loan_id,
                r.payee_name,
                normalize(&r.payee_name),
                r.payee_account,
                r.amount,
                r.paid_at,
                r.memo,
                r.channel,
                r.attributes,
                ingest_id
            ]);
        match res {
            Ok(_) => Ok(None),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                let same_file = tx
                    .prepare_cached(
                        "SELECT ingest_id FROM payments WHERE portfolio=?1 AND payment_id=?2",
                    )?
                    .query_row(params![self.portfolio, r.payment_id], |x| {
                        x.get::<_, i64>(0)
                    })
                    .optional()?
                    == Some(ingest_id);
                Ok(Some(RowError {
                    row: r.row,
                    field: "payment_id".into(),
                    reason: if same_file {
                        format!(
                            "duplicate: payment {:?} appears earlier in this file",
                            r.payment_id
                        )
                    } else {
                        format!(
                            "duplicate: payment {:?} is already stored in portfolio {:?}",
                            r.payment_id, self.portfolio
                        )
                    },
                }))
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl FlowStore {
    /// Ingest payment records into `portfolio` (which must exist: its loans are checked).
    /// Payees are not classified here: see [`FlowStore::label_payees`].
    pub fn ingest_payments(
        &self,
        portfolio: &str,
        input: Input<'_>,
        opts: &IngestOptions,
    ) -> Result<IngestSummary> {
        let mut src = ingest::open_source(input, opts.sheet.as_deref())?;
        let mut t = Payments {
            portfolio,
            known_loans: FxHashSet::default(),
        };
        ingest::run(self, portfolio, src.as_mut(), opts, &mut t)
    }

    /// Payments stored for a portfolio.
    pub fn payment_count(&self, portfolio: &str) -> Result<u64> {
        let conn = self.connect(portfolio)?;
        Ok(conn.query_row(
            "SELECT count(*) FROM payments WHERE portfolio=?1",
            [portfolio],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }
}
