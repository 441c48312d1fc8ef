//! The candidate re-ranker: a learned choice among the classes the components already propose.
//!
//! The mixture averages each level's components with one weight per component and takes the
//! greedy path down the levels. On loan text that throws away evidence: a section head sure of
//! 制造业 outvotes a class head, a neighbour vote and a lexical vote that agree on 7486 土地规划服务
//! (the object's producer wins because manufacturing spreads its mass over 600 classes). The
//! re-ranker scores each candidate class (the mixture's top 20 and each component's top 8) with
//! a linear model over, per level, the log-probability each component and the mixture give the
//! candidate's ancestor, plus how close the nearest labeled exemplar under the candidate (its
//! division, its section) is to the nearest one overall and the lexical similarity of the
//! candidate's own exemplars and the role cues ([`crate::role_cues`]: does the text name the
//! candidate, or a class of its division, as the borrower; does it name what the candidate's
//! borrowers buy). A softmax over the candidates gives a distribution over classes;
//! summed up the tree it replaces the mixture's level distributions (the vague pseudo-class
//! keeps the mixture's probability), and the path rule, the step confidence and the thresholds
//! are fitted on it as before.
//!
//! It is fitted on the labeled loan texts of the calibration (cross-fitted: the path rule, the
//! step model and the thresholds see out-of-fold distributions) and kept only when its
//! out-of-fold path beats the mixture's. What it adds on the loan dev set's test half
//! (`touxiang train --recalibrate` then `touxiang eval`) is in the README.

use serde::{Deserialize, Serialize};

use crate::classifier::{HeadOutputs, LevelDists, Neighbor};
use crate::tree::Tree;

/// Candidates from the mixture at the finest level.
const FROM_MIXTURE: usize = 20;
/// Candidates from each component at the finest level.
const FROM_COMPONENT: usize = 8;
/// Probability the re-ranked distribution leaves to the mixture (no class is impossible).
const KEEP_MIXTURE: f32 = 0.01;
/// Floor inside the logarithms of the features.
const LOG_FLOOR: f32 = 1e-4;
/// Similarity gap given to a candidate with no labeled neighbour under it.
const NO_NEIGHBOR_GAP: f32 = 0.2;

/// Features per candidate for a tree of `depth` levels.
pub fn feature_count(depth: usize) -> usize {
    5 * depth + 7
}

/// A matched term's length as a feature (2 characters = 0.5, capped at 8).
fn cue(chars: usize) -> f32 {
    chars.min(8) as f32 / 4.0
}

/// Linear scores over candidate features (weights on the raw features).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reranker {
    pub weights: Vec<f32>,
}

/// What the re-ranker reads for one text.
pub(crate) struct RerankInput<'a> {
    pub heads: &'a HeadOutputs,
    pub knn: &'a [Option<Vec<f32>>],
    pub lexical: &'a [Option<Vec<f32>>],
    /// The mixture's (tempered) level distributions.
    pub mixed: &'a LevelDists,
    pub neighbors: &'a [Neighbor],
}

/// Candidate leaves of one text and their features.
pub(crate) struct Candidates {
    pub leaves: Vec<usize>,
    pub features: Vec<Vec<f32>>,
}

fn top_leaves(tree: &Tree, score: impl Fn(usize) -> f32, k: usize, out: &mut Vec<usize>) {
    let mut all: Vec<(usize, f32)> = tree
        .leaves()
        .iter()
        .filter(|&&l| Some(l) != tree.vague())
        .map(|&l| (l, score(l)))
        .filter(|(_, s)| *s > 0.0)
        .collect();
    let k = k.min(all.len());
    if k == 0 {
        return;
    }
    all.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    for (l, _) in all {
        if !out.contains(&l) {
            out.push(l);
        }
    }
}

