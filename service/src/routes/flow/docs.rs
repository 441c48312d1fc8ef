//! Documentation-only schemas of the fund-flow routes (part of [`super`]): the library types of
//! [`touxiang_flow`] serialise to these shapes.
#![allow(dead_code)]

use serde::Serialize;
use utoipa::ToSchema;

/// One step of a label path.
#[derive(Serialize, ToSchema)]
pub struct FlowStepDoc {
    pub code: String,
    pub name: String,
    /// Calibrated confidence of the level (classifier labels).
    pub confidence: Option<f64>,
}

/// A GB/T 4754-2017 label.
#[derive(Serialize, ToSchema)]
pub struct FlowLabelDoc {
    #[schema(example = "7010")]
    pub code: String,
    /// `section` / `division` / `group` / `class`.
    pub level: String,
    #[schema(example = "房地产开发经营")]
    pub name: String,
    /// Calibrated confidence of `code` (the stored confidence for the declared label).
    pub confidence: Option<f64>,
    /// `auto` / `review` (classifier labels).
    pub decision: Option<String>,
    /// Section → `code`.
    pub path: Vec<FlowStepDoc>,
    /// `model`, `model+name` (a regulated name word deepened the classifier's label) or `name`
    /// (the classifier abstained); absent for the declared label.
    pub source: Option<String>,
}

/// One payment of the loan with its evidence.
#[derive(Serialize, ToSchema)]
pub struct HopDoc {
    pub payment_id: String,
    pub payee_name: String,
    pub payee_account: Option<String>,
    pub amount: f64,
    /// Share of the loan's paid amount.
    pub share: f64,
    pub paid_at: String,
    /// `受托支付` / `自主支付` / `other`.
    pub channel: Option<String>,
    pub memo: Option<String>,
    /// `individual` (a person: no industry) or `organisation`.
    pub kind: String,
    /// The payee's industry, classified from its name; null for people, where the classifier
    /// abstained, or while it is loading.
    pub label: Option<FlowLabelDoc>,
    /// `borrower`, `guarantee`, `control` or `supply-chain` when the payee is the borrower or a
    /// related party.
    pub relation: Option<String>,
    /// `round_trip` | `restricted` | `inconsistent` | `consistent` | `unknown`.
    pub assessment: String,
}

/// A diversion flag.
#[derive(Serialize, ToSchema)]
pub struct FlagDoc {
    /// `restricted_use` | `round_trip` | `inconsistent`.
    pub kind: String,
    /// In words (Chinese), with amounts, shares and payees.
    #[schema(
        example = "贷款资金240.0万元（占已支付34.3%）流向限制用途行业 67 资本市场服务：“杭州新信泽证券营业部” 240.0万元"
    )]
    pub reason: String,
    pub amount: f64,
    pub share: f64,
    pub payees: Vec<String>,
    /// Restricted code (restricted_use) or the payee's code (inconsistent).
    pub code: Option<String>,
}

/// Amount reaching one section.
#[derive(Serialize, ToSchema)]
pub struct SectionShareDoc {
    /// Section letter, `individual` or `unlabeled`.
    pub section: String,
    pub name: Option<String>,
    pub amount: f64,
    pub share: f64,
}

/// The borrower of a loan.
#[derive(Serialize, ToSchema)]
pub struct BorrowerRefDoc {
    /// `borrower_id`, or the normalised `borrower_name` when the book has no ids.
    pub key: String,
    pub name: Option<String>,
}

/// `GET /v1/loans/{loan_id}/flow`.
#[derive(Serialize, ToSchema)]
pub struct LoanFlowDoc {
    pub portfolio: String,
    pub loan_id: String,
    pub as_of_date: String,
    pub borrower: Option<BorrowerRefDoc>,
    pub purpose_text: String,
    pub amount: Option<f64>,
    pub balance: f64,
    /// The loan's stored industry.
    pub declared: Option<FlowLabelDoc>,
    pub paid_total: f64,
    pub hops: Vec<HopDoc>,
    /// Amount-weighted sections reached, largest first.
    pub actual: Vec<SectionShareDoc>,
    /// Amount share assessed round_trip, restricted or inconsistent (0..1).
    pub mismatch_score: f64,
    /// Amount share that could not be judged (people, unlabeled payees).
    pub unknown_share: f64,
    /// Organisation payees not classified yet (classifier loading).
    pub unclassified_payees: u64,
    pub flags: Vec<FlagDoc>,
    /// Restricted codes applied.
    pub restricted: Vec<String>,
}

