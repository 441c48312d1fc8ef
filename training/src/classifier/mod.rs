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

use serde::{Deserialize, Serialize};
pub use touxiang_datasets::Alternative;
use touxiang_datasets::{Decision, PathStep};

use crate::confidence::StepModel;
use crate::heads::Linear;
use crate::tfidf::LexicalIndex;
use crate::tree::Tree;

mod classify;
mod labeler;

pub use labeler::{EmbeddingLabeler, NeighborSource};

pub(crate) use crate::decide::{
    combine, decide, exact_match, greedy_path, joint_path, knn_vote, temper,
};

/// A labeled exemplar near the query (from the service's vector store or
/// [`ExemplarIndex`](crate::knn::ExemplarIndex)).
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
    /// Candidate re-ranker ([`crate::rerank`]); `None` = the mixture's distributions.
    #[serde(default)]
    pub rerank: Option<crate::rerank::Reranker>,
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
            rerank: None,
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
    /// Classes the text names as borrower or purchase ([`crate::role_cues`]; empty without a
    /// lexicon or text).
    pub roles: crate::role_cues::RoleHits,
}

/// What a text alone gives the decision: its lexical neighbours and role cues
/// ([`Classifier::text_evidence`]).
#[derive(Debug, Clone, Default)]
pub struct TextEvidence {
    pub lexical: Vec<Neighbor>,
    pub roles: crate::role_cues::RoleHits,
}

/// Head outputs joined with the text evidence of the same texts, in order.
pub fn with_text_evidence(
    mut heads: Vec<HeadOutputs>,
    evidence: Vec<TextEvidence>,
) -> Vec<HeadOutputs> {
    for (h, e) in heads.iter_mut().zip(evidence) {
        h.lexical = e.lexical;
        h.roles = e.roles;
    }
    heads
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
    /// The path the first `knn_k` neighbours agree on by similarity-weighted majority, level
    /// by level ([`touxiang_datasets::neighbour_vote_path`]); review routing sends a label whose
    /// path disagrees with it to review.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vote_path: Vec<String>,
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
    /// Role cue lexicon (travels with the artifact).
    pub(crate) role_cues: Option<crate::role_cues::RoleCues>,
}
