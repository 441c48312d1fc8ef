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
}

impl LabelResult {
    /// Code of the path at `depth` (0 = top level), if the label reaches that deep.
    pub fn code_at(&self, depth: usize) -> Option<&str> {
        self.path.get(depth).map(|s| s.code.as_str())
    }
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
