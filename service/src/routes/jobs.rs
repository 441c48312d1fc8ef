//! Batch reclassification jobs over HTTP, on [`touxiang_batch::JobRegistry`].
//!
//! * `POST /v1/jobs` — JSON naming a server-side `input` (and optionally `output`), or a
//!   multipart upload (`file` part, optional `options` part with the same JSON minus `input`).
//! * `GET  /v1/jobs`, `GET /v1/jobs/{id}` — state, progress (rows done/total, unique texts,
//!   cache hits, errors), and once finished the summary (counts, row issues with row numbers,
//!   diff report) or the error.
//! * `POST /v1/jobs/{id}/cancel` — stop after the current chunk (checkpointed; a new job with
//!   `resume: true` and the same input/output continues).
//! * `GET  /v1/jobs/{id}/output` — download the output once the job succeeded.
//!
//! **Files.** Server-side paths are relative to `DATA_DIR/jobs/` (absolute paths must lie
//! inside it; `..` is refused), so a caller cannot read or overwrite the service's own files
//! (keys, databases). Uploads go to `DATA_DIR/jobs/up_<uuid>/input.<ext>`, their output to
//! `output.<ext>` beside it. The label cache is `DATA_DIR/batch-cache.sqlite`, shared with the
//! CLI. Jobs are kept in memory (a restart forgets them, not their files or checkpoints).

use std::path::{Component, Path as FsPath, PathBuf};

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use touxiang_auth::Permission as P;
use touxiang_batch::{BatchHooks, BatchOptions, Format, InputEncoding, JobState, Shard};
use utoipa::ToSchema;

use crate::auth::Access::Needs;
use crate::cmd_batch::{ReviewStoreSink, CACHE_FILE};
use crate::config::Limits;
use crate::error::ApiError;
use crate::extract::parse_json;
use crate::routes::access::Routes;
use crate::state::AppState;

/// The job routes (merged into [`crate::app`]) other than the upload. Reading a job's status
/// and output is an export (`export`); cancelling one is a write (`portfolio_write`).
pub fn router() -> Routes {
    Routes::new()
        .get("/v1/jobs", Needs(P::Export), list_jobs)
        .get("/v1/jobs/{id}", Needs(P::Export), get_job)
        .post("/v1/jobs/{id}/cancel", Needs(P::PortfolioWrite), cancel_job)
        .get("/v1/jobs/{id}/output", Needs(P::Export), job_output)
}

/// `POST /v1/jobs` (a write: `portfolio_write`; file upload up to `limits.max_upload_bytes`,
/// under the upload timeout).
pub fn upload_router(limits: &Limits) -> Routes {
    Routes::new().upload(
        "/v1/jobs",
        Needs(P::PortfolioWrite),
        create_job,
        limits.max_upload_bytes,
    )
}

/// Options of a job (`POST /v1/jobs` JSON body, or the `options` part of an upload).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// Input file, relative to `DATA_DIR/jobs/` (required unless a file is uploaded).
    pub input: Option<String>,
    /// Output file, relative to `DATA_DIR/jobs/` (default: `<input stem>.out.<ext>` beside the
    /// input, or `output.<ext>` for uploads; ext = `output_format`, default csv).
    pub output: Option<String>,
    /// csv | xlsx | jsonl | parquet (default: from the extension).
    pub input_format: Option<String>,
    pub output_format: Option<String>,
    /// utf-8 (default) | gb18030.
    pub encoding: Option<String>,
    /// XLSX sheet (default: first).
    pub sheet: Option<String>,
    /// Id column (default `loan_id`).
    pub id_column: Option<String>,
    /// Text column (default `purpose_text`).
    pub text_column: Option<String>,
    /// Continue from the checkpoint of an earlier (cancelled/failed) job with the same output.
    #[serde(default)]
    pub resume: bool,
    /// `i/n`: process only shard i of n.
    pub shard: Option<String>,
    /// Route rows to the review queue by the rule of `/v1/classify` (`review` decisions,
    /// neighbour-vote disagreements, QA samples of `auto` decisions).
    #[serde(default)]
    pub review: bool,
    /// Column with previous codes (diff report).
    pub old_code_column: Option<String>,
    /// Column with balances (diff report flows).
    pub balance_column: Option<String>,
    /// Column with the borrower's name, read by the model with the purpose text.
    #[serde(default)]
    pub borrower_name_column: Option<String>,
    /// Column with the borrower's business scope (经营范围), read with the purpose text.
    #[serde(default)]
    pub business_scope_column: Option<String>,
    /// Write the diff report as `<output>.diff.json` and `<output>.diff.xlsx` (needs
    /// `old_code_column`); the report is also in the job summary.
    #[serde(default)]
    pub diff: bool,
    /// Taxonomy of the classifier (default: classify.default_taxonomy).
    pub taxonomy: Option<String>,
    /// Rows per chunk (default 4096).
    pub chunk_size: Option<usize>,
}