/// The candidates of one text: the mixture's top leaves, then each component's.
pub(crate) fn candidates(tree: &Tree, x: &RerankInput<'_>) -> Candidates {
    let depth = tree.depth_count();
    let comps: [Option<&LevelDists>; 2] = [x.heads.flat.as_ref(), x.heads.level.as_ref()];
    let value = |d: usize, c: usize, pos: usize| -> f32 {
        match c {
            0 | 1 => comps[c].and_then(|v| v.get(d)).map_or(0.0, |v| v[pos]),
            2 => x
                .knn
                .get(d)
                .and_then(|v| v.as_ref())
                .map_or(0.0, |v| v[pos]),
            3 => x
                .lexical
                .get(d)
                .and_then(|v| v.as_ref())
                .map_or(0.0, |v| v[pos]),
            _ => x.mixed[d][pos],
        }
    };
    // a leaf's own level
    let leaf_value = |c: usize, l: usize| value(tree.nodes[l].depth, c, tree.pos_in_level(l));
    let mut leaves = Vec::new();
    top_leaves(tree, |l| leaf_value(4, l), FROM_MIXTURE, &mut leaves);
    for c in 0..4 {
        top_leaves(tree, |l| leaf_value(c, l), FROM_COMPONENT, &mut leaves);
    }
    let top_sim = crate::gate::top_sim(x.neighbors);
    let nb_nodes: Vec<(usize, f32)> = x
        .neighbors
        .iter()
        .filter_map(|n| tree.find(&n.code).map(|i| (i, n.similarity)))
        .collect();
    let features = leaves
        .iter()
        .map(|&leaf| {
            let mut f = Vec::with_capacity(feature_count(depth));
            let own = tree.nodes[leaf].depth;
            for d in 0..depth {
                // levels below a shallow leaf repeat its own
                let a = tree.ancestor_at(leaf, d.min(own)).unwrap_or(leaf);
                let pos = tree.pos_in_level(a);
                let dd = tree.nodes[a].depth;
                for c in 0..5 {
                    f.push(value(dd, c, pos).max(0.0).max(LOG_FLOOR).ln());
                }
            }
            for d in [own, 1.min(own), 0] {
                let a = tree.ancestor_at(leaf, d);
                let best = nb_nodes
                    .iter()
                    .filter(|(i, _)| a.is_some() && tree.ancestor_at(*i, d) == a)
                    .map(|(_, s)| *s)
                    .fold(f32::NEG_INFINITY, f32::max);
                f.push(match top_sim {
                    Some(top) if best.is_finite() => best - top,
                    _ => -NO_NEIGHBOR_GAP,
                });
            }
            let code = &tree.nodes[leaf].code;
            f.push(
                x.heads
                    .lexical
                    .iter()
                    .filter(|n| &n.code == code)
                    .map(|n| n.similarity)
                    .fold(0f32, f32::max),
            );
            // role cues: the text names the candidate (or a class of its division) as the
            // borrower, or names what the candidate's borrowers buy
            let roles = &x.heads.roles;
            f.push(cue(roles.actor(leaf)));
            f.push(cue(match tree.ancestor_at(leaf, 1.min(own)) {
                Some(a) => roles.actor_under(tree, a, 1.min(own)),
                None => 0,
            }));
            f.push(cue(roles.input(leaf)));
            f
        })
        .collect();
    Candidates { leaves, features }
}

/// Softmax of the linear scores of the candidates.
fn softmax_scores(w: &[f32], feats: &[Vec<f32>]) -> Vec<f32> {
    let s: Vec<f32> = feats
        .iter()
        .map(|f| f.iter().zip(w).map(|(a, b)| a * b).sum())
        .collect();
    let m = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = s.iter().map(|v| (v - m).exp()).collect();
    let z: f32 = e.iter().sum();
    e.into_iter().map(|v| v / z).collect()
}

/// Level distributions from a distribution over candidate leaves: each candidate's probability
/// summed up its ancestors, the vague pseudo-class keeping the mixture's probability, and
/// [`KEEP_MIXTURE`] of the mixture blended in.
fn to_levels(tree: &Tree, mixed: &LevelDists, leaves: &[usize], q: &[f32]) -> LevelDists {
    let depth = tree.depth_count();
    let vague = tree
        .vague()
        .map(|v| (v, tree.nodes[v].depth, tree.pos_in_level(v)));
    let p_vague = vague.map_or(0.0, |(_, d, p)| mixed[d][p]);
    let mut out: LevelDists = (0..depth)
        .map(|d| vec![0f32; tree.level(d).len()])
        .collect();
    for (&leaf, &ql) in leaves.iter().zip(q) {
        for (d, dist) in out.iter_mut().enumerate() {
            if let Some(a) = tree.ancestor_at(leaf, d) {
                dist[tree.pos_in_level(a)] += ql;
            }
        }
    }
    for (d, dist) in out.iter_mut().enumerate() {
        let at_vague_level = vague.is_some_and(|(_, vd, _)| vd == d);
        let share = if at_vague_level { 1.0 - p_vague } else { 1.0 };
        for (o, m) in dist.iter_mut().zip(&mixed[d]) {
            *o = (1.0 - KEEP_MIXTURE) * share * *o + KEEP_MIXTURE * m;
        }
        if let (true, Some((_, _, p))) = (at_vague_level, vague) {
            dist[p] += (1.0 - KEEP_MIXTURE) * p_vague;
        }
    }
    out
}

