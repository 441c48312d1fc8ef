//! `POST /v1/portfolios/{name}/loans` (part of [`super`]) and the ingest reports it leaves,
//! `GET /v1/portfolios/{name}/ingest-reports/{report_id}`.
//!
//! The upload is never held in memory: the body (raw, or the `file` part of a multipart form) is
//! spooled chunk by chunk to `DATA_DIR/tmp/upload-<uuid>.part` (removed when the request ends,
//! also when the client goes away), then ingested from that file in bounded memory
//! ([`touxiang_portfolio::ingest`]). The summary lists at most `limits.max_reported_row_errors`
//! row problems; all of them go to a CSV report kept in `DATA_DIR/ingest-reports/`, served by
//! [`ingest_report`].

use std::path::{Path as FsPath, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::{Body, HttpBody};
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tokio::io::AsyncWriteExt;
use touxiang_datasets::Labeler;
use touxiang_portfolio::{
    lendingclub, ColumnMap, ErrorReport, IngestMode, IngestOptions, IngestReport, InputFormat,
    PortfolioError, RegionScheme,
};

use super::{blocking, name, params, store, take, IngestModeParam, IngestSummary, Params};
use crate::error::ApiError;
use crate::state::AppState;
use crate::state::UnavailableLabeler;

/// Spool files older than this in `DATA_DIR/tmp` are left-overs of a crash.
const STALE_SPOOL: Duration = Duration::from_secs(24 * 3600);
/// Write buffer of the spool file.
const SPOOL_BUFFER: usize = 1 << 20;

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
    if let Some(m) = take_mode(&mut p)? {
        opts.mode = m;
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
    let format = take_format(&mut p)?;
    let taxonomy = take(&mut p, "taxonomy")?
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| s.config().classify.default_taxonomy.clone());
    let label = take_bool(&mut p, "label")?.unwrap_or(true);
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

/// The upload parameters every tabular upload shares (loans, payments, relations), each
/// removed from `p` and 422 naming it when malformed: `mode`, `format`, and true/false flags.
pub(crate) fn take_mode(p: &mut Params) -> Result<Option<IngestMode>, ApiError> {
    take(p, "mode")?
        .map(|m| {
            parse_mode(&m).ok_or_else(|| {
                ApiError::invalid(
                    "mode",
                    format!("{m:?} is not all-or-nothing or commit-valid"),
                )
            })
        })
        .transpose()
}

/// See [`take_mode`].
pub(crate) fn take_format(p: &mut Params) -> Result<Option<InputFormat>, ApiError> {
    take(p, "format")?
        .map(|f| {
            InputFormat::parse(&f).ok_or_else(|| {
                ApiError::invalid("format", format!("{f:?} is not csv, xlsx or jsonl"))
            })
        })
        .transpose()
}

/// See [`take_mode`]: `true`/`1` or `false`/`0`.
pub(crate) fn take_bool(p: &mut Params, name: &str) -> Result<Option<bool>, ApiError> {
    match take(p, name)?.as_deref().map(str::trim) {
        None => Ok(None),
        Some("true") | Some("1") => Ok(Some(true)),
        Some("false") | Some("0") => Ok(Some(false)),
        Some(v) => Err(ApiError::invalid(
            name,
            format!("{v:?} is not true or false"),
        )),
    }
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

fn unknown_format() -> ApiError {
    ApiError::UnsupportedMediaType(
        "cannot tell the file format: send Content-Type text/csv, application/x-ndjson or the XLSX type, a multipart file with a .csv/.jsonl/.xlsx name, or ?format=".into(),
    )
}

/// An upload spooled to a file under `DATA_DIR/tmp`, removed when dropped (request finished,
/// failed, or abandoned by the client).
pub(crate) struct Spool {
    pub(crate) path: PathBuf,
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
    bytes: usize,
    limit: usize,
}

impl Spool {
    async fn create(data_dir: &FsPath, limit: usize) -> Result<Self, ApiError> {
        let dir = data_dir.join("tmp");
        let internal = |what: &str, p: &FsPath, e: std::io::Error| {
            ApiError::Internal(format!("cannot {what} {}: {e}", p.display()))
        };
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| internal("create", &dir, e))?;
        sweep_stale(&dir).await;
        let path = dir.join(format!("upload-{}.part", uuid::Uuid::new_v4().simple()));
        let f = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| internal("create", &path, e))?;
        Ok(Spool {
            path,
            file: Some(tokio::io::BufWriter::with_capacity(SPOOL_BUFFER, f)),
            bytes: 0,
            limit,
        })
    }

    async fn write(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        self.bytes += chunk.len();
        if self.bytes > self.limit {
            return Err(upload_error(
                format!("more than {} bytes received", self.limit),
                true,
                self.limit,
            ));
        }
        let f = self.file.as_mut().expect("spool open");
        f.write_all(chunk)
            .await
            .map_err(|e| ApiError::Internal(format!("cannot write the upload: {e}")))
    }

    async fn finish(&mut self) -> Result<(), ApiError> {
        if let Some(mut f) = self.file.take() {
            f.flush()
                .await
                .map_err(|e| ApiError::Internal(format!("cannot write the upload: {e}")))?;
        }
        Ok(())
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        drop(self.file.take());
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Remove spool files a crashed process left behind (best effort).
async fn sweep_stale(dir: &FsPath) {
    let Ok(mut rd) = tokio::fs::read_dir(dir).await else {
        return;
    };
    let now = SystemTime::now();
    while let Ok(Some(e)) = rd.next_entry().await {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("upload-") && name.ends_with(".part")) {
            continue;
        }
        let old = e
            .metadata()
            .await
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > STALE_SPOOL);
        if old {
            let _ = tokio::fs::remove_file(e.path()).await;
        }
    }
}

