//! Portfolio routes: loan upload, aggregation (JSON/CSV/XLSX), concentration, risk scores and
//! early-warning alerts, over [`touxiang_portfolio`].
//!
//! * `GET  /v1/portfolios` — stored portfolios with row counts and snapshot dates.
//! * `POST /v1/portfolios/{name}/loans` — upload a loan file (multipart `file` part, or the raw
//!   body as `text/csv`, `application/x-ndjson`, or the XLSX mime type) → the ingest summary.
//! * `GET  /v1/aggregate?portfolio=…&by=…&<filters>&format=json|csv|xlsx`.
//! * `GET  /v1/concentration?portfolio=…&by=industry.division,region.province`.
//! * `GET  /v1/scores?portfolio=…&by=…` — empirical-Bayes shrunk rates, exposure at risk, trend.
//! * `GET  /v1/alerts?portfolio=…` — early warnings with the reason in words.
//!
//! Every store call is synchronous SQLite / in-memory work and runs on the blocking pool. The
//! read-outs live in [`query`], the portfolio-name rule in [`name`].

pub mod name;
mod query;

pub use query::*;

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use touxiang_datasets::Labeler;
use touxiang_portfolio::{
    lendingclub, ColumnMap, IngestMode, IngestOptions, IngestReport, InputFormat, PortfolioError,
    PortfolioStore, RegionScheme,
};
use utoipa::ToSchema;

use crate::config::Limits;
use crate::error::{ApiError, ErrorDetail};
use crate::ext::{labeler_for, Ext, UnavailableLabeler};
use crate::state::AppState;

/// The portfolio query routes (merged into [`crate::app`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/portfolios", get(list_portfolios))
        .route("/v1/aggregate", get(aggregate))
        .route("/v1/concentration", get(concentration))
        .route("/v1/scores", get(scores))
        .route("/v1/alerts", get(alerts))
}

/// The upload route: bodies up to `limits.max_upload_bytes`, under the upload timeout that
/// [`crate::app`] applies instead of the request timeout.
pub fn upload_router(limits: &Limits) -> Router<AppState> {
    Router::new().route(
        "/v1/portfolios/{name}/loans",
        post(upload_loans).layer(DefaultBodyLimit::max(limits.max_upload_bytes)),
    )
}

// ---------------------------------------------------------------------------------------------
// Errors

impl From<PortfolioError> for ApiError {
    fn from(e: PortfolioError) -> Self {
        let code = e.code();
        let field = e.field().map(str::to_string);
        let message = e.to_string();
        match e {
            PortfolioError::InvalidQuery { .. }
            | PortfolioError::MissingColumn { .. }
            | PortfolioError::InvalidMap(_) => ApiError::Validation {
                code,
                message,
                field,
            },
            PortfolioError::Csv(_) | PortfolioError::Xlsx(_) | PortfolioError::Json(_) => {
                ApiError::BadRequest {
                    code,
                    message,
                    field: None,
                }
            }
            PortfolioError::UnsupportedFormat(_) => ApiError::UnsupportedMediaType(message),
            PortfolioError::UnknownPortfolio(_) => ApiError::NotFound(message),
            PortfolioError::ConfigConflict(_) => ApiError::Conflict(message),
            PortfolioError::Label(_) => ApiError::Backend(message),
            PortfolioError::Sqlite(_)
            | PortfolioError::Io(_)
            | PortfolioError::Export(_)
            | PortfolioError::Store(_) => ApiError::Internal(message),
        }
    }
}

/// Run store work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("worker failed: {e}")))?
}

type Params = Vec<(String, String)>;

fn params(q: Result<Query<Params>, QueryRejection>) -> Result<Params, ApiError> {
    q.map(|Query(p)| p).map_err(|e| ApiError::BadRequest {
        code: "invalid_query",
        message: e.body_text(),
        field: None,
    })
}

