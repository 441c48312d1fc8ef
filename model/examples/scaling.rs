//! Diagnostics: where batch time goes (tokenize vs forward; equal vs mixed lengths).
//! `cargo run --release -p touxiang-model --example scaling -- TEXTS.txt`
use std::time::Instant;
use touxiang_model::{test_model_dir, E5Model, Kind, Precision};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let m = E5Model::ensure_and_load(&test_model_dir(), Precision::Q4)?;
    let path = std::env::args().nth(1).expect("texts file");
    let text = std::fs::read_to_string(path)?;
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(128)
        .collect();
    let t = Instant::now();
    let ids = m.tokenize(&lines, Kind::Query)?;
    println!(
        "tokenize {} texts: {:.1} ms",
        lines.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    m.embed_tokenized(&ids[..4])?;
    let t = Instant::now();
    m.embed_tokenized(&ids)?;
    println!(
        "embed_tokenized (mixed lengths, bucketed): {:.2} ms/text",
        t.elapsed().as_secs_f64() * 1e3 / ids.len() as f64
    );
    let t = Instant::now();
    for s in &ids {
        m.embed_ids(std::slice::from_ref(s))?;
    }
    println!(
        "one at a time: {:.2} ms/text",
        t.elapsed().as_secs_f64() * 1e3 / ids.len() as f64
    );
    let same = vec![ids[0].clone(); 32];
    let t = Instant::now();
    m.embed_ids(&same)?;
    println!(
        "32 equal sequences: {:.2} ms/text",
        t.elapsed().as_secs_f64() * 1e3 / 32.0
    );
    Ok(())
}
