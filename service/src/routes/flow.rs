//! Fund-flow routes (where the money went), over [`touxiang_flow`]:
//!
//! * `POST /v1/portfolios/{name}/payments` — upload payment records (CSV, XLSX, JSONL; raw body
//!   or multipart `file`), then classify the new payees ([`upload`]).
//! * `POST /v1/portfolios/{name}/relations` — upload relations between borrowers.
//! * `GET  /v1/loans/{loan_id}/flow?portfolio=…` — declared vs actual use of one loan's money.
//! * `GET  /v1/graph/circles?portfolio=…` — guarantee circles with their exposures.
//! * `GET  /v1/graph/borrowers/{borrower}?portfolio=…` — a borrower, its relations and circle.
//!
//! The store is `DATA_DIR/flow.sqlite` ([`touxiang_flow::FlowStore`]), kept in [`AppState`]
//! ([`AppState::flow_store`]). Payees are classified with the service's GB/T 4754-2017
//! classifier ([`AppState::labeler_for`]); while it is loading, cached labels are used and the
//! flow says how many payees are still unclassified.

mod docs;
mod upload;

pub use docs::*;
pub use upload::*;

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use touxiang_auth::Permission as P;
use touxiang_datasets::Labeler;
use touxiang_flow::{FlowOptions, GraphOptions, Restricted};

use crate::auth::Access::Needs;
use crate::error::ApiError;
use crate::routes::access::Routes;
use crate::routes::portfolio::{blocking, params, required, take, Params};
use crate::state::AppState;

pub use touxiang_flow::payees::PAYEE_TAXONOMY;

/// The read routes (merged into [`crate::app`]): read-outs like the aggregates (`aggregate`).
/// Payment and relation uploads are portfolio writes ([`upload_router`]).
pub fn router() -> Routes {
    let read = Needs(P::Aggregate);
    Routes::new()
        .get("/v1/loans/{loan_id}/flow", read, loan_flow)
        .get("/v1/graph/circles", read, circles)
        .get("/v1/graph/borrowers/{borrower}", read, borrower)
}

/// The payee classifier when it is available (`None` while loading).
pub fn payee_labeler(state: &AppState) -> Option<Arc<dyn Labeler>> {
    state.labeler_for(PAYEE_TAXONOMY).ok()
}

/// Candidate loans the fund-flow alerts analyse at most per request.
pub const MAX_ALERT_LOANS: usize = 20_000;

/// The fund-flow part of `GET /v1/alerts`: `None` when the data dir has no fund-flow store.
pub async fn flow_alerts(
    s: &AppState,
    portfolio: &str,
) -> Result<Option<serde_json::Value>, ApiError> {
    if !s
        .config()
        .data_dir
        .join(touxiang_flow::store::STORE_FILE)
        .is_file()
    {
        return Ok(None);
    }
    let store = s.flow_store()?;
    let labeler = payee_labeler(s);
    let portfolio = portfolio.to_string();
    let a = blocking(move || {
        Ok(store.alerts(
            &portfolio,
            &FlowOptions::default(),
            labeler.as_deref(),
            MAX_ALERT_LOANS,
        )?)
    })
    .await?;
    Ok(Some(serde_json::to_value(a).unwrap_or_default()))
}

fn no_more(p: &Params, allowed: &str) -> Result<(), ApiError> {
    match p.first() {
        Some((k, _)) => Err(ApiError::invalid(
            k.clone(),
            format!("unknown query parameter `{k}` ({allowed})"),
        )),
        None => Ok(()),
    }
}

fn graph_options(p: &mut Params) -> Result<GraphOptions, ApiError> {
    Ok(GraphOptions {
        overdue_days_gt: match take(p, "overdue_days_gt")? {
            None => 0,
            Some(v) => v.trim().parse().map_err(|_| {
                ApiError::invalid("overdue_days_gt", format!("{v:?} is not an integer ≥ 0"))
            })?,
        },
    })
}