/// Remove and return the (single) value of `name`; 422 when given twice.
fn take(p: &mut Params, name: &str) -> Result<Option<String>, ApiError> {
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

fn required(p: &mut Params, name: &str) -> Result<String, ApiError> {
    match take(p, name)? {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        _ => Err(ApiError::invalid(
            name,
            format!("query parameter `{name}` is required"),
        )),
    }
}

fn store(s: &AppState) -> Result<Arc<PortfolioStore>, ApiError> {
    Ext::of(s).store()
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
    /// Every rejected row problem, in row order.
    pub rejected: Vec<RowErrorDoc>,
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

// ---------------------------------------------------------------------------------------------
// POST /v1/portfolios/{name}/loans

/// Options of an upload, from the query string.
struct UploadParams {
    opts: IngestOptions,
    format: Option<InputFormat>,
    taxonomy: String,
    label: bool,
}

fn upload_params(s: &AppState, mut p: Params) -> Result<UploadParams, ApiError> {
    let preset = take(&mut p, "preset")?;
    let mut opts = match preset.as_deref() {
        None | Some("") => IngestOptions::default(),
        Some("lendingclub") => lendingclub::ingest_options(),
        Some(other) => {
            return Err(ApiError::invalid(
                "preset",
                format!("unknown preset {other:?} (lendingclub)"),
            ))
        }
    };
    if let Some(m) = take(&mut p, "mode")? {
        opts.mode = parse_mode(&m).ok_or_else(|| {
            ApiError::invalid(
                "mode",
                format!("{m:?} is not all-or-nothing or commit-valid"),
            )
        })?;
    }
    if let Some(m) = take(&mut p, "map")? {
        opts.map = ColumnMap::parse(&m).map_err(|e| ApiError::invalid("map", e.to_string()))?;
    }
    let region = take(&mut p, "region_scheme")?;
    let currency = take(&mut p, "currency")?;
    if region.is_some() || currency.is_some() {
        let mut c = opts.config.clone().unwrap_or_default();
        if let Some(r) = region {
            c.region_scheme = RegionScheme::parse(r.trim()).ok_or_else(|| {
                ApiError::invalid("region_scheme", format!("{r:?} is not china or us_states"))
            })?;
        }
        if let Some(cur) = currency {
            if cur.trim().is_empty() {
                return Err(ApiError::invalid("currency", "empty currency"));
            }
            c.currency = cur.trim().to_string();
        }
        opts.config = Some(c);
    }
    opts.sheet = take(&mut p, "sheet")?;
    let format = match take(&mut p, "format")? {
        None => None,
        Some(f) => Some(InputFormat::parse(&f).ok_or_else(|| {
            ApiError::invalid("format", format!("{f:?} is not csv, xlsx or jsonl"))
        })?),
    };
    let taxonomy = take(&mut p, "taxonomy")?
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| s.config().classify.default_taxonomy.clone());
    let label = match take(&mut p, "label")?.as_deref().map(str::trim) {
        None | Some("true") | Some("1") => true,
        Some("false") | Some("0") => false,
        Some(v) => {
            return Err(ApiError::invalid(
                "label",
                format!("{v:?} is not true or false"),
            ))
        }
    };
    if let Some((k, _)) = p.first() {
        return Err(ApiError::invalid(
            k.clone(),
            format!("unknown query parameter `{k}` (mode, map, format, sheet, taxonomy, label, region_scheme, currency, preset)"),
        ));
    }
    Ok(UploadParams {
        opts,
        format,
        taxonomy,
        label,
    })
}

/// `all-or-nothing` / `commit-valid` (underscores accepted too).
pub fn parse_mode(s: &str) -> Option<IngestMode> {
    match s.trim().replace('_', "-").as_str() {
        "all-or-nothing" => Some(IngestMode::AllOrNothing),
        "commit-valid" => Some(IngestMode::CommitValid),
        _ => None,
    }
}

fn format_of_mime(ct: &str) -> Option<InputFormat> {
    let mime = crate::error::mime_essence(ct);
    match mime.as_str() {
        "text/csv" | "application/csv" | "text/plain" => Some(InputFormat::Csv),
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/x-jsonlines"
        | "application/jsonlines"
        | "application/json-lines" => Some(InputFormat::Jsonl),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => {
            Some(InputFormat::Xlsx)
        }
        _ => None,
    }
}

fn upload_error(e: impl std::fmt::Display, too_large: bool, limit: usize) -> ApiError {
    if too_large {
        ApiError::PayloadTooLarge(format!(
            "upload exceeds limits.max_upload_bytes ({limit} bytes): {e}"
        ))
    } else {
        ApiError::BadRequest {
            code: "unreadable_body",
            message: format!("cannot read the upload: {e}"),
            field: None,
        }
    }
}

/// Read the file of an upload: the `file` part of a multipart form (or its only part), or the
/// raw body. Returns the bytes and the format told by the request (mime type or file name).
async fn read_upload(
    s: &AppState,
    req: Request,
) -> Result<(Vec<u8>, Option<InputFormat>, Option<String>), ApiError> {
    let limit = s.config().limits.max_upload_bytes;
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if ct.to_ascii_lowercase().starts_with("multipart/form-data") {
        let mut mp = Multipart::from_request(req, s)
            .await
            .map_err(|e| ApiError::BadRequest {
                code: "invalid_multipart",
                message: e.body_text(),
                field: None,
            })?;
        while let Some(field) = mp
            .next_field()
            .await
            .map_err(|e| upload_error(&e, e.status() == StatusCode::PAYLOAD_TOO_LARGE, limit))?
        {
            let is_file = field.name() == Some("file") || field.file_name().is_some();
            if !is_file {
                continue;
            }
            let name = field.file_name().map(str::to_string);
            let fmt = field.content_type().and_then(format_of_mime).or_else(|| {
                name.as_deref()
                    .and_then(|n| InputFormat::from_path(std::path::Path::new(n)))
            });
            let bytes = field.bytes().await.map_err(|e| {
                upload_error(&e, e.status() == StatusCode::PAYLOAD_TOO_LARGE, limit)
            })?;
            return Ok((bytes.to_vec(), fmt, name));
        }
        Err(ApiError::invalid(
            "file",
            "the multipart form has no `file` part",
        ))
    } else {
        let fmt = format_of_mime(&ct);
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|e| {
                let too_large = std::error::Error::source(&e)
                    .map(|s| s.to_string().contains("length limit"))
                    .unwrap_or(false)
                    || e.to_string().contains("length limit");
                upload_error(&e, too_large, limit)
            })?;
        Ok((bytes.to_vec(), fmt, None))
    }
}

