//! The classification engine: encoder + text pipeline + trained classifiers + exemplar store.

mod seed;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use touxiang_datasets::{Labeler, Taxonomy, TaxonomyRegistry};
use touxiang_model::{E5Model, Embedder, Kind, Precision};
use touxiang_training::{Artifacts, Classifier, EmbedFn, EmbeddingLabeler, TrainError};
use touxiang_vectors::{EmbeddedConfig, EmbeddedStore};
use touxiang_vectors::{Filter, VectorStore};

use crate::config::Config;

pub use seed::{
    embed_and_upsert_background, exemplar_ids, seed_store, seed_store_from_texts, SeedProgress,
};

pub use touxiang_training::{encoder_text, E5};

/// Sequences per background job of [`QueueEmbed`]: a `/v1/classify` request arriving while one
/// runs waits for at most this many short texts (a few tens of ms), not a whole labeling chunk.
const BACKGROUND_CHUNK: usize = 16;

/// The service's batching queue at background priority as the training crate's [`EmbedFn`],
/// with [`encoder_text`] applied: what HTTP batch jobs and portfolio, payment and relation
/// uploads embed with. Their texts are embedded only while no `/v1/classify` request waits, in
/// jobs of [`BACKGROUND_CHUNK`] sequences, so a large upload yields to interactive traffic
/// instead of competing with it for the cores. Called from labeling threads (never from a
/// runtime worker): it blocks on the runtime through `handle`.
pub struct QueueEmbed {
    pub model: Arc<E5Model>,
    pub queue: crate::queue::EmbedQueue,
    pub handle: tokio::runtime::Handle,
}

impl EmbedFn for QueueEmbed {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, TrainError> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BACKGROUND_CHUNK) {
            let prepared: Vec<String> = chunk.iter().map(|t| encoder_text(t)).collect();
            let refs: Vec<&str> = prepared.iter().map(String::as_str).collect();
            let ids = self
                .model
                .tokenize(&refs, Kind::Query)
                .map_err(|e| TrainError::Embed(e.to_string()))?;
            let v = self
                .handle
                .block_on(self.queue.embed_background(ids))
                .map_err(|e| TrainError::Embed(e.to_string()))?;
            out.extend(v);
        }
        Ok(out)
    }
    fn dim(&self) -> usize {
        Embedder::dim(self.model.as_ref())
    }
    fn version(&self) -> String {
        Embedder::version(self.model.as_ref())
    }
}

/// A trained classifier for one taxonomy.
pub struct TaxonomyModel {
    pub taxonomy: Arc<Taxonomy>,
    pub classifier: Arc<Classifier>,
    pub artifact_dir: PathBuf,
    /// Training exemplars kept in memory (used by CLI labelers; the service uses the store).
    pub exemplars: Option<Arc<touxiang_training::ExemplarIndex>>,
    /// True once the store holds this model's training exemplars. Until then classify uses the
    /// heads-only calibration: a vote over a partly seeded store would be miscalibrated.
    pub neighbors_ready: std::sync::atomic::AtomicBool,
    /// How far seeding the store with the shipped exemplars is (`/readyz`, metrics, log).
    pub seeding: SeedProgress,
}

/// Directories searched for trained artifacts, in order: the configured one,
/// `DATA_DIR/artifacts` (what `touxiang train` writes), the artifacts shipped in the repository
/// (`training/artifacts`, or `/opt/touxiang/artifacts` in the container image).
pub fn artifact_roots(cfg: &Config) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(d) = &cfg.classify.artifacts_dir {
        v.push(d.clone());
    }
    v.push(cfg.data_dir.join("artifacts"));
    v.push(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../training/artifacts"
    )));
    v.push(PathBuf::from("/opt/touxiang/artifacts"));
    v
}

/// Taxonomies the service knows: the built-ins plus every `DATA_DIR/taxonomies/<id>.csv`.
pub fn taxonomy_registry(cfg: &Config) -> anyhow::Result<TaxonomyRegistry> {
    let mut reg = TaxonomyRegistry::with_builtin();
    let dir = cfg.data_dir.join("taxonomies");
    if dir.is_dir() {
        reg.load_dir(&dir)
            .with_context(|| format!("loading custom taxonomies from {}", dir.display()))?;
    }
    Ok(reg)
}

