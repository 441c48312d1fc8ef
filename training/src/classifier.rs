//! The runtime classifier: head probabilities + kNN vote → calibrated per-level distributions →
//! a consistent path, the abstention depth and the auto/review decision, with evidence.
//!
//! ## How a result is formed (measured choices are recorded in the artifact metadata)
//! 1. Per level `d`, up to four distributions over the level's nodes: the flat leaf head
//!    marginalised up the tree, the level-`d` head, a kNN vote of the labeled neighbours
//!    (weights `exp((sim − max_sim)/τ)`, each neighbour voting for its code's ancestor at `d`),
//!    and the same vote over the lexical neighbours (character n-gram TF-IDF cosine over the
//!    training exemplar texts, [`crate::tfidf::LexicalIndex`]).
//! 2. Linear mixture with weights fitted on the calibration split (neighbour-less requests use a
//!    separately fitted heads-only calibration), then temperature scaling per level.
//! 3. Path: argmax at the top level, then argmax among the children of the chosen node, down to a
//!    leaf — always consistent. The confidence of a step is its calibrated probability, capped by
//!    the parent's (so confidence never increases with depth).
//! 4. Abstention: walk down while the step confidence clears that level's threshold; the label is
//!    the last step that cleared it. If the top-level choice is the vague pseudo-class or fails the
//!    top threshold, the label is `null`.
//! 5. Decision: `auto` when the label is at least `auto_min_depth` deep and its confidence clears
//!    the auto threshold; otherwise `review`. All thresholds are chosen on the calibration split to
//!    reach the target precision.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use touxiang_datasets::{Decision, LabelError, LabelResult, Labeler, PathStep};

use crate::confidence::{Evidence, StepModel};
use crate::embed::EmbedFn;
use crate::error::{Result, TrainError};
use crate::heads::Linear;
use crate::knn::ExemplarIndex;
use crate::tfidf::LexicalIndex;
use crate::tree::Tree;

pub(crate) use crate::decide::{
    combine, decide, exact_match, greedy_path, joint_path, knn_vote, temper,
};

/// A labeled exemplar near the query (from the service's vector store or [`ExemplarIndex`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Neighbor {
    pub text: String,
    pub code: String,
    /// Cosine similarity to the query.
    pub similarity: f32,
    /// "seed" (training corpus) or "reviewed".
    pub source: String,
}

/// Fitted combination + calibration for one mode (with or without neighbours).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Mixture weights of (flat head, level heads, kNN vote, lexical vote); sum to 1. Metadata
    /// written before the lexical voter has three weights (read with a lexical weight of 0).
    #[serde(deserialize_with = "mix_3_or_4")]
    pub mix: [f32; 4],
    /// Softmax temperature of the kNN vote over similarities.
    pub knn_tau: f32,
    /// Softmax temperature of the lexical vote over TF-IDF cosine similarities.
    #[serde(default = "default_lexical_tau")]
    pub lexical_tau: f32,
    /// Temperature per level (probabilities ∝ p^(1/T)).
    pub temperature: Vec<f32>,
    /// Minimum step confidence per level for the label to go that deep.
    pub level_thresholds: Vec<f32>,
    /// Minimum label confidence for `Decision::Auto`.
    pub auto_threshold: f32,
    /// Path rule: `false` = greedy top-down argmax, `true` = the leaf with the largest product of
    /// its path's level probabilities ([`joint_path`]); chosen on the calibration split.
    #[serde(default)]
    pub joint_path: bool,
    /// Path rule `leaf`: the most probable leaf at the finest level and its ancestors (takes
    /// precedence over `joint_path`); chosen on the calibration split like `joint_path`.
    #[serde(default)]
    pub leaf_path: bool,
    /// Gate on the nearest labeled exemplar: when it is at least this similar (catalogue-like
    /// text whose near-duplicates are labeled), `near_mix` replaces `mix`. `None` = no gate.
    #[serde(default)]
    pub near_sim: Option<f32>,
    #[serde(default)]
    pub near_mix: [f32; 4],
    /// Learned step confidence ([`crate::confidence`]); `None` = the tempered probabilities.
    #[serde(default)]
    pub step_model: Option<StepModel>,
}

