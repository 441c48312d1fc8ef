//! Running an evaluation: the system under test and the baseline on the same labeled texts.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use touxiang_datasets::Taxonomy;
use touxiang_training::{
    predict_split, Classifier, Corpus, EmbedFn, Example, ExemplarIndex, Source, Split,
};

use crate::baseline::{BaselineConfig, TfidfBaseline};
use crate::error::{EvalError, Result};
use crate::metrics::{evaluate, MetricsOptions};
use crate::record::{corpus_split, load_labeled_jsonl, EvalRecord, LabeledText};
use crate::report::{EvalReport, SystemReport};

/// The system under evaluation: labels a batch of texts, one [`EvalRecord`] per text in order
/// (`gold` may be left empty; the harness fills it). An `Err` aborts the evaluation.
pub type ClassifyFn<'a> = dyn Fn(&[&str]) -> std::result::Result<Vec<EvalRecord>, String> + 'a;

/// What the baseline is trained on.
#[derive(Debug, Clone, Default)]
pub struct BaselineTrainSet {
    /// Shown in the report (e.g. the file or "corpus train split").
    pub description: String,
    pub train: Vec<LabeledText>,
    /// Texts for the auto threshold; empty = a share of `train` is held out.
    pub calib: Vec<LabeledText>,
}

impl BaselineTrainSet {
    /// Train on a labeled JSONL (`{"text","code"}`), holding out a share for the threshold.
    pub fn from_jsonl(path: &Path, taxonomy: &Taxonomy) -> Result<Self> {
        Ok(BaselineTrainSet {
            description: path.display().to_string(),
            train: load_labeled_jsonl(path, taxonomy)?,
            calib: Vec::new(),
        })
    }

    /// Train on a training corpus' train split, threshold on its calibration split — the same
    /// data touxiang's heads and calibration see.
    pub fn from_corpus(corpus: &Corpus) -> Self {
        BaselineTrainSet {
            description: format!(
                "corpus {} ({}): train split, calib split for the threshold",
                corpus.taxonomy_id,
                corpus.version()
            ),
            train: corpus_split(corpus, Split::Train),
            calib: corpus_split(corpus, Split::Calib),
        }
    }
}

/// Options of an evaluation run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalOptions {
    /// Report title.
    pub title: String,
    /// Name and one-line description of the system under test.
    pub system_name: String,
    pub system_description: String,
    /// Texts per call of the classify function.
    pub batch_size: usize,
    pub metrics: MetricsOptions,
    pub baseline: BaselineConfig,
    /// Ignore the borrower fields of the data (to measure what they add).
    pub text_only: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            title: "touxiang evaluation".into(),
            system_name: "touxiang".into(),
            system_description: "e5 embeddings + heads + kNN vote, calibrated".into(),
            batch_size: 256,
            metrics: MetricsOptions::default(),
            baseline: BaselineConfig::default(),
            text_only: false,
        }
    }
}

/// Run `classify` over `data` in batches and attach the gold codes.
pub fn run_classifier(
    data: &[LabeledText],
    classify: &ClassifyFn<'_>,
    batch_size: usize,
) -> Result<Vec<EvalRecord>> {
    let mut out = Vec::with_capacity(data.len());
    for chunk in data.chunks(batch_size.max(1)) {
        let texts: Vec<&str> = chunk.iter().map(|d| d.text.as_str()).collect();
        let recs = classify(&texts).map_err(EvalError::Classifier)?;
        if recs.len() != chunk.len() {
            return Err(EvalError::Classifier(format!(
                "{} results for {} texts (batch starting at record {})",
                recs.len(),
                chunk.len(),
                out.len()
            )));
        }
        for (mut r, d) in recs.into_iter().zip(chunk) {
            r.gold = d.code.clone();
            if r.text.is_empty() {
                r.text = d.text.clone();
            }
            out.push(r);
        }
    }
    Ok(out)
}