/// Load the newest artifacts of every known taxonomy that has some.
pub fn load_models(
    cfg: &Config,
    encoder_version: &str,
) -> anyhow::Result<HashMap<String, TaxonomyModel>> {
    let reg = taxonomy_registry(cfg)?;
    let mut out = HashMap::new();
    for id in reg.ids() {
        let Some(tax) = reg.get(&id) else { continue };
        let Some(dir) = artifact_roots(cfg)
            .iter()
            .find_map(|r| touxiang_training::latest_artifact_dir(r, &id))
        else {
            continue;
        };
        let a = Artifacts::load(&dir)
            .with_context(|| format!("loading artifacts {}", dir.display()))?;
        a.check_taxonomy(&tax)
            .with_context(|| format!("artifacts {} vs taxonomy {id}", dir.display()))?;
        if a.classifier.encoder_version() != encoder_version {
            tracing::warn!(taxonomy = %id, trained = a.classifier.encoder_version(), serving = encoder_version,
                "artifacts were trained with another encoder version");
        }
        tracing::info!(taxonomy = %id, dir = %dir.display(), version = a.classifier.model_version(), "classifier loaded");
        out.insert(
            id.clone(),
            TaxonomyModel {
                taxonomy: tax,
                classifier: Arc::new(a.classifier),
                neighbors_ready: std::sync::atomic::AtomicBool::new(a.exemplars.is_some()),
                seeding: SeedProgress::default(),
                artifact_dir: dir,
                exemplars: a.exemplars.map(Arc::new),
            },
        );
    }
    Ok(out)
}

/// Neighbour `source` as the API reports it: `reviewed` for human labels, `seed` otherwise.
pub fn api_source(source: &str) -> &'static str {
    if source == "reviewed" {
        "reviewed"
    } else {
        "seed"
    }
}

/// Open the embedded exemplar store under the data dir.
pub fn open_embedded_store(cfg: &Config, dim: usize) -> anyhow::Result<Arc<dyn VectorStore>> {
    let mut ec = EmbeddedConfig::new(cfg.data_dir.join("vectors"), dim);
    ec.ann_threshold = cfg.vectors.ann_threshold;
    ec.hnsw.ef_search = cfg.vectors.ef_search;
    ec.parallel_min_rows = cfg.vectors.parallel_min_rows;
    let store = EmbeddedStore::open(ec).with_context(|| {
        format!(
            "opening the exemplar store under {}",
            cfg.data_dir.display()
        )
    })?;
    Ok(Arc::new(store))
}

/// A labeler (encoder + classifier of `taxonomy`) for command-line use (ingest, batch).
///
/// With `neighbors`, it votes over the training exemplars as `serve` does (the labels online
/// classify gives), embedding a shipped artifact's exemplars on the first run (cached under
/// `DATA_DIR/embedding-cache`); measured about 15 % slower per distinct text on GB/T. Without
/// it, an artifact lacking exemplar vectors labels with the heads-only calibration: calibrated
/// and thresholded for that mode, but it abstains a little more often.
pub fn load_labeler(
    cfg: &Config,
    taxonomy: &str,
    neighbors: bool,
) -> anyhow::Result<Arc<dyn Labeler>> {
    Ok(Arc::new(load_embedding_labeler(cfg, taxonomy, neighbors)?))
}