fn default_lexical_tau() -> f32 {
    0.05
}

impl Calibration {
    /// A calibration with the given mixture and neutral everything else (no gate, T = 1, no
    /// thresholds, greedy path).
    pub fn neutral(mix: [f32; 4], knn_tau: f32, lexical_tau: f32, depth: usize) -> Self {
        Calibration {
            mix,
            knn_tau,
            lexical_tau,
            temperature: vec![1.0; depth],
            level_thresholds: vec![0.0; depth],
            auto_threshold: 0.0,
            joint_path: false,
            leaf_path: false,
            near_sim: None,
            near_mix: [0.0; 4],
            step_model: None,
        }
    }

    /// The mixture for a text whose nearest labeled exemplar has similarity `top_sim`.
    pub fn mix_for(&self, top_sim: Option<f32>) -> [f32; 4] {
        match (top_sim, self.near_sim) {
            (Some(s), Some(t)) if s >= t => self.near_mix,
            _ => self.mix,
        }
    }
}

/// Mixture weights from 3 (flat, level, kNN) or 4 values.
pub(crate) fn mix_from_slice(v: &[f32]) -> Option<[f32; 4]> {
    match v {
        [a, b, c] => Some([*a, *b, *c, 0.0]),
        [a, b, c, d] => Some([*a, *b, *c, *d]),
        _ => None,
    }
}

fn mix_3_or_4<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<[f32; 4], D::Error> {
    let v = Vec::<f32>::deserialize(d)?;
    mix_from_slice(&v).ok_or_else(|| {
        serde::de::Error::custom(format!("mix must have 3 or 4 weights, not {}", v.len()))
    })
}

/// Per-level probability vectors (index = position of a node in its level).
pub type LevelDists = Vec<Vec<f32>>;

/// Raw head outputs for one text.
#[derive(Debug, Clone)]
pub struct HeadOutputs {
    pub flat: Option<LevelDists>,
    pub level: Option<LevelDists>,
    /// Nearest exemplars by character n-gram TF-IDF (empty without a lexical index or text).
    pub lexical: Vec<Neighbor>,
}

/// A candidate at the taxonomy's finest level (a class of GB/T 4754), with its path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alternative {
    pub code: String,
    pub level: String,
    pub name: String,
    /// Calibrated probability of the candidate at its level.
    pub confidence: f32,
    /// Root first, down to the candidate; each step's calibrated probability.
    pub path: Vec<PathStep>,
}

/// The label part of a result (API: `label`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    pub code: String,
    pub level: String,
    pub name: String,
    pub path: Vec<PathStep>,
}

/// One classification result, in the field names of `POST /v1/classify` (the service adds `id`
/// and `review_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    pub label: Option<Label>,
    pub confidence: f32,
    pub decision: Decision,
    pub alternatives: Vec<Alternative>,
    /// The best candidate's full path down to the finest level, also when `label` stops higher
    /// or is `null` (what a reviewer is offered first); `None` for vague text.
    pub guess: Option<Label>,
    pub neighbors: Vec<Neighbor>,
    pub keywords: Vec<String>,
    /// The full path down to a leaf before abstention (for evaluation; `guess` in the API).
    #[serde(skip)]
    pub full_path: Vec<PathStep>,
}

/// Per-request options.
#[derive(Debug, Clone)]
pub struct ClassifyOptions {
    /// Alternatives to return.
    pub top_k: usize,
    /// Neighbours to pass through in the result (the vote uses up to `knn_k` of those given).
    pub show_neighbors: usize,
    /// Keywords to extract.
    pub keywords: usize,
}

impl Default for ClassifyOptions {
    fn default() -> Self {
        ClassifyOptions {
            top_k: 3,
            show_neighbors: 5,
            keywords: 5,
        }
    }
}

/// Keyword extractor (the service passes `touxiang_text::Segmenter::keywords`).
pub type KeywordFn = Arc<dyn Fn(&str, usize) -> Vec<String> + Send + Sync>;

/// Result of the decision rule on one set of calibrated distributions.
#[derive(Debug, Clone)]
pub struct Decided {
    /// (node index, step confidence) root first, down to a leaf; empty when vague.
    pub path: Vec<(usize, f32)>,
    /// Depth of the returned label; `None` = no label.
    pub label_depth: Option<usize>,
    pub decision: Decision,
}

