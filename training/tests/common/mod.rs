//! Shared helpers of the integration tests: a small synthetic hierarchical taxonomy with
//! well-separated Chinese vocabularies per leaf, trained with the hashed embedder.
#![allow(dead_code)]

use std::path::Path;

use rand::{Rng, SeedableRng};
use touxiang_training::{
    train, CorpusOptions, CorpusSource, DecisionTargets, Example, HashEmbedder, Source, Split,
    SplitRatios, TrainConfig, Tree,
};

/// 2 sections × 2 divisions × 2 groups × 3 classes = 24 leaves (+ vague pseudo-class).
pub fn synthetic_tree(with_vague: bool) -> Tree {
    let mut rows = Vec::new();
    for s in 0..2 {
        let sc = ["A", "B"][s].to_string();
        rows.push((sc.clone(), format!("门类{s}"), None));
        for d in 0..2 {
            let dc = format!("{}{}", s + 1, d);
            rows.push((dc.clone(), format!("大类{dc}"), Some(sc.clone())));
            for g in 0..2 {
                let gc = format!("{dc}{g}");
                rows.push((gc.clone(), format!("中类{gc}"), Some(dc.clone())));
                for c in 0..3 {
                    let cc = format!("{gc}{c}");
                    rows.push((cc.clone(), format!("小类{cc}"), Some(gc.clone())));
                }
            }
        }
    }
    Tree::from_rows(
        "synthetic",
        vec![
            "section".into(),
            "division".into(),
            "group".into(),
            "class".into(),
        ],
        &rows,
        with_vague,
    )
    .expect("valid synthetic tree")
}

/// Distinct CJK characters for leaf `i` (10 each, disjoint across leaves).
pub fn leaf_chars(i: usize) -> Vec<char> {
    (0..10)
        .map(|k| char::from_u32(0x4E00 + 37 * (i as u32 * 10 + k)).unwrap())
        .collect()
}

/// A text of leaf `i`: 3 random words from its vocabulary plus shared filler.
pub fn leaf_text(rng: &mut impl Rng, i: usize) -> String {
    let cs = leaf_chars(i);
    let filler = ["用于", "采购", "设备", "建设", "支付"];
    let mut s = String::new();
    for _ in 0..3 {
        s.push(cs[rng.random_range(0..cs.len())]);
        s.push(cs[rng.random_range(0..cs.len())]);
        if rng.random_bool(0.3) {
            s.push_str(filler[rng.random_range(0..filler.len())]);
        }
    }
    s
}

/// Examples for every leaf (`per_leaf` each) and, when the tree has one, the vague class.
pub fn synthetic_examples(tree: &Tree, per_leaf: usize, seed: u64) -> Vec<Example> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    let ratios = SplitRatios::default();
    for (li, &leaf) in tree.leaves().iter().enumerate() {
        let code = tree.nodes[leaf].code.clone();
        if code == touxiang_training::VAGUE_CODE {
            continue;
        }
        for _ in 0..per_leaf {
            let text = leaf_text(&mut rng, li);
            out.push(Example {
                split: touxiang_training::corpus::split_of(&text, seed, ratios),
                item: text.clone(),
                text,
                code: code.clone(),
                source: Source::Custom,
                weight: 1.0,
            });
        }
    }
    if tree.vague().is_some() {
        for (i, l) in touxiang_training::corpus::DEFAULT_VAGUE
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .enumerate()
        {
            for w in ["{x}", "用于{x}", "公司{x}需要"] {
                out.push(Example {
                    text: w.replace("{x}", l.trim()),
                    code: touxiang_training::VAGUE_CODE.into(),
                    source: Source::Vague,
                    split: if i % 5 == 0 {
                        Split::Calib
                    } else {
                        Split::Train
                    },
                    weight: 1.0,
                    item: l.to_string(),
                });
            }
        }
    }
    out
}

/// A fast training config on the synthetic data.
pub fn synthetic_config(out: &Path, seed: u64, per_leaf: usize) -> TrainConfig {
    synthetic_config_for(synthetic_tree(true), out, seed, per_leaf)
}

/// A fast training config on synthetic data for the leaves of `tree` (decisions from the
/// default auto level: the second level, or the only one of a flat tree).
pub fn synthetic_config_for(tree: Tree, out: &Path, seed: u64, per_leaf: usize) -> TrainConfig {
    let examples = synthetic_examples(&tree, per_leaf, seed);
    let mut cfg = TrainConfig::new(
        tree,
        CorpusSource::Examples {
            examples,
            with_names: true,
        },
        out,
    );
    cfg.seed = seed;
    cfg.head.max_epochs = 25;
    cfg.head.batch = 64;
    cfg.head.lr = 0.05;
    cfg.targets = DecisionTargets {
        level_precision: 0.95,
        auto_precision: 0.95,
        min_support: 10,
        ..cfg.targets
    };
    cfg
}

pub fn train_synthetic(out: &Path, seed: u64) -> touxiang_training::TrainReport {
    let cfg = synthetic_config(out, seed, 40);
    train(&cfg, &HashEmbedder::default()).expect("training succeeds")
}

pub fn default_corpus_options() -> CorpusOptions {
    CorpusOptions::default()
}