/// Where one loan's money went: declared purpose vs the industries its payments reached.
///
/// `declared` is the loan's stored industry (latest snapshot). `hops` are its payments in time
/// order, each with the payee's kind (`individual` / `organisation`), its GB/T 4754 label
/// (classified from the payee name; `null` for people and where the classifier abstained), its
/// share of the amount paid, its relation to the borrower (`borrower`, `guarantee`, `control`,
/// `supply-chain`) and an `assessment` (`round_trip`, `restricted`, `inconsistent`,
/// `consistent`, `unknown`; the first that applies). `mismatch_score` is the amount share
/// assessed round_trip, restricted or inconsistent. `flags` explain it in words:
/// `restricted_use` (money reached a restricted industry: by default 7010 real-estate
/// development, 67 capital markets, 663 non-bank credit — 融资租赁, 典当, 小贷, 保理 … — and
/// 69 other finance incl. trusts and 融资担保; `restricted=` overrides), `round_trip` (money
/// went back to the borrower or a related party), `inconsistent` (a payee industry that does
/// not fit the purpose). See README "Where the money went".
#[utoipa::path(get, path = "/v1/loans/{loan_id}/flow", tag = "flow", security(("bearer" = [])),
    params(
        ("loan_id" = String, Path, description = "Loan id"),
        ("portfolio" = String, Query, description = "Portfolio name"),
        ("restricted" = Option<String>, Query, description = "Restricted GB/T codes, comma-separated (default 7010,67,663,69)"),
    ),
    responses((status = 200, body = LoanFlowDoc),
        (status = 404, description = "Unknown portfolio or loan", body = crate::error::ErrorBody),
        (status = 422, description = "Bad parameter", body = crate::error::ErrorBody)))]
pub async fn loan_flow(
    State(s): State<AppState>,
    Path(loan_id): Path<String>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Json<touxiang_flow::LoanFlow>, ApiError> {
    let mut p = params(q)?;
    let portfolio = required(&mut p, "portfolio")?;
    let restricted = match take(&mut p, "restricted")? {
        None => Restricted::default(),
        Some(r) => Restricted::parse(&r)?,
    };
    no_more(&p, "portfolio, restricted")?;
    let store = s.flow_store()?;
    let labeler = payee_labeler(&s);
    let flow = blocking(move || {
        Ok(store.loan_flow(
            &portfolio,
            &loan_id,
            &FlowOptions { restricted },
            labeler.as_deref(),
        )?)
    })
    .await?;
    Ok(Json(flow))
}

/// Guarantee circles: connected components (≥ 2 members) of the guarantee relations, with the
/// members' exposure on the latest snapshot, the overdue exposure, and the exposure at risk
/// (all of a circle's exposure once any member is overdue). Largest exposure at risk first.
#[utoipa::path(get, path = "/v1/graph/circles", tag = "flow", security(("bearer" = [])),
    params(
        ("portfolio" = String, Query, description = "Portfolio name"),
        ("overdue_days_gt" = Option<u32>, Query, description = "A loan is overdue above this many days (default 0)"),
    ),
    responses((status = 200, body = CirclesDoc),
        (status = 404, description = "Unknown portfolio", body = crate::error::ErrorBody),
        (status = 422, description = "Bad parameter", body = crate::error::ErrorBody)))]
pub async fn circles(
    State(s): State<AppState>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Json<touxiang_flow::Circles>, ApiError> {
    let mut p = params(q)?;
    let portfolio = required(&mut p, "portfolio")?;
    let opts = graph_options(&mut p)?;
    no_more(&p, "portfolio, overdue_days_gt")?;
    let store = s.flow_store()?;
    Ok(Json(
        blocking(move || Ok(store.circles(&portfolio, opts)?)).await?,
    ))
}

/// One borrower (by `borrower_id`, or by name when the book has no ids): its loans and
/// exposure, its relations in both directions, and its guarantee circle.
#[utoipa::path(get, path = "/v1/graph/borrowers/{borrower}", tag = "flow", security(("bearer" = [])),
    params(
        ("borrower" = String, Path, description = "borrower_id, or borrower_name"),
        ("portfolio" = String, Query, description = "Portfolio name"),
        ("overdue_days_gt" = Option<u32>, Query, description = "A loan is overdue above this many days (default 0)"),
    ),
    responses((status = 200, body = BorrowerGraphDoc),
        (status = 404, description = "Unknown portfolio or borrower", body = crate::error::ErrorBody),
        (status = 422, description = "Bad parameter", body = crate::error::ErrorBody)))]
pub async fn borrower(
    State(s): State<AppState>,
    Path(borrower): Path<String>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Json<touxiang_flow::BorrowerGraph>, ApiError> {
    let mut p = params(q)?;
    let portfolio = required(&mut p, "portfolio")?;
    let opts = graph_options(&mut p)?;
    no_more(&p, "portfolio, overdue_days_gt")?;
    let store = s.flow_store()?;
    Ok(Json(
        blocking(move || Ok(store.borrower_graph(&portfolio, &borrower, opts)?)).await?,
    ))
}