/// The trained classifier.
pub struct Classifier {
    pub(crate) tree: Tree,
    pub(crate) flat: Option<Linear>,
    pub(crate) levels: Vec<Linear>,
    pub(crate) cal_knn: Calibration,
    pub(crate) cal_heads: Calibration,
    /// Neighbours used by the vote.
    pub(crate) knn_k: usize,
    /// Labels shallower than this depth are never auto-accepted.
    pub(crate) auto_min_depth: usize,
    pub(crate) model_version: String,
    pub(crate) encoder_version: String,
    pub(crate) dim: usize,
    /// `[leaf position][depth]` → position of the leaf's ancestor in that level.
    leaf_anc: Vec<Vec<Option<usize>>>,
    keywords: Option<KeywordFn>,
    /// Lexical voter over the training exemplar texts (rebuilt from them when loading).
    pub(crate) lexical: Option<LexicalIndex>,
}

fn leaf_ancestors(tree: &Tree) -> Vec<Vec<Option<usize>>> {
    tree.leaves()
        .iter()
        .map(|&l| {
            (0..tree.depth_count())
                .map(|d| tree.ancestor_at(l, d).map(|a| tree.pos_in_level(a)))
                .collect()
        })
        .collect()
}

impl Classifier {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        tree: Tree,
        flat: Option<Linear>,
        levels: Vec<Linear>,
        cal_knn: Calibration,
        cal_heads: Calibration,
        knn_k: usize,
        auto_min_depth: usize,
        model_version: String,
        encoder_version: String,
        dim: usize,
    ) -> Classifier {
        let leaf_anc = leaf_ancestors(&tree);
        Classifier {
            tree,
            flat,
            levels,
            cal_knn,
            cal_heads,
            knn_k,
            auto_min_depth,
            model_version,
            encoder_version,
            dim,
            leaf_anc,
            keywords: None,
            lexical: None,
        }
    }

    /// Attach the lexical voter (its weight comes from the calibration).
    pub fn with_lexical(mut self, ix: LexicalIndex) -> Self {
        self.lexical = Some(ix);
        self
    }

    /// The lexical voter, when the classifier has one.
    pub fn lexical(&self) -> Option<&LexicalIndex> {
        self.lexical.as_ref()
    }

    /// Attach a keyword extractor (e.g. the segmenter's TF-IDF keywords).
    pub fn with_keywords(mut self, f: KeywordFn) -> Self {
        self.keywords = Some(f);
        self
    }

    /// The taxonomy tree (with the vague pseudo-class when trained with one).
    pub fn tree(&self) -> &Tree {
        &self.tree
    }
    /// Model version (artifact version).
    pub fn model_version(&self) -> &str {
        &self.model_version
    }
    /// Version of the encoder the heads were trained on; the service must use the same one.
    pub fn encoder_version(&self) -> &str {
        &self.encoder_version
    }
    /// Taxonomy id.
    pub fn taxonomy_id(&self) -> &str {
        &self.tree.id
    }
    /// Taxonomy version.
    pub fn taxonomy_version(&self) -> &str {
        &self.tree.version
    }
    /// Embedding dimension expected by the heads.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Number of neighbours the kNN vote uses (ask the vector store for at least this many).
    pub fn knn_k(&self) -> usize {
        self.knn_k
    }
    /// Calibration used when neighbours are given / when not.
    pub fn calibrations(&self) -> (&Calibration, &Calibration) {
        (&self.cal_knn, &self.cal_heads)
    }

    /// Head outputs for a batch of embeddings.
    pub fn head_outputs(&self, embeddings: &[Vec<f32>]) -> Result<Vec<HeadOutputs>> {
        for (i, e) in embeddings.iter().enumerate() {
            if e.len() != self.dim {
                return Err(TrainError::BadEmbedding(format!(
                    "embedding {i} has length {}, the model expects {}",
                    e.len(),
                    self.dim
                )));
            }
            if e.iter().any(|v| !v.is_finite()) {
                return Err(TrainError::BadEmbedding(format!(
                    "embedding {i} has a non-finite value"
                )));
            }
        }
        let mut out: Vec<HeadOutputs> = embeddings
            .iter()
            .map(|_| HeadOutputs {
                flat: None,
                level: None,
                lexical: Vec::new(),
            })
            .collect();
        let depth = self.tree.depth_count();
        for (ci, chunk) in embeddings.chunks(1024).enumerate() {
            let flat_data: Vec<f32> = chunk.iter().flatten().copied().collect();
            let x = Tensor::from_vec(flat_data, (chunk.len(), self.dim), &Device::Cpu)?;
            if let Some(f) = &self.flat {
                let p = f.probs(&x)?;
                for (r, leaf_p) in p.into_iter().enumerate() {
                    let mut dists: LevelDists = (0..depth)
                        .map(|d| vec![0f32; self.tree.level(d).len()])
                        .collect();
                    for (l, &pl) in leaf_p.iter().enumerate() {
                        for (d, a) in self.leaf_anc[l].iter().enumerate() {
                            if let Some(a) = a {
                                dists[d][*a] += pl;
                            }
                        }
                    }
                    out[ci * 1024 + r].flat = Some(dists);
                }
            }
            if !self.levels.is_empty() {
                let per: Vec<Vec<Vec<f32>>> = self
                    .levels
                    .iter()
                    .map(|h| h.probs(&x))
                    .collect::<Result<_>>()?;
                for r in 0..chunk.len() {
                    let o = &mut out[ci * 1024 + r];
                    let mut lv: LevelDists = per.iter().map(|lv| lv[r].clone()).collect();
                    // levels without their own head (the deepest, when a flat head exists) take
                    // the flat head's marginal
                    for d in lv.len()..depth {
                        lv.push(
                            o.flat
                                .as_ref()
                                .map(|f| f[d].clone())
                                .unwrap_or_else(|| vec![0.0; self.tree.level(d).len()]),
                        );
                    }
                    o.level = Some(lv);
                }
            }
        }
        Ok(out)
    }

    /// [`Classifier::head_outputs`] plus the lexical neighbours of each text.
    pub fn head_outputs_for_texts(
        &self,
        texts: &[&str],
        embeddings: &[Vec<f32>],
    ) -> Result<Vec<HeadOutputs>> {
        if texts.len() != embeddings.len() {
            return Err(TrainError::Invalid(format!(
                "{} texts but {} embeddings",
                texts.len(),
                embeddings.len()
            )));
        }
        let mut out = self.head_outputs(embeddings)?;
        if let Some(ix) = &self.lexical {
            for (o, nb) in out.iter_mut().zip(ix.search_all(texts, self.knn_k)) {
                o.lexical = nb;
            }
        }
        Ok(out)
    }

    /// kNN vote per level over the first `knn_k` neighbours (by similarity); `None` at a level
    /// where no neighbour votes. Neighbours with codes outside the taxonomy are ignored.
    pub fn knn_vote(&self, neighbors: &[Neighbor], tau: f32) -> Vec<Option<Vec<f32>>> {
        knn_vote(&self.tree, neighbors, self.knn_k, tau)
    }

    /// Calibrated per-level distributions for one text.
    pub fn calibrated(&self, heads: &HeadOutputs, neighbors: &[Neighbor]) -> LevelDists {
        self.scored(heads, neighbors).0
    }

    /// Calibrated per-level distributions and the decision for one text.
    pub fn scored(&self, heads: &HeadOutputs, neighbors: &[Neighbor]) -> (LevelDists, Decided) {
        let cal = if neighbors.is_empty() {
            &self.cal_heads
        } else {
            &self.cal_knn
        };
        let knn = self.knn_vote(neighbors, cal.knn_tau);
        let lex = self.knn_vote(&heads.lexical, cal.lexical_tau);
        let top_sim = crate::gate::top_sim(neighbors);
        let mut dists = combine(&self.tree, heads, &knn, &lex, cal, top_sim);
        let exact = exact_match(&self.tree, neighbors);
        if let Some(m) = exact {
            crate::decide::apply_exact(&self.tree, &mut dists, &m.code);
        }
        // an exact match keeps the confidence the rule gives it: the step model is fitted on
        // texts that repeat no labeled one
        let ev = Evidence {
            heads,
            knn: &knn,
            lexical: &lex,
            top_sim,
        };
        let ev = exact.is_none().then_some(&ev);
        let dec = decide(&self.tree, &dists, cal, self.auto_min_depth, ev);
        (dists, dec)
    }

    /// Classify one text from its embedding and the labeled neighbours the service found
    /// (may be empty: a heads-only calibration is used then).
    pub fn classify(
        &self,
        text: &str,
        embedding: &[f32],
        neighbors: &[Neighbor],
        opts: &ClassifyOptions,
    ) -> Result<Classification> {
        let heads = self
            .head_outputs_for_texts(&[text], &[embedding.to_vec()])?
            .pop()
            .expect("one output");
        Ok(self.classify_with_heads(text, &heads, neighbors, opts))
    }

    /// Batch variant of [`Classifier::classify`] (one head pass for all texts).
    pub fn classify_batch(
        &self,
        texts: &[&str],
        embeddings: &[Vec<f32>],
        neighbors: &[Vec<Neighbor>],
        opts: &ClassifyOptions,
    ) -> Result<Vec<Classification>> {
        if texts.len() != embeddings.len() || texts.len() != neighbors.len() {
            return Err(TrainError::Invalid(format!(
                "classify_batch: {} texts, {} embeddings, {} neighbour lists",
                texts.len(),
                embeddings.len(),
                neighbors.len()
            )));
        }
        let heads = self.head_outputs_for_texts(texts, embeddings)?;
        Ok(heads
            .iter()
            .zip(texts.iter().zip(neighbors))
            .map(|(h, (t, n))| self.classify_with_heads(t, h, n, opts))
            .collect())
    }

    pub(crate) fn classify_with_heads(
        &self,
        text: &str,
        heads: &HeadOutputs,
        neighbors: &[Neighbor],
        opts: &ClassifyOptions,
    ) -> Classification {
        let mut nb: Vec<Neighbor> = neighbors.to_vec();
        nb.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        let (dists, dec) = self.scored(heads, &nb);
        let tree = &self.tree;
        let full_path: Vec<PathStep> = dec.path.iter().map(|&s| self.path_step(s)).collect();
        let (label, confidence) = match dec.label_depth {
            Some(d) => {
                let (node, conf) = dec.path[d];
                let n = &tree.nodes[node];
                (
                    Some(Label {
                        code: n.code.clone(),
                        level: tree.level_name(d).to_string(),
                        name: n.name.clone(),
                        path: full_path[..=d].to_vec(),
                    }),
                    conf,
                )
            }
            None => (None, 0.0),
        };
        let guess = dec.path.last().map(|&(leaf, _)| Label {
            code: tree.nodes[leaf].code.clone(),
            level: tree.level_name(tree.nodes[leaf].depth).to_string(),
            name: tree.nodes[leaf].name.clone(),
            path: full_path.clone(),
        });
        let alternatives = self.leaf_alternatives(&dists, dec.path.last().map(|p| p.0), opts.top_k);
        nb.truncate(opts.show_neighbors);
        let keywords = match &self.keywords {
            Some(f) if opts.keywords > 0 => f(text, opts.keywords),
            _ => Vec::new(),
        };
        Classification {
            label,
            confidence,
            decision: dec.decision,
            alternatives,
            guess,
            neighbors: nb,
            keywords,
            full_path,
        }
    }

    /// The `k` most probable leaves (never the vague pseudo-class, never `exclude`), best first,
    /// each with its path of calibrated probabilities (capped by the parent's, as on the label's
    /// path).
    pub fn leaf_alternatives(
        &self,
        dists: &LevelDists,
        exclude: Option<usize>,
        k: usize,
    ) -> Vec<Alternative> {
        let tree = &self.tree;
        let last = tree.depth_count() - 1;
        let vague = tree.vague();
        let mut leaves: Vec<(usize, f32)> = tree
            .level(last)
            .iter()
            .enumerate()
            .filter(|(_, &i)| Some(i) != exclude && Some(i) != vague)
            .map(|(p, &i)| (i, dists[last][p]))
            .collect();
        leaves.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        leaves
            .into_iter()
            .take(k)
            .map(|(leaf, c)| Alternative {
                code: tree.nodes[leaf].code.clone(),
                level: tree.level_name(last).to_string(),
                name: tree.nodes[leaf].name.clone(),
                confidence: c,
                path: crate::decide::capped_path(tree, dists, leaf)
                    .into_iter()
                    .map(|s| self.path_step(s))
                    .collect(),
            })
            .collect()
    }

    /// A path step of node `i` with confidence `c`.
    fn path_step(&self, (i, c): (usize, f32)) -> PathStep {
        PathStep {
            code: self.tree.nodes[i].code.clone(),
            name: self.tree.nodes[i].name.clone(),
            confidence: c,
        }
    }

    /// Convert a classification into the shared label type.
    pub fn to_label_result(&self, c: &Classification) -> LabelResult {
        LabelResult {
            code: c.label.as_ref().map(|l| l.code.clone()),
            level: c.label.as_ref().map(|l| l.level.clone()),
            name: c.label.as_ref().map(|l| l.name.clone()),
            path: c.label.as_ref().map(|l| l.path.clone()).unwrap_or_default(),
            confidence: c.confidence,
            decision: c.decision,
            model_version: self.model_version.clone(),
            taxonomy_version: self.tree.version.clone(),
        }
    }
}

