//! `touxiang eval --data FILE.jsonl --taxonomy ID [--baseline-train FILE.jsonl] --out DIR`:
//! touxiang and the TF-IDF baseline on the same labeled texts, as JSON + Markdown.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use touxiang_eval::{
    classifier_fn, eval_examples, load_labeled_jsonl, write_report, BaselineTrainSet, EvalOptions,
};
use touxiang_model::{E5Model, Embedder, Precision};

use crate::cli::Common;
use crate::config::FlagOverrides;
use crate::engine::{ensure_exemplar_index, load_models, taxonomy_registry, E5};

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub common: Common,
    /// Labeled texts, one JSON object per line: {"text": "...", "code": "..."}.
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, default_value = touxiang_datasets::GBT4754_ID)]
    pub taxonomy: String,
    /// Training texts for the TF-IDF baseline (same JSONL shape); without it only touxiang runs.
    #[arg(long)]
    pub baseline_train: Option<PathBuf>,
    /// Report directory (eval-report.json and eval-report.md).
    #[arg(long, default_value = "eval-out")]
    pub out: PathBuf,
    /// Ignore the borrower fields (borrower_name, business_scope) of the data.
    #[arg(long)]
    pub text_only: bool,
    /// Evaluate only the lines that carry a borrower field (with --text-only: what they add).
    #[arg(long)]
    pub only_with_borrower: bool,
    /// Also print top-1 accuracy per level for each `kind` of line (loan dev set).
    #[arg(long)]
    pub by_kind: bool,
    /// Also write touxiang's prediction for every line here (JSONL: text, gold, returned path,
    /// full top-1 path, confidences, top-5, decision), in input order, for error analysis.
    #[arg(long, value_name = "FILE")]
    pub predictions: Option<std::path::PathBuf>,
}

pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    let cfg = a.common.load(FlagOverrides::default())?;
    let reg = taxonomy_registry(&cfg)?;
    let model = Arc::new(
        E5Model::ensure_and_load(&cfg.model_dir(), Precision::Q4).context("loading the encoder")?,
    );
    let version = Embedder::version(model.as_ref());
    let mut models = load_models(&cfg, &version)?;
    let mut m = models.remove(&a.taxonomy).ok_or_else(|| {
        anyhow::anyhow!(
            "no trained classifier for '{}' (known taxonomies: {}; trained: {}); run `touxiang train` first",
            a.taxonomy,
            reg.ids().join(", "),
            models.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    // A custom taxonomy need not be installed under DATA_DIR/taxonomies: its classifier's
    // artifact carries it.
    let tax = reg.get(&a.taxonomy).unwrap_or_else(|| m.taxonomy.clone());
    ensure_exemplar_index(&cfg, &mut m, &model)?;
    let embedder = E5(model);
    let cache = cfg.data_dir.join("embedding-cache");
    let classify = classifier_fn(
        &m.classifier,
        &embedder,
        m.exemplars.as_deref(),
        Some(&cache),
    );
    // the main evaluation's records, in input order, for --predictions
    let recorded = std::sync::Mutex::new(a.predictions.is_some().then(Vec::new));
    let f = |texts: &[&str]| {
        let recs = classify(texts)?;
        if let Some(v) = recorded.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            v.extend(recs.iter().cloned());
        }
        Ok(recs)
    };
    let baseline = a
        .baseline_train
        .as_ref()
        .map(|p| BaselineTrainSet::from_jsonl(p, &tax))
        .transpose()?;
    let opts = EvalOptions {
        system_description: format!(
            "touxiang {} ({})",
            m.classifier.model_version(),
            m.artifact_dir.display()
        ),
        ..Default::default()
    };
    let mut data = load_labeled_jsonl(&a.data, &tax)?;
    if a.only_with_borrower {
        data.retain(|d| d.loan().has_borrower());
    }
    let opts = EvalOptions {
        text_only: a.text_only,
        ..opts
    };
    let what = format!(
        "{}{}{}",
        a.data.display(),
        if a.only_with_borrower {
            " (lines with borrower fields)"
        } else {
            ""
        },
        if a.text_only { ", text only" } else { "" }
    );
    let report = eval_examples(&tax, &data, &what, Some(&f), baseline.as_ref(), &opts)?;
    let recs = recorded
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .unwrap_or_default();
    if let Some(path) = &a.predictions {
        write_predictions(path, &data, recs)?;
    }
    let files = write_report(&a.out, &report)?;
    print!("{}", report.summary());
    if a.by_kind {
        let mut kinds: Vec<String> = data.iter().filter_map(|d| d.kind.clone()).collect();
        kinds.sort();
        kinds.dedup();
        println!("\ntop-1 (abstention ignored) by kind, touxiang");
        println!(
            "{:<22}{:>5}  {}",
            "kind",
            "n",
            tax.level_names().join(" / ")
        );
        for k in kinds {
            let sub: Vec<_> = data
                .iter()
                .filter(|d| d.kind.as_deref() == Some(k.as_str()))
                .cloned()
                .collect();
            let r = eval_examples(&tax, &sub, &k, Some(&f), None, &opts)?;
            let m = &r.systems[0].metrics;
            let lv: Vec<String> = m
                .levels
                .iter()
                .map(|l| {
                    l.accuracy_forced
                        .map(|v| format!("{:.1} %", 100.0 * v))
                        .unwrap_or_else(|| "–".into())
                })
                .collect();
            println!("{k:<22}{:>5}  {}", sub.len(), lv.join(" / "));
        }
    }
    eprintln!("report: {files:?}");
    Ok(())
}

/// `--predictions FILE`: one JSON line per evaluated line, in input order.
fn write_predictions(
    path: &std::path::Path,
    data: &[touxiang_eval::LabeledText],
    recs: Vec<touxiang_eval::EvalRecord>,
) -> anyhow::Result<()> {
    use std::io::Write;
    anyhow::ensure!(
        recs.len() == data.len(),
        "{} predictions for {} lines",
        recs.len(),
        data.len()
    );
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("--predictions {}", path.display()))?,
    );
    for (mut r, d) in recs.into_iter().zip(data) {
        r.gold = d.code.clone();
        serde_json::to_writer(&mut w, &r)?;
        writeln!(w)?;
    }
    w.flush()?;
    eprintln!("predictions: {}", path.display());
    Ok(())
}