/// Spool the file of an upload: the `file` part of a multipart form (or its only file part),
/// or the raw body. `format` is the `?format=` parameter; otherwise the format comes from the
/// mime type or the file name, and an unknown one is refused before the body is read.
pub(crate) async fn spool_upload(
    s: &AppState,
    req: Request,
    format: Option<InputFormat>,
) -> Result<(Spool, InputFormat, Option<String>), ApiError> {
    let limit = s.config().limits.max_upload_bytes;
    let data_dir = s.config().data_dir.clone();
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
        let mp_err = |e: axum::extract::multipart::MultipartError| {
            upload_error(&e, e.status() == StatusCode::PAYLOAD_TOO_LARGE, limit)
        };
        while let Some(mut field) = mp.next_field().await.map_err(mp_err)? {
            let is_file = field.name() == Some("file") || field.file_name().is_some();
            if !is_file {
                continue;
            }
            let name = field.file_name().map(str::to_string);
            let fmt = format
                .or_else(|| field.content_type().and_then(format_of_mime))
                .or_else(|| {
                    name.as_deref()
                        .and_then(|n| InputFormat::from_path(FsPath::new(n)))
                })
                .ok_or_else(unknown_format)?;
            let mut spool = Spool::create(&data_dir, limit).await?;
            while let Some(chunk) = field.chunk().await.map_err(mp_err)? {
                spool.write(&chunk).await?;
            }
            spool.finish().await?;
            return Ok((spool, fmt, name));
        }
        Err(ApiError::invalid(
            "file",
            "the multipart form has no `file` part",
        ))
    } else {
        let fmt = format
            .or_else(|| format_of_mime(&ct))
            .ok_or_else(unknown_format)?;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(upload_error(
                format!("Content-Length is {}", declared.unwrap_or_default()),
                true,
                limit,
            ));
        }
        let mut spool = Spool::create(&data_dir, limit).await?;
        let mut body = req.into_body();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            let frame = frame.map_err(|e| upload_error(&e, false, limit))?;
            if let Ok(data) = frame.into_data() {
                spool.write(&data).await?;
            }
        }
        spool.finish().await?;
        Ok((spool, fmt, None))
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
/// The body is spooled to a temporary file and ingested from it in bounded memory, whatever its
/// size (up to `limits.max_upload_bytes`) or its number of bad rows.
///
/// Status: **200** when the file was committed — in `commit-valid` mode `rejected` may list rows
/// that were left out; **422** in `all-or-nothing` mode when any row was rejected: nothing was
/// written, the body is the same summary plus `error` in the contract shape. `rejected` lists the
/// first `limits.max_reported_row_errors` (default 1000) row problems in row order;
/// `rejected_total` counts them all, `rejected_truncated` tells whether the list is cut short,
/// and when any row was rejected the full list is a CSV (`row,field,reason`) at `report_url`
/// (`report_id`). File-level problems: 400 unreadable CSV/XLSX/JSONL,
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
        (status = 200, description = "Committed (commit-valid may list left-out rows; the first `limits.max_reported_row_errors` in `rejected`, all of them in the report at `report_url`)", body = IngestSummary),
        (status = 400, description = "Unreadable file", body = crate::error::ErrorBody),
        (status = 409, description = "Portfolio configuration conflict", body = crate::error::ErrorBody),
        (status = 413, description = "Upload over the limit", body = crate::error::ErrorBody),
        (status = 415, description = "Unknown file format", body = crate::error::ErrorBody),
        (status = 422, description = "A bad parameter or missing column; or, in all-or-nothing mode, rejected rows: then the body also carries every IngestSummary field beside `error` (the first rejected rows in `rejected`, the full report at `report_url`)", body = crate::error::ErrorBody),
        (status = 503, description = "Rows need labels and the classifier is still loading", body = crate::error::ErrorBody)))]