/// [`load_labeler`] as its concrete type (its `index` tells whether neighbours vote).
pub fn load_embedding_labeler(
    cfg: &Config,
    taxonomy: &str,
    neighbors: bool,
) -> anyhow::Result<EmbeddingLabeler> {
    let model = Arc::new(E5Model::ensure_and_load(&cfg.model_dir(), Precision::Q4)?);
    let version = Embedder::version(model.as_ref());
    let mut models = load_models(cfg, &version)?;
    let mut m = models.remove(taxonomy).ok_or_else(|| {
        anyhow::anyhow!(
            "no trained classifier for taxonomy '{taxonomy}' (searched {}); run `touxiang train`",
            artifact_roots(cfg)
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    if neighbors {
        ensure_exemplar_index(cfg, &mut m, &model)?;
    }
    Ok(EmbeddingLabeler {
        classifier: m.classifier,
        embedder: Arc::new(E5(model)),
        index: m
            .exemplars
            .map(|ix| ix as Arc<dyn touxiang_training::NeighborSource>),
    })
}

/// The `k` nearest labeled exemplars of each embedding in `store` (within `filter`: one taxonomy
/// and encoder version), or `None` when the store fails: the caller then classifies with the
/// heads-only calibration, as a partial neighbour set would be miscalibrated. One search for
/// `/v1/classify` and for the HTTP job and upload labelers, so both label alike.
pub async fn store_neighbors(
    store: &dyn VectorStore,
    filter: &Filter,
    embeddings: &[Vec<f32>],
    k: usize,
) -> Option<Vec<Vec<touxiang_training::Neighbor>>> {
    let mut out = Vec::with_capacity(embeddings.len());
    for e in embeddings {
        match store.search(e, k, filter).await {
            Ok(hits) => out.push(
                hits.into_iter()
                    .map(|h| touxiang_training::Neighbor {
                        text: h.payload.text,
                        code: h.payload.code,
                        similarity: h.score,
                        source: h.payload.source,
                    })
                    .collect(),
            ),
            Err(err) => {
                tracing::warn!(error = %err, "exemplar store unavailable; classifying without neighbours");
                metrics::counter!("touxiang_neighbors_unavailable_total").increment(1);
                return None;
            }
        }
    }
    Some(out)
}

/// Resolve a taxonomy-relative path for error messages.
pub fn display(p: &Path) -> String {
    p.display().to_string()
}

/// One line of an artifact's `exemplars.jsonl`.
#[derive(serde::Deserialize)]
struct ExemplarLine {
    text: String,
    code: String,
    source: String,
}

/// The exemplar texts of an artifact (`exemplars.jsonl`); `None` when it has none.
fn read_exemplar_lines(artifact_dir: &Path) -> anyhow::Result<Option<Vec<ExemplarLine>>> {
    let path = artifact_dir.join("exemplars.jsonl");
    let Ok(content) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let lines = content
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(lines))
}

/// For offline use (`eval`, `batch`, `ingest`): give `m` an in-memory exemplar index when its artifact
/// carries only the exemplar texts (the shipped ones do), so the kNN vote takes part as it does
/// in `serve` once its store is seeded. Without this, evaluation and batch silently used the
/// heads-only calibration. Vectors go through `DATA_DIR/embedding-cache`: only the first run
/// embeds (GB/T: 47 k short texts, about 2 min on 2 cores).
pub fn ensure_exemplar_index(
    cfg: &Config,
    m: &mut TaxonomyModel,
    model: &Arc<E5Model>,
) -> anyhow::Result<()> {
    if m.exemplars.is_some() {
        return Ok(());
    }
    tracing::info!(taxonomy = %m.taxonomy.id(), "embedding the artifact's exemplars (cached)");
    let Some(ix) = exemplar_index_for(cfg, &m.artifact_dir, model)? else {
        return Ok(());
    };
    m.exemplars = Some(Arc::new(ix));
    m.neighbors_ready
        .store(true, std::sync::atomic::Ordering::SeqCst);
    Ok(())
}

/// An in-memory exemplar index over the exemplar texts of the artifact in `dir` (vectors
/// through `DATA_DIR/embedding-cache`); `None` when the artifact has no `exemplars.jsonl`.
pub fn exemplar_index_for(
    cfg: &Config,
    dir: &Path,
    model: &Arc<E5Model>,
) -> anyhow::Result<Option<touxiang_training::ExemplarIndex>> {
    let Some(lines) = read_exemplar_lines(dir)? else {
        return Ok(None);
    };
    let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    let embedder = E5(model.clone());
    let cache = cfg.data_dir.join("embedding-cache");
    let vectors = touxiang_training::embed_all(&embedder, &texts, Some(&cache), 64)?;
    Ok(Some(touxiang_training::ExemplarIndex::new(
        embedder.dim(),
        &vectors,
        lines.iter().map(|l| l.text.clone()).collect(),
        lines.iter().map(|l| l.code.clone()).collect(),
        lines.iter().map(|l| l.source.clone()).collect(),
    )?))
}
