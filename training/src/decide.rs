//! The decision rule shared by the runtime classifier and calibration: neighbour votes, the
//! mixture and temperature scaling, the consistent path (greedy or joint), the exact-match rule,
//! abstention and the auto/review decision.

use touxiang_datasets::Decision;

use crate::classifier::{Calibration, Decided, HeadOutputs, LevelDists, Neighbor};
use crate::confidence::Evidence;
use crate::tree::Tree;

/// kNN vote (see [`Classifier::knn_vote`]).
pub(crate) fn knn_vote(
    tree: &Tree,
    neighbors: &[Neighbor],
    k: usize,
    tau: f32,
) -> Vec<Option<Vec<f32>>> {
    let depth = tree.depth_count();
    let mut nb: Vec<(&Neighbor, usize)> = neighbors
        .iter()
        .filter(|n| n.similarity.is_finite())
        .filter_map(|n| tree.find(&n.code).map(|i| (n, i)))
        .collect();
    nb.sort_by(|a, b| b.0.similarity.total_cmp(&a.0.similarity));
    nb.truncate(k);
    let Some(max_sim) = nb.first().map(|n| n.0.similarity) else {
        return vec![None; depth];
    };
    let tau = tau.max(1e-4);
    (0..depth)
        .map(|d| {
            let mut v = vec![0f32; tree.level(d).len()];
            let mut any = false;
            for (n, i) in &nb {
                if let Some(a) = tree.ancestor_at(*i, d) {
                    v[tree.pos_in_level(a)] += ((n.similarity - max_sim) / tau).exp();
                    any = true;
                }
            }
            if !any {
                return None;
            }
            let s: f32 = v.iter().sum();
            v.iter_mut().for_each(|x| *x /= s);
            Some(v)
        })
        .collect()
}

/// Mixture of the available components at each level, then temperature scaling.
pub(crate) fn combine(
    tree: &Tree,
    heads: &HeadOutputs,
    knn: &[Option<Vec<f32>>],
    lexical: &[Option<Vec<f32>>],
    cal: &Calibration,
    top_sim: Option<f32>,
) -> LevelDists {
    let mix = cal.mix_for(top_sim);
    (0..tree.depth_count())
        .map(|d| {
            let n = tree.level(d).len();
            let mut raw = vec![0f32; n];
            let mut wsum = 0f32;
            let parts: [(f32, Option<&Vec<f32>>); 4] = [
                (mix[0], heads.flat.as_ref().map(|f| &f[d])),
                (mix[1], heads.level.as_ref().map(|l| &l[d])),
                (mix[2], knn.get(d).and_then(|k| k.as_ref())),
                (mix[3], lexical.get(d).and_then(|k| k.as_ref())),
            ];
            for (w, p) in parts {
                if let Some(p) = p {
                    if w > 0.0 {
                        wsum += w;
                        raw.iter_mut().zip(p).for_each(|(r, x)| *r += w * x);
                    }
                }
            }
            if wsum <= 0.0 {
                // no component with weight: fall back to whatever head exists, equally weighted
                let avail: Vec<&Vec<f32>> = parts.iter().filter_map(|(_, p)| *p).collect();
                for p in &avail {
                    raw.iter_mut().zip(p.iter()).for_each(|(r, x)| *r += x);
                }
                wsum = avail.len().max(1) as f32;
            }
            let t = cal.temperature.get(d).copied().unwrap_or(1.0).max(1e-3);
            temper(&raw.iter().map(|r| r / wsum).collect::<Vec<_>>(), t)
        })
        .collect()
}

