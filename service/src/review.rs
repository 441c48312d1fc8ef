//! The service side of the review queue: one [`ReviewStore`] per process, the QA sampler, the
//! taxonomies codes are checked against, routing of classified items into review, and active
//! learning (a final label becomes an exemplar at once).
//!
//! ## Routing (`POST /v1/classify`)
//! An item goes to review ([`touxiang_review::review_reason`]) when its decision is `review`,
//! when the classifier's path and the **neighbour vote** disagree, or as a random QA sample of
//! `auto` decisions (rate `classify.qa_sample_rate`, changeable at run time through
//! `PUT /v1/admin/settings`). The neighbour vote ([`neighbour_vote_path`]) is a
//! similarity-weighted vote over the classifier's k nearest exemplars, taken level by level:
//! at each level the code with the largest similarity mass among the neighbours still on the
//! chosen branch wins, as long as it holds a strict majority of that mass; where no code does,
//! the vote stops (a shorter vote path that agrees so far is not a disagreement).
//!
//! ## Active learning and durability
//! The review store is the source of truth: a label is committed (and fsynced) before
//! `POST /v1/review/{id}/label` answers 200. When the label is final, its text is embedded and
//! upserted into the exemplar store (`source = "reviewed"`) so the next similar classify sees it
//! as a neighbour. If the exemplar store (or the model) is unavailable at that moment, the call
//! still answers 200 with `exemplar: "unavailable"` and logs a warning; the label is kept in the
//! review store and exported by `touxiang export-labels` for retraining. With the exemplars on a
//! Qdrant server that is unreachable, the point waits in the store's durable outbox
//! (`exemplar: "queued"`) and reaches Qdrant when it answers again (see
//! [`crate::vector_store`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use touxiang_datasets::{Decision, Taxonomy, TaxonomyRegistry};
use touxiang_review::{
    review_reason, FinalLabel, LabelFilter, NewItem, ReviewConfig, ReviewError, ReviewStore,
    Sampler, TaxonomyLookup,
};
use touxiang_training::Neighbor;
use touxiang_vectors::{point_id, Payload, Point};

use crate::engine::TaxonomyModel;
use crate::error::ApiError;
use crate::routes::classify::{ClassifyItem, ClassifyResult};
use crate::state::AppState;

/// Review services of one data directory (kept in [`AppState`]).
pub struct ReviewCtx {
    /// `DATA_DIR/review.sqlite` (one per process).
    pub store: Arc<ReviewStore>,
    /// QA sampler for `auto` decisions.
    pub qa: Sampler,
    /// Taxonomies (built-ins + `DATA_DIR/taxonomies/*.csv`) used to validate labels.
    pub taxonomies: Arc<TaxonomyRegistry>,
    /// Lease length of a claim.
    pub lease_ttl: Duration,
    /// Current double-review share (the store samples with it; kept here to report it).
    double_rate: Mutex<f64>,
}

/// [`TaxonomyLookup`] over the service's taxonomy registry, plus the taxonomies of the loaded
/// classifiers (for taxonomies installed without a `DATA_DIR/taxonomies` file).
pub struct RegistryLookup {
    /// Built-ins and `DATA_DIR/taxonomies/*.csv`.
    pub registry: Arc<TaxonomyRegistry>,
    /// Taxonomies of the trained classifiers.
    pub extra: Vec<Arc<Taxonomy>>,
}

impl RegistryLookup {
    /// The taxonomy `id`: the registry's, else a loaded classifier's.
    pub fn taxonomy(&self, id: &str) -> Option<Arc<Taxonomy>> {
        self.registry
            .get(id)
            .or_else(|| self.extra.iter().find(|t| t.id() == id).cloned())
    }

    /// Every taxonomy known, by id.
    pub fn all(&self) -> Vec<Arc<Taxonomy>> {
        let mut v: Vec<Arc<Taxonomy>> = self
            .registry
            .ids()
            .iter()
            .filter_map(|id| self.registry.get(id))
            .collect();
        for t in &self.extra {
            if !v.iter().any(|k| k.id() == t.id()) {
                v.push(t.clone());
            }
        }
        v.sort_by(|a, b| a.id().cmp(b.id()));
        v
    }
}

impl TaxonomyLookup for RegistryLookup {
    fn path(&self, taxonomy: &str, code: &str) -> Option<Vec<String>> {
        let t = self.taxonomy(taxonomy)?;
        let p: Vec<String> = t.path(code).iter().map(|n| n.code.clone()).collect();
        (!p.is_empty()).then_some(p)
    }
}

