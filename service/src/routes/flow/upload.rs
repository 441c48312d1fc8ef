//! `POST /v1/portfolios/{name}/payments` and `POST /v1/portfolios/{name}/relations` (part of
//! [`super`]): the body is spooled to disk as loan uploads are
//! ([`crate::routes::portfolio::spool_upload`]) and ingested in one transaction.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use touxiang_auth::Permission as P;
use touxiang_flow::{IngestOptions, IngestSummary, Input};
use touxiang_portfolio::InputFormat;

use super::{payee_labeler, FlowIngestSummary};
use crate::auth::Access::Needs;
use crate::config::Limits;
use crate::error::ApiError;
use crate::routes::access::Routes;
use crate::routes::portfolio::{
    name, params, rows_rejected, spool_upload, take, take_bool, take_format, take_mode, Params,
};
use crate::state::AppState;

/// The upload routes (portfolio writes: `portfolio_write`): bodies up to
/// `limits.max_upload_bytes`, under the upload timeout.
pub fn upload_router(limits: &Limits) -> Routes {
    let (write, max) = (Needs(P::PortfolioWrite), limits.max_upload_bytes);
    Routes::new()
        .upload(
            "/v1/portfolios/{name}/payments",
            write,
            upload_payments,
            max,
        )
        .upload(
            "/v1/portfolios/{name}/relations",
            write,
            upload_relations,
            max,
        )
}

struct UploadParams {
    opts: IngestOptions,
    format: Option<InputFormat>,
    label: bool,
}

fn upload_params(mut p: Params, with_label: bool) -> Result<UploadParams, ApiError> {
    let mut opts = IngestOptions::default();
    if let Some(m) = take_mode(&mut p)? {
        opts.mode = m;
    }
    opts.sheet = take(&mut p, "sheet")?;
    let format = take_format(&mut p)?;
    let label = with_label && take_bool(&mut p, "label")?.unwrap_or(true);
    if let Some((k, _)) = p.first() {
        let allowed = if with_label {
            "mode, format, sheet, label"
        } else {
            "mode, format, sheet"
        };
        return Err(ApiError::invalid(
            k.clone(),
            format!("unknown query parameter `{k}` ({allowed})"),
        ));
    }
    Ok(UploadParams {
        opts,
        format,
        label,
    })
}

/// 200 with the summary when committed; 422 with the summary plus `error` when nothing was
/// committed because rows were rejected (all-or-nothing).
/// 200 with the summary, or the 422 of all-or-nothing with rejected rows; when any row was
/// rejected, `report_url` is where all of them are (as for loan uploads).
fn summary_response(s: IngestSummary) -> Response {
    let url = s
        .report_id
        .as_deref()
        .map(|id| crate::routes::portfolio::report_url(&s.portfolio, id));
    let mut v = serde_json::to_value(&s).unwrap_or_default();
    v["report_url"] = serde_json::json!(url);
    if s.committed || s.rejected_total == 0 {
        return (StatusCode::OK, Json(v)).into_response();
    }
    let all_at = url.filter(|_| s.rejected_truncated);
    rows_rejected(
        &v,
        s.rejected_total,
        s.rejected_rows,
        s.rejected.first(),
        all_at.as_deref(),
    )
}

async fn ingest(
    s: AppState,
    portfolio: String,
    q: Result<Query<Params>, QueryRejection>,
    req: Request,
    payments: bool,
) -> Result<Response, ApiError> {
    name::validate(&portfolio)?;
    let up = upload_params(params(q)?, payments)?;
    let (spool, format, file_name) = spool_upload(&s, req, up.format).await?;
    let store = s.flow_store()?;
    let labeler = (payments && up.label).then(|| payee_labeler(&s)).flatten();
    let portfolios = s.portfolios();
    let review = match (payments, &labeler) {
        (true, Some(_)) => Some(s.review()),
        _ => None,
    };
    let mut opts = up.opts;
    opts.source_name = Some(file_name.unwrap_or_else(|| "http upload".into()));
    opts.max_reported_row_errors = Some(s.config().limits.max_reported_row_errors);
    let res = tokio::task::spawn_blocking(move || {
        let input = Input::File(&spool.path, Some(format));
        let mut r = if payments {
            store.ingest_payments(&portfolio, input, &opts)
        } else {
            store.ingest_relations(&portfolio, input, &opts)
        }?;
        drop(spool);
        if let (true, Some(l)) = (r.committed, &labeler) {
            r.payees_labeled = Some(store.label_payees(&portfolio, l.as_ref())?);
            if let Some(ctx) = &review {
                match crate::payee_review::enqueue_payees(&ctx.store, &store, &portfolio) {
                    Ok(n) => r.payees_queued = Some(n),
                    Err(e) => tracing::warn!(error = %e, "payees not sent to review"),
                }
            }
        }
        if payments && r.committed {
            // under the labeler's scope when it labeled the payees just above
            let scope = labeler.as_ref().map(|l| l.cache_scope());
            r.flow_sections =
                Some(store.refresh_actual_sections(&portfolio, scope.as_deref(), &portfolios)?);
        }
        Ok::<_, touxiang_flow::FlowError>(r)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("worker failed: {e}")))??;
    Ok(summary_response(res))
}

