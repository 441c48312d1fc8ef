//! touxiang-training: the classification model of touxiang.
//!
//! - [`corpus`]: training corpus from GB/T 4754 names and explanatory notes (包括/不包括 items,
//!   definitions), generated loan-purpose templates and vague phrases (always tagged by
//!   [`Source`]), custom labeled JSONL, Lending Club; held-out split by base item.
//! - [`embed`]: the [`EmbedFn`] encoder interface, a deterministic [`HashEmbedder`] for tests and
//!   an on-disk embedding cache.
//! - [`roles`]: loan phrasings labeled by the borrower's role (an actor of a class buys, builds,
//!   pays), generated from the team-written actor lexicon.
//! - [`heads`]: flat and per-level softmax heads on frozen embeddings (candle, AdamW).
//! - [`knn`]: exact kNN over labeled exemplars.
//! - [`tfidf`]: character n-gram TF-IDF (shared with the eval baseline) and the lexical kNN voter.
//! - [`calibrate`]: mixture weights, temperatures, thresholds for a target precision.
//! - [`rerank`]: the learned choice among the candidate classes the components propose.
//! - [`classifier`]: the runtime [`Classifier`] (consistent path, abstention, decision,
//!   evidence) and [`EmbeddingLabeler`] (a `Labeler`).
//! - [`train()`]: one call from corpus to saved [`Artifacts`]; [`predict_split`] for evaluation.
pub mod artifacts;
pub mod calibrate;
pub mod classifier;
pub mod confidence;
pub mod corpus;
pub mod decide;
pub mod embed;
pub mod error;
pub mod gate;
pub mod heads;
pub mod knn;
pub mod recalibrate;
pub mod rerank;
pub mod role_cues;
pub mod roles;
pub mod tfidf;
pub mod thresholds;
pub mod train;
pub mod tree;

pub use artifacts::{
    latest_artifact_dir, read_exemplar_lines, write_exemplar_lines, ArtifactMeta, Artifacts,
    ExemplarLines,
};
pub use calibrate::{DecisionTargets, SplitMetrics};
pub use classifier::{
    with_text_evidence, Alternative, Calibration, Classification, Classifier, ClassifyOptions,
    EmbeddingLabeler, HeadOutputs, KeywordFn, Label, Neighbor, NeighborSource, TextEvidence,
};
pub use corpus::{
    build_corpus, lendingclub_examples, load_examples_jsonl, Corpus, CorpusOptions, CorpusStats,
    Example, Source, Split, SplitRatios,
};
#[cfg(feature = "e5")]
pub use embed::E5;
pub use embed::{embed_all, encoder_text, EmbedFn, EmbeddingCache, HashEmbedder, E5_DIM};
pub use error::TrainError;
pub use knn::ExemplarIndex;
pub use recalibrate::{recalibrate, RecalibrateOptions, RecalibrationReport};
pub use tfidf::{LexicalConfig, LexicalIndex};
pub use touxiang_datasets::LoanText;
pub use train::{predict_split, train, CorpusSource, Prediction, TrainConfig, TrainReport};
pub use tree::{Tree, VAGUE_CODE};