/// Evaluate `classify` — and the TF-IDF baseline trained on `baseline_train`, when given — on
/// the labeled texts `data`. `data_description` names the data in the report. Either system may
/// be left out (not both).
pub fn eval_examples(
    taxonomy: &Taxonomy,
    data: &[LabeledText],
    data_description: &str,
    classify: Option<&ClassifyFn<'_>>,
    baseline_train: Option<&BaselineTrainSet>,
    opts: &EvalOptions,
) -> Result<EvalReport> {
    if data.is_empty() {
        return Err(EvalError::Invalid(format!(
            "no labeled texts to evaluate in {data_description}"
        )));
    }
    if classify.is_none() && baseline_train.is_none() {
        return Err(EvalError::Invalid(
            "nothing to evaluate: give a classifier, a baseline training set or both".into(),
        ));
    }
    // Both systems read what the service reads: the purpose text with the borrower fields
    // composed in (LoanText::model_text), or the text alone when asked.
    let composed: Vec<LabeledText> = data
        .iter()
        .map(|d| {
            let loan = if opts.text_only {
                d.loan().text_only()
            } else {
                d.loan()
            };
            LabeledText {
                text: loan.model_text(),
                ..d.clone()
            }
        })
        .collect();
    let data = composed.as_slice();
    let mut systems = Vec::new();
    if let Some(classify) = classify {
        let t = Instant::now();
        let recs = run_classifier(data, classify, opts.batch_size)?;
        let seconds = t.elapsed().as_secs_f64();
        systems.push(SystemReport {
            name: opts.system_name.clone(),
            description: opts.system_description.clone(),
            seconds_predict: seconds,
            metrics: evaluate(taxonomy, &recs, &opts.metrics)?,
            baseline: None,
        });
    }
    if let Some(b) = baseline_train {
        systems.push(baseline_system(taxonomy, data, b, opts)?);
    }
    Ok(EvalReport {
        title: opts.title.clone(),
        data: data_description.to_string(),
        taxonomy_id: taxonomy.id().to_string(),
        taxonomy_version: taxonomy.version().to_string(),
        examples: data.len(),
        level_names: taxonomy.level_names().to_vec(),
        target_precision: opts.metrics.target_precision,
        systems,
    })
}

/// Train the baseline on `train` and evaluate it on `data`.
pub fn baseline_system(
    taxonomy: &Taxonomy,
    data: &[LabeledText],
    train: &BaselineTrainSet,
    opts: &EvalOptions,
) -> Result<SystemReport> {
    let t = Instant::now();
    let model = TfidfBaseline::train(taxonomy, &train.train, &train.calib, &opts.baseline)?;
    let seconds_train = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let recs = model.predict_labeled(data);
    let seconds = t.elapsed().as_secs_f64();
    let c = &opts.baseline;
    Ok(SystemReport {
        name: "baseline".into(),
        description: format!(
            "TF-IDF char {}-{}-grams + multinomial logistic regression (SGD, {} epochs, {:.1} s), trained on {}",
            c.ngram_min, c.ngram_max, c.epochs, seconds_train, train.description
        ),
        seconds_predict: seconds,
        metrics: evaluate(taxonomy, &recs, &opts.metrics)?,
        baseline: Some(model.stats().clone()),
    })
}

/// Evaluate on a JSONL of `{"text","code"}` (see [`load_labeled_jsonl`]); the CLI's
/// `touxiang eval --data FILE.jsonl --taxonomy ID [--baseline-train FILE.jsonl] --out DIR`.
pub fn eval_jsonl(
    path: &Path,
    taxonomy: &Taxonomy,
    classify: Option<&ClassifyFn<'_>>,
    baseline_train: Option<&BaselineTrainSet>,
    opts: &EvalOptions,
) -> Result<EvalReport> {
    let data = load_labeled_jsonl(path, taxonomy)?;
    eval_examples(
        taxonomy,
        &data,
        &path.display().to_string(),
        classify,
        baseline_train,
        opts,
    )
}

/// A [`ClassifyFn`] over a trained [`Classifier`] (with neighbours from `index` when given),
/// through [`predict_split`]: full greedy path, label after abstention, leaf top-5, decision.
pub fn classifier_fn<'a>(
    clf: &'a Classifier,
    embedder: &'a dyn EmbedFn,
    index: Option<&'a ExemplarIndex>,
    cache_dir: Option<&'a Path>,
) -> impl Fn(&[&str]) -> std::result::Result<Vec<EvalRecord>, String> + 'a {
    move |texts: &[&str]| {
        let examples: Vec<Example> = texts
            .iter()
            .map(|t| Example {
                text: t.to_string(),
                code: String::new(),
                source: Source::Custom,
                split: Split::Test,
                weight: 1.0,
                item: t.to_string(),
            })
            .collect();
        let refs: Vec<&Example> = examples.iter().collect();
        let preds =
            predict_split(clf, embedder, &refs, index, cache_dir).map_err(|e| e.to_string())?;
        Ok(preds.iter().map(EvalRecord::from).collect())
    }
}
