//! Review queue routes over [`touxiang_review::ReviewStore`] (shape of the core calls fixed in
//! API.md).
//!
//! * `POST /v1/review/claim` `{queue, reviewer}` → 200 the leased item, 204 when nothing is
//!   claimable.
//! * `POST /v1/review/{id}/label` `{code, reviewer, comment}` → 200; committed (fsynced) before
//!   the answer; a final label is added to the exemplar store at once (active learning).
//! * `POST /v1/review/{id}/skip` `{reviewer, reason}`, `POST /v1/review/{id}/release` `{reviewer}`.
//! * `GET /v1/review/stats`, `GET /v1/review/{id}` (item + audit trail),
//!   `GET /v1/review/agreement?taxonomy=` (double-review agreement with Cohen's kappa),
//!   `GET /v1/review/me` (the reviewer's own figures, [`crate::routes::review_extra`]).
//!
//! A claimed item and the item view also carry `keywords`, the borrower fields and, at the
//! adjudication stage, `earlier_labels` ([`crate::routes::review_extra`]).
//!
//! `reviewer` may be omitted when authenticating with a reviewer key (the key's name is the
//! reviewer id); reviewer keys may act only as themselves, admin keys for anyone. Every store
//! call runs on the blocking pool.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use touxiang_auth::{Permission as P, Principal};
use touxiang_review::{ItemState, LabelOutcome, Stage};
use utoipa::ToSchema;

use crate::auth::acting_reviewer;
use crate::auth::Access::Needs;
use crate::error::ApiError;
use crate::extract::{parse_json, ApiJson};
use crate::review::{add_exemplar, blocking, ExemplarStatus};
use crate::routes::access::Routes;
use crate::routes::review_extra::{
    borrower_fields, earlier_labels, extend_item_view, EarlierLabel,
};
use crate::routes::{check_max_chars, MAX_ID_CHARS};
use crate::state::AppState;

/// Longest label comment or skip reason, in characters (kept in the audit log).
pub const MAX_COMMENT_CHARS: usize = 2000;

/// 422 naming `reviewer` when it is over [`MAX_ID_CHARS`] characters.
fn check_reviewer(reviewer: &Option<String>) -> Result<(), ApiError> {
    check_max_chars("reviewer", reviewer.as_deref(), MAX_ID_CHARS)
}

/// The review routes (merged into [`crate::app`]): the figures (`review_stats`), the agreement
/// report (`review_reports`), and the reviewer's own work (`review_work`).
pub fn router() -> Routes {
    let work = Needs(P::ReviewWork);
    Routes::new()
        .post("/v1/review/claim", work, claim)
        .get("/v1/review/stats", Needs(P::ReviewStats), stats)
        .get("/v1/review/agreement", Needs(P::ReviewReports), agreement)
        .get("/v1/review/me", work, crate::routes::review_extra::me)
        .get("/v1/review/{review_id}", work, item)
        .post("/v1/review/{review_id}/label", work, label)
        .post("/v1/review/{review_id}/skip", work, skip)
        .post("/v1/review/{review_id}/release", work, release)
}

type Caller = Option<Extension<Principal>>;

fn principal(c: &Caller) -> Option<&Principal> {
    c.as_ref().map(|Extension(p)| p)
}

/// Optional JSON body: empty → default.
fn optional_body<T: serde::de::DeserializeOwned + Default>(b: &Bytes) -> Result<T, ApiError> {
    if b.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse_json(b)
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ClaimRequest {
    /// Queue to claim from (default: `classify.review_queue`, normally `default`): 1-64
    /// characters of `A-Z a-z 0-9 . _ - :`.
    #[serde(default)]
    #[schema(max_length = 64)]
    pub queue: Option<String>,
    /// Reviewer id, at most 128 characters; default the name of the reviewer key.
    #[serde(default)]
    #[schema(max_length = 128)]
    pub reviewer: Option<String>,
}

/// A leased item.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClaimResponse {
    /// `rv_` + 32 hex.
    pub review_id: String,
    pub queue: String,
    /// `first` | `second` (double review) | `adjudication`.
    #[schema(value_type = String)]
    pub stage: Stage,
    pub text: String,
    pub taxonomy: String,
    /// Caller's id of the case (classify item `id`).
    pub external_id: Option<String>,
    pub amount: Option<f64>,
    pub uncertainty: f64,
    /// `review` | `disagreement` | `qa_sample`.
    pub reason: String,
    /// The model's label and alternatives, as shown at enqueue.
    #[schema(value_type = Vec<Object>)]
    pub suggestions: serde_json::Value,
    /// Nearest labeled exemplars and the neighbour vote, as at enqueue.
    #[schema(value_type = Object)]
    pub neighbors: serde_json::Value,
    pub model_version: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub enqueued_at: DateTime<Utc>,
    /// Effective priority at claim time (uncertainty × exposure, with ageing).
    pub priority: f64,
    pub reviewer: String,
    #[schema(value_type = String, format = DateTime)]
    pub lease_expires_at: DateTime<Utc>,
    /// Keywords of the text, as `/v1/classify` returns them (for highlighting).
    pub keywords: Vec<String>,
    /// Borrower's registered name given at classify (also under `neighbors.borrower`).
    pub borrower_name: Option<String>,
    /// Borrower's business scope (经营范围) given at classify.
    pub business_scope: Option<String>,
    /// Industry code the customer manager declared (its name and whether it agreed with the
    /// model are under `neighbors.borrower.declared`).
    pub declared_industry: Option<String>,
    /// Only at the adjudication stage: the two disagreeing labels (first and second review).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub earlier_labels: Option<Vec<EarlierLabel>>,
}