impl Reranker {
    /// The re-ranked level distributions of one text.
    pub(crate) fn apply(&self, tree: &Tree, x: &RerankInput<'_>) -> LevelDists {
        let c = candidates(tree, x);
        if c.leaves.is_empty() || self.weights.len() != feature_count(tree.depth_count()) {
            return x.mixed.clone();
        }
        let q = softmax_scores(&self.weights, &c.features);
        to_levels(tree, x.mixed, &c.leaves, &q)
    }
}

/// Softmax regression over candidate sets (`gold` = index of the right candidate), L2 on the
/// standardised weights, Adam; returns weights on the raw features. Rows whose gold class is not
/// among the candidates do not train.
pub(crate) fn fit(rows: &[(&Candidates, Option<usize>)], dim: usize, l2: f64) -> Reranker {
    let train: Vec<(&Candidates, usize)> = rows
        .iter()
        .filter_map(|(c, g)| g.map(|g| (*c, g)))
        .collect();
    let n = train.len();
    if n == 0 {
        return Reranker {
            weights: vec![0.0; dim],
        };
    }
    let all: Vec<&[f32]> = train
        .iter()
        .flat_map(|(c, _)| c.features.iter().map(Vec::as_slice))
        .collect();
    let (mean, sd) = crate::confidence::moments(&all, dim);
    let z: Vec<(Vec<Vec<f64>>, usize)> = train
        .iter()
        .map(|(c, g)| {
            let x = c
                .features
                .iter()
                .map(|f| crate::confidence::standardize(f, &mean, &sd))
                .collect();
            (x, *g)
        })
        .collect();
    let mut w = vec![0f64; dim];
    let (mut m, mut v) = (vec![0f64; dim], vec![0f64; dim]);
    let (b1, b2, lr) = (0.9f64, 0.999f64, 0.1f64);
    for t in 1..=300 {
        let mut g: Vec<f64> = w.iter().map(|wj| l2 * wj / n as f64).collect();
        for (x, gold) in &z {
            let s: Vec<f64> = x
                .iter()
                .map(|f| f.iter().zip(&w).map(|(a, b)| a * b).sum())
                .collect();
            let mx = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|v| (v - mx).exp()).collect();
            let zs: f64 = e.iter().sum();
            for (k, f) in x.iter().enumerate() {
                let p = e[k] / zs - f64::from(u8::from(k == *gold));
                for j in 0..dim {
                    g[j] += p * f[j] / n as f64;
                }
            }
        }
        for j in 0..dim {
            m[j] = b1 * m[j] + (1.0 - b1) * g[j];
            v[j] = b2 * v[j] + (1.0 - b2) * g[j] * g[j];
            let mh = m[j] / (1.0 - b1.powi(t));
            let vh = v[j] / (1.0 - b2.powi(t));
            w[j] -= lr * mh / (vh.sqrt() + 1e-8);
        }
    }
    // the mean shift is a per-text constant under the softmax: only the scale goes into the
    // raw-feature weights
    Reranker {
        weights: (0..dim).map(|j| (w[j] / sd[j]) as f32).collect(),
    }
}

/// Folds of the cross-fit.
const FOLDS: usize = 5;
/// L2 strength (on standardised features, per example).
const L2: f64 = 3.0;

