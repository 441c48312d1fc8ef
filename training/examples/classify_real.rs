//! Classify texts with saved artifacts and the real encoder (kNN from the saved exemplars).
//!
//! `cargo run -p touxiang-training --features e5 --example classify_real -- ARTIFACT_DIR TEXT...`
use std::path::PathBuf;

use touxiang_model::{E5Model, Embedder, Kind, Precision};
use touxiang_training::{Artifacts, ClassifyOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(
        args.first()
            .ok_or("usage: classify_real ARTIFACT_DIR TEXT...")?,
    );
    let arts = Artifacts::load(&dir)?;
    let model = E5Model::ensure_and_load(&touxiang_model::test_model_dir(), Precision::Q4)?;
    let texts: Vec<&str> = args[1..].iter().map(|s| s.as_str()).collect();
    let x = model.embed(&texts, Kind::Query)?;
    let nbs = match &arts.exemplars {
        Some(ix) => ix.search(&x, arts.classifier.knn_k())?,
        None => vec![Vec::new(); x.len()],
    };
    let t0 = std::time::Instant::now();
    let cs = arts
        .classifier
        .classify_batch(&texts, &x, &nbs, &ClassifyOptions::default())?;
    eprintln!(
        "classified {} texts in {:?} (heads + vote + decision, excluding encoder and kNN search)",
        texts.len(),
        t0.elapsed()
    );
    for (t, c) in texts.iter().zip(&cs) {
        let label = c
            .label
            .as_ref()
            .map(|l| format!("{} {} ({})", l.code, l.name, l.level))
            .unwrap_or_else(|| "null".into());
        let alts: Vec<String> = c
            .alternatives
            .iter()
            .map(|a| format!("{} {:.2}", a.code, a.confidence))
            .collect();
        println!(
            "{t}\t{label}\tconf {:.3}\t{}\talts [{}]",
            c.confidence,
            c.decision.as_str(),
            alts.join(", ")
        );
    }
    Ok(())
}
