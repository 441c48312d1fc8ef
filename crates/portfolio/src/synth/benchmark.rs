//! The ingest and aggregation benchmark over a generated book.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::{write_csv, NameMatchLabeler, SynthSpec};
use crate::agg::{AggQuery, Dimension, OverdueDef};
use crate::error::Result;
use crate::ingest::{IngestMode, IngestOptions};
use crate::store::PortfolioStore;

/// Benchmark figures (printed by `examples/bench.rs`).
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Distinct loans per snapshot.
    pub loans: usize,
    /// Snapshots.
    pub months: usize,
    /// Rows ingested.
    pub rows: u64,
    /// CSV size.
    pub csv_bytes: u64,
    /// Time to generate the CSV.
    pub generate_ms: f64,
    /// Ingest wall time (one transaction, incl. validation, labeling of the unlabeled share).
    pub ingest_ms: f64,
    /// Rows per second ingested.
    pub ingest_rows_per_s: f64,
    /// First query (builds the columnar snapshot from SQLite).
    pub snapshot_build_ms: f64,
    /// The timed query.
    pub query: String,
    /// Timed repetitions.
    pub iterations: usize,
    /// Median latency.
    pub agg_p50_ms: f64,
    /// 95th percentile latency.
    pub agg_p95_ms: f64,
    /// Rows in the answer.
    pub result_rows: usize,
    /// Loans matched by the filter in the latest snapshot.
    pub matched_loans: u64,
}

/// Generate `n_loans` loans × `months` snapshots into a temporary store, ingest them (CSV,
/// CommitValid, 5 % of rows labeled by [`NameMatchLabeler`]), then time `iterations` runs of a
/// two-dimension group-by with a filter on the latest snapshot:
/// `by=industry.section,region.province&customer_type=小型企业,微型企业&overdue_days_gt=30`.
pub fn bench(
    n_loans: usize,
    months: usize,
    iterations: usize,
    dir: Option<&Path>,
) -> Result<BenchReport> {
    let tmp = tempfile::tempdir()?;
    let dir = dir.unwrap_or(tmp.path());
    std::fs::create_dir_all(dir)?;
    let csv_path = dir.join("bench-book.csv");
    let spec = SynthSpec {
        loans: n_loans,
        months,
        seed: 7,
        unlabeled_share: 0.05,
        ..SynthSpec::default()
    };
    let t = Instant::now();
    let rows = write_csv(&spec, &csv_path)?;
    let generate_ms = t.elapsed().as_secs_f64() * 1e3;
    let csv_bytes = std::fs::metadata(&csv_path)?.len();
    let store_path = dir.join("bench-portfolio.sqlite");
    let _ = std::fs::remove_file(&store_path);
    let store = PortfolioStore::open_file(&store_path)?;
    let labeler = NameMatchLabeler::new();
    let t = Instant::now();
    let rep = store.ingest_file(
        "bench",
        &csv_path,
        &IngestOptions {
            mode: IngestMode::CommitValid,
            ..IngestOptions::default()
        },
        Some(&labeler),
    )?;
    let ingest_ms = t.elapsed().as_secs_f64() * 1e3;
    if !rep.rejected.is_empty() {
        return Err(crate::error::PortfolioError::Csv(format!(
            "benchmark book had {} rejected rows, first: {:?}",
            rep.rejected.len(),
            rep.rejected.first()
        )));
    }
    let q = AggQuery {
        overdue: OverdueDef::DaysGt(30),
        ..AggQuery::new(
            "bench",
            &[Dimension::IndustrySection, Dimension::RegionProvince],
        )
        .filter(Dimension::CustomerType, &["小型企业", "微型企业"])
    };
    let t = Instant::now();
    let first = store.aggregate(&q)?;
    let snapshot_build_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut lat = Vec::with_capacity(iterations);
    for _ in 0..iterations.max(1) {
        let t = Instant::now();
        let r = store.aggregate(&q)?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(r);
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    Ok(BenchReport {
        loans: n_loans,
        months,
        rows,
        csv_bytes,
        generate_ms,
        ingest_ms,
        ingest_rows_per_s: rows as f64 / (ingest_ms / 1e3),
        snapshot_build_ms,
        query: "by=industry.section,region.province&customer_type=小型企业,微型企业&overdue_days_gt=30 (latest month, with change vs previous)".into(),
        iterations: lat.len(),
        agg_p50_ms: pct(0.5),
        agg_p95_ms: pct(0.95),
        result_rows: first.rows.len(),
        matched_loans: first.totals.metrics.loans,
    })
}
