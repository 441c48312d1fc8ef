//! Learned step confidence: a per-level logistic model of "the path is right at this level",
//! over evidence the decision rule already has (the mixed probability and its margin over the
//! siblings, each component's probability and whether its argmax agrees, the nearest
//! neighbour's similarity, the parent's probability).
//!
//! Why: temperature scaling keeps the mixture's ranking, and on loan text the mixture's
//! probability alone separates right from wrong steps poorly (the thresholds that hold 98 %
//! precision let through few division labels). Agreement between the heads, the neighbour vote
//! and the lexical vote is evidence the mixture averages away.
//!
//! Fitting is cross-fitted on the calibration set: the thresholds are chosen on out-of-fold
//! confidences (a model never scores the examples it was fitted on), then the model is refitted
//! on all of them; [`fit`] keeps it only when its out-of-fold labels beat the plain confidences
//! (more examples labeled correctly at division or deeper at the same target precision).
//! Logistic regression by gradient descent on standardised features (13 weights per level do
//! not justify a linear-algebra dependency).

use serde::{Deserialize, Serialize};

use crate::calibrate::{correct_at, DecisionTargets};
use crate::classifier::{HeadOutputs, LevelDists};
use crate::thresholds::{fit_thresholds, labeled_deep_correct};
use crate::tree::Tree;

/// Number of features per step.
pub const FEATURES: usize = 11;

/// Per level: `FEATURES` weights, then the bias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepModel {
    pub weights: Vec<Vec<f32>>,
}

/// What the decision rule saw for one text besides the mixed distributions.
pub(crate) struct Evidence<'a> {
    pub heads: &'a HeadOutputs,
    pub knn: &'a [Option<Vec<f32>>],
    pub lexical: &'a [Option<Vec<f32>>],
    /// Similarity of the nearest labeled neighbour.
    pub top_sim: Option<f32>,
}

fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-4, 1.0 - 1e-4);
    (p / (1.0 - p)).ln()
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// Features of step `d` of `path`.
pub(crate) fn features(
    tree: &Tree,
    dists: &LevelDists,
    ev: &Evidence<'_>,
    path: &[(usize, f32)],
    d: usize,
) -> [f32; FEATURES] {
    let node = path[d].0;
    let pos = tree.pos_in_level(node);
    let siblings: &[usize] = if d == 0 {
        tree.level(0)
    } else {
        tree.children(path[d - 1].0)
    };
    let p = dists[d][pos];
    let second = siblings
        .iter()
        .filter(|&&s| s != node)
        .map(|&s| dists[d][tree.pos_in_level(s)])
        .fold(0f32, f32::max);
    // (logit of the component's probability for the node, does its argmax agree)
    let comp = |v: Option<&Vec<f32>>| -> (f32, f32) {
        let Some(v) = v else { return (0.0, 0.0) };
        let best = siblings
            .iter()
            .copied()
            .max_by(|&a, &b| v[tree.pos_in_level(a)].total_cmp(&v[tree.pos_in_level(b)]));
        (logit(v[pos]), f32::from(u8::from(best == Some(node))))
    };
    let (flat, _) = comp(ev.heads.flat.as_ref().map(|f| &f[d]));
    let (level, level_agree) = comp(
        ev.heads
            .level
            .as_ref()
            .and_then(|l| l.get(d))
            .or(ev.heads.flat.as_ref().map(|f| &f[d])),
    );
    let (knn, knn_agree) = comp(ev.knn.get(d).and_then(|v| v.as_ref()));
    let (lex, lex_agree) = comp(ev.lexical.get(d).and_then(|v| v.as_ref()));
    let parent = if d == 0 {
        logit(p)
    } else {
        logit(dists[d - 1][tree.pos_in_level(path[d - 1].0)])
    };
    [
        logit(p),
        p - second,
        flat,
        level,
        knn,
        lex,
        level_agree,
        knn_agree,
        lex_agree,
        ev.top_sim.unwrap_or(0.0),
        parent,
    ]
}

impl StepModel {
    /// Probability that step `d` is right, given its features.
    pub fn prob(&self, d: usize, f: &[f32; FEATURES]) -> Option<f32> {
        let w = self.weights.get(d)?;
        let z: f32 = w[FEATURES] + w.iter().zip(f).map(|(a, b)| a * b).sum::<f32>();
        Some(sigmoid(z))
    }

