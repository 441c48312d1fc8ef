//! touxiang-eval: how good is the classifier, and how much better than a plain baseline?
//!
//! - [`record`]: [`LabeledText`] (evaluation/training data, [`load_labeled_jsonl`]) and
//!   [`EvalRecord`] (one prediction, independent of the classifier; `From<&Prediction>`).
//! - [`metrics`]: [`evaluate`] → [`Metrics`]: accuracy, coverage and macro-F1 per level, top-5,
//!   hierarchical partial credit, expected calibration error, the auto-accept
//!   coverage/precision curve and the threshold reaching a target precision, the system's own
//!   operating point, the most confused pairs.
//! - [`baseline`]: [`TfidfBaseline`], TF-IDF character n-grams + multinomial logistic
//!   regression.
//! - [`harness`]: [`eval_jsonl`] / [`eval_examples`] run the system under test and the baseline
//!   on the same texts; [`classifier_fn`] wraps a trained classifier.
//! - [`report`]: [`EvalReport`], [`write_report`] (JSON + Markdown), [`EvalReport::summary`].
pub mod baseline;
pub mod error;
pub mod harness;
pub mod metrics;
pub mod record;
pub mod report;

pub use baseline::{BaselineConfig, BaselineStats, TfidfBaseline};
pub use error::EvalError;
pub use harness::{
    baseline_system, classifier_fn, eval_examples, eval_jsonl, run_classifier, BaselineTrainSet,
    ClassifyFn, EvalOptions,
};
pub use metrics::{evaluate, Metrics, MetricsOptions};
pub use record::{corpus_split, load_labeled_jsonl, EvalRecord, LabeledText};
pub use report::{read_report, write_report, EvalReport, ReportFiles, SystemReport};
