//! `train(config, embedder) -> TrainReport`: corpus → embeddings (cached) → heads → kNN index →
//! calibration → metrics → versioned artifacts. One call, reproducible for a seed.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::calibrate::{DecisionTargets, MixChoice, SplitMetrics};
use crate::corpus::{
    build_corpus, corpus_from_examples, load_examples_jsonl, Corpus, CorpusOptions, CorpusStats,
    Example, Source, SplitRatios,
};
use crate::error::Result;
use crate::heads::{HeadConfig, HeadLog};
use crate::tfidf::LexicalConfig;
use crate::tree::Tree;

mod pipeline;
mod predict;

pub use pipeline::train;
pub(crate) use pipeline::{fitted_hash, loan_gold};
pub(crate) use predict::metrics_for;
pub use predict::{predict_split, Prediction};

/// Where the training examples come from.
#[derive(Debug, Clone)]
pub enum CorpusSource {
    /// GB/T 4754 notes (`notes.jsonl`) + taxonomy names + templates + vague phrases.
    Notes {
        notes_path: PathBuf,
        options: CorpusOptions,
    },
    /// Labeled examples already in memory (custom taxonomy), plus the taxonomy names when
    /// `with_names`.
    Examples {
        examples: Vec<Example>,
        with_names: bool,
    },
    /// A prepared corpus.
    Corpus(Corpus),
}

/// kNN vote temperatures tried on the calibration set (by `train` and `recalibrate`).
pub(crate) const KNN_TAUS: &[f32] = &[0.02, 0.05, 0.1];
/// Lexical vote temperatures tried on the calibration set.
pub(crate) const LEXICAL_TAUS: &[f32] = &[0.05, 0.1, 0.2, 0.5];

/// Everything `train` needs.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub tree: Tree,
    pub source: CorpusSource,
    /// Extra labeled JSONL files (`{"text","code"[,"source":"reviewed"]}`), e.g. review exports.
    pub extra_examples: Vec<PathBuf>,
    pub seed: u64,
    /// Artifacts go to `out_dir/<taxonomy id>/<model version>/`.
    pub out_dir: PathBuf,
    /// Embedding cache directory (`None` = no cache).
    pub cache_dir: Option<PathBuf>,
    pub targets: DecisionTargets,
    pub head: HeadConfig,
    /// Train the flat leaf head.
    pub flat_head: bool,
    /// Train the per-level heads.
    pub level_heads: bool,
    /// Neighbours in the kNN vote.
    pub knn_k: usize,
    /// kNN temperatures tried on the calibration split.
    pub knn_taus: Vec<f32>,
    /// Lexical voter (character n-gram TF-IDF kNN over the training exemplar texts); `None` = off.
    pub lexical: Option<LexicalConfig>,
    /// Lexical-vote temperatures tried on the calibration split.
    pub lexical_taus: Vec<f32>,
    /// Save the training exemplars (texts, codes, vectors) beside the heads.
    pub save_exemplars: bool,
    /// Encoder batch size.
    pub embed_batch: usize,
    /// Labeled loan texts (e.g. the calibration half of the loan dev set) on which the mixture,
    /// temperatures and thresholds are fitted instead of the corpus's calibration split, so that
    /// the promised precision holds on loan text. Empty = the corpus's calibration split.
    pub calib_loans: Vec<(touxiang_datasets::LoanText, String)>,
    /// Sources kept out of the exemplar and lexical indexes (the heads still learn from them).
    /// Default: templates — wrappers around note items that are themselves exemplars; they
    /// added 22 k exemplars (memory and search time in the service) and n-gram noise
    /// ("…生产线建设") to the lexical vote.
    pub exemplars_exclude: Vec<Source>,
}

impl TrainConfig {
    /// Defaults for a tree and a corpus source.
    pub fn new(tree: Tree, source: CorpusSource, out_dir: impl Into<PathBuf>) -> Self {
        // Auto decisions from the second level down (a division of GB/T 4754); a flat taxonomy
        // has only its one level, where they must be possible too.
        let defaults = DecisionTargets::default();
        let targets = DecisionTargets {
            auto_min_depth: defaults
                .auto_min_depth
                .min(tree.depth_count().saturating_sub(1)),
            ..defaults
        };
        TrainConfig {
            tree,
            source,
            extra_examples: Vec::new(),
            seed: 42,
            out_dir: out_dir.into(),
            cache_dir: None,
            targets,
            head: HeadConfig::default(),
            flat_head: true,
            level_heads: true,
            knn_k: 10,
            knn_taus: KNN_TAUS.to_vec(),
            lexical: Some(LexicalConfig::default()),
            lexical_taus: LEXICAL_TAUS.to_vec(),
            save_exemplars: true,
            embed_batch: 64,
            calib_loans: Vec::new(),
            exemplars_exclude: vec![Source::Template],
        }
    }
}

/// What `train` did and measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    pub model_version: String,
    pub artifact_dir: PathBuf,
    pub encoder_version: String,
    pub taxonomy_id: String,
    pub taxonomy_version: String,
    pub corpus_version: String,
    pub corpus: CorpusStats,
    pub seed: u64,
    pub heads: Vec<HeadLog>,
    /// Calibration-split comparison of flat vs level heads vs kNN vs the fitted mixture.
    pub mix_choices_knn: Vec<MixChoice>,
    pub mix_choices_heads_only: Vec<MixChoice>,
    pub calib: SplitMetrics,
    pub test: SplitMetrics,
    /// Test metrics without neighbours (heads-only calibration).
    pub test_heads_only: SplitMetrics,
    pub seconds_embed: f64,
    pub seconds_train: f64,
    pub seconds_total: f64,
}

/// Build the corpus of a config (without training).
pub fn corpus_of(cfg: &TrainConfig) -> Result<Corpus> {
    let mut corpus = match &cfg.source {
        CorpusSource::Notes {
            notes_path,
            options,
        } => {
            let mut o = options.clone();
            o.seed = cfg.seed;
            build_corpus(notes_path, &cfg.tree, &o)?
        }
        CorpusSource::Examples {
            examples,
            with_names,
        } => corpus_from_examples(&cfg.tree, examples.clone(), *with_names),
        CorpusSource::Corpus(c) => c.clone(),
    };
    if !cfg.extra_examples.is_empty() {
        let mut extra = Vec::new();
        for p in &cfg.extra_examples {
            extra.extend(load_examples_jsonl(
                p,
                &cfg.tree,
                cfg.seed,
                SplitRatios::default(),
            )?);
        }
        let mut all = corpus.examples;
        all.extend(extra);
        let skipped = corpus.skipped;
        corpus = corpus_from_examples(&cfg.tree, all, false);
        for (k, v) in skipped {
            *corpus.skipped.entry(k).or_default() += v;
        }
    }
    Ok(corpus)
}