/// Lease the next item of a queue by priority.
#[utoipa::path(post, path = "/v1/review/claim", tag = "review", request_body = ClaimRequest,
    security(("bearer" = [])),
    responses((status = 200, body = ClaimResponse), (status = 204, description = "nothing to claim"),
        (status = 401, body = crate::error::ErrorBody), (status = 403, description = "wrong role or acting as another reviewer", body = crate::error::ErrorBody),
        (status = 422, description = "invalid queue or reviewer", body = crate::error::ErrorBody)))]
pub async fn claim(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<ClaimRequest>,
) -> Result<Response, ApiError> {
    check_reviewer(&req.reviewer)?;
    let reviewer = acting_reviewer(&s, principal(&caller), req.reviewer.as_deref())?;
    let queue = req
        .queue
        .unwrap_or_else(|| s.config().classify.review_queue.clone());
    let ctx = s.review();
    let lookup = ctx.lookup(&s);
    let segmenter = crate::keywords::engine_segmenter(&s);
    let t = std::time::Instant::now();
    let claimed = blocking(move || {
        let Some(c) = ctx
            .store
            .claim(&queue, &reviewer, ctx.lease_ttl, Utc::now())?
        else {
            return Ok(None);
        };
        let earlier = match c.stage {
            Stage::Adjudication => {
                let labels = ctx.store.labels(&c.review_id)?;
                earlier_labels(c.stage, &c.taxonomy, &labels, &lookup)
            }
            _ => None,
        };
        let keywords = crate::keywords::keywords_or_shared(segmenter, &c.text);
        Ok(Some((c, keywords, earlier)))
    })
    .await?;
    metrics::histogram!("touxiang_review_claim_seconds").record(t.elapsed().as_secs_f64());
    Ok(match claimed {
        None => StatusCode::NO_CONTENT.into_response(),
        Some((c, keywords, earlier_labels)) => {
            let (borrower_name, business_scope, declared_industry) = borrower_fields(&c.neighbors);
            Json(ClaimResponse {
                review_id: c.review_id,
                queue: c.queue,
                stage: c.stage,
                text: c.text,
                taxonomy: c.taxonomy,
                external_id: c.external_id,
                amount: c.amount,
                uncertainty: c.uncertainty,
                reason: c.reason.as_str().to_string(),
                suggestions: c.suggestions,
                neighbors: c.neighbors,
                model_version: c.model_version,
                enqueued_at: c.enqueued_at,
                priority: c.priority,
                reviewer: c.reviewer,
                lease_expires_at: c.lease_expires_at,
                keywords,
                borrower_name,
                business_scope,
                declared_industry,
                earlier_labels,
            })
            .into_response()
        }
    })
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LabelRequest {
    /// A code of the item's taxonomy, at any level (section letter, division, group, class).
    pub code: String,
    /// Reviewer id, at most 128 characters; default the name of the reviewer key.
    #[serde(default)]
    #[schema(max_length = 128)]
    pub reviewer: Option<String>,
    /// Free-text note kept with the label and in the audit log; at most 2000 characters.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub comment: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LabelResponse {
    pub review_id: String,
    /// The stage this label was given at.
    #[schema(value_type = String)]
    pub stage: Stage,
    pub code: String,
    pub reviewer: String,
    #[schema(value_type = String, format = DateTime)]
    pub labeled_at: DateTime<Utc>,
    /// `final`, or `pending` when a second review / adjudication is still needed.
    #[schema(value_type = String)]
    pub state: ItemState,
    #[schema(value_type = Option<String>)]
    pub next_stage: Option<Stage>,
    pub next_queue: Option<String>,
    /// The final code, when this label made the item final.
    pub final_code: Option<String>,
    /// Whether the final label was added to the exemplar store.
    pub exemplar: ExemplarStatus,
}

/// Label a leased item. Durable when this returns 200.
#[utoipa::path(post, path = "/v1/review/{review_id}/label", tag = "review", request_body = LabelRequest,
    params(("review_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = LabelResponse),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, description = "wrong role, or the item is leased to someone else", body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody),
        (status = 409, description = "lease expired, or already labeled", body = crate::error::ErrorBody),
        (status = 422, description = "code not in the taxonomy (field `code`), or `reviewer` / `comment` over its length limit (named in `field`)", body = crate::error::ErrorBody)))]