/// A job as returned by the job routes (`touxiang_batch::JobSnapshot`).
#[derive(Serialize, ToSchema)]
pub struct JobDoc {
    /// `job_<32 hex>`.
    pub id: String,
    /// running | succeeded | failed | cancelled.
    pub state: String,
    /// `{stage, rows_read, rows_done, total, unique_texts, cache_hits, labeled_texts, errors,
    /// review_rows}`.
    #[schema(value_type = Object)]
    pub progress: serde_json::Value,
    /// The batch options in effect (paths, columns, shard, ...).
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
    pub started_at_unix: f64,
    pub finished_at_unix: Option<f64>,
    /// Once succeeded: `{counters, issues: [{row, line, id, field, reason}], diff, ...}`.
    #[schema(value_type = Object)]
    pub summary: Option<serde_json::Value>,
    /// Once failed or cancelled: `{code, message}`.
    #[schema(value_type = Object)]
    pub error: Option<serde_json::Value>,
}

/// `GET /v1/jobs`.
#[derive(Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobDoc>,
}

fn jobs_root(s: &AppState) -> Result<PathBuf, ApiError> {
    let root = std::path::absolute(s.config().data_dir.join("jobs"))
        .map_err(|e| ApiError::Internal(format!("data dir: {e}")))?;
    std::fs::create_dir_all(&root)
        .map_err(|e| ApiError::Internal(format!("cannot create {}: {e}", root.display())))?;
    Ok(root)
}

/// Resolve a caller's path inside `root` (relative to it, or absolute below it; no `..`).
fn resolve(root: &FsPath, field: &str, p: &str) -> Result<PathBuf, ApiError> {
    let p = p.trim();
    if p.is_empty() {
        return Err(ApiError::invalid(field, format!("{field} is empty")));
    }
    let path = FsPath::new(p);
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(ApiError::invalid(
            field,
            format!("{field} must not contain `..`"),
        ));
    }
    let full = if path.is_absolute() {
        path.to_path_buf()
    } else {
        root.join(path)
    };
    if !full.starts_with(root) {
        return Err(ApiError::invalid(
            field,
            format!(
                "{field} must lie inside {} (server-side files for jobs live there)",
                root.display()
            ),
        ));
    }
    Ok(full)
}

fn parse_fmt(field: &str, v: &Option<String>) -> Result<Option<Format>, ApiError> {
    v.as_deref()
        .map(|f| {
            f.parse::<Format>()
                .map_err(|e| ApiError::invalid(field, e.to_string()))
        })
        .transpose()
}

