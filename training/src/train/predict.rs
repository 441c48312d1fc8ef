//! Scoring a trained classifier on labeled examples: split metrics and per-example predictions.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::calibrate::{split_metrics, Outcome, SplitMetrics};
use crate::classifier::{Classifier, HeadOutputs, Neighbor};
use crate::corpus::Example;
use crate::embed::{embed_all, EmbedFn};
use crate::error::Result;
use crate::knn::ExemplarIndex;

pub(crate) fn metrics_for(
    clf: &Classifier,
    heads: &[HeadOutputs],
    neighbors: Option<&[Vec<Neighbor>]>,
    gold: &[usize],
) -> SplitMetrics {
    let empty = Vec::new();
    let results: Vec<(crate::classifier::LevelDists, crate::classifier::Decided)> = heads
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let nb = neighbors.map(|n| &n[i]).unwrap_or(&empty);
            clf.scored(h, nb)
        })
        .collect();
    let last = clf.tree.depth_count() - 1;
    let outs: Vec<Outcome<'_>> = results
        .iter()
        .zip(gold)
        .map(|((d, dec), &g)| Outcome {
            path: &dec.path,
            label_depth: dec.label_depth,
            decision: dec.decision,
            leaf_dist: &d[last],
            gold: g,
        })
        .collect();
    split_metrics(&clf.tree, &outs)
}

/// One prediction of a labeled example, in a form the eval crate can score.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Prediction {
    pub text: String,
    pub gold_code: String,
    /// Full greedy path (root first, down to a leaf) before abstention; empty = vague.
    pub pred_path: Vec<String>,
    /// The returned label (after abstention) and its level depth.
    pub label_code: Option<String>,
    pub label_depth: Option<usize>,
    /// Calibrated probability of the predicted node at each level of `pred_path`.
    pub level_probs: Vec<f32>,
    /// Five most probable codes at the deepest level.
    pub top5: Vec<(String, f32)>,
    pub confidence: f32,
    pub decision: touxiang_datasets::Decision,
}

/// Predict every example (e.g. the test split) with neighbours from `index` when given.
pub fn predict_split(
    clf: &Classifier,
    embedder: &dyn EmbedFn,
    examples: &[&Example],
    index: Option<&ExemplarIndex>,
    cache_dir: Option<&Path>,
) -> Result<Vec<Prediction>> {
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let x = embed_all(embedder, &texts, cache_dir, 64)?;
    let heads = clf.head_outputs_for_texts(&texts, &x)?;
    let nbs = match index {
        Some(ix) => ix.search(&x, clf.knn_k())?,
        None => vec![Vec::new(); x.len()],
    };
    let tree = clf.tree();
    let last = tree.depth_count() - 1;
    Ok(examples
        .iter()
        .zip(heads.iter().zip(&nbs))
        .map(|(e, (h, nb))| {
            let (d, dec) = clf.scored(h, nb);
            let mut top: Vec<(usize, f32)> = d[last].iter().copied().enumerate().collect();
            top.sort_by(|a, b| b.1.total_cmp(&a.1));
            Prediction {
                text: e.text.clone(),
                gold_code: e.code.clone(),
                pred_path: dec
                    .path
                    .iter()
                    .map(|(i, _)| tree.nodes[*i].code.clone())
                    .collect(),
                label_code: dec
                    .label_depth
                    .map(|ld| tree.nodes[dec.path[ld].0].code.clone()),
                label_depth: dec.label_depth,
                level_probs: dec.path.iter().map(|(_, c)| *c).collect(),
                top5: top
                    .into_iter()
                    .take(5)
                    .map(|(p, c)| (tree.nodes[tree.level(last)[p]].code.clone(), c))
                    .collect(),
                confidence: dec.label_depth.map(|ld| dec.path[ld].1).unwrap_or(0.0),
                decision: dec.decision,
            }
        })
        .collect())
}
