//! Proof on a real book: the Lending Club 2007–2011 loans as a portfolio.
//!
//! Mapping (`--map` equivalent, see [`COLUMN_MAP`]):
//! * `loan_id` → loan_id; `title` → purpose_text (the borrower's own title; the 9 rows with an
//!   empty title are **rejected** with a row-level error, as for any book — ingest runs in
//!   CommitValid mode so the other rows are committed and the 9 are listed);
//! * `purpose` → purpose, over the custom flat taxonomy [`PurposeScheme::lending_club`] (14 codes);
//! * `addr_state` → region_code, resolved against the US state table;
//! * `issue_d` → as_of_date **and** issue_date: the book is a vintage book, one snapshot per issue
//!   month, so the `month` dimension is the issue month and queries over the whole book use
//!   [`SnapshotSel::All`] (each loan appears in exactly one snapshot);
//! * `loan_amnt` → amount **and** balance. Balance choice: the snapshot is taken at issue, when the
//!   outstanding principal equals the amount issued, so `balance = loan_amnt`; `overdue_balance` is
//!   then the principal issued to loans that later charged off, and `overdue_rate_balance` the
//!   share of issued principal that charged off. (The principal still outstanding at charge-off,
//!   `loan_amnt − total_rec_prncp`, is kept in the attributes via `total_rec_prncp`.)
//! * `loan_status` → status: "Charged Off" and "Does not meet the credit policy. Status:Charged
//!   Off" → charged_off; the two "Fully Paid" variants → paid_off. Overdue = status charged_off
//!   ([`overdue`]).
//! * Industry: the book has no industry; no labeler is passed, so industry dimensions are null.
//! * Currency USD. All other columns are kept as attributes.

use std::path::{Path, PathBuf};

use crate::agg::{AggQuery, Dimension, Metric, OverdueDef, SnapshotSel};
use crate::error::Result;
use crate::export::to_text;
use crate::ingest::{ColumnMap, IngestMode, IngestOptions, IngestReport, LoanStatus};
use crate::refdata::{PurposeScheme, RegionScheme};
use crate::scoring::{AlertQuery, ScoreQuery};
use crate::store::{PortfolioConfig, PortfolioStore};

/// The column map used for Lending Club.
pub const COLUMN_MAP: &str =
    "loan_id=loan_id,purpose_text=title,purpose=purpose,region_code=addr_state,\
as_of_date=issue_d,issue_date=issue_d,amount=loan_amnt,balance=loan_amnt,status=loan_status";

/// `../shared/datasets/lendingclub-2007-2011/loans.csv` relative to the repository root.
pub fn default_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/datasets/lendingclub-2007-2011/loans.csv")
}

/// Ingest options for the Lending Club file.
pub fn ingest_options() -> IngestOptions {
    IngestOptions {
        mode: IngestMode::CommitValid,
        map: ColumnMap::parse(COLUMN_MAP).expect("static map is valid"),
        config: Some(PortfolioConfig {
            region_scheme: RegionScheme::UsStates,
            purpose_scheme: PurposeScheme::lending_club(),
            currency: "USD".into(),
        }),
        status_map: vec![
            ("Charged Off".into(), LoanStatus::ChargedOff),
            (
                "Does not meet the credit policy. Status:Charged Off".into(),
                LoanStatus::ChargedOff,
            ),
            ("Fully Paid".into(), LoanStatus::PaidOff),
            (
                "Does not meet the credit policy. Status:Fully Paid".into(),
                LoanStatus::PaidOff,
            ),
        ],
        ..IngestOptions::default()
    }
}

/// Overdue definition for Lending Club: status charged_off.
pub fn overdue() -> OverdueDef {
    OverdueDef::Status(vec![LoanStatus::ChargedOff])
}

/// Ingest the file at `path` as `portfolio`.
pub fn ingest(store: &PortfolioStore, portfolio: &str, path: &Path) -> Result<IngestReport> {
    store.ingest_file(portfolio, path, &ingest_options(), None)
}

/// A text report: book by purpose, the 10 states with most exposure, issue-year vintages (last 12
/// months), concentration, shrunk purpose scores for the last month and alerts.
pub fn report(store: &PortfolioStore, portfolio: &str) -> Result<String> {
    let mut out = String::new();
    let base = |by: &[Dimension]| AggQuery {
        overdue: overdue(),
        snapshot: SnapshotSel::All,
        compare_previous: false,
        ..AggQuery::new(portfolio, by)
    };
    let mut q = base(&[Dimension::Purpose]);
    q.sort = Some(Metric::Balance);
    q.concentration = vec![Dimension::Purpose, Dimension::RegionProvince];
    let r = store.aggregate(&q)?;
    out.push_str("== Lending Club 2007-2011: whole book by purpose (overdue = charged off) ==\n");
    out.push_str(&to_text(&r));
    for c in &r.concentration {
        out.push_str(&format!(
            "concentration by {}: HHI {:.4} ({:.0} points), top-5 share {:.1}%, {} segments\n",
            c.dimension.as_str(),
            c.hhi,
            c.hhi_points,
            c.top5_share * 100.0,
            c.segments
        ));
    }
    let mut q = base(&[Dimension::RegionProvince]);
    q.sort = Some(Metric::Balance);
    q.limit = Some(10);
    out.push_str("\n== top 10 states by exposure ==\n");
    out.push_str(&to_text(&store.aggregate(&q)?));
    let mut q = base(&[Dimension::Month]);
    q.filters.push(crate::agg::Filter {
        dim: Dimension::Month,
        values: (1..=12).map(|m| format!("2011-{m:02}")).collect(),
    });
    out.push_str("\n== 2011 vintages by issue month ==\n");
    out.push_str(&to_text(&store.aggregate(&q)?));
    let sq = ScoreQuery {
        overdue: overdue(),
        ..ScoreQuery::new(portfolio, &[Dimension::Purpose])
    };
    out.push_str("\n== purpose risk scores, latest vintage (empirical-Bayes shrunk toward the month's book rate) ==\n");
    for s in store.scores(&sq)? {
        out.push_str(&format!(
            "{:<34} n={:>5} raw {:>6.2}%  shrunk {:>6.2}%  (parent {:.2}%, κ={:.0})  EaR {:>10.0}\n",
            crate::scoring::segment_label(&s.keys),
            s.loans,
            s.raw_rate * 100.0,
            s.shrunk_rate * 100.0,
            s.parent_rate * 100.0,
            s.prior_strength,
            s.exposure_at_risk
        ));
    }
    let aq = AlertQuery {
        overdue: overdue(),
        min_loans: 30,
        ..AlertQuery::new(portfolio, &[Dimension::Purpose])
    };
    let alerts = store.alerts(&aq)?;
    out.push_str(&format!(
        "\n== alerts (latest vintage vs 3 trailing, one-sided z-test, alpha 0.01): {} ==\n",
        alerts.len()
    ));
    for a in alerts {
        out.push_str(&a.reason);
        out.push('\n');
    }
    Ok(out)
}