/// Upload loans into a portfolio (created on the first upload).
///
/// The file is CSV, JSONL or XLSX with the canonical columns (see API.md); `map` renames source
/// columns (`canonical=source,...`). Loans without `industry_code` are labeled by the classifier
/// of `taxonomy`, as `/v1/classify` labels them (voting over the same exemplar store); with `label=false` they are stored without an industry (counted in
/// `industry_missing`). When a label is needed but no classifier is available the upload fails
/// as a whole (503 while loading, 422 unknown taxonomy) and nothing is written.
///
/// Status: **200** when the file was committed — in `commit-valid` mode `rejected` may list rows
/// that were left out; **422** in `all-or-nothing` mode when any row was rejected: nothing was
/// written, the body is the same summary (every rejected row with `row`, `field`, `reason`)
/// plus `error` in the contract shape. File-level problems: 400 unreadable CSV/XLSX/JSONL,
/// 413 over `limits.max_upload_bytes`, 415 unknown format, 422 missing column / bad `map`,
/// 409 when the portfolio exists with another region table or currency.
#[utoipa::path(post, path = "/v1/portfolios/{name}/loans", tag = "portfolio",
    security(("bearer" = [])),
    params(
        ("name" = String, Path, min_length = 1, max_length = 64,
            pattern = r"^[A-Za-z0-9\p{Han}][A-Za-z0-9\p{Han}._-]{0,63}$",
            description = "Portfolio name: 1-64 characters, letters A-Z a-z, digits, CJK characters, `.`, `_`, `-`, the first a letter, digit or CJK character (422 naming `name` otherwise)"),
        ("mode" = Option<IngestModeParam>, Query, description = "`all-or-nothing` (default) or `commit-valid`"),
        ("map" = Option<String>, Query, description = "Column renames `canonical=source,...`"),
        ("format" = Option<String>, Query, description = "csv | xlsx | jsonl (default: from the Content-Type or file name)"),
        ("sheet" = Option<String>, Query, description = "XLSX sheet (default: the first)"),
        ("taxonomy" = Option<String>, Query, description = "Industry taxonomy for labeling (default gbt4754-2017)"),
        ("label" = Option<bool>, Query, description = "Label loans without industry_code (default true)"),
        ("region_scheme" = Option<String>, Query, description = "china (default) | us_states; fixed at the first upload"),
        ("currency" = Option<String>, Query, description = "Currency (default CNY); fixed at the first upload"),
        ("preset" = Option<String>, Query, description = "`lendingclub`: the Lending Club column map, status map and US region table"),
    ),
    request_body(description = "The loan file: multipart/form-data with a `file` part, or the raw body as text/csv, application/x-ndjson or application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        content_type = "text/csv", content = String),
    responses(
        (status = 200, description = "Committed (commit-valid may list left-out rows)", body = IngestSummary),
        (status = 400, description = "Unreadable file", body = crate::error::ErrorBody),
        (status = 409, description = "Portfolio configuration conflict", body = crate::error::ErrorBody),
        (status = 413, description = "Upload over the limit", body = crate::error::ErrorBody),
        (status = 415, description = "Unknown file format", body = crate::error::ErrorBody),
        (status = 422, description = "A bad parameter or missing column; or, in all-or-nothing mode, rejected rows: then the body also carries every IngestSummary field beside `error`", body = crate::error::ErrorBody),
        (status = 503, description = "Rows need labels and the classifier is still loading", body = crate::error::ErrorBody)))]