pub async fn upload_loans(
    State(s): State<AppState>,
    Path(portfolio_name): Path<String>,
    q: Result<Query<Params>, QueryRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    name::validate(&portfolio_name)?;
    let up = upload_params(&s, params(q)?)?;
    let (spool, format, file_name) = spool_upload(&s, req, up.format).await?;
    let (labeler, unavailable): (Option<Arc<dyn Labeler>>, Option<ApiError>) = if up.label {
        match s.labeler_for(&up.taxonomy) {
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
    opts.max_reported_row_errors = Some(s.config().limits.max_reported_row_errors);
    opts.error_report = ErrorReport::Store;
    let res = tokio::task::spawn_blocking(move || {
        let r = store.ingest_file_as(
            &portfolio_name,
            &spool.path,
            format,
            &opts,
            labeler.as_deref(),
        );
        drop(spool);
        r
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

/// Percent-encode a path segment (portfolio names may hold CJK characters).
fn path_segment(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// Where the API serves a kept ingest report.
pub fn report_url(portfolio: &str, report_id: &str) -> String {
    format!(
        "/v1/portfolios/{}/ingest-reports/{report_id}",
        path_segment(portfolio)
    )
}

/// 200 with the summary when committed; 422 with the summary plus `error` when nothing was
/// committed because of rejected rows. The server's file paths are left out; the report is
/// named by `report_id` and `report_url`.
pub fn ingest_response(mut report: IngestReport) -> Response {
    report.report_path = None;
    report.report_url = report
        .report_id
        .as_deref()
        .map(|id| report_url(&report.portfolio, id));
    if report.committed || report.rejected_total == 0 {
        return (StatusCode::OK, Json(report)).into_response();
    }
    let all_at = report
        .report_url
        .clone()
        .filter(|_| report.rejected_truncated);
    rows_rejected(
        &report,
        report.rejected_total,
        report.rejected_rows,
        report.rejected.first(),
        all_at.as_deref(),
    )
}

/// The 422 of an all-or-nothing ingest that rejected rows (loans, payments, relations): the
/// summary `body` with the contract `error` beside it, naming the first problem and, when the
/// list in the body was cut, where all of them are.
pub(crate) fn rows_rejected(
    body: &impl serde::Serialize,
    total: u64,
    rows: u64,
    first: Option<&touxiang_portfolio::RowError>,
    all_at: Option<&str>,
) -> Response {
    let first_msg = first
        .map(|f| format!(" First: row {}, {}: {}", f.row, f.field, f.reason))
        .unwrap_or_default();
    let full = all_at
        .map(|u| format!(" All of them: {u}"))
        .unwrap_or_default();
    let mut v = serde_json::to_value(body).unwrap_or_default();
    v["error"] = serde_json::json!({
        "code": "rows_rejected",
        "message": format!(
            "{total} row problem(s) in {rows} row(s); nothing was written (all-or-nothing).{first_msg}{full}"
        ),
        "field": first.map(|f| format!("rows[{}].{}", f.row, f.field)),
    });
    (StatusCode::UNPROCESSABLE_ENTITY, Json(v)).into_response()
}

/// Download the full report of an ingest's rejected rows.
///
/// A CSV with the header `row,field,reason`: every row problem of the upload (or `touxiang
/// ingest`) that returned this `report_id`, in row order (up to 10 million; `report_rows` in the
/// summary tells how many). Text cells that a spreadsheet would run as a formula start with `'`.
/// The newest 100 reports are kept. 404 when the id is unknown, pruned, or belongs to another
/// portfolio.
#[utoipa::path(get, path = "/v1/portfolios/{name}/ingest-reports/{report_id}", tag = "portfolio",
    security(("bearer" = [])),
    params(
        ("name" = String, Path, description = "Portfolio name"),
        ("report_id" = String, Path, pattern = "^ir_[0-9a-f]{32}$",
            description = "`report_id` of an ingest summary"),
    ),
    responses(
        (status = 200, description = "The report, `row,field,reason`", content_type = "text/csv", body = String),
        (status = 404, description = "No such report for this portfolio", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid portfolio name", body = crate::error::ErrorBody)))]
pub async fn ingest_report(
    State(s): State<AppState>,
    Path((portfolio_name, report_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    name::validate(&portfolio_name)?;
    let store = store(&s)?;
    let (p, id) = (portfolio_name.clone(), report_id.clone());
    let info = blocking(move || Ok(store.ingest_report(&p, &id)?)).await?;
    let Some(info) = info else {
        return Err(ApiError::NotFound(format!(
            "no ingest report {report_id:?} for portfolio {portfolio_name:?}"
        )));
    };
    let f = tokio::fs::File::open(&info.path)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot open the report: {e}")))?;
    let len = f.metadata().await.map(|m| m.len()).ok();
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(f, 1 << 16));
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}.csv\"",
        info.meta.report_id
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(n) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    Ok(resp)
}