/// `p^(1/t)` renormalised (computed in log space); zero stays zero.
pub(crate) fn temper(p: &[f32], t: f32) -> Vec<f32> {
    let logs: Vec<f32> = p
        .iter()
        .map(|x| {
            if *x > 0.0 {
                x.ln() / t
            } else {
                f32::NEG_INFINITY
            }
        })
        .collect();
    let m = logs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !m.is_finite() {
        return vec![1.0 / p.len().max(1) as f32; p.len()];
    }
    let e: Vec<f32> = logs.iter().map(|l| (l - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.into_iter().map(|x| x / s).collect()
}

/// Greedy consistent path + abstention + decision.
pub(crate) fn greedy_path(tree: &Tree, dists: &LevelDists) -> Vec<(usize, f32)> {
    let mut path = Vec::new();
    let argmax = |cands: &mut dyn Iterator<Item = usize>, d: usize| -> Option<(usize, f32)> {
        cands
            .map(|i| (i, dists[d][tree.pos_in_level(i)]))
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
    };
    let Some((top, c0)) = argmax(&mut tree.level(0).iter().copied(), 0) else {
        return path;
    };
    if Some(top) == tree.vague() {
        return path;
    }
    path.push((top, c0));
    let mut cur = top;
    let mut conf = c0;
    while !tree.children(cur).is_empty() {
        let d = tree.nodes[cur].depth + 1;
        let Some((nxt, c)) = argmax(&mut tree.children(cur).iter().copied(), d) else {
            break;
        };
        conf = conf.min(c);
        path.push((nxt, conf));
        cur = nxt;
    }
    path
}

/// Joint consistent path: the non-vague leaf with the largest product of its ancestors'
/// probabilities over all levels (a mistake at a shallow level can be outvoted by the levels
/// below).
pub(crate) fn joint_path(tree: &Tree, dists: &LevelDists) -> Vec<(usize, f32)> {
    let score = |leaf: usize| -> f32 {
        (0..=tree.nodes[leaf].depth)
            .filter_map(|d| tree.ancestor_at(leaf, d))
            .map(|a| {
                dists[tree.nodes[a].depth][tree.pos_in_level(a)]
                    .max(1e-12)
                    .ln()
            })
            .sum()
    };
    path_to_best_leaf(tree, dists, tree.leaves().iter().copied(), score)
}

/// Leaf path: the leaf most probable at the finest level, and its ancestors (a leaf the levels
/// above spread their mass away from can still win).
pub(crate) fn leaf_path(tree: &Tree, dists: &LevelDists) -> Vec<(usize, f32)> {
    let last = tree.depth_count() - 1;
    let leaves = tree
        .leaves()
        .iter()
        .copied()
        .filter(|&l| tree.nodes[l].depth == last);
    path_to_best_leaf(tree, dists, leaves, |l| dists[last][tree.pos_in_level(l)])
}

/// The path to the non-vague leaf of `leaves` with the best `score`; empty when the top level's
/// argmax is the vague pseudo-class. Step confidences as in [`greedy_path`].
fn path_to_best_leaf(
    tree: &Tree,
    dists: &LevelDists,
    leaves: impl Iterator<Item = usize>,
    score: impl Fn(usize) -> f32,
) -> Vec<(usize, f32)> {
    let top = tree.level(0).iter().copied().max_by(|&a, &b| {
        let (pa, pb) = (
            dists[0][tree.pos_in_level(a)],
            dists[0][tree.pos_in_level(b)],
        );
        pa.total_cmp(&pb).then(b.cmp(&a))
    });
    if top.is_none() || top == tree.vague() {
        return Vec::new();
    }
    let Some(best) = leaves
        .filter(|&l| Some(l) != tree.vague())
        .map(|l| (l, score(l)))
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
    else {
        return Vec::new();
    };
    capped_path(tree, dists, best.0)
}

/// Root-first path to `leaf` with each step's probability capped by its parent's (confidence
/// never increases with depth).
pub(crate) fn capped_path(tree: &Tree, dists: &LevelDists, leaf: usize) -> Vec<(usize, f32)> {
    let mut conf = f32::INFINITY;
    tree.path(leaf)
        .into_iter()
        .map(|n| {
            conf = conf.min(dists[tree.nodes[n].depth][tree.pos_in_level(n)]);
            (n, conf)
        })
        .collect()
}

/// The consistent path of a calibration's decoding rule.
pub(crate) fn path_for(tree: &Tree, dists: &LevelDists, cal: &Calibration) -> Vec<(usize, f32)> {
    if cal.leaf_path {
        leaf_path(tree, dists)
    } else if cal.joint_path {
        joint_path(tree, dists)
    } else {
        greedy_path(tree, dists)
    }
}

/// The decision rule: the calibration's path, its step confidences (re-scored by the learned
/// step model when the calibration has one and `ev` is given), abstention depth and decision.
pub(crate) fn decide(
    tree: &Tree,
    dists: &LevelDists,
    cal: &Calibration,
    auto_min_depth: usize,
    ev: Option<&Evidence<'_>>,
) -> Decided {
    let mut path = path_for(tree, dists, cal);
    if let (Some(m), Some(ev)) = (&cal.step_model, ev) {
        m.rescore(tree, dists, ev, &mut path);
    }
    let mut label_depth = None;
    for (d, &(_, c)) in path.iter().enumerate() {
        let t = cal
            .level_thresholds
            .get(d)
            .copied()
            .unwrap_or(f32::INFINITY);
        if c >= t {
            label_depth = Some(d);
        } else {
            break;
        }
    }
    let decision = match label_depth {
        Some(d) if d >= auto_min_depth && path[d].1 >= cal.auto_threshold => Decision::Auto,
        _ => Decision::Review,
    };
    Decided {
        path,
        label_depth,
        decision,
    }
}

/// Similarity from which a labeled neighbour counts as the same text (cosine of e5 embeddings;
/// identical texts give 1.0, a changed character or punctuation ≈ 0.97–0.99).
pub const EXACT_SIMILARITY: f32 = 0.99;

/// Share of probability the exact-match rule leaves to the model's own distribution.
const EXACT_KEEP: f32 = 0.02;

/// The code of the labeled text this one repeats: every neighbour at [`EXACT_SIMILARITY`] or
/// above names the same code (a text labeled two ways has no exact answer). Reviewed labels are
/// preferred over seed exemplars when both are present.
pub(crate) fn exact_match<'a>(tree: &Tree, neighbors: &'a [Neighbor]) -> Option<&'a Neighbor> {
    let near: Vec<&Neighbor> = neighbors
        .iter()
        .filter(|n| n.similarity >= EXACT_SIMILARITY && tree.find(&n.code).is_some())
        .collect();
    let reviewed: Vec<&Neighbor> = near
        .iter()
        .copied()
        .filter(|n| n.source == "reviewed")
        .collect();
    let pool = if reviewed.is_empty() { near } else { reviewed };
    let first = *pool.first()?;
    pool.iter().all(|n| n.code == first.code).then_some(first)
}