impl ReviewCtx {
    /// Open the review store of `cfg.data_dir` with the configured rates.
    pub fn open(cfg: &crate::config::Config) -> anyhow::Result<Self> {
        let taxonomies = Arc::new(crate::engine::taxonomy_registry(cfg)?);
        let rc = ReviewConfig {
            double_review_rate: cfg.review.double_review_rate,
            ..ReviewConfig::default()
        };
        let store = ReviewStore::open(&cfg.data_dir, rc).map_err(|e| {
            anyhow::anyhow!(
                "opening the review store in {}: {e}",
                cfg.data_dir.display()
            )
        })?;
        let qa = Sampler::from_os(cfg.classify.qa_sample_rate)
            .map_err(|e| anyhow::anyhow!("classify.qa_sample_rate: {e}"))?;
        Ok(Self {
            store: Arc::new(store),
            qa,
            taxonomies,
            lease_ttl: Duration::from_secs(cfg.review.lease_ttl_secs),
            double_rate: Mutex::new(cfg.review.double_review_rate),
        })
    }

    /// Current double-review share.
    pub fn double_review_rate(&self) -> f64 {
        *self.double_rate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Change the double-review share at run time (until restart).
    pub fn set_double_review_rate(&self, rate: f64) -> Result<(), ReviewError> {
        let mut g = self.double_rate.lock().unwrap_or_else(|p| p.into_inner());
        self.store.set_double_review_rate(rate)?;
        *g = rate;
        Ok(())
    }

    /// Code lookup for label validation and agreement reports (registry + the taxonomies of
    /// the classifiers loaded in `s`).
    pub fn lookup(&self, s: &AppState) -> RegistryLookup {
        let extra = s
            .engine()
            .map(|e| e.models.values().map(|m| m.taxonomy.clone()).collect())
            .unwrap_or_default();
        RegistryLookup {
            registry: self.taxonomies.clone(),
            extra,
        }
    }

    /// Is `taxonomy` known (registry or a loaded classifier)?
    pub fn knows_taxonomy(&self, s: &AppState, taxonomy: &str) -> bool {
        self.taxonomies.contains(taxonomy)
            || s.engine().is_ok_and(|e| e.models.contains_key(taxonomy))
    }
}

/// Run blocking store work on the blocking pool.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("worker failed: {e}")))?
}

/// The neighbour vote's path, root first (see the module docs): similarity-weighted, level by
/// level, stopping where no code holds a strict majority of the similarity mass of the
/// neighbours still on the chosen branch. Neighbours with unknown codes or similarity ≤ 0 do
/// not vote. Empty when there is no vote.
pub fn neighbour_vote_path(taxonomy: &Taxonomy, neighbors: &[(&str, f32)]) -> Vec<String> {
    let paths: Vec<(Vec<String>, f32)> = neighbors
        .iter()
        .filter(|(_, s)| s.is_finite() && *s > 0.0)
        .map(|(c, s)| {
            let p: Vec<String> = taxonomy.path(c).iter().map(|n| n.code.clone()).collect();
            (p, *s)
        })
        .filter(|(p, _)| !p.is_empty())
        .collect();
    let mut out: Vec<String> = Vec::new();
    for depth in 0.. {
        // Neighbours on the chosen branch that reach this depth.
        let mut mass: Vec<(&str, f32)> = Vec::new();
        let mut total = 0.0f32;
        for (p, s) in &paths {
            if p.len() > depth && p[..depth] == out[..] {
                total += s;
                match mass.iter_mut().find(|(c, _)| *c == p[depth]) {
                    Some(m) => m.1 += s,
                    None => mass.push((&p[depth], *s)),
                }
            }
        }
        let Some((code, m)) = mass.into_iter().max_by(|a, b| a.1.total_cmp(&b.1)) else {
            break;
        };
        if m * 2.0 <= total {
            break;
        }
        out.push(code.to_string());
    }
    out
}