/// A borrower's loan in the snapshot.
#[derive(Serialize, ToSchema)]
pub struct MemberLoanDoc {
    pub loan_id: String,
    pub balance: f64,
    pub overdue_days: Option<i64>,
    pub overdue: bool,
}

/// A borrower with its exposure.
#[derive(Serialize, ToSchema)]
pub struct MemberDoc {
    pub key: String,
    pub name: Option<String>,
    pub loans: Vec<MemberLoanDoc>,
    pub exposure: f64,
    pub overdue_exposure: f64,
    pub overdue: bool,
}

/// A relation between borrowers.
#[derive(Serialize, ToSchema)]
pub struct RelationDoc {
    pub from: String,
    pub to: String,
    /// `guarantee` (`from` guarantees `to`) | `control` | `supply-chain`.
    pub kind: String,
    pub from_name: Option<String>,
    pub to_name: Option<String>,
}

/// A guarantee circle.
#[derive(Serialize, ToSchema)]
pub struct CircleDoc {
    /// `gc_` + 12 hex digits (stable while the members are).
    pub id: String,
    pub members: Vec<MemberDoc>,
    pub guarantees: Vec<RelationDoc>,
    pub total_exposure: f64,
    pub overdue_exposure: f64,
    pub overdue_members: usize,
    /// `total_exposure` once any member is overdue, else 0.
    pub exposure_at_risk: f64,
    /// `exposure_at_risk - overdue_exposure`: performing exposure put at risk.
    pub contagion_exposure: f64,
}

/// `GET /v1/graph/circles`.
#[derive(Serialize, ToSchema)]
pub struct CirclesDoc {
    pub portfolio: String,
    /// Snapshot of the exposures (the portfolio's latest as-of date).
    pub as_of: Option<String>,
    pub circles: Vec<CircleDoc>,
}

/// `GET /v1/graph/borrowers/{borrower}`.
#[derive(Serialize, ToSchema)]
pub struct BorrowerGraphDoc {
    pub portfolio: String,
    pub as_of: Option<String>,
    pub borrower: MemberDoc,
    pub relations: Vec<RelationDoc>,
    pub circle: Option<CircleDoc>,
}

/// Summary of a payment or relation upload.
#[derive(Serialize, ToSchema)]
pub struct FlowIngestSummary {
    pub portfolio: String,
    /// `payments` | `relations`.
    pub table: String,
    pub accepted: u64,
    /// The first row problems `{row, field, reason}`, in row order (at most
    /// `limits.max_reported_row_errors`).
    pub rejected: Vec<crate::routes::portfolio::RowErrorDoc>,
    pub rejected_total: u64,
    pub rejected_rows: u64,
    /// `rejected` lists fewer problems than `rejected_total`; all of them are in the report.
    pub rejected_truncated: bool,
    /// Id of the full report of row problems (`ir_` + 32 hex digits), as for loan uploads: all
    /// row problems as CSV at `GET /v1/portfolios/{name}/ingest-reports/{report_id}`. Null when
    /// no row was rejected.
    #[schema(example = "ir_0123456789abcdef0123456789abcdef")]
    pub report_id: Option<String>,
    /// Problems written to the report (`rejected_total` unless it passed 10 million).
    pub report_rows: u64,
    /// Where the API serves that report (null when no row was rejected).
    pub report_url: Option<String>,
    pub committed: bool,
    /// `all_or_nothing` | `commit_valid`.
    pub mode: String,
    pub rows_read: u64,
    pub valid_rows: u64,
    /// Payee names classified after the commit (payments; null when not done).
    pub payees_labeled: Option<u64>,
    /// Loans whose `flow.section` (the section that received most of their money, a dimension
    /// of `/v1/aggregate`) was recomputed after the commit (payments; null when not done).
    pub flow_sections: Option<u64>,
    /// Payees the classifier was unsure of, sent to the reviewers' `payees` queue after the
    /// commit (payments; null when not done, e.g. without a classifier).
    pub payees_queued: Option<u64>,
    pub elapsed_ms: u64,
    /// Only on 422 (all-or-nothing with rejected rows).
    pub error: Option<crate::error::ErrorDetail>,
}