    /// Replace the step confidences of `path` by the model's, each capped by its parent's.
    /// Levels the model has no weights for keep their confidence (capped).
    pub(crate) fn rescore(
        &self,
        tree: &Tree,
        dists: &LevelDists,
        ev: &Evidence<'_>,
        path: &mut [(usize, f32)],
    ) {
        let mut cap = f32::INFINITY;
        for d in 0..path.len() {
            let f = features(tree, dists, ev, path, d);
            let c = self.prob(d, &f).unwrap_or(path[d].1);
            cap = cap.min(c);
            path[d].1 = cap;
        }
    }
}

/// Per-feature mean and standard deviation (floored at 1e-6) of `rows`, `dim` features each:
/// the standardisation both learned models fit on.
pub(crate) fn moments(rows: &[&[f32]], dim: usize) -> (Vec<f64>, Vec<f64>) {
    let n = rows.len() as f64;
    let mut mean = vec![0f64; dim];
    let mut sd = vec![0f64; dim];
    for f in rows {
        for j in 0..dim {
            mean[j] += f64::from(f[j]) / n;
        }
    }
    for f in rows {
        for j in 0..dim {
            sd[j] += (f64::from(f[j]) - mean[j]).powi(2) / n;
        }
    }
    let sd = sd.iter().map(|v| v.sqrt().max(1e-6)).collect();
    (mean, sd)
}

/// `f` standardised with [`moments`].
pub(crate) fn standardize(f: &[f32], mean: &[f64], sd: &[f64]) -> Vec<f64> {
    f.iter()
        .zip(mean.iter().zip(sd))
        .map(|(x, (m, s))| (f64::from(*x) - m) / s)
        .collect()
}

/// L2-regularised logistic regression on `rows` (features, correct); returns the weights on the
/// raw features, bias last.
pub(crate) fn fit_logistic(rows: &[([f32; FEATURES], bool)], l2: f64) -> Vec<f32> {
    let n = rows.len();
    let mut w = vec![0f64; FEATURES + 1];
    if n == 0 {
        return w.iter().map(|&x| x as f32).collect();
    }
    let features: Vec<&[f32]> = rows.iter().map(|(f, _)| &f[..]).collect();
    let (mean, sd) = moments(&features, FEATURES);
    let z: Vec<(Vec<f64>, f64)> = rows
        .iter()
        .map(|(f, y)| (standardize(f, &mean, &sd), f64::from(u8::from(*y))))
        .collect();
    let pos = z.iter().filter(|r| r.1 > 0.5).count() as f64;
    // start at the base rate
    w[FEATURES] = ((pos + 0.5) / (n as f64 - pos + 0.5)).ln();
    let lr = 0.5;
    for _ in 0..800 {
        let mut g = vec![0f64; FEATURES + 1];
        for (x, y) in &z {
            let s: f64 = w[FEATURES] + x.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>();
            let e = 1.0 / (1.0 + (-s).exp()) - y;
            for j in 0..FEATURES {
                g[j] += e * x[j] / n as f64;
            }
            g[FEATURES] += e / n as f64;
        }
        for j in 0..FEATURES {
            g[j] += l2 * w[j];
        }
        w.iter_mut().zip(&g).for_each(|(a, b)| *a -= lr * b);
    }
    // back to raw features
    let mut out = vec![0f32; FEATURES + 1];
    let mut bias = w[FEATURES];
    for j in 0..FEATURES {
        out[j] = (w[j] / sd[j]) as f32;
        bias -= w[j] * mean[j] / sd[j];
    }
    out[FEATURES] = bias as f32;
    out
}

/// Cross-fitted step model: per level, rows `(example, features, correct)`; returns the model
/// fitted on all rows and the out-of-fold probability of every row (same order).
pub(crate) fn cross_fit(
    per_level: &[Vec<(usize, [f32; FEATURES], bool)>],
    folds: usize,
    l2: f64,
) -> (StepModel, Vec<Vec<f32>>) {
    let mut weights = Vec::new();
    let mut oof = Vec::new();
    for rows in per_level {
        let all: Vec<([f32; FEATURES], bool)> = rows.iter().map(|r| (r.1, r.2)).collect();
        let w = fit_logistic(&all, l2);
        let mut probs = vec![0f32; rows.len()];
        for k in 0..folds {
            let train: Vec<([f32; FEATURES], bool)> = rows
                .iter()
                .filter(|r| r.0 % folds != k)
                .map(|r| (r.1, r.2))
                .collect();
            let wk = fit_logistic(&train, l2);
            let m = StepModel { weights: vec![wk] };
            for (i, r) in rows.iter().enumerate() {
                if r.0 % folds == k {
                    probs[i] = m.prob(0, &r.1).unwrap_or(0.0);
                }
            }
        }
        weights.push(w);
        oof.push(probs);
    }
    (StepModel { weights }, oof)
}

