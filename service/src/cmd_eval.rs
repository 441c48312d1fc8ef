//! `touxiang eval --data FILE.jsonl --taxonomy ID [--baseline-train FILE.jsonl] --out DIR`:
//! touxiang and the TF-IDF baseline on the same labeled texts, as JSON + Markdown.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use touxiang_eval::{classifier_fn, eval_jsonl, write_report, BaselineTrainSet, EvalOptions};
use touxiang_model::{E5Model, Embedder, Precision};

use crate::cli::Common;
use crate::config::FlagOverrides;
use crate::engine::{ensure_exemplar_index, load_models, taxonomy_registry, E5Embed};

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
    let embedder = E5Embed(model);
    let cache = cfg.data_dir.join("embedding-cache");
    let f = classifier_fn(
        &m.classifier,
        &embedder,
        m.exemplars.as_deref(),
        Some(&cache),
    );
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
    let report = eval_jsonl(&a.data, &tax, Some(&f), baseline.as_ref(), &opts)?;
    let files = write_report(&a.out, &report)?;
    print!("{}", report.summary());
    eprintln!("report: {files:?}");
    Ok(())
}
