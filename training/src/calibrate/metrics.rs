//! Summary metrics of labeled predictions: confidence bins, the ECE and [`SplitMetrics`].

use serde::{Deserialize, Serialize};
use touxiang_datasets::Decision;

use super::correct_at;
use crate::tree::Tree;

/// Equal-width confidence bins of `(confidence, correct)` pairs: per bin the sum of the
/// confidences, the number correct and the count.
pub fn confidence_bins(pairs: &[(f32, bool)], bins: usize) -> Vec<(f64, usize, usize)> {
    let bins = bins.max(1);
    let mut acc = vec![(0f64, 0usize, 0usize); bins];
    for &(c, ok) in pairs {
        let c = f64::from(c).clamp(0.0, 1.0);
        let b = ((c * bins as f64) as usize).min(bins - 1);
        acc[b].0 += c;
        acc[b].1 += usize::from(ok);
        acc[b].2 += 1;
    }
    acc
}

/// Expected calibration error of [`confidence_bins`]: Σ_b (n_b / n) · |accuracy_b − confidence_b|
/// (`None` without pairs).
pub fn ece(bins: &[(f64, usize, usize)]) -> Option<f64> {
    let n: usize = bins.iter().map(|b| b.2).sum();
    (n > 0).then(|| {
        bins.iter()
            .filter(|b| b.2 > 0)
            .map(|&(c, k, m)| (m as f64 / n as f64) * (k as f64 / m as f64 - c / m as f64).abs())
            .sum()
    })
}

/// Summary metrics of labeled predictions (the eval crate computes the official ones).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SplitMetrics {
    pub examples: usize,
    /// Top-1 accuracy of the full greedy path per level (examples labeled at least that deep).
    pub top1_by_level: Vec<f64>,
    /// Gold leaf among the five most probable leaves (deepest-level distribution).
    pub top5_leaf: f64,
    /// Share of results with a label (not null).
    pub labeled: f64,
    /// Precision of labels at their returned level.
    pub label_precision: f64,
    /// Share of labels by returned depth.
    pub label_depth_share: Vec<f64>,
    /// Share of results decided `auto`.
    pub auto_coverage: f64,
    /// Precision of `auto` results at their returned level.
    pub auto_precision: f64,
    /// Expected calibration error (10 bins) of label confidence vs correctness at the label level.
    pub ece: f64,
}

/// Per-example outcome used to compute [`SplitMetrics`].
pub(crate) struct Outcome<'a> {
    pub path: &'a [(usize, f32)],
    pub label_depth: Option<usize>,
    pub decision: Decision,
    pub leaf_dist: &'a [f32],
    pub gold: usize,
}

pub(crate) fn split_metrics(tree: &Tree, outs: &[Outcome<'_>]) -> SplitMetrics {
    let depth = tree.depth_count();
    let n = outs.len();
    if n == 0 {
        return SplitMetrics::default();
    }
    let mut top1 = vec![(0usize, 0usize); depth];
    let mut top5 = (0usize, 0usize);
    let (mut labeled, mut lab_ok, mut auto, mut auto_ok) = (0usize, 0usize, 0usize, 0usize);
    let mut depth_count = vec![0usize; depth];
    let mut label_pairs: Vec<(f32, bool)> = Vec::new();
    let last = depth - 1;
    for o in outs {
        let gd = tree.nodes[o.gold].depth;
        let gold_vague = Some(o.gold) == tree.vague();
        for (d, t) in top1.iter_mut().enumerate() {
            if gold_vague && d > 0 || !gold_vague && gd < d {
                continue;
            }
            t.1 += 1;
            if gold_vague && o.path.is_empty() || correct_at(tree, o.path, d, o.gold) {
                t.0 += 1;
            }
        }
        if gd == last && !gold_vague {
            top5.1 += 1;
            let gp = tree.pos_in_level(o.gold);
            let pg = o.leaf_dist[gp];
            let better = o.leaf_dist.iter().filter(|&&p| p > pg).count();
            if better < 5 {
                top5.0 += 1;
            }
        }
        if let Some(d) = o.label_depth {
            labeled += 1;
            depth_count[d] += 1;
            let ok = correct_at(tree, o.path, d, o.gold);
            lab_ok += usize::from(ok);
            label_pairs.push((o.path[d].1, ok));
            if o.decision == Decision::Auto {
                auto += 1;
                auto_ok += usize::from(ok);
            }
        }
    }
    let ratio = |a: usize, b: usize| {
        if b == 0 {
            f64::NAN
        } else {
            a as f64 / b as f64
        }
    };
    let ece = ece(&confidence_bins(&label_pairs, 10)).unwrap_or(0.0);
    SplitMetrics {
        examples: n,
        top1_by_level: top1.iter().map(|(a, b)| ratio(*a, *b)).collect(),
        top5_leaf: ratio(top5.0, top5.1),
        labeled: ratio(labeled, n),
        label_precision: ratio(lab_ok, labeled),
        label_depth_share: depth_count.iter().map(|c| ratio(*c, labeled)).collect(),
        auto_coverage: ratio(auto, n),
        auto_precision: ratio(auto_ok, auto),
        ece,
    }
}
