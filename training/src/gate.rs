//! The similarity gate of the calibration: how far near-duplicate labeled exemplars are
//! trusted. Catalogue terms have near-duplicates among the exemplars and are best decided by
//! them; loan texts rarely do and are better served by the heads and the lexical vote, so texts
//! whose nearest exemplar is similar enough may get a mixture of their own.

use rayon::prelude::*;

use crate::calibrate::{correct_at, gold_positions, nll_of, votes_of, Votes};
use crate::classifier::{combine, decide, Calibration, HeadOutputs, Neighbor};
use crate::tree::Tree;

/// Similarity of the nearest labeled exemplar.
pub(crate) fn top_sim(n: &[Neighbor]) -> Option<f32> {
    n.iter().map(|x| x.similarity).reduce(f32::max)
}

/// The mixture with the smallest NLL (mean over levels) on the 0.1-step simplex grid, among the
/// components `allow`ed.
fn grid_best(gp: &[Vec<[Option<f32>; 4]>], allow: [bool; 4]) -> [f32; 4] {
    let steps = 10;
    let mut best: Option<(f64, [f32; 4])> = None;
    for a in 0..=steps {
        for b in 0..=(steps - a) {
            for c in 0..=(steps - a - b) {
                let e = steps - a - b - c;
                let w = [a, b, c, e];
                if (0..4).any(|k| w[k] > 0 && !allow[k]) {
                    continue;
                }
                let mix = w.map(|x| x as f32 / steps as f32);
                let s: f64 = gp
                    .iter()
                    .filter(|g| !g.is_empty())
                    .map(|g| nll_of(g, mix))
                    .sum();
                if best.is_none_or(|(bs, _)| s < bs) {
                    best = Some((s, mix));
                }
            }
        }
    }
    best.map(|b| b.1).unwrap_or([0.5, 0.5, 0.0, 0.0])
}

/// A second labeled set used only to fit the similarity gate: the corpus's calibration split
/// (catalogue items and generated phrasings) beside the loan texts the rest is fitted on.
pub(crate) struct GateSet<'a> {
    pub heads: &'a [HeadOutputs],
    pub neighbors: &'a [Vec<Neighbor>],
    pub gold: &'a [usize],
}

/// The similarity gate: texts whose nearest labeled exemplar is at least `s0` similar get a
/// mixture of their own (fitted on NLL over those texts of the union of the calibration examples
/// and the gate set) when that raises the mean of the two sets' leaf top-1 by more than 0.2
/// points. Catalogue
/// terms have near-duplicates among the exemplars and are best decided by them; loan texts
/// rarely do, and are better served by the heads and the lexical vote.
pub(crate) fn fit_gate(
    tree: &Tree,
    calib: (&[HeadOutputs], &[Vec<Neighbor>], &[usize]),
    g: &GateSet<'_>,
    (mix, tau, ltau): ([f32; 4], f32, f32),
    knn_k: usize,
    allow: [bool; 4],
) -> (Option<f32>, [f32; 4]) {
    let depth = tree.depth_count();
    let items: Vec<(&HeadOutputs, &[Neighbor], usize)> = calib
        .0
        .iter()
        .zip(calib.1)
        .zip(calib.2)
        .chain(g.heads.iter().zip(g.neighbors).zip(g.gold))
        .map(|((h, n), &gd)| (h, n.as_slice(), gd))
        .collect();
    let votes: Vec<Votes> = items
        .par_iter()
        .map(|(h, n, _)| votes_of(tree, h, Some(n), knn_k, tau, ltau))
        .collect();
    let tops: Vec<Option<f32>> = items.iter().map(|(_, n, _)| top_sim(n)).collect();
    // Both sets count equally, whatever their sizes: the loan texts the service is for and the
    // catalogue-like texts the gate is about.
    let n_calib = calib.0.len();
    let top1_of = |cal: &Calibration, range: std::ops::Range<usize>| -> f64 {
        let n = range.len();
        let ok: usize = range
            .into_par_iter()
            .map(|i| {
                let (h, _, gd) = items[i];
                let d = combine(tree, h, &votes[i].0, &votes[i].1, cal, tops[i]);
                let dec = decide(tree, &d, cal, 0, None);
                usize::from(
                    correct_at(tree, &dec.path, tree.nodes[gd].depth, gd)
                        || dec.path.is_empty() && Some(gd) == tree.vague(),
                )
            })
            .sum();
        ok as f64 / n.max(1) as f64
    };
    let top1 = |cal: &Calibration| -> f64 {
        (top1_of(cal, 0..n_calib) + top1_of(cal, n_calib..items.len())) / 2.0
    };
    let plain = Calibration::neutral(mix, tau, ltau, depth);
    let mut best = (top1(&plain), None, [0.0; 4]);
    let no_gate = best.0;
    for s0 in [0.86f32, 0.88, 0.9, 0.92, 0.94, 0.96] {
        let idx: Vec<usize> = (0..items.len())
            .filter(|&i| tops[i].is_some_and(|t| t >= s0))
            .collect();
        if idx.len() < 50 {
            continue;
        }
        let mut gp: Vec<Vec<[Option<f32>; 4]>> = vec![Vec::new(); depth];
        for &i in &idx {
            let (h, _, gd) = items[i];
            let (k, l) = &votes[i];
            for (d, p) in gold_positions(tree, gd).into_iter().enumerate() {
                let Some(p) = p else { continue };
                gp[d].push([
                    h.flat.as_ref().map(|f| f[d][p]),
                    h.level.as_ref().map(|x| x[d][p]),
                    k[d].as_ref().map(|v| v[p]),
                    l[d].as_ref().map(|v| v[p]),
                ]);
            }
        }
        let near_mix = grid_best(&gp, allow);
        let cal = Calibration {
            near_sim: Some(s0),
            near_mix,
            ..plain.clone()
        };
        let score = top1(&cal);
        if score > best.0 + 0.002 {
            best = (score, Some(s0), near_mix);
        }
    }
    tracing::info!(
        no_gate,
        with_gate = best.0,
        near_sim = ?best.1,
        near_mix = ?best.2,
        union = items.len(),
        "similarity gate (leaf top-1 on calibration + gate set)"
    );
    (best.1, best.2)
}
