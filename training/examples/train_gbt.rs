//! Train the GB/T 4754-2017 classifier with the hashed development embedder and print the report.
//!
//! `cargo run -p touxiang-training --example train_gbt -- [--seed N] [--out DIR] [--stats-only]`
//!
//! The real encoder is wired by the service (`touxiang train`); this example exercises the full
//! pipeline (corpus → heads → kNN → calibration → artifacts) on the shared data.
use std::path::PathBuf;

use touxiang_datasets::Taxonomy;
use touxiang_training::{train, CorpusOptions, CorpusSource, HashEmbedder, TrainConfig, Tree};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber_init();
    let args: Vec<String> = std::env::args().collect();
    let arg = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let seed: u64 = arg("--seed").map(|s| s.parse()).transpose()?.unwrap_or(42);
    let out = PathBuf::from(arg("--out").unwrap_or_else(|| "/tmp/touxiang-train-hash".into()));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/gbt4754-2017");
    let notes = arg("--notes")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("notes.jsonl"));
    let tree = Tree::from_taxonomy(Taxonomy::gbt4754(), true)?;
    let source = CorpusSource::Notes {
        notes_path: notes,
        options: CorpusOptions::default(),
    };
    let mut cfg = TrainConfig::new(tree, source, &out);
    cfg.seed = seed;
    cfg.cache_dir = Some(out.join("cache"));
    if args.iter().any(|a| a == "--stats-only") {
        let c = touxiang_training::train::corpus_of(&cfg)?;
        println!("{}", c.stats());
        return Ok(());
    }
    let emb = HashEmbedder::default();
    let report = train(&cfg, &emb)?;
    println!("{}", report.corpus);
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn tracing_subscriber_init() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
}