pub async fn label(
    State(s): State<AppState>,
    caller: Caller,
    Path(review_id): Path<String>,
    ApiJson(req): ApiJson<LabelRequest>,
) -> Result<Json<LabelResponse>, ApiError> {
    check_reviewer(&req.reviewer)?;
    check_max_chars("comment", req.comment.as_deref(), MAX_COMMENT_CHARS)?;
    let reviewer = acting_reviewer(&s, principal(&caller), req.reviewer.as_deref())?;
    let ctx = s.review();
    let lookup = ctx.lookup(&s);
    let out: LabelOutcome = blocking(move || {
        Ok(ctx.store.label(
            &review_id,
            &reviewer,
            &req.code,
            req.comment.as_deref(),
            &lookup,
            Utc::now(),
        )?)
    })
    .await?;
    metrics::counter!("touxiang_review_labels_total", "stage" => out.label.stage.as_str())
        .increment(1);
    let exemplar = match &out.final_label {
        Some(f) if crate::payee_review::payee_of(f).is_some() => {
            let flow = s.flow_store()?;
            let f = f.clone();
            match blocking(move || Ok(crate::payee_review::apply_final(&flow, &f)?)).await {
                Ok(true) => ExemplarStatus::Payee,
                Ok(false) => ExemplarStatus::Unavailable,
                Err(e) => {
                    tracing::warn!(error = %e, "reviewed payee label not written to the payee cache");
                    ExemplarStatus::Unavailable
                }
            }
        }
        Some(f) => add_exemplar(&s, f).await,
        None => ExemplarStatus::NotFinal,
    };
    Ok(Json(LabelResponse {
        review_id: out.label.review_id,
        stage: out.label.stage,
        code: out.label.code,
        reviewer: out.label.reviewer,
        labeled_at: out.label.labeled_at,
        state: out.state,
        next_stage: out.next_stage,
        next_queue: out.next_queue,
        final_code: out.final_label.map(|f| f.code),
        exemplar,
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct SkipRequest {
    /// Reviewer id, at most 128 characters; default the name of the reviewer key.
    #[serde(default)]
    #[schema(max_length = 128)]
    pub reviewer: Option<String>,
    /// Why (kept in the audit log); at most 2000 characters.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnleaseResponse {
    pub review_id: String,
    /// `pending`: back in the queue.
    #[schema(value_type = String)]
    pub state: ItemState,
}

/// Give a leased item back; this reviewer will not be offered it again for a while.
#[utoipa::path(post, path = "/v1/review/{review_id}/skip", tag = "review", request_body(content = SkipRequest, description = "optional"),
    params(("review_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = UnleaseResponse),
        (status = 403, description = "wrong role, or not leased to you", body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn skip(
    State(s): State<AppState>,
    caller: Caller,
    Path(review_id): Path<String>,
    body: Bytes,
) -> Result<Json<UnleaseResponse>, ApiError> {
    let req: SkipRequest = optional_body(&body)?;
    check_reviewer(&req.reviewer)?;
    check_max_chars("reason", req.reason.as_deref(), MAX_COMMENT_CHARS)?;
    let reviewer = acting_reviewer(&s, principal(&caller), req.reviewer.as_deref())?;
    let ctx = s.review();
    let id = review_id.clone();
    blocking(move || {
        Ok(ctx
            .store
            .skip(&id, &reviewer, req.reason.as_deref(), Utc::now())?)
    })
    .await?;
    Ok(Json(UnleaseResponse {
        review_id,
        state: ItemState::Pending,
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ReleaseRequest {
    /// Reviewer id, at most 128 characters; default the name of the reviewer key.
    #[serde(default)]
    #[schema(max_length = 128)]
    pub reviewer: Option<String>,
}

/// Give a leased item back to the queue (no cooldown).
#[utoipa::path(post, path = "/v1/review/{review_id}/release", tag = "review", request_body(content = ReleaseRequest, description = "optional"),
    params(("review_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = UnleaseResponse),
        (status = 403, description = "wrong role, or not leased to you", body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn release(
    State(s): State<AppState>,
    caller: Caller,
    Path(review_id): Path<String>,
    body: Bytes,
) -> Result<Json<UnleaseResponse>, ApiError> {
    let req: ReleaseRequest = optional_body(&body)?;
    check_reviewer(&req.reviewer)?;
    let reviewer = acting_reviewer(&s, principal(&caller), req.reviewer.as_deref())?;
    let ctx = s.review();
    let id = review_id.clone();
    blocking(move || Ok(ctx.store.release(&id, &reviewer, Utc::now())?)).await?;
    Ok(Json(UnleaseResponse {
        review_id,
        state: ItemState::Pending,
    }))
}

/// Queue depths and per-reviewer counters (no texts).
#[utoipa::path(get, path = "/v1/review/stats", tag = "review", security(("bearer" = [])),
    responses((status = 200, description = "`{at, queues: [{queue, pending, pending_second_review, leased, labeled, oldest_pending_age_secs, reviewers}], reviewers}`", body = Object)))]
pub async fn stats(State(s): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let ctx = s.review();
    let st = blocking(move || Ok(ctx.store.stats(Utc::now())?)).await?;
    Ok(Json(
        serde_json::to_value(st).map_err(|e| ApiError::Internal(e.to_string()))?,
    ))
}

/// One item with its labels and audit trail.
#[utoipa::path(get, path = "/v1/review/{review_id}", tag = "review",
    params(("review_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "`{item: {review_id, state, stage, text, labels: [{stage, reviewer, code, comment, labeled_at}], final_label, suggestions, neighbors, …, keywords, borrower_name, business_scope, declared_industry, earlier_labels (adjudication stage only: [{reviewer, code, name, comment, at, stage}])}, audit: [{seq, at, actor, action, detail, previous}]}`", body = Object),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn item(
    State(s): State<AppState>,
    Path(review_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ctx = s.review();
    let lookup = ctx.lookup(&s);
    let segmenter = crate::keywords::engine_segmenter(&s);
    let (item, audit) = blocking(move || {
        let item = ctx.store.get(&review_id, Utc::now())?;
        let audit = ctx.store.audit(&review_id)?;
        let keywords = crate::keywords::keywords_or_shared(segmenter, &item.text);
        let earlier = earlier_labels(item.stage, &item.taxonomy, &item.labels, &lookup);
        let mut v = serde_json::to_value(&item).map_err(|e| ApiError::Internal(e.to_string()))?;
        extend_item_view(&mut v, keywords, earlier);
        Ok((v, audit))
    })
    .await?;
    Ok(Json(serde_json::json!({"item": item, "audit": audit})))
}

/// Double-review agreement: exact, partial credit along the taxonomy path, Cohen's kappa per
/// level, per reviewer and per code.
#[utoipa::path(get, path = "/v1/review/agreement", tag = "review",
    params(("taxonomy" = Option<String>, Query, description = "only this taxonomy")), security(("bearer" = [])),
    responses((status = 200, description = "`{taxonomy, pairs, exact_agreement, mean_partial_credit, kappa: [{depth, level, pairs, observed_agreement, kappa}], reviewers, codes}`", body = Object)))]
pub async fn agreement(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ctx = s.review();
    let taxonomy = q.get("taxonomy").cloned().filter(|t| !t.is_empty());
    if let Some(t) = &taxonomy {
        if !ctx.knows_taxonomy(&s, t) {
            return Err(ApiError::invalid(
                "taxonomy",
                format!("unknown taxonomy '{t}'"),
            ));
        }
    }
    let lookup = ctx.lookup(&s);
    let r = blocking(move || Ok(ctx.store.agreement_report(taxonomy.as_deref(), &lookup)?)).await?;
    Ok(Json(
        serde_json::to_value(r).map_err(|e| ApiError::Internal(e.to_string()))?,
    ))
}
