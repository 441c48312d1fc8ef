//! Baseline figures on the shared data (release build recommended):
//!
//! ```text
//! cargo run --release -p touxiang-eval --example baseline_bench -- [SHARED_DATASETS_DIR] [OUT_DIR]
//! ```
//!
//! 1. GB/T 4754: the training corpus (notes + names + templates, seed 42) — baseline trained on
//!    the train split, threshold on the calib split, evaluated on the held-out test split.
//! 2. Lending Club: the 14 `purpose` values, split by loan id (seed 42) the same way.
//!
//! Prints timings and the report summaries; writes the reports under OUT_DIR/{gbt,lendingclub}.
use std::path::PathBuf;
use std::time::Instant;

use touxiang_datasets::Taxonomy;
use touxiang_eval::{
    corpus_split, eval_examples, write_report, BaselineTrainSet, EvalOptions, LabeledText,
};
use touxiang_training::{
    build_corpus, lendingclub_examples, CorpusOptions, Split, SplitRatios, Tree,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let root = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets"));
    let out = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("touxiang-baseline-bench"));

    // GB/T 4754
    let tax = Taxonomy::gbt4754();
    let tree = Tree::from_taxonomy(tax, true)?;
    let t = Instant::now();
    let corpus = build_corpus(
        &root.join("gbt4754-2017/notes.jsonl"),
        &tree,
        &CorpusOptions::default(),
    )?;
    println!(
        "GB/T corpus: {} examples in {:.1} s",
        corpus.examples.len(),
        t.elapsed().as_secs_f64()
    );
    let test = corpus_split(&corpus, Split::Test);
    let train = BaselineTrainSet::from_corpus(&corpus);
    println!(
        "  train {}, calib {}, test {}",
        train.train.len(),
        train.calib.len(),
        test.len()
    );
    // optional overrides for tuning: TX_EPOCHS, TX_LR, TX_L2, TX_MB
    let mut base = touxiang_eval::BaselineConfig::default();
    let env = |k: &str| std::env::var(k).ok();
    if let Some(v) = env("TX_EPOCHS") {
        base.epochs = v.parse()?;
    }
    if let Some(v) = env("TX_LR") {
        base.learning_rate = v.parse()?;
    }
    if let Some(v) = env("TX_MB") {
        base.max_weight_mb = v.parse()?;
    }
    if let Some(v) = env("TX_L2") {
        base.l2 = v.parse()?;
    }
    println!("baseline config: {base:?}");
    let opts = EvalOptions {
        title: "Baseline on the GB/T 4754 held-out note items".into(),
        baseline: base.clone(),
        ..EvalOptions::default()
    };
    let t = Instant::now();
    let report = eval_examples(tax, &test, "corpus test split", None, Some(&train), &opts)?;
    println!("  train + predict {:.1} s", t.elapsed().as_secs_f64());
    if let Some(b) = &report.systems[0].baseline {
        println!(
            "  features {} of {} n-grams, leaves {}, {:.1} s features, {:.1} s SGD, loss {:?}, threshold {:?}",
            b.features, b.ngrams_seen, b.leaves, b.seconds_features, b.seconds_train, b.epoch_loss, b.auto_threshold
        );
    }
    print!("{}", report.summary());
    let files = write_report(&out.join("gbt"), &report)?;
    println!("  wrote {}", files.markdown.display());

    // Lending Club
    let t = Instant::now();
    let (lc_tax, examples, skipped) = lendingclub_examples(
        &root.join("lendingclub-2007-2011/loans.csv"),
        42,
        SplitRatios::default(),
    )?;
    let by = |s: Split| -> Vec<LabeledText> {
        examples
            .iter()
            .filter(|e| e.split == s)
            .map(LabeledText::from)
            .collect()
    };
    let lc_train = BaselineTrainSet {
        description: "Lending Club train split (title + desc)".into(),
        train: by(Split::Train),
        calib: by(Split::Calib),
    };
    let lc_test = by(Split::Test);
    println!(
        "\nLending Club: {} loans with text ({} without) read in {:.1} s; train {}, calib {}, test {}",
        examples.len(),
        skipped,
        t.elapsed().as_secs_f64(),
        lc_train.train.len(),
        lc_train.calib.len(),
        lc_test.len()
    );
    let opts = EvalOptions {
        title: "Baseline on the Lending Club purpose split".into(),
        baseline: base,
        ..EvalOptions::default()
    };
    let t = Instant::now();
    let report = eval_examples(
        &lc_tax,
        &lc_test,
        "Lending Club test split",
        None,
        Some(&lc_train),
        &opts,
    )?;
    println!("  train + predict {:.1} s", t.elapsed().as_secs_f64());
    if let Some(b) = &report.systems[0].baseline {
        println!(
            "  features {} of {} n-grams, {:.1} s features, {:.1} s SGD, loss {:?}, threshold {:?}",
            b.features,
            b.ngrams_seen,
            b.seconds_features,
            b.seconds_train,
            b.epoch_loss,
            b.auto_threshold
        );
    }
    print!("{}", report.summary());
    let files = write_report(&out.join("lendingclub"), &report)?;
    println!("  wrote {}", files.markdown.display());
    Ok(())
}
