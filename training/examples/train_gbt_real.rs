//! Train the GB/T 4754-2017 classifier with the real multilingual-e5-small encoder
//! (`touxiang-model`, Q4 path) and print the report. Embeddings are cached under `--out`/cache,
//! so a second run re-embeds nothing.
//!
//! `cargo run -p touxiang-training --features e5 --example train_gbt_real -- [--seed N] [--out DIR] [--model-dir DIR]`
use std::path::PathBuf;

use touxiang_datasets::Taxonomy;
use touxiang_model::{E5Model, Precision};
use touxiang_training::{train, CorpusOptions, CorpusSource, TrainConfig, Tree, E5};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let args: Vec<String> = std::env::args().collect();
    let arg = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let seed: u64 = arg("--seed").map(|s| s.parse()).transpose()?.unwrap_or(42);
    let out = PathBuf::from(arg("--out").unwrap_or_else(|| "/tmp/touxiang-train-e5".into()));
    let model_dir = arg("--model-dir")
        .map(PathBuf::from)
        .unwrap_or_else(touxiang_model::test_model_dir);
    let notes = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/datasets/gbt4754-2017/notes.jsonl");
    let tree = Tree::from_taxonomy(Taxonomy::gbt4754(), true)?;
    let mut cfg = TrainConfig::new(
        tree,
        CorpusSource::Notes {
            notes_path: notes,
            options: CorpusOptions::default(),
        },
        &out,
    );
    cfg.seed = seed;
    cfg.cache_dir = Some(out.join("cache"));
    let model = E5(std::sync::Arc::new(E5Model::ensure_and_load(
        &model_dir,
        Precision::Q4,
    )?));
    let report = train(&cfg, &model)?;
    println!("{}", report.corpus);
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