/// The exact-match rule: an already-labeled text wins. Each level's distribution puts
/// `1 − EXACT_KEEP` on the matched code's ancestor at that level; levels below the matched code
/// keep the model's distribution.
pub(crate) fn apply_exact(tree: &Tree, dists: &mut LevelDists, code: &str) {
    let Some(node) = tree.find(code) else { return };
    for (d, dist) in dists.iter_mut().enumerate() {
        let Some(a) = tree.ancestor_at(node, d) else {
            continue;
        };
        dist.iter_mut().for_each(|p| *p *= EXACT_KEEP);
        dist[tree.pos_in_level(a)] += 1.0 - EXACT_KEEP;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classifier::Calibration;
    use crate::tree::{small_tree, VAGUE_CODE};

    fn dists(tree: &Tree, probs: &[(&str, f32)]) -> LevelDists {
        let mut d: LevelDists = (0..tree.depth_count())
            .map(|l| vec![0.0; tree.level(l).len()])
            .collect();
        for (code, p) in probs {
            let i = tree.find(code).unwrap();
            d[tree.nodes[i].depth][tree.pos_in_level(i)] = *p;
        }
        d
    }

    fn codes(tree: &Tree, path: &[(usize, f32)]) -> Vec<String> {
        path.iter()
            .map(|(i, _)| tree.nodes[*i].code.clone())
            .collect()
    }

    #[test]
    fn the_step_model_rescores_confidences_capped_by_the_parent() {
        use crate::confidence::{Evidence, StepModel, FEATURES};
        let t = small_tree();
        let d = dists(
            &t,
            &[("A", 0.6), ("B", 0.4), ("A1", 0.9), ("a", 0.7), ("b", 0.3)],
        );
        let heads = HeadOutputs {
            flat: None,
            level: None,
            lexical: Vec::new(),
            roles: Default::default(),
        };
        // the kNN vote agrees with the path at every level
        let knn = d.iter().map(|v| Some(v.clone())).collect::<Vec<_>>();
        let lex = vec![None; 3];
        let ev = Evidence {
            heads: &heads,
            knn: &knn,
            lexical: &lex,
            top_sim: Some(0.9),
        };
        let mut cal = Calibration::neutral([1.0, 0.0, 0.0, 0.0], 0.05, 0.05, 3);
        cal.level_thresholds = vec![0.95; 3];
        let plain = decide(&t, &d, &cal, 1, Some(&ev));
        assert_eq!(plain.label_depth, None, "0.6 at the top is below 0.95");
        // a model that trusts kNN agreement (feature 7): ≈0.99 at levels 0 and 2, ≈0.5 at 1
        let mut w = vec![vec![0f32; FEATURES + 1]; 3];
        w[0][7] = 5.0;
        w[2][7] = 5.0;
        cal.step_model = Some(StepModel { weights: w });
        let dec = decide(&t, &d, &cal, 1, Some(&ev));
        assert_eq!(codes(&t, &dec.path), ["A", "A1", "a"]);
        assert!(dec.path[0].1 > 0.99);
        assert!((dec.path[1].1 - 0.5).abs() < 1e-6);
        assert!(dec.path[2].1 <= dec.path[1].1, "capped by the parent");
        assert_eq!(dec.label_depth, Some(0));
        // without evidence (an exact match) the tempered probabilities stay
        assert_eq!(decide(&t, &d, &cal, 1, None).path, plain.path);
    }

    #[test]
    fn joint_path_lets_deeper_levels_outvote_a_close_top_level() {
        let t = small_tree();
        // the top level slightly prefers A, but both deeper levels are sure of B's subtree
        let d = dists(
            &t,
            &[
                ("A", 0.52),
                ("B", 0.46),
                ("A1", 0.1),
                ("B1", 0.9),
                ("a", 0.05),
                ("b", 0.05),
                ("c", 0.9),
            ],
        );
        assert_eq!(codes(&t, &greedy_path(&t, &d)), ["A", "A1", "a"]);
        let j = joint_path(&t, &d);
        assert_eq!(codes(&t, &j), ["B", "B1", "c"]);
        // step confidences never increase with depth
        assert_eq!(
            j.iter().map(|s| s.1).collect::<Vec<_>>(),
            [0.46, 0.46, 0.46]
        );
        // when the levels agree both rules give the same path
        let d = dists(&t, &[("A", 0.9), ("A1", 0.9), ("a", 0.3), ("b", 0.6)]);
        assert_eq!(joint_path(&t, &d), greedy_path(&t, &d));
        // vague on top: no path under either rule
        let d = dists(
            &t,
            &[(VAGUE_CODE, 0.6), ("A", 0.4), ("A1", 1.0), ("a", 1.0)],
        );
        assert!(joint_path(&t, &d).is_empty());
        let cal = Calibration {
            mix: [1.0, 0.0, 0.0, 0.0],
            knn_tau: 0.05,
            lexical_tau: 0.05,
            temperature: vec![1.0; 3],
            level_thresholds: vec![0.0; 3],
            auto_threshold: 0.0,
            joint_path: true,
            leaf_path: false,
            near_sim: None,
            near_mix: [0.0; 4],
            step_model: None,
            rerank: None,
        };
        assert!(path_for(&t, &d, &cal).is_empty());
    }

    #[test]
    fn calibration_metadata_without_lexical_fields_still_reads() {
        let old = r#"{"mix":[0.4,0.3,0.3],"knn_tau":0.02,"temperature":[1.0],
            "level_thresholds":[0.5],"auto_threshold":0.9}"#;
        let c: Calibration = serde_json::from_str(old).unwrap();
        assert_eq!(c.mix, [0.4, 0.3, 0.3, 0.0]);
        assert!(!c.joint_path);
        let bad = old.replace("[0.4,0.3,0.3]", "[1.0]");
        assert!(serde_json::from_str::<Calibration>(&bad).is_err());
    }

    fn neighbor(text: &str, code: &str, sim: f32, source: &str) -> Neighbor {
        Neighbor {
            text: text.into(),
            code: code.into(),
            similarity: sim,
            source: source.into(),
        }
    }

    fn classifier(tree: Tree, thresholds: Vec<f32>) -> crate::classifier::Classifier {
        let cal = Calibration {
            mix: [1.0, 0.0, 0.0, 0.0],
            knn_tau: 0.05,
            lexical_tau: 0.05,
            temperature: vec![1.0; 3],
            level_thresholds: thresholds,
            auto_threshold: 0.9,
            joint_path: false,
            leaf_path: false,
            near_sim: None,
            near_mix: [0.0; 4],
            step_model: None,
            rerank: None,
        };
        crate::classifier::Classifier::new(
            tree,
            None,
            Vec::new(),
            cal.clone(),
            cal,
            10,
            1,
            "v".into(),
            "enc".into(),
            4,
        )
    }

    #[test]
    fn an_exact_match_of_a_labeled_text_wins_and_reviewed_labels_first() {
        let t = small_tree();
        // the model leans to A/a; the same text was labeled c
        let heads = HeadOutputs {
            flat: Some(dists(
                &t,
                &[
                    ("A", 0.8),
                    ("B", 0.2),
                    ("A1", 0.8),
                    ("B1", 0.2),
                    ("a", 0.8),
                    ("c", 0.2),
                ],
            )),
            level: None,
            lexical: Vec::new(),
            roles: Default::default(),
        };
        let clf = classifier(t, vec![0.5, 0.5, 0.5]);
        let opts = crate::classifier::ClassifyOptions::default();
        let exact = [
            neighbor("紧固件制造", "c", 1.0, "seed"),
            neighbor("紧固件加工", "a", 0.93, "seed"),
        ];
        let r = clf.classify_with_heads("紧固件制造", &heads, &exact, &opts);
        let label = r.label.expect("a label");
        assert_eq!((label.code.as_str(), label.level.as_str()), ("c", "class"));
        assert!(r.confidence >= 0.98, "{}", r.confidence);
        assert_eq!(r.decision, Decision::Auto);
        // no neighbour close enough: the model's answer stands
        let near = [neighbor("紧固件制造", "c", 0.95, "seed")];
        let r = clf.classify_with_heads("紧固件制造", &heads, &near, &opts);
        assert_eq!(r.guess.unwrap().code, "a");
        // a reviewed label beats a seed exemplar of the same text; two reviewers disagreeing
        // leave it to the model
        let both = [
            neighbor("紧固件制造", "a", 1.0, "seed"),
            neighbor("紧固件制造", "c", 0.999, "reviewed"),
        ];
        assert_eq!(exact_match(&clf.tree, &both).unwrap().code, "c");
        let split = [
            neighbor("紧固件制造", "a", 1.0, "reviewed"),
            neighbor("紧固件制造", "c", 0.999, "reviewed"),
        ];
        assert!(exact_match(&clf.tree, &split).is_none());
    }

    #[test]
    fn alternatives_are_leaves_with_paths_even_when_the_label_is_a_section() {
        let t = small_tree();
        // sure of section A, unsure below it
        let heads = HeadOutputs {
            flat: Some(dists(
                &t,
                &[
                    ("A", 0.9),
                    ("B", 0.1),
                    ("A1", 0.9),
                    ("B1", 0.1),
                    ("a", 0.46),
                    ("b", 0.44),
                    ("c", 0.1),
                ],
            )),
            level: None,
            lexical: Vec::new(),
            roles: Default::default(),
        };
        let clf = classifier(t, vec![0.5, 0.95, 0.95]);
        let opts = crate::classifier::ClassifyOptions {
            top_k: 2,
            ..Default::default()
        };
        let r = clf.classify_with_heads("某物", &heads, &[], &opts);
        let label = r.label.clone().expect("a label");
        assert_eq!(
            (label.code.as_str(), label.level.as_str()),
            ("A", "section")
        );
        let guess = r.guess.clone().expect("a guess");
        assert_eq!(guess.code, "a");
        assert_eq!(
            guess
                .path
                .iter()
                .map(|p| p.code.as_str())
                .collect::<Vec<_>>(),
            ["A", "A1", "a"]
        );
        let alts: Vec<(&str, &str, usize)> = r
            .alternatives
            .iter()
            .map(|a| (a.code.as_str(), a.level.as_str(), a.path.len()))
            .collect();
        assert_eq!(alts, [("b", "class", 3), ("c", "class", 3)]);
        assert_eq!(r.alternatives[1].path[0].code, "B");
        assert!(r.alternatives[0].path[2].confidence <= r.alternatives[0].path[1].confidence);
    }
}