/// Route classified items into review (called by `POST /v1/classify` after classification):
/// for each result, [`review_reason`] over the classifier's path and the neighbour vote of its
/// first `knn_k` neighbours; items that go to review are enqueued (queue
/// `classify.review_queue`, exposure = `amount`, uncertainty = 1 − confidence, the alternatives
/// and neighbours as shown) and get their `review_id`. Fails (500) when an item that must go to
/// review cannot be enqueued — nothing is dropped silently.
pub async fn route_classified(
    s: &AppState,
    tm: &TaxonomyModel,
    items: &[ClassifyItem],
    neighbors: &[Vec<Neighbor>],
    results: &mut [ClassifyResult],
) -> Result<(), ApiError> {
    let ctx = s.review();
    let queue = s.config().classify.review_queue.clone();
    let tax = &tm.taxonomy;
    let k = tm.classifier.knn_k().max(1);
    let model_version = tm.classifier.model_version().to_string();
    let mut todo: Vec<(usize, NewItem)> = Vec::new();
    for (i, r) in results.iter().enumerate() {
        let decision = if r.decision == "auto" {
            Decision::Auto
        } else {
            Decision::Review
        };
        let cls: Vec<&str> = r
            .label
            .as_ref()
            .map(|l| l.path.iter().map(|p| p.code.as_str()).collect())
            .unwrap_or_default();
        let nb: Vec<(&str, f32)> = neighbors
            .get(i)
            .map(|v| {
                v.iter()
                    .take(k)
                    .map(|n| (n.code.as_str(), n.similarity))
                    .collect()
            })
            .unwrap_or_default();
        let vote = neighbour_vote_path(tax, &nb);
        let vote_refs: Vec<&str> = vote.iter().map(String::as_str).collect();
        let Some(reason) = review_reason(decision, &cls, &vote_refs, &ctx.qa) else {
            continue;
        };
        let it = &items[i];
        let mut suggestions = Vec::new();
        if let Some(l) = &r.label {
            suggestions.push(json!({"code": l.code, "level": l.level, "name": l.name,
                "confidence": r.confidence, "source": "classifier"}));
        }
        // Offered to the reviewer, best first: the label, the best guess when the label stops
        // above it, then the alternative classes — each with its path.
        if let Some(g) = r
            .guess
            .as_ref()
            .filter(|g| r.label.as_ref().map(|l| &l.code) != Some(&g.code))
        {
            suggestions.push(json!({"code": g.code, "level": g.level, "name": g.name,
                "confidence": g.path.last().map(|p| p.confidence).unwrap_or(0.0),
                "path": g.path, "source": "guess"}));
        }
        for a in &r.alternatives {
            suggestions.push(json!({"code": a.code, "level": a.level, "name": a.name,
                "confidence": a.confidence, "path": a.path, "source": "alternative"}));
        }
        todo.push((
            i,
            NewItem {
                queue: queue.clone(),
                text: it.text.clone(),
                taxonomy: tax.id().to_string(),
                external_id: it.id.clone(),
                amount: it.amount,
                uncertainty: (1.0 - r.confidence as f64).clamp(0.0, 1.0),
                reason,
                suggestions: serde_json::Value::Array(suggestions),
                neighbors: json!({"neighbors": r.neighbors, "vote_path": vote,
                    "borrower": {"borrower_name": it.borrower_name, "business_scope": it.business_scope,
                        "declared": r.declared}}),
                model_version: Some(model_version.clone()),
                double_review: None,
            },
        ));
    }
    if todo.is_empty() {
        return Ok(());
    }
    let store = ctx.store.clone();
    let ids = blocking(move || {
        let now = Utc::now();
        todo.into_iter()
            .map(|(i, item)| {
                metrics::counter!("touxiang_review_enqueued_total", "reason" => item.reason.as_str())
                    .increment(1);
                store.enqueue(&item, now).map(|id| (i, id)).map_err(ApiError::from)
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    for (i, id) in ids {
        results[i].review_id = Some(id);
    }
    Ok(())
}

/// What happened to a final label in the exemplar store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExemplarStatus {
    /// Embedded and upserted: the next similar classify sees it as a neighbour.
    Added,
    /// Not final yet (waiting for a second review or adjudication).
    NotFinal,
    /// Model or exemplar store unavailable; the label is durable in the review store only.
    Unavailable,
    /// A payee's final label (the `payees` queue): written to the fund-flow payee cache, where
    /// it wins over the model's label in every flow; payee names are not exemplars.
    Payee,
    /// Embedded and durable in the exemplar store's outbox (`DATA_DIR/vectors/outbox.sqlite`)
    /// while Qdrant is unreachable: applied, in order, as soon as it answers again.
    Queued,
}

/// Active learning: embed a final label's text and upsert it into the exemplar store
/// (id `point_id(taxonomy, "reviewed", text)`, source `reviewed`, the reviewer, the serving
/// encoder version). Never fails the label call: problems are logged and reported as
/// [`ExemplarStatus::Unavailable`].
pub async fn add_exemplar(s: &AppState, label: &FinalLabel) -> ExemplarStatus {
    let engine = match s.engine() {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(review_id = %label.review_id, error = %e, "reviewed label not added to the exemplar store (model not loaded)");
            return ExemplarStatus::Unavailable;
        }
    };
    let Some(store) = engine.store.clone() else {
        tracing::warn!(review_id = %label.review_id, "reviewed label not added: no exemplar store configured");
        return ExemplarStatus::Unavailable;
    };
    let prepared = crate::engine::encoder_text(&label.text);
    let vector = match engine
        .model
        .tokenize(&[prepared.as_str()], touxiang_model::Kind::Query)
    {
        Ok(ids) => match engine.queue.embed(ids).await {
            Ok(mut v) if !v.is_empty() => v.swap_remove(0),
            Ok(_) => return ExemplarStatus::Unavailable,
            Err(e) => {
                tracing::warn!(review_id = %label.review_id, error = %e, "reviewed label not embedded");
                return ExemplarStatus::Unavailable;
            }
        },
        Err(e) => {
            tracing::warn!(review_id = %label.review_id, error = %e, "reviewed label not tokenized");
            return ExemplarStatus::Unavailable;
        }
    };
    let point = reviewed_point(label, vector, engine.model_version());
    match store.upsert(vec![point]).await {
        Ok(()) if store.pending_writes() > 0 => {
            metrics::counter!("touxiang_review_exemplars_queued_total").increment(1);
            ExemplarStatus::Queued
        }
        Ok(()) => {
            metrics::counter!("touxiang_review_exemplars_added_total").increment(1);
            ExemplarStatus::Added
        }
        Err(e) => {
            metrics::counter!("touxiang_review_exemplars_failed_total").increment(1);
            tracing::warn!(review_id = %label.review_id, error = %e, "reviewed label not added to the exemplar store; it stays in the review store");
            ExemplarStatus::Unavailable
        }
    }
}

/// Replay final labels the exemplar store lacks (a label acknowledged while the model, the
/// store or the process was down). Compares, per loaded taxonomy, the distinct reviewed texts
/// in the review store with the reviewed points the store holds for the serving encoder, and
/// when fewer are there re-embeds (background priority) and upserts them all — idempotent, as
/// point ids derive from (taxonomy, text). Returns how many points were written.
pub async fn replay_reviewed(s: &AppState) -> anyhow::Result<usize> {
    let engine = s.engine().map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(store) = engine.store.clone() else {
        return Ok(0);
    };
    let ctx = s.review();
    let mut written = 0;
    for taxonomy in engine.models.keys() {
        let filter = LabelFilter {
            taxonomy: Some(taxonomy.clone()),
            ..LabelFilter::default()
        };
        let st = ctx.store.clone();
        let labels = tokio::task::spawn_blocking(move || st.final_labels(&filter)).await??;
        // Latest label per text wins (the same text re-labeled keeps one point).
        let mut latest: std::collections::BTreeMap<String, FinalLabel> = Default::default();
        for l in labels {
            latest.insert(l.text.clone(), l);
        }
        let have = store
            .count(&touxiang_vectors::Filter {
                taxonomy: Some(taxonomy.clone()),
                sources: Some(vec!["reviewed".into()]),
                model_version: Some(engine.model_version()),
                code_prefix: None,
            })
            .await?;
        if have as usize >= latest.len() {
            continue;
        }
        tracing::info!(%taxonomy, labels = latest.len(), in_store = have, "replaying reviewed labels into the exemplar store");
        let labels: Vec<FinalLabel> = latest.into_values().collect();
        written += crate::engine::embed_and_upsert_background(
            store.as_ref(),
            &engine.model,
            &engine.queue,
            &labels,
            |l| &l.text,
            |l, vector| reviewed_point(l, vector, engine.model_version()),
            |_| {},
        )
        .await?;
    }
    Ok(written)
}

/// The exemplar-store point of a final label.
fn reviewed_point(label: &FinalLabel, vector: Vec<f32>, model_version: String) -> Point {
    Point {
        id: point_id(&label.taxonomy, "reviewed", &label.text),
        vector,
        payload: Payload {
            text: label.text.clone(),
            code: label.code.clone(),
            taxonomy: label.taxonomy.clone(),
            source: "reviewed".into(),
            reviewer: Some(label.reviewer.clone()),
            created_at: label.labeled_at,
            model_version,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbour_vote() {
        let t = Taxonomy::gbt4754();
        // Unanimous class → full path.
        let v = neighbour_vote_path(t, &[("6291", 0.9), ("6291", 0.8)]);
        assert_eq!(v, ["H", "62", "629", "6291"]);
        // Same division, split classes: the vote stops where no majority exists.
        let v = neighbour_vote_path(t, &[("6291", 0.9), ("6210", 0.9)]);
        assert_eq!(v, ["H", "62"]);
        // Weighted majority wins.
        let v = neighbour_vote_path(t, &[("6291", 0.9), ("6291", 0.8), ("1311", 0.85)]);
        assert_eq!(v, ["H", "62", "629", "6291"]);
        // Unknown codes and non-positive similarities do not vote.
        assert!(neighbour_vote_path(t, &[("ZZZ", 0.9), ("6291", 0.0)]).is_empty());
        assert!(neighbour_vote_path(t, &[]).is_empty());
        // A coarse neighbour counts at the levels it reaches.
        let v = neighbour_vote_path(t, &[("62", 0.9), ("6291", 0.5)]);
        assert_eq!(v, ["H", "62", "629", "6291"]);
    }
}
