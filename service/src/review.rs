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
use touxiang_datasets::{LabelResult, Taxonomy, TaxonomyRegistry};
use touxiang_review::{
    review_reason, FinalLabel, LabelFilter, NewItem, ReviewConfig, ReviewError, ReviewStore,
    Sampler, TaxonomyLookup,
};
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

/// Run blocking work on the blocking pool. It starts at once, not when the returned future is
/// first awaited, so a caller may await something else meanwhile (`/v1/classify` does).
pub fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> impl std::future::Future<Output = Result<T, ApiError>> {
    let task = tokio::task::spawn_blocking(f);
    async move {
        task.await
            .map_err(|e| ApiError::Internal(format!("worker failed: {e}")))?
    }
}

/// One labeled text offered to review routing, from `/v1/classify` or a batch run.
pub struct Offered<'a> {
    /// The text as submitted.
    pub text: &'a str,
    pub external_id: Option<String>,
    /// Exposure (balance); `None` or a negative/non-finite amount weighs as unknown.
    pub amount: Option<f64>,
    pub label: &'a LabelResult,
    /// Shown to the reviewer beside the suggestions (`neighbors`, `borrower`, …); the neighbour
    /// vote's path is added as `vote_path`.
    pub context: serde_json::Map<String, serde_json::Value>,
}

/// The one routing rule of every path that labels texts (`/v1/classify`, `touxiang batch
/// --review`, HTTP jobs with `review: true`): [`review_reason`] over the label's path and its
/// neighbour vote ([`touxiang_datasets::Evidence::vote_path`]) — `review` decisions,
/// classifier/vote disagreements and QA samples of `auto` decisions (rate `qa`) go to review.
/// `None` when the item is not routed. The item offers the reviewer, best first, the label, the
/// best guess when the label stops above it, then the alternative classes, each with its path;
/// priority weighs uncertainty (1 − confidence) by the exposure.
pub fn review_item(qa: &Sampler, queue: &str, taxonomy: &str, o: Offered<'_>) -> Option<NewItem> {
    let l = o.label;
    let cls: Vec<&str> = l.path.iter().map(|p| p.code.as_str()).collect();
    let vote: Vec<&str> = l.evidence.vote_path.iter().map(String::as_str).collect();
    let reason = review_reason(l.decision, &cls, &vote, qa)?;
    let mut suggestions = Vec::new();
    if let Some(code) = &l.code {
        suggestions.push(json!({"code": code, "level": l.level, "name": l.name,
            "confidence": l.confidence, "path": l.path, "source": "classifier"}));
    }
    if let Some(g) = l
        .evidence
        .guess
        .as_ref()
        .filter(|g| l.code.as_ref() != Some(&g.code))
    {
        suggestions.push(json!({"code": g.code, "level": g.level, "name": g.name,
            "confidence": g.confidence, "path": g.path, "source": "guess"}));
    }
    for a in &l.evidence.alternatives {
        suggestions.push(json!({"code": a.code, "level": a.level, "name": a.name,
            "confidence": a.confidence, "path": a.path, "source": "alternative"}));
    }
    let mut context = o.context;
    context.insert("vote_path".into(), json!(l.evidence.vote_path));
    Some(NewItem {
        queue: queue.to_string(),
        text: o.text.to_string(),
        taxonomy: taxonomy.to_string(),
        external_id: o.external_id,
        amount: o.amount.filter(|a| a.is_finite() && *a >= 0.0),
        uncertainty: (1.0 - l.confidence as f64).clamp(0.0, 1.0),
        reason,
        suggestions: serde_json::Value::Array(suggestions),
        neighbors: serde_json::Value::Object(context),
        model_version: Some(l.model_version.clone()),
        double_review: None,
    })
}

