//! Portfolio routes: loan upload, aggregation (JSON/CSV/XLSX), concentration, risk scores and
//! early-warning alerts, over [`touxiang_portfolio`].
//!
//! * `GET  /v1/portfolios` — stored portfolios with row counts and snapshot dates.
//! * `POST /v1/portfolios/{name}/loans` — upload a loan file (multipart `file` part, or the raw
//!   body as `text/csv`, `application/x-ndjson`, or the XLSX mime type) → the ingest summary
//!   (spooled to disk and ingested in bounded memory, see [`upload`]).
//! * `GET  /v1/portfolios/{name}/ingest-reports/{report_id}` — the full CSV of an ingest's
//!   rejected rows.
//! * `GET  /v1/aggregate?portfolio=…&by=…&<filters>&format=json|csv|xlsx`.
//! * `GET  /v1/concentration?portfolio=…&by=industry.division,region.province`.
//! * `GET  /v1/scores?portfolio=…&by=…` — empirical-Bayes shrunk rates, exposure at risk, trend.
//! * `GET  /v1/alerts?portfolio=…` — early warnings with the reason in words.
//!
//! Every store call is synchronous SQLite / in-memory work and runs on the blocking pool. The
//! read-outs live in [`query`], the upload in [`upload`], the portfolio-name rule in [`name`].

pub mod name;
mod query;
mod upload;

pub use query::*;
pub use upload::*;

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::Serialize;
use touxiang_auth::Permission as P;
use touxiang_portfolio::PortfolioStore;
use utoipa::ToSchema;

use crate::auth::Access::Needs;
use crate::config::Limits;
use crate::error::{ApiError, ErrorDetail};
use crate::routes::access::Routes;
use crate::state::AppState;

/// The portfolio query routes (merged into [`crate::app`]): read-outs, for keys with the
/// `aggregate` permission.
pub fn router() -> Routes {
    let read = Needs(P::Aggregate);
    Routes::new()
        .get("/v1/portfolios", read, list_portfolios)
        .get("/v1/aggregate", read, aggregate)
        .get("/v1/concentration", read, concentration)
        .get("/v1/scores", read, scores)
        .get("/v1/alerts", read, alerts)
        .get(
            "/v1/portfolios/{name}/ingest-reports/{report_id}",
            read,
            ingest_report,
        )
}

/// The upload route (a write: `portfolio_write`): bodies up to `limits.max_upload_bytes`,
/// under the upload timeout that [`crate::app`] applies instead of the request timeout.
pub fn upload_router(limits: &Limits) -> Routes {
    Routes::new().upload(
        "/v1/portfolios/{name}/loans",
        Needs(P::PortfolioWrite),
        upload_loans,
        limits.max_upload_bytes,
    )
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Run store work on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("worker failed: {e}")))?
}

pub(crate) type Params = Vec<(String, String)>;

pub(crate) fn params(q: Result<Query<Params>, QueryRejection>) -> Result<Params, ApiError> {
    q.map(|Query(p)| p).map_err(|e| ApiError::BadRequest {
        code: "invalid_query",
        message: e.body_text(),
        field: None,
    })
}

/// Remove and return the (single) value of `name`; 422 when given twice.
pub(crate) fn take(p: &mut Params, name: &str) -> Result<Option<String>, ApiError> {
    let mut out = None;
    let mut i = 0;
    while i < p.len() {
        if p[i].0 == name {
            let (_, v) = p.remove(i);
            if out.is_some() {
                return Err(ApiError::invalid(name, format!("`{name}` given twice")));
            }
            out = Some(v);
        } else {
            i += 1;
        }
    }
    Ok(out)
}

pub(crate) fn required(p: &mut Params, name: &str) -> Result<String, ApiError> {
    match take(p, name)? {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        _ => Err(ApiError::invalid(
            name,
            format!("query parameter `{name}` is required"),
        )),
    }
}

fn store(s: &AppState) -> Result<Arc<PortfolioStore>, ApiError> {
    Ok(s.portfolios())
}

// ---------------------------------------------------------------------------------------------
// Documentation-only schemas (the library types serialise to these shapes)

