//! The benchmark book: a generated book (see [`crate::synth`]) of `loans` loans and about
//! `loans × payments_per_loan` payments ingested as a user would (loans through the portfolio
//! crate, payments and relations through this one), timed. Payee labels are put in the cache
//! from the generator's ground truth (what a warm cache holds after the payees were classified
//! once; classifying millions of names is the classifier's benchmark, not this one), so what is
//! timed afterwards is the flow read path itself.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use touxiang_portfolio::{IngestOptions as LoanOptions, PortfolioStore};

use crate::error::Result;
use crate::synth::{write_book, FlowSynthSpec};
use crate::{FlowStore, IngestOptions, Input};

/// Scope under which the benchmark seeds payee labels.
pub const BENCH_SCOPE: &str = "generated-truth";

/// Figures of the preparation.
#[derive(Debug, Clone, Serialize)]
pub struct BenchBook {
    pub data_dir: PathBuf,
    pub portfolio: String,
    pub loans: u64,
    pub payments: u64,
    pub relations: u64,
    pub generate_s: f64,
    pub loan_ingest_s: f64,
    pub loan_ingest_rows_per_s: f64,
    pub payment_ingest_s: f64,
    pub payment_ingest_rows_per_s: f64,
    pub relation_ingest_s: f64,
    pub payee_names: u64,
    pub label_seed_s: f64,
    pub circles: u64,
    pub circles_s: f64,
    /// Loans whose `flow.section` was written, and the time of that pass.
    pub flow_sections: u64,
    pub flow_sections_s: f64,
}

/// Generate and ingest the benchmark book under `dir`.
pub fn prepare(loans: usize, payments_per_loan: usize, dir: &Path) -> Result<BenchBook> {
    let spec = FlowSynthSpec {
        loans,
        payments_per_loan,
        seed: 11,
        circles: (loans / 1000).max(5),
        pool: Some((loans / 10).max(8)),
        keep_truth: false,
        ..Default::default()
    };
    let files = dir.join("book");
    let t = Instant::now();
    let truth = write_book(&spec, &files)?;
    let generate_s = t.elapsed().as_secs_f64();
    let data = dir.join("data");
    let store = PortfolioStore::open(&data)?;
    let t = Instant::now();
    let r = store.ingest_file(
        "bench",
        &files.join("loans.csv"),
        &LoanOptions::default(),
        None,
    )?;
    let loan_ingest_s = t.elapsed().as_secs_f64();
    assert_ok(r.committed, "loans")?;
    let flow = FlowStore::open(&data)?;
    let t = Instant::now();
    let p = flow.ingest_payments(
        "bench",
        Input::File(&files.join("payments.csv"), None),
        &IngestOptions::default(),
    )?;
    let payment_ingest_s = t.elapsed().as_secs_f64();
    assert_ok(p.committed, "payments")?;
    let t = Instant::now();
    let rel = flow.ingest_relations(
        "bench",
        Input::File(&files.join("relations.csv"), None),
        &IngestOptions::default(),
    )?;
    let relation_ingest_s = t.elapsed().as_secs_f64();
    assert_ok(rel.committed, "relations")?;
    let t = Instant::now();
    flow.seed_payee_labels(BENCH_SCOPE, &truth.payee_codes)?;
    let label_seed_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let circles = flow.circles("bench", Default::default())?.circles.len() as u64;
    let circles_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let flow_sections = flow.refresh_actual_sections("bench", None, &store)?;
    let flow_sections_s = t.elapsed().as_secs_f64();
    Ok(BenchBook {
        data_dir: data,
        portfolio: "bench".into(),
        loans: truth.loans,
        payments: p.accepted,
        relations: rel.accepted,
        generate_s,
        loan_ingest_s,
        loan_ingest_rows_per_s: truth.loans as f64 / loan_ingest_s.max(1e-9),
        payment_ingest_s,
        payment_ingest_rows_per_s: p.accepted as f64 / payment_ingest_s.max(1e-9),
        relation_ingest_s,
        payee_names: truth.payee_codes.len() as u64,
        label_seed_s,
        circles,
        circles_s,
        flow_sections,
        flow_sections_s,
    })
}

fn assert_ok(ok: bool, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(crate::error::FlowError::Io(std::io::Error::other(format!(
            "benchmark {what} ingest did not commit"
        ))))
    }
}
