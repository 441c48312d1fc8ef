//! Decision thresholds: the smallest confidence at which a selection reaches the target
//! precision (optionally at the lower end of its Wilson interval), per level and for `auto`.

use crate::calibrate::{correct_at, DecisionTargets, NEVER};
use crate::tree::Tree;

/// Smallest threshold whose selection (conf ≥ t) reaches `target` precision with at least
/// `min_support` examples, maximising coverage; [`NEVER`] when none does.
pub fn threshold_for_precision(pairs: &[(f32, bool)], target: f64, min_support: usize) -> f32 {
    threshold_for_precision_bound(pairs, target, min_support, 0.0)
}

/// Lower end of the Wilson score interval of `k` successes in `n` at `z` standard errors.
pub fn wilson_lower(k: usize, n: usize, z: f64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let (n, p) = (n as f64, k as f64 / n as f64);
    let z2 = z * z;
    (p + z2 / (2.0 * n) - z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt()) / (1.0 + z2 / n)
}

/// [`threshold_for_precision`] where the selection's precision must reach `target` at the lower
/// end of its Wilson interval at `z` ([`wilson_lower`]; `z = 0` is the plain rate).
pub fn threshold_for_precision_bound(
    pairs: &[(f32, bool)],
    target: f64,
    min_support: usize,
    z: f64,
) -> f32 {
    let mut v: Vec<(f32, bool)> = pairs.to_vec();
    v.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut best = NEVER;
    let mut correct = 0usize;
    for i in 0..v.len() {
        if v[i].1 {
            correct += 1;
        }
        let boundary = i + 1 == v.len() || v[i + 1].0 < v[i].0;
        let n = i + 1;
        let rate = if z > 0.0 {
            wilson_lower(correct, n, z)
        } else {
            correct as f64 / n as f64
        };
        if boundary && n >= min_support && rate >= target {
            best = v[i].0;
        }
    }
    best
}

/// Per-level thresholds reaching the target precision on `paths`, then the auto threshold.
pub(crate) fn fit_thresholds(
    tree: &Tree,
    paths: &[Vec<(usize, f32)>],
    gold: &[usize],
    targets: &DecisionTargets,
) -> (Vec<f32>, f32) {
    let depth = tree.depth_count();
    let mut level_thresholds = vec![NEVER; depth];
    for (d, t) in level_thresholds.iter_mut().enumerate() {
        let pairs: Vec<(f32, bool)> = paths
            .iter()
            .zip(gold)
            .filter(|(p, &g)| p.len() > d && (tree.nodes[g].depth >= d || Some(g) == tree.vague()))
            .map(|(p, &g)| (p[d].1, correct_at(tree, p, d, g)))
            .collect();
        *t = threshold_for_precision_bound(
            &pairs,
            targets.level_precision,
            targets.min_support,
            targets.precision_z,
        );
    }
    let mut auto_pairs = Vec::new();
    for (p, &g) in paths.iter().zip(gold) {
        if let Some(d) = label_depth(p, &level_thresholds).filter(|&d| d >= targets.auto_min_depth)
        {
            auto_pairs.push((p[d].1, correct_at(tree, p, d, g)));
        }
    }
    let auto = threshold_for_precision_bound(
        &auto_pairs,
        targets.auto_precision,
        targets.min_support,
        targets.precision_z,
    );
    (level_thresholds, auto)
}

/// Depth of the label `thresholds` give a path (the last step of the run that clears them).
fn label_depth(path: &[(usize, f32)], thresholds: &[f32]) -> Option<usize> {
    let mut ld = None;
    for (d, &(_, c)) in path.iter().enumerate() {
        if c >= thresholds[d] {
            ld = Some(d);
        } else {
            break;
        }
    }
    ld
}

/// Examples labeled correctly at depth 1 or deeper (division for GB/T 4754) under `thresholds`.
pub(crate) fn labeled_deep_correct(
    tree: &Tree,
    paths: &[Vec<(usize, f32)>],
    gold: &[usize],
    thresholds: &[f32],
) -> usize {
    paths
        .iter()
        .zip(gold)
        .filter(|(p, &g)| {
            label_depth(p, thresholds).is_some_and(|d| d >= 1 && correct_at(tree, p, d, g))
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wilson_bound_asks_more_of_small_selections() {
        assert_eq!(wilson_lower(0, 0, 1.0), 0.0);
        assert!((wilson_lower(98, 100, 0.0) - 0.98).abs() < 1e-12);
        let small = wilson_lower(49, 50, 1.0);
        let large = wilson_lower(980, 1000, 1.0);
        assert!(
            small < 0.98 && large < 0.98 && small < large,
            "{small} {large}"
        );
        // 98 % exactly passes the plain rate but not the bound
        let pairs: Vec<(f32, bool)> = (0..200)
            .map(|i| (1.0 - i as f32 / 200.0, i % 50 != 49))
            .collect();
        assert!(threshold_for_precision(&pairs, 0.98, 20) < 0.01);
        assert!(threshold_for_precision_bound(&pairs, 0.98, 20, 1.0) > 0.5);
    }
}