/// One stored portfolio.
#[derive(Serialize, ToSchema)]
pub struct PortfolioSummary {
    pub name: String,
    /// Region table: `china` (GB/T 2260) or `us_states`.
    pub region_scheme: String,
    /// Purpose taxonomy id.
    pub purpose_scheme: String,
    pub currency: String,
    /// Loan snapshot rows stored.
    pub rows: u64,
    /// Distinct as-of dates, ascending.
    pub as_of_dates: Vec<String>,
    /// Bumped by every committed ingest.
    pub generation: i64,
}

/// `GET /v1/portfolios`.
#[derive(Serialize, ToSchema)]
pub struct PortfolioList {
    pub portfolios: Vec<PortfolioSummary>,
}

/// One rejected row problem.
#[derive(Serialize, ToSchema)]
pub struct RowErrorDoc {
    /// Row as the user sees it (CSV/XLSX: header = row 1; JSONL: line number).
    pub row: u64,
    /// Canonical field at fault.
    pub field: String,
    pub reason: String,
}

/// Ingest modes, as the `mode` query parameter takes them (documentation of the parameter).
#[derive(ToSchema)]
#[allow(dead_code)]
pub enum IngestModeParam {
    #[schema(rename = "all-or-nothing")]
    AllOrNothing,
    #[schema(rename = "commit-valid")]
    CommitValid,
}

/// Ingest summary (`POST /v1/portfolios/{name}/loans`, and what `touxiang ingest` prints).
#[derive(Serialize, ToSchema)]
pub struct IngestSummary {
    pub portfolio: String,
    /// Rows committed.
    pub accepted: u64,
    /// The first rejected row problems, in row order: at most `limits.max_reported_row_errors`
    /// (default 1000); all of them when `rejected_truncated` is false.
    pub rejected: Vec<RowErrorDoc>,
    /// Row problems in all (a row may have several): the rows of the full report.
    pub rejected_total: u64,
    /// Distinct rows with at least one problem.
    pub rejected_rows: u64,
    /// `rejected` lists fewer problems than `rejected_total`; the full list is at `report_url`.
    pub rejected_truncated: bool,
    /// Id of the full report of row problems (`ir_` + 32 hex digits); null when no row was
    /// rejected.
    pub report_id: Option<String>,
    /// `GET` this for the full report (CSV `row,field,reason`); null when no row was rejected.
    #[schema(example = "/v1/portfolios/book/ingest-reports/ir_0123456789abcdef0123456789abcdef")]
    pub report_url: Option<String>,
    /// Problems written to the report (`rejected_total` unless it passed 10 million).
    pub report_rows: u64,
    /// Whether anything was committed.
    pub committed: bool,
    /// `all_or_nothing` or `commit_valid`.
    pub mode: String,
    pub rows_read: u64,
    pub valid_rows: u64,
    /// Rows labeled by the classifier on ingest.
    pub industry_labeled: u64,
    /// Rows whose industry came from the `industry_code` column.
    pub industry_from_input: u64,
    /// Rows stored without an industry (`label=false`, or the classifier abstained).
    pub industry_missing: u64,
    pub elapsed_ms: u64,
    /// Only on 422 (all-or-nothing with rejected rows): the error in the contract shape.
    pub error: Option<ErrorDetail>,
}

// ---------------------------------------------------------------------------------------------
// GET /v1/portfolios

/// List stored portfolios.
#[utoipa::path(get, path = "/v1/portfolios", tag = "portfolio", security(("bearer" = [])),
    responses((status = 200, body = PortfolioList)))]
pub async fn list_portfolios(State(s): State<AppState>) -> Result<Json<PortfolioList>, ApiError> {
    let store = store(&s)?;
    let list = blocking(move || Ok(store.portfolios()?)).await?;
    Ok(Json(PortfolioList {
        portfolios: list
            .into_iter()
            .map(|p| PortfolioSummary {
                name: p.name,
                region_scheme: p.config.region_scheme.as_str().into(),
                purpose_scheme: p.config.purpose_scheme.id.clone(),
                currency: p.config.currency,
                rows: p.rows,
                as_of_dates: p.as_of_dates,
                generation: p.generation,
            })
            .collect(),
    }))
}