/// Turn a request into batch options. `upload` = (directory, input path) of an uploaded file.
fn job_options(
    s: &AppState,
    req: &JobRequest,
    upload: Option<(PathBuf, PathBuf)>,
) -> Result<BatchOptions, ApiError> {
    let root = jobs_root(s)?;
    let input_format = parse_fmt("input_format", &req.input_format)?;
    let output_format = parse_fmt("output_format", &req.output_format)?;
    let (input, default_dir, default_stem) = match (&upload, &req.input) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "input",
                "give either an uploaded file or a server-side input, not both",
            ))
        }
        (Some((dir, input)), None) => (input.clone(), dir.clone(), "output".to_string()),
        (None, Some(i)) => {
            let input = resolve(&root, "input", i)?;
            if !input.is_file() {
                return Err(ApiError::invalid(
                    "input",
                    format!("no file {} under DATA_DIR/jobs", i.trim()),
                ));
            }
            let dir = input.parent().unwrap_or(&root).to_path_buf();
            let stem = input
                .file_stem()
                .map(|s| format!("{}.out", s.to_string_lossy()))
                .unwrap_or_else(|| "output".into());
            (input, dir, stem)
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "input",
                "input is required (a path under DATA_DIR/jobs), or upload a file",
            ))
        }
    };
    let output = match &req.output {
        Some(o) => resolve(&root, "output", o)?,
        None => {
            let ext = output_format.unwrap_or(Format::Csv).as_str();
            default_dir.join(format!("{default_stem}.{ext}"))
        }
    };
    if let Some(d) = output.parent() {
        std::fs::create_dir_all(d)
            .map_err(|e| ApiError::Internal(format!("cannot create {}: {e}", d.display())))?;
    }
    let mut o = BatchOptions::new(input, output);
    o.input_format = input_format;
    o.output_format = output_format;
    if let Some(e) = &req.encoding {
        o.input_encoding = e
            .parse::<InputEncoding>()
            .map_err(|e| ApiError::invalid("encoding", e.to_string()))?;
    }
    o.sheet = req.sheet.clone();
    if let Some(c) = &req.id_column {
        o.id_column = c.clone();
    }
    if let Some(c) = &req.text_column {
        o.text_column = c.clone();
    }
    o.resume = req.resume;
    o.shard = req
        .shard
        .as_deref()
        .map(|v| {
            v.parse::<Shard>()
                .map_err(|e| ApiError::invalid("shard", e.to_string()))
        })
        .transpose()?;
    o.review = req.review;
    o.old_code_column = req.old_code_column.clone();
    o.balance_column = req.balance_column.clone();
    o.borrower_name_column = req.borrower_name_column.clone();
    o.business_scope_column = req.business_scope_column.clone();
    if req.diff {
        if o.old_code_column.is_none() {
            return Err(ApiError::invalid(
                "diff",
                "the diff report needs old_code_column",
            ));
        }
        let mut j = o.output.clone().into_os_string();
        j.push(".diff.json");
        let mut x = o.output.clone().into_os_string();
        x.push(".diff.xlsx");
        o.diff_json = Some(j.into());
        o.diff_xlsx = Some(x.into());
    }
    if let Some(c) = req.chunk_size {
        if c == 0 {
            return Err(ApiError::invalid("chunk_size", "must be at least 1"));
        }
        o.chunk_size = c;
    }
    o.cache_path = Some(s.config().data_dir.join(CACHE_FILE));
    Ok(o)
}

fn val<T: Serialize>(x: &T) -> serde_json::Value {
    serde_json::to_value(x).unwrap_or_default()
}

fn doc(s: touxiang_batch::JobSnapshot) -> JobDoc {
    JobDoc {
        id: s.id.clone(),
        state: val(&s.state).as_str().unwrap_or_default().to_string(),
        progress: val(&s.progress),
        options: val(&s.options),
        started_at_unix: s.started_at_unix,
        finished_at_unix: s.finished_at_unix,
        summary: s.summary.as_ref().map(val),
        error: s.error.as_ref().map(val),
    }
}