/// Cross-fit the re-ranker on labeled texts: the model fitted on all of them and the
/// out-of-fold re-ranked distributions of each (the fold of text `i` is `i % FOLDS`).
pub(crate) fn cross_fit(
    tree: &Tree,
    inputs: &[RerankInput<'_>],
    gold: &[usize],
) -> (Reranker, Vec<LevelDists>) {
    let dim = feature_count(tree.depth_count());
    let cands: Vec<Candidates> = inputs.iter().map(|x| candidates(tree, x)).collect();
    let rows: Vec<(&Candidates, Option<usize>)> = cands
        .iter()
        .zip(gold)
        .map(|(c, g)| (c, c.leaves.iter().position(|l| l == g)))
        .collect();
    let mut oof: Vec<LevelDists> = inputs.iter().map(|x| x.mixed.clone()).collect();
    for k in 0..FOLDS {
        let train: Vec<(&Candidates, Option<usize>)> = rows
            .iter()
            .enumerate()
            .filter(|(i, _)| i % FOLDS != k)
            .map(|(_, r)| *r)
            .collect();
        let r = fit(&train, dim, L2);
        for (i, x) in inputs.iter().enumerate().filter(|(i, _)| i % FOLDS == k) {
            if !cands[i].leaves.is_empty() {
                let q = softmax_scores(&r.weights, &cands[i].features);
                oof[i] = to_levels(tree, x.mixed, &cands[i].leaves, &q);
            }
        }
    }
    (fit(&rows, dim, L2), oof)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{small_tree as tree, VAGUE_CODE};

    /// Level distributions with `leaves` probabilities summed up the tree, `vague` at the top.
    fn dists(t: &Tree, leaves: &[(&str, f32)], vague: f32) -> LevelDists {
        let mut d: LevelDists = (0..t.depth_count())
            .map(|l| vec![0.0; t.level(l).len()])
            .collect();
        for (code, p) in leaves {
            let n = t.find(code).unwrap();
            for (l, dl) in d.iter_mut().enumerate() {
                let a = t.ancestor_at(n, l).unwrap();
                // only the top level has the vague class
                dl[t.pos_in_level(a)] += if l == 0 { p * (1.0 - vague) } else { *p };
            }
        }
        let v = t.find(VAGUE_CODE).unwrap();
        d[0][t.pos_in_level(v)] = vague;
        d
    }

    fn heads() -> HeadOutputs {
        HeadOutputs {
            flat: None,
            level: None,
            lexical: Vec::new(),
            roles: Default::default(),
        }
    }

    #[test]
    fn reranked_levels_are_distributions_and_keep_the_vague_mass() {
        let t = tree();
        let mixed = dists(&t, &[("a", 0.5), ("b", 0.3), ("c", 0.2)], 0.3);
        let h = heads();
        let (none, no_lex) = (vec![None; 3], vec![None; 3]);
        let x = RerankInput {
            heads: &h,
            knn: &none,
            lexical: &no_lex,
            mixed: &mixed,
            neighbors: &[],
        };
        let c = candidates(&t, &x);
        assert_eq!(
            c.leaves.len(),
            3,
            "every leaf with mass, never the vague class"
        );
        assert!(c.features.iter().all(|f| f.len() == feature_count(3)));
        // weights that prefer c whatever the mixture says
        let mut w = vec![0.0; feature_count(3)];
        w[4] = -5.0; // the mixture's log-probability at the top level
        let r = Reranker { weights: w };
        let out = r.apply(&t, &x);
        for (l, d) in out.iter().enumerate() {
            let s: f32 = d.iter().sum();
            assert!((s - 1.0).abs() < 1e-4, "level {l} sums to {s}");
        }
        let v = t.pos_in_level(t.find(VAGUE_CODE).unwrap());
        assert!(
            (out[0][v] - 0.3).abs() < 1e-4,
            "vague keeps the mixture's 0.3"
        );
        let path = crate::classifier::greedy_path(&t, &out);
        assert_eq!(t.nodes[path.last().unwrap().0].code, "c");
    }

    #[test]
    fn cross_fit_learns_to_follow_the_component_that_is_right() {
        // the mixture prefers the wrong class 60 % of the time; the neighbour vote is always
        // right: out of fold, the re-ranker's path must be right far more often
        let t = tree();
        let (mut mixed, mut knn, mut gold) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..200 {
            let g = ["a", "c"][i % 2];
            let wrong = ["c", "b"][i % 2];
            let m = if i % 5 < 3 {
                dists(&t, &[(wrong, 0.6), (g, 0.4)], 0.0)
            } else {
                dists(&t, &[(g, 0.6), (wrong, 0.4)], 0.0)
            };
            let k = dists(&t, &[(g, 0.7), (wrong, 0.3)], 0.0);
            mixed.push(m);
            knn.push(k.into_iter().map(Some).collect::<Vec<_>>());
            gold.push(t.find(g).unwrap());
        }
        let h = heads();
        let none = vec![None; 3];
        let inputs: Vec<RerankInput<'_>> = (0..200)
            .map(|i| RerankInput {
                heads: &h,
                knn: &knn[i],
                lexical: &none,
                mixed: &mixed[i],
                neighbors: &[],
            })
            .collect();
        let (model, oof) = cross_fit(&t, &inputs, &gold);
        let right = |d: &[LevelDists]| {
            d.iter()
                .zip(&gold)
                .filter(|(x, g)| {
                    crate::classifier::greedy_path(&t, x).last().map(|p| p.0) == Some(**g)
                })
                .count()
        };
        assert_eq!(right(&mixed), 80);
        assert!(right(&oof) >= 190, "out of fold: {}", right(&oof));
        // the fitted model trusts the neighbour vote more than the mixture at the finest level
        let (knn_leaf, mixed_leaf) = (2 * 5 + 2, 2 * 5 + 4);
        assert!(model.weights[knn_leaf] > model.weights[mixed_leaf]);
    }
}
