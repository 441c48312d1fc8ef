//! `POST /v1/classify` — shape fixed in API.md.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use touxiang_training::{ClassifyOptions, LoanText, Neighbor};
use touxiang_vectors::Filter;
use utoipa::ToSchema;

use crate::auth::Access::Needs;
use crate::engine::{api_source, encoder_text, store_neighbors};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::routes::access::Routes;
use crate::state::AppState;

/// The classify route (merged into [`crate::app`]): keys with the `classify` permission.
pub fn router() -> Routes {
    Routes::new().post(
        "/v1/classify",
        Needs(touxiang_auth::Permission::Classify),
        classify,
    )
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ClassifyItem {
    /// Caller's id (echoed back; kept as the review item's `external_id`); at most 128
    /// characters.
    #[serde(default)]
    #[schema(max_length = 128)]
    pub id: Option<String>,
    /// Free-text loan purpose.
    pub text: String,
    /// Exposure (review priority = uncertainty × amount); ≥ 0.
    #[serde(default)]
    pub amount: Option<f64>,
    /// Borrower's registered name ("XX餐饮管理有限公司"): read by the model with the text; at
    /// most 200 characters.
    #[serde(default)]
    #[schema(max_length = 200)]
    pub borrower_name: Option<String>,
    /// Borrower's business scope (经营范围); its first activities are read by the model; at
    /// most 2000 characters.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub business_scope: Option<String>,
    /// Industry code the customer manager declared (a code of the taxonomy): shown as evidence
    /// beside the result (`declared`), not read by the model.
    #[serde(default)]
    pub declared_industry: Option<String>,
}

impl ClassifyItem {
    /// The loan as the classifier reads it.
    pub fn loan(&self) -> LoanText {
        LoanText {
            text: self.text.clone(),
            borrower_name: self.borrower_name.clone(),
            business_scope: self.business_scope.clone(),
            declared_industry: self.declared_industry.clone(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ClassifyRequest {
    pub items: Vec<ClassifyItem>,
    /// Taxonomy id (default `gbt4754-2017`).
    #[serde(default)]
    pub taxonomy: Option<String>,
    /// Alternatives to return (default 3).
    #[serde(default)]
    pub top_k: Option<usize>,
    /// Nearest labeled neighbours to return (default 5).
    #[serde(default)]
    pub neighbors: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PathStepOut {
    pub code: String,
    pub name: String,
    pub confidence: f32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LabelOut {
    pub code: String,
    /// `section` | `division` | `group` | `class` (or a custom taxonomy's level name).
    pub level: String,
    pub name: String,
    /// Root first; stops at the returned level.
    pub path: Vec<PathStepOut>,
}

/// A candidate at the taxonomy's finest level (a class of GB/T 4754) with its path.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlternativeOut {
    pub code: String,
    pub level: String,
    pub name: String,
    /// Calibrated probability of the candidate.
    pub confidence: f32,
    /// Root first, down to the candidate.
    pub path: Vec<PathStepOut>,
}

/// The industry the customer manager declared, beside what the model found.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeclaredOut {
    pub code: String,
    pub name: String,
    /// Whether the declared code lies on the best guess's path (or the guess on its subtree).
    pub agrees: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NeighborOut {
    pub text: String,
    pub code: String,
    pub similarity: f32,
    /// `seed` | `reviewed`.
    pub source: String,
    /// Finer origin of a seed exemplar (`include`, `exclude`, `name`, `definition`, `template`…).
    pub origin: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClassifyResult {
    pub id: Option<String>,
    /// Deepest level the service stands behind; `null` when not even a section can be given.
    pub label: Option<LabelOut>,
    /// Calibrated confidence of `label`.
    pub confidence: f32,
    /// `auto` | `review`.
    pub decision: String,
    pub review_id: Option<String>,
    /// Top-k candidates at the finest level (classes), best first, whatever level `label`
    /// stops at; the best guess itself is in `guess`.
    pub alternatives: Vec<AlternativeOut>,
    /// The best candidate's full path (down to a class), also when `label` is coarser or null;
    /// `null` for text too vague to guess.
    pub guess: Option<LabelOut>,
    /// The declared industry of the item, when given, and whether it agrees with `guess`.
    pub declared: Option<DeclaredOut>,
    pub neighbors: Vec<NeighborOut>,
    /// False when the exemplar store could not be reached (the result then rests on the heads).
    pub neighbors_available: bool,
    pub keywords: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClassifyResponse {
    pub model_version: String,
    pub taxonomy_version: String,
    pub results: Vec<ClassifyResult>,
}

/// Classify loan purposes into a taxonomy path with evidence.
#[utoipa::path(post, path = "/v1/classify", tag = "classify", request_body = ClassifyRequest,
    security(("bearer" = [])),
    responses((status = 200, body = ClassifyResponse),
        (status = 400, description = "not JSON / not UTF-8", body = crate::error::ErrorBody),
        (status = 422, description = "invalid field or unknown taxonomy", body = crate::error::ErrorBody),
        (status = 429, description = "queue full", body = crate::error::ErrorBody),
        (status = 503, description = "still loading", body = crate::error::ErrorBody)))]
pub async fn classify(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<ClassifyRequest>,
) -> Result<Json<ClassifyResponse>, ApiError> {
    let cfg = s.config();
    crate::routes::embed::validate_texts(
        &s,
        "items",
        req.items
            .iter()
            .enumerate()
            .map(|(i, it)| (format!("items[{i}].text"), it.text.as_str())),
    )?;
    for (i, it) in req.items.iter().enumerate() {
        if let Some(a) = it.amount {
            if !a.is_finite() || a < 0.0 {
                return Err(ApiError::invalid(
                    format!("items[{i}].amount"),
                    format!("items[{i}].amount must be a number ≥ 0, got {a}"),
                ));
            }
        }
    }
    let top_k = req.top_k.unwrap_or(3);
    validate_borrower_fields(&req.items)?;
    if top_k > cfg.classify.max_top_k {
        return Err(ApiError::invalid(
            "top_k",
            format!("top_k must be ≤ {}", cfg.classify.max_top_k),
        ));
    }
    let n_neighbors = req.neighbors.unwrap_or(5);
    if n_neighbors > cfg.classify.max_neighbors {
        return Err(ApiError::invalid(
            "neighbors",
            format!("neighbors must be ≤ {}", cfg.classify.max_neighbors),
        ));
    }
    let taxonomy = req
        .taxonomy
        .clone()
        .unwrap_or_else(|| cfg.classify.default_taxonomy.clone());
    let engine = s.engine()?;
    let tm = engine.taxonomy_model(&taxonomy)?;
    validate_declared(&req.items, &tm.taxonomy)?;
    let model_version = engine.model_version();

    let model_texts: Vec<String> = req.items.iter().map(|it| it.loan().model_text()).collect();
    let prepared: Vec<String> = model_texts.iter().map(|t| encoder_text(t)).collect();
    let refs: Vec<&str> = prepared.iter().map(String::as_str).collect();
    let ids = engine.model.tokenize(&refs, touxiang_model::Kind::Query)?;
    let pending = engine.queue.admit(ids)?;
    // The admission budget is held until the answer is built (see `queue::Ticket`).
    let (embeddings, _admitted) = pending.wait_holding().await?;
    let text_evidence = overlapped(&s, &taxonomy, {
        let texts = model_texts.clone();
        move |c| {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            Ok(c.text_evidence(&refs))
        }
    });
    let heads = overlapped(&s, &taxonomy, {
        let embeddings = embeddings.clone();
        move |c| c.head_outputs(&embeddings)
    });

    // Neighbours from the exemplar store; an unreachable store degrades to heads only.
    let k = tm.classifier.knn_k().max(n_neighbors);
    let filter = Filter {
        taxonomy: Some(taxonomy.clone()),
        model_version: Some(model_version.clone()),
        ..Filter::default()
    };
    let seeded = tm.neighbors_ready.load(std::sync::atomic::Ordering::SeqCst);
    let found = match (&engine.store, seeded) {
        (Some(store), true) => store_neighbors(store.as_ref(), &filter, &embeddings, k).await,
        _ => None,
    };
    let available = found.is_some();
    let neighbors: Vec<Vec<Neighbor>> = found.unwrap_or_else(|| vec![Vec::new(); embeddings.len()]);
    let heads = touxiang_training::with_text_evidence(heads.await?, text_evidence.await?);
    let texts: Vec<&str> = model_texts.iter().map(String::as_str).collect();
    let opts = ClassifyOptions {
        top_k,
        show_neighbors: n_neighbors,
        keywords: crate::keywords::KEYWORDS,
    };
    let classified = tm
        .classifier
        .classify_prepared(&texts, &heads, &neighbors, &opts)
        .map_err(|e| ApiError::Backend(format!("classifier: {e}")))?;
    let labels: Vec<touxiang_datasets::LabelResult> = classified
        .iter()
        .map(|c| tm.classifier.to_label_result(c))
        .collect();
    let mut results = Vec::with_capacity(classified.len());
    for (it, c) in req.items.iter().zip(classified) {
        metrics::counter!("touxiang_classify_decisions_total", "decision" => c.decision.as_str())
            .increment(1);
        let keywords = if c.keywords.is_empty() {
            crate::keywords::keywords(&engine.segmenter, &it.text)
        } else {
            c.keywords
        };
        let declared = it.declared_industry.as_deref().map(|code| {
            let code = code.trim();
            let guess_path: Vec<&str> = c
                .guess
                .as_ref()
                .map(|g| g.path.iter().map(|p| p.code.as_str()).collect())
                .unwrap_or_default();
            DeclaredOut {
                code: code.to_string(),
                name: tm
                    .taxonomy
                    .get(code)
                    .map(|n| n.name.clone())
                    .unwrap_or_default(),
                agrees: guess_path.contains(&code),
            }
        });
        results.push(ClassifyResult {
            id: it.id.clone(),
            label: c.label.map(label_out),
            confidence: c.confidence,
            decision: c.decision.as_str().to_string(),
            review_id: None,
            alternatives: c
                .alternatives
                .into_iter()
                .map(|a| AlternativeOut {
                    code: a.code,
                    level: a.level,
                    name: a.name,
                    confidence: a.confidence,
                    path: a.path.into_iter().map(step_out).collect(),
                })
                .collect(),
            guess: c.guess.map(label_out),
            declared,
            neighbors: c
                .neighbors
                .into_iter()
                .map(|n| NeighborOut {
                    source: api_source(&n.source).to_string(),
                    origin: n.source,
                    text: n.text,
                    code: n.code,
                    similarity: n.similarity,
                })
                .collect(),
            neighbors_available: available,
            keywords,
        });
    }
    // Review routing: `review` decisions, classifier vs neighbour-vote disagreement, QA samples.
    crate::review::route_classified(&s, tm, &req.items, &labels, &mut results).await?;
    Ok(Json(ClassifyResponse {
        model_version: tm.classifier.model_version().to_string(),
        taxonomy_version: tm.taxonomy.version().to_string(),
        results,
    }))
}

/// Runs `f` with the taxonomy's classifier on the blocking pool, started at once so the
/// handler can await the neighbour search meanwhile (the heads and the text evidence). One
/// request's CPU work is no smaller, but less of it lies on its path.
fn overlapped<T: Send + 'static>(
    s: &AppState,
    taxonomy: &str,
    f: impl FnOnce(&touxiang_training::Classifier) -> Result<T, touxiang_training::TrainError>
        + Send
        + 'static,
) -> impl std::future::Future<Output = Result<T, ApiError>> {
    let (s, taxonomy) = (s.clone(), taxonomy.to_string());
    crate::review::blocking(move || {
        let tm = s.engine()?.taxonomy_model(&taxonomy)?;
        f(&tm.classifier).map_err(|e| ApiError::Backend(format!("classifier: {e}")))
    })
}

fn step_out(p: touxiang_datasets::PathStep) -> PathStepOut {
    PathStepOut {
        code: p.code,
        name: p.name,
        confidence: p.confidence,
    }
}

fn label_out(l: touxiang_training::Label) -> LabelOut {
    LabelOut {
        code: l.code,
        level: l.level,
        name: l.name,
        path: l.path.into_iter().map(step_out).collect(),
    }
}

/// Longest borrower name the service reads (characters).
pub const MAX_BORROWER_NAME: usize = 200;
/// Longest business scope the service accepts (characters; the model reads its start).
pub const MAX_BUSINESS_SCOPE: usize = 2000;

/// Item id and borrower fields: bounded lengths; a declared industry must be a code of the
/// taxonomy (checked by the caller against the chosen taxonomy in [`validate_declared`]).
fn validate_borrower_fields(items: &[ClassifyItem]) -> Result<(), ApiError> {
    for (i, it) in items.iter().enumerate() {
        for (field, value, max) in [
            ("id", &it.id, crate::routes::MAX_ID_CHARS),
            ("borrower_name", &it.borrower_name, MAX_BORROWER_NAME),
            ("business_scope", &it.business_scope, MAX_BUSINESS_SCOPE),
        ] {
            crate::routes::check_max_chars(&format!("items[{i}].{field}"), value.as_deref(), max)?;
        }
    }
    Ok(())
}

/// A declared industry must be a code of the taxonomy the items are classified into.
fn validate_declared(
    items: &[ClassifyItem],
    taxonomy: &touxiang_datasets::Taxonomy,
) -> Result<(), ApiError> {
    for (i, it) in items.iter().enumerate() {
        if let Some(code) = &it.declared_industry {
            if !taxonomy.contains(code.trim()) {
                return Err(ApiError::invalid(
                    format!("items[{i}].declared_industry"),
                    format!(
                        "items[{i}].declared_industry {code:?} is not a code of taxonomy {}",
                        taxonomy.id()
                    ),
                ));
            }
        }
    }
    Ok(())
}
