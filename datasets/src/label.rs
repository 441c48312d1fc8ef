//! Label types shared by every consumer of the classifier (portfolio ingest, batch jobs, review).
//!
//! The classifier itself lives in `touxiang-training`; crates that only need "a thing that labels
//! texts" depend on this trait instead, so they can be tested with a fake labeler.

use serde::{Deserialize, Serialize};

/// How the service stands behind a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Calibrated confidence clears the auto-accept threshold.
    Auto,
    /// Needs a human reviewer.
    Review,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Auto => "auto",
            Decision::Review => "review",
        }
    }
}

/// One step of a label path (root first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathStep {
    pub code: String,
    pub name: String,
    pub confidence: f32,
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

/// The label of one text: the deepest code the classifier stands behind, with its path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelResult {
    /// Deepest accepted code; `None` when not even a top-level code can be given.
    pub code: Option<String>,
    /// Level name of `code` ("section", "division", "group", "class", or a custom level name).
    pub level: Option<String>,
    pub name: Option<String>,
    /// Root → `code`; empty when `code` is `None`.
    pub path: Vec<PathStep>,
    /// Calibrated confidence of `code` (0 when `code` is `None`).
    pub confidence: f32,
    pub decision: Decision,
    pub model_version: String,
    pub taxonomy_version: String,
    /// What a reviewer is offered and what review routing weighs (empty from labelers that do
    /// not compute them; absent in labels cached before they existed).
    #[serde(default, skip_serializing_if = "Evidence::is_empty")]
    pub evidence: Evidence,
}

/// The evidence of a label beyond its path: the best guess down to the finest level (also when
/// the label stops above it), the alternative classes with their paths, and the path the
/// neighbour vote agrees on (see `touxiang_review::review_reason`: a classifier path that
/// disagrees with it goes to review).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guess: Option<Alternative>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<Alternative>,
    /// Codes root first; empty when the neighbours agree on nothing (or there are none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vote_path: Vec<String>,
}

impl Evidence {
    pub fn is_empty(&self) -> bool {
        self.guess.is_none() && self.alternatives.is_empty() && self.vote_path.is_empty()
    }
}

impl LabelResult {
    /// Code of the path at `depth` (0 = top level), if the label reaches that deep.
    pub fn code_at(&self, depth: usize) -> Option<&str> {
        self.path.get(depth).map(|s| s.code.as_str())
    }
}

/// The neighbour vote's path, root first: similarity-weighted, level by level, stopping where no code holds a strict majority of the similarity mass of the
/// neighbours still on the chosen branch. `path_of` gives a code's path root first (empty for an unknown code). Neighbours with unknown codes or similarity ≤ 0 do
/// not vote. Empty when there is no vote.
pub fn neighbour_vote_path(
    neighbors: &[(&str, f32)],
    path_of: impl Fn(&str) -> Vec<String>,
) -> Vec<String> {
    let paths: Vec<(Vec<String>, f32)> = neighbors
        .iter()
        .filter(|(_, s)| s.is_finite() && *s > 0.0)
        .map(|(c, s)| (path_of(c), *s))
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

/// Anything that turns texts into labels of one taxonomy.
pub trait Labeler: Send + Sync {
    /// Label a batch of texts; the result has one entry per input, in order.
    fn label(&self, texts: &[&str]) -> Result<Vec<LabelResult>, LabelError>;
    /// Version string of the model behind the labels (part of every cache key).
    fn model_version(&self) -> String;
    /// Version (id) of the taxonomy the labels belong to.
    fn taxonomy_version(&self) -> String;
    /// What cached labels and resumable checkpoints of this labeler are keyed by: the model
    /// version plus anything else that changes the labels (e.g. whether neighbours vote).
    fn cache_scope(&self) -> String {
        self.model_version()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("labeling failed: {0}")]
pub struct LabelError(pub String);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Taxonomy;

    fn vote(t: &Taxonomy, nb: &[(&str, f32)]) -> Vec<String> {
        neighbour_vote_path(nb, |c| t.path(c).iter().map(|n| n.code.clone()).collect())
    }

    #[test]
    fn neighbour_vote() {
        let t = Taxonomy::gbt4754();
        // Unanimous class → full path.
        let v = vote(t, &[("6291", 0.9), ("6291", 0.8)]);
        assert_eq!(v, ["H", "62", "629", "6291"]);
        // Same division, split classes: the vote stops where no majority exists.
        let v = vote(t, &[("6291", 0.9), ("6210", 0.9)]);
        assert_eq!(v, ["H", "62"]);
        // Weighted majority wins.
        let v = vote(t, &[("6291", 0.9), ("6291", 0.8), ("1311", 0.85)]);
        assert_eq!(v, ["H", "62", "629", "6291"]);
        // Unknown codes and non-positive similarities do not vote.
        assert!(vote(t, &[("ZZZ", 0.9), ("6291", 0.0)]).is_empty());
        assert!(vote(t, &[]).is_empty());
        // A coarse neighbour counts at the levels it reaches.
        let v = vote(t, &[("62", 0.9), ("6291", 0.5)]);
        assert_eq!(v, ["H", "62", "629", "6291"]);
    }
}