/// Upload payment records (disbursements and payments out of a loan account) into a portfolio.
///
/// Columns `payment_id, loan_id, payee_name, payee_account, amount, paid_at, memo, channel`
/// (CSV header, JSON keys or the first XLSX row; other columns are kept as attributes).
/// Required: `payment_id, loan_id, payee_name, amount, paid_at`. Each bad row is a row error
/// `{row, field, reason}`: `loan_id` not a loan of the portfolio, `amount` not > 0, `paid_at`
/// not `YYYY-MM-DD[ HH:MM:SS]`, `channel` not 受托支付 / 自主支付 / other, `payment_id` twice
/// or already stored. The first `limits.max_reported_row_errors` problems are listed in
/// `rejected`; when any row is rejected, all of them are kept as CSV (`row,field,reason`) at
/// `GET /v1/portfolios/{name}/ingest-reports/{report_id}` (`report_id` in the summary), as for
/// loan uploads. The file is one transaction: `all-or-nothing` (default) writes nothing
/// when any row is rejected (422, the summary plus `error`), `commit-valid` writes the valid rows
/// (200). After a commit the new payees are classified (GB/T 4754 from the name; people
/// recognised as individuals), unless `label=false` or the classifier is still loading
/// (`payees_labeled` null: they are then classified when a flow is first asked for); the payees
/// it was unsure of (abstained, or `review`) go to the reviewers' `payees` queue
/// (`payees_queued`; a reviewer's label then wins in every flow); then each
/// loan's `flow.section` — the section that received most of its money, a dimension of
/// `/v1/aggregate` — is recomputed (`flow_sections`).
#[utoipa::path(post, path = "/v1/portfolios/{name}/payments", tag = "flow",
    security(("bearer" = [])),
    params(
        ("name" = String, Path, description = "Portfolio name (must exist: loans are ingested first)"),
        ("mode" = Option<crate::routes::portfolio::IngestModeParam>, Query, description = "`all-or-nothing` (default) or `commit-valid`"),
        ("format" = Option<String>, Query, description = "csv | xlsx | jsonl (default: from the Content-Type or file name)"),
        ("sheet" = Option<String>, Query, description = "XLSX sheet (default: the first)"),
        ("label" = Option<bool>, Query, description = "Classify the new payees after the commit (default true)"),
    ),
    request_body(description = "The payment file: multipart/form-data with a `file` part, or the raw body as text/csv, application/x-ndjson or the XLSX type",
        content_type = "text/csv", content = String),
    responses(
        (status = 200, description = "Committed (commit-valid may list left-out rows; all of them in the report named by `report_id`)", body = FlowIngestSummary),
        (status = 400, description = "Unreadable file", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown portfolio", body = crate::error::ErrorBody),
        (status = 413, description = "Upload over the limit", body = crate::error::ErrorBody),
        (status = 415, description = "Unknown file format", body = crate::error::ErrorBody),
        (status = 422, description = "A bad parameter or missing column; or, in all-or-nothing mode, rejected rows: then the body also carries every summary field beside `error`", body = crate::error::ErrorBody)))]
pub async fn upload_payments(
    State(s): State<AppState>,
    Path(portfolio): Path<String>,
    q: Result<Query<Params>, QueryRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    ingest(s, portfolio, q, req, true).await
}

/// Upload relations between the portfolio's borrowers: columns `from, to, kind`.
///
/// `from` and `to` name borrowers by `borrower_id` (a loan column) or `borrower_name`; `kind`
/// is `guarantee` (`from` guarantees `to`), `control` or `supply-chain` (Chinese synonyms 担保,
/// 控制, 供应链 accepted). Row errors: an endpoint that is no borrower of the portfolio, a
/// relation of a borrower with itself, an unknown kind, the same relation twice. Modes,
/// statuses and the full report of row problems (`report_id`: all row problems as CSV at
/// `GET /v1/portfolios/{name}/ingest-reports/{report_id}`) as for payments.
#[utoipa::path(post, path = "/v1/portfolios/{name}/relations", tag = "flow",
    security(("bearer" = [])),
    params(
        ("name" = String, Path, description = "Portfolio name (must exist)"),
        ("mode" = Option<crate::routes::portfolio::IngestModeParam>, Query, description = "`all-or-nothing` (default) or `commit-valid`"),
        ("format" = Option<String>, Query, description = "csv | xlsx | jsonl"),
        ("sheet" = Option<String>, Query, description = "XLSX sheet (default: the first)"),
    ),
    request_body(description = "The relation file (as for payments)", content_type = "text/csv", content = String),
    responses(
        (status = 200, description = "Committed", body = FlowIngestSummary),
        (status = 400, description = "Unreadable file", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown portfolio", body = crate::error::ErrorBody),
        (status = 413, description = "Upload over the limit", body = crate::error::ErrorBody),
        (status = 415, description = "Unknown file format", body = crate::error::ErrorBody),
        (status = 422, description = "Bad parameter, missing column, or rejected rows (all-or-nothing)", body = crate::error::ErrorBody)))]
pub async fn upload_relations(
    State(s): State<AppState>,
    Path(portfolio): Path<String>,
    q: Result<Query<Params>, QueryRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    ingest(s, portfolio, q, req, false).await
}