/// What [`fit_step_model`] chose: the model when it pays, and the thresholds that go with the
/// confidences kept.
pub(crate) struct StepFit {
    pub model: Option<StepModel>,
    pub level_thresholds: Vec<f32>,
    pub auto_threshold: f32,
}

/// Cross-fit the step model on the calibration `paths` (with their tempered distributions and
/// evidence) and keep it only when its out-of-fold labels are correct at depth ≥ 1 for more
/// examples than the tempered probabilities' at the same targets.
pub(crate) fn fit_step_model<'a>(
    tree: &Tree,
    paths: &[Vec<(usize, f32)>],
    tempered: &[LevelDists],
    gold: &[usize],
    evidence: impl Fn(usize) -> Evidence<'a>,
    targets: &DecisionTargets,
) -> StepFit {
    let depth = tree.depth_count();
    let (plain_thr, plain_auto) = fit_thresholds(tree, paths, gold, targets);
    let plain_score = labeled_deep_correct(tree, paths, gold, &plain_thr);
    let mut rows: Vec<Vec<(usize, [f32; FEATURES], bool)>> = vec![Vec::new(); depth];
    for (i, (p, &g)) in paths.iter().zip(gold).enumerate() {
        let ev = evidence(i);
        for (d, level_rows) in rows.iter_mut().enumerate().take(p.len()) {
            if tree.nodes[g].depth >= d || Some(g) == tree.vague() {
                let f = features(tree, &tempered[i], &ev, p, d);
                level_rows.push((i, f, correct_at(tree, p, d, g)));
            }
        }
    }
    let (model, oof) = cross_fit(&rows, 5, 1e-2);
    // in-sample confidences where no out-of-fold one exists (steps below a shallow gold), then
    // the out-of-fold ones, capped down the path
    let mut learned: Vec<Vec<(usize, f32)>> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut p = p.clone();
            model.rescore(tree, &tempered[i], &evidence(i), &mut p);
            p
        })
        .collect();
    for (d, level_rows) in rows.iter().enumerate() {
        for (r, q) in level_rows.iter().zip(&oof[d]) {
            learned[r.0][d].1 = *q;
        }
    }
    for p in learned.iter_mut() {
        let mut cap = f32::INFINITY;
        for s in p.iter_mut() {
            cap = cap.min(s.1);
            s.1 = cap;
        }
    }
    let (learned_thr, learned_auto) = fit_thresholds(tree, &learned, gold, targets);
    let learned_score = labeled_deep_correct(tree, &learned, gold, &learned_thr);
    tracing::info!(
        plain_score,
        learned_score,
        "calib examples labeled correctly at depth >= 1: tempered vs learned step confidence (out of fold)"
    );
    if learned_score > plain_score {
        StepFit {
            model: Some(model),
            level_thresholds: learned_thr,
            auto_threshold: learned_auto,
        }
    } else {
        StepFit {
            model: None,
            level_thresholds: plain_thr,
            auto_threshold: plain_auto,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_learns_a_separating_feature_and_ignores_noise() {
        // correct iff feature 0 > 0; feature 1 is noise
        let rows: Vec<([f32; FEATURES], bool)> = (0..400)
            .map(|i| {
                let x = (i as f32 - 200.0) / 50.0;
                let mut f = [0f32; FEATURES];
                f[0] = x;
                f[1] = ((i * 7919) % 13) as f32;
                (f, x > 0.0)
            })
            .collect();
        let w = fit_logistic(&rows, 1e-3);
        let m = StepModel { weights: vec![w] };
        let mut hi = [0f32; FEATURES];
        hi[0] = 3.0;
        let mut lo = [0f32; FEATURES];
        lo[0] = -3.0;
        assert!(m.prob(0, &hi).unwrap() > 0.95);
        assert!(m.prob(0, &lo).unwrap() < 0.05);
        assert!(m.prob(1, &hi).is_none(), "no weights for level 1");
    }

    #[test]
    fn cross_fit_scores_every_row_out_of_fold() {
        let rows: Vec<(usize, [f32; FEATURES], bool)> = (0..100)
            .map(|i| {
                let mut f = [0f32; FEATURES];
                f[0] = if i % 2 == 0 { 2.0 } else { -2.0 };
                (i, f, i % 2 == 0)
            })
            .collect();
        let (m, oof) = cross_fit(&[rows], 5, 1e-3);
        assert_eq!(m.weights.len(), 1);
        assert_eq!(oof[0].len(), 100);
        assert!(oof[0][0] > 0.9 && oof[0][1] < 0.1);
    }
}
