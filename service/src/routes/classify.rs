//! `POST /v1/classify` — shape fixed in API.md.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use touxiang_training::{ClassifyOptions, Neighbor};
use touxiang_vectors::Filter;
use utoipa::ToSchema;

use crate::engine::{api_source, encoder_text, store_neighbors};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
pub struct ClassifyItem {
    /// Caller's id (echoed back).
    #[serde(default)]
    pub id: Option<String>,
    /// Free-text loan purpose.
    pub text: String,
    /// Exposure (review priority = uncertainty × amount); ≥ 0.
    #[serde(default)]
    pub amount: Option<f64>,
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

#[derive(Debug, Serialize, ToSchema)]
pub struct AlternativeOut {
    pub code: String,
    pub level: String,
    pub name: String,
    pub confidence: f32,
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
    pub alternatives: Vec<AlternativeOut>,
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
    let model_version = engine.model_version();

    let prepared: Vec<String> = req.items.iter().map(|it| encoder_text(&it.text)).collect();
    let refs: Vec<&str> = prepared.iter().map(String::as_str).collect();
    let ids = engine.model.tokenize(&refs, touxiang_model::Kind::Query)?;
    let embeddings = engine.queue.embed(ids).await?;

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
    let texts: Vec<&str> = req.items.iter().map(|it| it.text.as_str()).collect();
    let opts = ClassifyOptions {
        top_k,
        show_neighbors: n_neighbors,
        keywords: 5,
    };
    let classified = tm
        .classifier
        .classify_batch(&texts, &embeddings, &neighbors, &opts)
        .map_err(|e| ApiError::Backend(format!("classifier: {e}")))?;
    let mut results = Vec::with_capacity(classified.len());
    for (it, c) in req.items.iter().zip(classified) {
        metrics::counter!("touxiang_classify_decisions_total", "decision" => c.decision.as_str())
            .increment(1);
        let keywords = if c.keywords.is_empty() {
            engine
                .segmenter
                .keywords(&touxiang_text::normalize(&it.text), 5)
        } else {
            c.keywords
        };
        results.push(ClassifyResult {
            id: it.id.clone(),
            label: c.label.map(|l| LabelOut {
                code: l.code,
                level: l.level,
                name: l.name,
                path: l
                    .path
                    .into_iter()
                    .map(|p| PathStepOut {
                        code: p.code,
                        name: p.name,
                        confidence: p.confidence,
                    })
                    .collect(),
            }),
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
                })
                .collect(),
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
    crate::review::route_classified(&s, tm, &req.items, &neighbors, &mut results).await?;
    Ok(Json(ClassifyResponse {
        model_version: tm.classifier.model_version().to_string(),
        taxonomy_version: tm.taxonomy.version().to_string(),
        results,
    }))
}