/// Where a labeler finds the labeled neighbours of its texts for the kNN vote: an in-memory
/// [`ExemplarIndex`] (command line) or the service's exemplar store (HTTP jobs and uploads).
pub trait NeighborSource: Send + Sync {
    /// The `k` nearest labeled exemplars of each vector, or `None` when the source cannot answer
    /// now (store not yet seeded, unreachable): the labeler then uses the heads-only calibration
    /// for the whole batch, as `/v1/classify` does.
    fn neighbors(&self, vectors: &[Vec<f32>], k: usize) -> Result<Option<Vec<Vec<Neighbor>>>>;
}

impl NeighborSource for ExemplarIndex {
    fn neighbors(&self, vectors: &[Vec<f32>], k: usize) -> Result<Option<Vec<Vec<Neighbor>>>> {
        self.search(vectors, k).map(Some)
    }
}

/// A [`Labeler`] over a classifier, an encoder and (optionally) a source of labeled neighbours
/// for the kNN vote — for batch jobs and portfolio ingest.
pub struct EmbeddingLabeler {
    pub classifier: Arc<Classifier>,
    pub embedder: Arc<dyn EmbedFn>,
    pub index: Option<Arc<dyn NeighborSource>>,
}

impl EmbeddingLabeler {
    /// Full classifications for a batch of texts.
    pub fn classify_texts(
        &self,
        texts: &[&str],
        opts: &ClassifyOptions,
    ) -> Result<Vec<Classification>> {
        let emb = self.embedder.embed(texts)?;
        crate::embed::check_vectors(&emb, texts.len(), self.classifier.dim())?;
        let k = self.classifier.knn_k().max(opts.show_neighbors);
        let neighbors = match &self.index {
            Some(ix) => ix.neighbors(&emb, k)?,
            None => None,
        }
        .unwrap_or_else(|| vec![Vec::new(); texts.len()]);
        self.classifier
            .classify_batch(texts, &emb, &neighbors, opts)
    }
}

impl Labeler for EmbeddingLabeler {
    fn label(&self, texts: &[&str]) -> Result<Vec<LabelResult>, LabelError> {
        let opts = ClassifyOptions {
            top_k: 0,
            show_neighbors: 0,
            keywords: 0,
        };
        let cs = self
            .classify_texts(texts, &opts)
            .map_err(|e| LabelError(e.to_string()))?;
        Ok(cs
            .iter()
            .map(|c| self.classifier.to_label_result(c))
            .collect())
    }
    fn model_version(&self) -> String {
        self.classifier.model_version.clone()
    }
    fn taxonomy_version(&self) -> String {
        self.classifier.tree.version.clone()
    }
    fn cache_scope(&self) -> String {
        match self.index {
            // neighbours vote: other labels than heads-only, so never share cached ones
            Some(_) => format!("{}+knn", self.classifier.model_version),
            None => self.classifier.model_version.clone(),
        }
    }
}