/// Read a multipart job: the `file` part is saved under `DATA_DIR/jobs/up_<uuid>/`, the
/// optional `options` part is the JSON of [`JobRequest`] (without `input`).
async fn read_multipart(
    s: &AppState,
    req: Request,
) -> Result<(JobRequest, Option<(PathBuf, PathBuf)>), ApiError> {
    let mut mp = Multipart::from_request(req, s)
        .await
        .map_err(|e| ApiError::BadRequest {
            code: "invalid_multipart",
            message: e.body_text(),
            field: None,
        })?;
    let mut opts = JobRequest::default();
    let mut upload = None;
    let root = jobs_root(s)?;
    let mp_err = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!("upload exceeds limits.max_upload_bytes: {e}"))
        } else {
            ApiError::BadRequest {
                code: "unreadable_body",
                message: format!("cannot read the upload: {e}"),
                field: None,
            }
        }
    };
    while let Some(mut field) = mp.next_field().await.map_err(mp_err)? {
        match field.name().unwrap_or("") {
            "options" => {
                let b = field.bytes().await.map_err(mp_err)?;
                opts = parse_json(&b).map_err(|e| match e {
                    ApiError::Validation {
                        code,
                        message,
                        field,
                    } => ApiError::Validation {
                        code,
                        message,
                        field: Some(format!("options.{}", field.unwrap_or_default())),
                    },
                    other => other,
                })?;
            }
            "file" => {
                if upload.is_some() {
                    return Err(ApiError::invalid("file", "only one file per job"));
                }
                let ext = field
                    .file_name()
                    .and_then(|n| FsPath::new(n).extension())
                    .map(|e| e.to_string_lossy().to_ascii_lowercase())
                    .filter(|e| e.parse::<Format>().is_ok())
                    .unwrap_or_else(|| "csv".into());
                let dir = root.join(format!("up_{}", uuid::Uuid::new_v4().simple()));
                tokio::fs::create_dir_all(&dir).await.map_err(|e| {
                    ApiError::Internal(format!("cannot create {}: {e}", dir.display()))
                })?;
                let path = dir.join(format!("input.{ext}"));
                let mut f = tokio::fs::File::create(&path).await.map_err(|e| {
                    ApiError::Internal(format!("cannot create {}: {e}", path.display()))
                })?;
                use tokio::io::AsyncWriteExt;
                while let Some(chunk) = field.chunk().await.map_err(mp_err)? {
                    f.write_all(&chunk)
                        .await
                        .map_err(|e| ApiError::Internal(format!("cannot write upload: {e}")))?;
                }
                f.flush()
                    .await
                    .map_err(|e| ApiError::Internal(format!("cannot write upload: {e}")))?;
                upload = Some((dir, path));
            }
            other => {
                return Err(ApiError::invalid(
                    other.to_string(),
                    format!("unknown form part {other:?} (file, options)"),
                ))
            }
        }
    }
    if upload.is_none() && opts.input.is_none() {
        return Err(ApiError::invalid("file", "the form has no `file` part"));
    }
    Ok((opts, upload))
}

/// Start a batch job. JSON body: a server-side `input` under `DATA_DIR/jobs/`; or
/// `multipart/form-data` with a `file` part (and an optional `options` JSON part). Answers 202
/// with the job; poll `GET /v1/jobs/{id}`. Rows are labeled as `/v1/classify` labels them
/// (voting over the same exemplar store once it is seeded; a job started before that labels with
/// the heads-only calibration throughout).
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", security(("bearer" = [])),
    request_body(content = JobRequest, description = "application/json; or multipart/form-data with parts `file` (the input) and `options` (this JSON without `input`)"),
    responses(
        (status = 202, description = "Started", body = JobDoc),
        (status = 409, description = "Another running job writes the same output", body = crate::error::ErrorBody),
        (status = 413, description = "Upload over the limit", body = crate::error::ErrorBody),
        (status = 415, description = "Neither JSON nor multipart", body = crate::error::ErrorBody),
        (status = 422, description = "Bad option (named in `field`) or input outside DATA_DIR/jobs", body = crate::error::ErrorBody),
        (status = 503, description = "Classifier still loading", body = crate::error::ErrorBody)))]
