//! `cargo run --release -p touxiang-model --example embed_bench -- TEXTS.txt [SINGLE_LIMIT]`
use touxiang_model::{bench, test_model_dir, E5Model, Precision};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    let text = std::fs::read_to_string(&a[1])?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let limit = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
    let t = std::time::Instant::now();
    let m = E5Model::ensure_and_load(&test_model_dir(), Precision::Q4)?;
    eprintln!(
        "load {:.2}s rss {:.0} MiB",
        t.elapsed().as_secs_f64(),
        bench::rss_mib()
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&bench::bench_embed(&m, &lines, limit)?)?
    );
    Ok(())
}