/// Route classified items into review (called by `POST /v1/classify` after classification):
/// [`review_item`] for each result; items that go to review are enqueued (queue
/// `classify.review_queue`) and get their `review_id`. Fails (500) when an item that must go to
/// review cannot be enqueued — nothing is dropped silently.
pub async fn route_classified(
    s: &AppState,
    tm: &TaxonomyModel,
    items: &[ClassifyItem],
    labels: &[LabelResult],
    results: &mut [ClassifyResult],
) -> Result<(), ApiError> {
    let ctx = s.review();
    let queue = &s.config().classify.review_queue;
    let mut todo: Vec<(usize, NewItem)> = Vec::new();
    for (i, (r, l)) in results.iter().zip(labels).enumerate() {
        let it = &items[i];
        let mut context = serde_json::Map::new();
        context.insert("neighbors".into(), json!(r.neighbors));
        context.insert(
            "borrower".into(),
            json!({"borrower_name": it.borrower_name, "business_scope": it.business_scope,
                "declared": r.declared}),
        );
        let offered = Offered {
            text: &it.text,
            external_id: it.id.clone(),
            amount: it.amount,
            label: l,
            context,
        };
        if let Some(item) = review_item(&ctx.qa, queue, tm.taxonomy.id(), offered) {
            todo.push((i, item));
        }
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
    use touxiang_datasets::{Alternative, Decision, Evidence, PathStep};

    fn step(code: &str) -> PathStep {
        PathStep {
            code: code.into(),
            name: String::new(),
            confidence: 0.9,
        }
    }

    fn label(decision: Decision, path: &[&str], vote: &[&str]) -> LabelResult {
        let alt = |code: &str| Alternative {
            code: code.into(),
            level: "class".into(),
            name: String::new(),
            confidence: 0.4,
            path: ["I", "65", "653", code].iter().map(|c| step(c)).collect(),
        };
        LabelResult {
            code: path.last().map(|c| c.to_string()),
            level: Some("section".into()),
            name: None,
            path: path.iter().map(|c| step(c)).collect(),
            confidence: 0.9,
            decision,
            model_version: "m".into(),
            taxonomy_version: "gbt4754-2017".into(),
            evidence: Evidence {
                guess: Some(alt("6531")),
                alternatives: vec![alt("6531"), alt("6532")],
                vote_path: vote.iter().map(|c| c.to_string()).collect(),
            },
        }
    }

    fn offered(l: &LabelResult) -> Offered<'_> {
        Offered {
            text: "t",
            external_id: Some("a1".into()),
            amount: Some(-5.0),
            label: l,
            context: serde_json::Map::new(),
        }
    }

    #[test]
    fn one_rule_routes_review_disagreement_and_qa_samples() {
        let never = Sampler::seeded(0.0, 1).unwrap();
        let always = Sampler::seeded(1.0, 1).unwrap();
        let r = label(Decision::Review, &["I"], &["I", "65"]);
        let it = review_item(&never, "q", "gbt4754-2017", offered(&r)).unwrap();
        assert_eq!(it.reason, touxiang_review::Reason::Review);
        // the label, then the guess below it, then the alternative classes, each with its path
        let sources: Vec<&str> = it
            .suggestions
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["source"].as_str().unwrap())
            .collect();
        assert_eq!(
            sources,
            ["classifier", "guess", "alternative", "alternative"]
        );
        assert_eq!(it.suggestions[1]["path"][3]["code"], "6531");
        assert_eq!(it.neighbors["vote_path"], serde_json::json!(["I", "65"]));
        assert_eq!(it.amount, None, "a negative amount weighs as unknown");
        // auto, but the neighbours vote for another section
        let d = label(Decision::Auto, &["I", "65"], &["F"]);
        let it = review_item(&never, "q", "gbt4754-2017", offered(&d)).unwrap();
        assert_eq!(it.reason, touxiang_review::Reason::Disagreement);
        // auto and agreeing: only a QA sample sends it
        let a = label(Decision::Auto, &["I", "65"], &["I"]);
        assert!(review_item(&never, "q", "gbt4754-2017", offered(&a)).is_none());
        let it = review_item(&always, "q", "gbt4754-2017", offered(&a)).unwrap();
        assert_eq!(it.reason, touxiang_review::Reason::QaSample);
    }
}
