//! One-text encoder latency when passes come back to back or after idle pauses, with the
//! compute threads pinned to their own CPUs or not (see `service/src/compute.rs`).
//!
//! `cargo run --release -p touxiang-model --example idle_gap -- TEXTS.txt GAP_MS [--pin]`
use std::time::{Duration, Instant};

use touxiang_model::{test_model_dir, E5Model, Kind, Precision};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    let (Some(path), Some(gap)) = (a.get(1), a.get(2)) else {
        return Err("usage: idle_gap TEXTS.txt GAP_MS [--pin]".into());
    };
    let gap_ms: u64 = gap.parse()?;
    if a.iter().any(|x| x == "--pin") {
        let cpus = core_affinity::get_core_ids().ok_or("cannot read the process's CPUs")?;
        rayon::ThreadPoolBuilder::new()
            .num_threads(cpus.len())
            .start_handler(move |i| {
                core_affinity::set_for_current(cpus[i]);
            })
            .build_global()?;
    }
    let text = std::fs::read_to_string(path)?;
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(200)
        .collect();
    let m = E5Model::ensure_and_load(&test_model_dir(), Precision::Q4)?;
    let ids = m.tokenize(&lines, Kind::Query)?;
    for s in ids.iter().take(20) {
        m.embed_tokenized(std::slice::from_ref(s))?;
    }
    let mut t = Vec::with_capacity(ids.len());
    for s in &ids {
        std::thread::sleep(Duration::from_millis(gap_ms));
        let t0 = Instant::now();
        m.embed_tokenized(std::slice::from_ref(s))?;
        t.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(f64::total_cmp);
    let q = |p: f64| t[((t.len() - 1) as f64 * p) as usize];
    println!(
        "{} threads, gap {gap_ms} ms: p50 {:.2} p90 {:.2} p99 {:.2} ms",
        rayon::current_num_threads(),
        q(0.5),
        q(0.9),
        q(0.99)
    );
    Ok(())
}