pub async fn create_job(State(s): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (jr, upload) = if ct.starts_with("multipart/form-data") {
        read_multipart(&s, req).await?
    } else {
        let crate::extract::ApiJson(jr) =
            crate::extract::ApiJson::<JobRequest>::from_request(req, &s).await?;
        (jr, None)
    };
    let opts = job_options(&s, &jr, upload)?;
    if s.jobs().list().iter().any(|j| {
        j.state == JobState::Running
            && (j.options.output == opts.output || j.options.output == opts.input)
    }) {
        return Err(ApiError::Conflict(format!(
            "a running job already writes {}",
            opts.output.display()
        )));
    }
    let taxonomy = jr
        .taxonomy
        .clone()
        .unwrap_or_else(|| s.config().classify.default_taxonomy.clone());
    let labeler = s.labeler_for(&taxonomy)?;
    let mut hooks = BatchHooks::default();
    if opts.review {
        let cfg = s.config().clone();
        let t = taxonomy.clone();
        let store = s.review().store.clone();
        let qa_rate = s.review().qa.rate();
        let sink = tokio::task::spawn_blocking(move || {
            ReviewStoreSink::with_store(&cfg, store, &t, qa_rate)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("worker failed: {e}")))?
        .map_err(|e| ApiError::Backend(format!("review queue unavailable: {e:#}")))?;
        hooks.review = Some(std::sync::Arc::new(sink));
    }
    let job = s.jobs().spawn(opts, labeler, hooks)?;
    tracing::info!(job = job.id(), "batch job started");
    Ok((StatusCode::ACCEPTED, Json(doc(job.snapshot()))).into_response())
}

/// All jobs of this server process.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", security(("bearer" = [])),
    responses((status = 200, body = JobList)))]
pub async fn list_jobs(State(s): State<AppState>) -> Json<JobList> {
    Json(JobList {
        jobs: s.jobs().list().into_iter().map(doc).collect(),
    })
}

fn find(s: &AppState, id: &str) -> Result<std::sync::Arc<touxiang_batch::BatchJob>, ApiError> {
    s.jobs()
        .get(id)
        .ok_or_else(|| ApiError::NotFound(format!("no job {id:?}")))
}

/// State, progress and (when finished) summary or error of a job.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", security(("bearer" = [])),
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = JobDoc),
        (status = 404, description = "Unknown job", body = crate::error::ErrorBody)))]
pub async fn get_job(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobDoc>, ApiError> {
    Ok(Json(doc(find(&s, &id)?.snapshot())))
}

/// Ask a running job to stop after its current chunk. The checkpoint stays: a new job with the
/// same input and output and `resume: true` continues where it stopped. 202 with the job (its
/// state turns `cancelled` shortly); 409 when it has already finished.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", security(("bearer" = [])),
    params(("id" = String, Path, description = "Job id")),
    responses((status = 202, body = JobDoc),
        (status = 404, description = "Unknown job", body = crate::error::ErrorBody),
        (status = 409, description = "Job already finished", body = crate::error::ErrorBody)))]
pub async fn cancel_job(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = find(&s, &id)?;
    let snap = job.snapshot();
    if snap.state != JobState::Running {
        return Err(ApiError::Conflict(format!(
            "job {id} has already finished ({:?})",
            snap.state
        )));
    }
    job.cancel();
    Ok((StatusCode::ACCEPTED, Json(doc(job.snapshot()))).into_response())
}

/// Download the output of a succeeded job (CSV, XLSX, JSONL or Parquet, as requested).
#[utoipa::path(get, path = "/v1/jobs/{id}/output", tag = "jobs", security(("bearer" = [])),
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "The output file (attachment)", content_type = "application/octet-stream"),
        (status = 404, description = "Unknown job", body = crate::error::ErrorBody),
        (status = 409, description = "Job not succeeded (running, failed or cancelled)", body = crate::error::ErrorBody)))]
pub async fn job_output(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let snap = find(&s, &id)?.snapshot();
    if snap.state != JobState::Succeeded {
        return Err(ApiError::Conflict(format!(
            "job {id} has no output: it is {}",
            val(&snap.state).as_str().unwrap_or_default()
        )));
    }
    let path = snap.options.output.clone();
    let fmt = snap
        .summary
        .as_ref()
        .map(|x| x.output_format)
        .or_else(|| Format::from_path(&path).ok())
        .unwrap_or(Format::Csv);
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::NotFound(format!("output {} is gone: {e}", path.display())))?;
    let len = file.metadata().await.ok().map(|m| m.len());
    let mime = match fmt {
        Format::Csv => "text/csv; charset=utf-8",
        Format::Jsonl => "application/x-ndjson",
        Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        Format::Parquet => "application/vnd.apache.parquet",
    };
    let mut resp = Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(file)));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    if let Some(n) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}.{}\"", fmt.as_str()))
    {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
