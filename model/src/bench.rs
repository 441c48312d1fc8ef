//! Embedding throughput and latency measurement (used by `touxiang bench embed`).

use std::time::Instant;

use serde::Serialize;

use crate::{E5Model, Kind, ModelError};

/// Figures of one benchmark run.
#[derive(Debug, Clone, Serialize)]
pub struct EmbedBench {
    pub texts: usize,
    pub mean_tokens: f64,
    /// Texts per second embedding the whole list through length-bucketed batches.
    pub batch_texts_per_s: f64,
    /// Texts per second embedding one text per forward pass.
    pub single_texts_per_s: f64,
    pub single_p50_ms: f64,
    pub single_p99_ms: f64,
    /// Peak resident set size of the process so far (VmHWM), MiB.
    pub peak_rss_mib: f64,
}

/// Peak RSS (VmHWM) in MiB, 0 where /proc is unavailable.
pub fn peak_rss_mib() -> f64 {
    proc_status_kib("VmHWM:") / 1024.0
}

/// Current RSS (VmRSS) in MiB, 0 where /proc is unavailable.
pub fn rss_mib() -> f64 {
    proc_status_kib("VmRSS:") / 1024.0
}

fn proc_status_kib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(key)).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .unwrap_or(0.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Embed `texts` once in batch mode and up to `single_limit` of them one at a time.
pub fn bench_embed(
    model: &E5Model,
    texts: &[&str],
    single_limit: usize,
) -> Result<EmbedBench, ModelError> {
    let ids = model.tokenize(texts, Kind::Query)?;
    let mean_tokens = ids.iter().map(Vec::len).sum::<usize>() as f64 / ids.len().max(1) as f64;
    // Warm-up (allocations, thread pools).
    model.embed_tokenized(&ids[..ids.len().min(8)])?;
    let t = Instant::now();
    model.embed_texts(texts, Kind::Query)?;
    let batch_s = t.elapsed().as_secs_f64();
    let n_single = texts.len().min(single_limit).max(1).min(texts.len());
    let mut lat = Vec::with_capacity(n_single);
    let t = Instant::now();
    for text in &texts[..n_single] {
        let t1 = Instant::now();
        model.embed_texts(&[text], Kind::Query)?;
        lat.push(t1.elapsed().as_secs_f64() * 1e3);
    }
    let single_s = t.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    Ok(EmbedBench {
        texts: texts.len(),
        mean_tokens,
        batch_texts_per_s: texts.len() as f64 / batch_s,
        single_texts_per_s: n_single as f64 / single_s,
        single_p50_ms: percentile(&lat, 0.5),
        single_p99_ms: percentile(&lat, 0.99),
        peak_rss_mib: peak_rss_mib(),
    })
}