pub async fn upload_loans(
    State(s): State<AppState>,
    Path(portfolio_name): Path<String>,
    q: Result<Query<Params>, QueryRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    name::validate(&portfolio_name)?;
    let up = upload_params(&s, params(q)?)?;
    let (bytes, told, file_name) = read_upload(&s, req).await?;
    let format = up.format.or(told).ok_or_else(|| {
        ApiError::UnsupportedMediaType(
            "cannot tell the file format: send Content-Type text/csv, application/x-ndjson or the XLSX type, a multipart file with a .csv/.jsonl/.xlsx name, or ?format=".into(),
        )
    })?;
    let (labeler, unavailable): (Option<Arc<dyn Labeler>>, Option<ApiError>) = if up.label {
        match labeler_for(&s, &up.taxonomy) {
            Ok(l) => (Some(l), None),
            Err(e) => (
                Some(Arc::new(UnavailableLabeler {
                    reason: e.to_string(),
                })),
                Some(e),
            ),
        }
    } else {
        (None, None)
    };
    let store = store(&s)?;
    let mut opts = up.opts;
    opts.source_name = Some(file_name.unwrap_or_else(|| "http upload".into()));
    let res = tokio::task::spawn_blocking(move || {
        store.ingest_bytes(&portfolio_name, format, bytes, &opts, labeler.as_deref())
    })
    .await
    .map_err(|e| ApiError::Internal(format!("worker failed: {e}")))?;
    let report = match res {
        Ok(r) => r,
        Err(PortfolioError::Label(le)) => {
            return Err(match unavailable {
                Some(ApiError::NotReady(m)) => ApiError::NotReady(format!(
                    "rows without industry_code need the classifier: {m} (retry later, add an industry_code column, or upload with label=false)"
                )),
                Some(ApiError::Validation { code, message, field }) => ApiError::Validation {
                    code,
                    message: format!(
                        "rows without industry_code need a classifier: {message} (add an industry_code column or upload with label=false)"
                    ),
                    field,
                },
                Some(other) => other,
                None => PortfolioError::Label(le).into(),
            })
        }
        Err(e) => return Err(e.into()),
    };
    Ok(ingest_response(report))
}

/// 200 with the summary when committed; 422 with the summary plus `error` when nothing was
/// committed because of rejected rows.
pub fn ingest_response(report: IngestReport) -> Response {
    if report.committed || report.rejected.is_empty() {
        return (StatusCode::OK, Json(report)).into_response();
    }
    let n = report.rejected.len();
    let first = &report.rejected[0];
    let mut v = serde_json::to_value(&report).unwrap_or_default();
    v["error"] = serde_json::json!({
        "code": "rows_rejected",
        "message": format!(
            "{n} row problem(s); nothing was written (all-or-nothing). First: row {}, {}: {}",
            first.row, first.field, first.reason
        ),
        "field": format!("rows[{}].{}", first.row, first.field),
    });
    (StatusCode::UNPROCESSABLE_ENTITY, Json(v)).into_response()
}
