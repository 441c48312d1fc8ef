//! Fund-flow commands: `touxiang ingest-payments`, `touxiang ingest-relations`, and
//! `touxiang flow synth-book | show | circles | eval-payees | bench`.
//!
//! Ingests write `DATA_DIR/flow.sqlite` in one transaction (safe while the server runs) and
//! print the JSON summary; exit status 2 when rows were rejected and nothing was written
//! (all-or-nothing). `ingest-payments` then classifies the new payees with the trained GB/T
//! classifier (loaded on first need; `--no-label` skips it: flows classify them later).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use touxiang_datasets::Labeler;
use touxiang_flow::{FlowOptions, FlowStore, IngestOptions, IngestSummary, Input, Restricted};

use crate::cli::Common;
use crate::cmd_portfolio::LazyLabeler;
use crate::config::{Config, FlagOverrides};
use crate::routes::flow::PAYEE_TAXONOMY;

/// Arguments of `touxiang ingest-payments` / `ingest-relations`.
#[derive(Args, Debug, Clone)]
pub struct FlowIngestArgs {
    #[command(flatten)]
    pub common: Common,
    /// Portfolio name (its loans must be ingested first).
    #[arg(long)]
    pub portfolio: String,
    /// The file: .csv, .xlsx or .jsonl.
    pub file: PathBuf,
    /// `all-or-nothing` (any bad row → nothing written) or `commit-valid`.
    #[arg(long, default_value = "all-or-nothing")]
    pub mode: String,
    /// XLSX sheet (default: the first).
    #[arg(long)]
    pub sheet: Option<String>,
    /// Payments: do not classify the payees now.
    #[arg(long)]
    pub no_label: bool,
    /// Payments: classify with the kNN vote over the training exemplars, as `serve` does.
    #[arg(long)]
    pub neighbors: bool,
}

#[derive(Subcommand)]
pub enum FlowCmd {
    /// Write a GENERATED book (loans.csv, payments.csv, relations.csv, truth.json) with planted
    /// diversions and guarantee circles.
    SynthBook {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 2000)]
        loans: usize,
        #[arg(long, default_value_t = 3)]
        payments_per_loan: usize,
        #[arg(long, default_value_t = 20)]
        circles: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Print the flow of one loan as JSON.
    Show {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        portfolio: String,
        #[arg(long)]
        loan: String,
        /// Restricted codes (default 7010,67,663,69).
        #[arg(long)]
        restricted: Option<String>,
        /// Use cached payee labels only.
        #[arg(long)]
        no_label: bool,
    },
    /// Print the guarantee circles as JSON.
    Circles {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        portfolio: String,
    },
    /// Classify the team-written payee list with the trained classifier; print accuracy.
    EvalPayees {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value = "eval/data/payees/payees.tsv")]
        file: PathBuf,
        #[arg(long)]
        neighbors: bool,
    },
    /// Payment ingest rows/s and `/v1/loans/{id}/flow` latency on a generated book.
    Bench {
        #[arg(long, default_value_t = 1_000_000)]
        loans: usize,
        #[arg(long, default_value_t = 5)]
        payments_per_loan: usize,
        #[arg(long, default_value_t = 500)]
        iterations: usize,
        /// Working directory (default: a temporary one).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn options(a: &FlowIngestArgs, cfg: &Config) -> anyhow::Result<IngestOptions> {
    crate::routes::portfolio::name::validate(&a.portfolio)
        .map_err(|e| anyhow::anyhow!("--portfolio: {e}"))?;
    Ok(IngestOptions {
        mode: crate::routes::portfolio::parse_mode(&a.mode).with_context(|| {
            format!("--mode: {:?} is not all-or-nothing or commit-valid", a.mode)
        })?,
        sheet: a.sheet.clone(),
        source_name: Some(a.file.display().to_string()),
        max_reported_row_errors: Some(cfg.limits.max_reported_row_errors),
    })
}

fn finish(s: &IngestSummary) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(s)?);
    if s.rejected_total > 0 {
        eprintln!(
            "{} row problem(s) in {} row(s)",
            s.rejected_total, s.rejected_rows
        );
    }
    if !s.committed && s.rejected_total > 0 {
        eprintln!("nothing was written (mode all-or-nothing; use --mode commit-valid to write the valid rows)");
        std::process::exit(2);
    }
    Ok(())
}

/// `touxiang ingest-payments`.
pub fn run_payments(a: FlowIngestArgs) -> anyhow::Result<()> {
    let cfg = a.common.load(FlagOverrides::default())?;
    let opts = options(&a, &cfg)?;
    let store = FlowStore::open(&cfg.data_dir)?;
    let mut s = store
        .ingest_payments(&a.portfolio, Input::File(&a.file, None), &opts)
        .with_context(|| format!("ingest of {} failed", a.file.display()))?;
    if s.committed && !a.no_label {
        let lab = LazyLabeler::new(cfg.clone(), PAYEE_TAXONOMY.into(), a.neighbors);
        match store.label_payees(&a.portfolio, &lab) {
            Ok(n) => {
                s.payees_labeled = Some(n);
                let review = crate::review::ReviewCtx::open(&cfg)?;
                s.payees_queued = Some(crate::payee_review::enqueue_payees(
                    &review.store,
                    &store,
                    &a.portfolio,
                )?);
            }
            Err(e) => eprintln!("payments were written; classifying the payees failed ({e}): flows will classify them when asked"),
        }
    }
    if s.committed {
        // the `flow.section` dimension of aggregates, from the payee labels cached above
        let portfolios = touxiang_portfolio::PortfolioStore::open(&cfg.data_dir)?;
        s.flow_sections = Some(store.refresh_actual_sections(&a.portfolio, None, &portfolios)?);
    }
    finish(&s)
}

/// `touxiang ingest-relations`.
pub fn run_relations(a: FlowIngestArgs) -> anyhow::Result<()> {
    let cfg = a.common.load(FlagOverrides::default())?;
    let opts = options(&a, &cfg)?;
    let store = FlowStore::open(&cfg.data_dir)?;
    let s = store
        .ingest_relations(&a.portfolio, Input::File(&a.file, None), &opts)
        .with_context(|| format!("ingest of {} failed", a.file.display()))?;
    finish(&s)
}

/// `touxiang flow …`.
pub fn run(cmd: FlowCmd) -> anyhow::Result<()> {
    match cmd {
        FlowCmd::SynthBook {
            out,
            loans,
            payments_per_loan,
            circles,
            seed,
        } => {
            let spec = touxiang_flow::synth::FlowSynthSpec {
                loans,
                payments_per_loan,
                circles,
                seed,
                ..Default::default()
            };
            let t = touxiang_flow::synth::write_book(&spec, &out)?;
            println!(
                "{}",
                serde_json::json!({"generated": true, "dir": out, "loans": t.loans, "payments": t.payments,
                    "relations": t.relations, "diversions_planted": t.diversions_planted, "circles": t.circles.len(),
                    "truth": out.join("truth.json")})
            );
            Ok(())
        }
        FlowCmd::Show {
            common,
            portfolio,
            loan,
            restricted,
            no_label,
        } => {
            let cfg = common.load(FlagOverrides::default())?;
            let store = FlowStore::open(&cfg.data_dir)?;
            let restricted = match restricted {
                Some(r) => Restricted::parse(&r)?,
                None => Restricted::default(),
            };
            let lab =
                (!no_label).then(|| LazyLabeler::new(cfg.clone(), PAYEE_TAXONOMY.into(), false));
            let f = store.loan_flow(
                &portfolio,
                &loan,
                &FlowOptions { restricted },
                lab.as_ref().map(|l| l as &dyn Labeler),
            )?;
            println!("{}", serde_json::to_string_pretty(&f)?);
            Ok(())
        }
        FlowCmd::Circles { common, portfolio } => {
            let cfg = common.load(FlagOverrides::default())?;
            let store = FlowStore::open(&cfg.data_dir)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&store.circles(&portfolio, Default::default())?)?
            );
            Ok(())
        }
        FlowCmd::EvalPayees {
            common,
            file,
            neighbors,
        } => {
            let cfg = common.load(FlagOverrides::default())?;
            let lines = touxiang_flow::payee_eval::read_tsv(&file)?;
            let lab = crate::engine::load_labeler(&cfg, PAYEE_TAXONOMY, neighbors)?;
            let e = touxiang_flow::payee_eval::evaluate(&lines, lab.as_ref())?;
            print!("{}", e.report());
            Ok(())
        }
        FlowCmd::Bench {
            loans,
            payments_per_loan,
            iterations,
            dir,
        } => bench(loans, payments_per_loan, iterations, dir),
    }
}

fn bench(loans: usize, ppl: usize, iterations: usize, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("touxiang-flow-bench-{}", std::process::id()))
    });
    let b = touxiang_flow::bench::prepare(loans, ppl, &dir)?;
    println!(
        "{} loans ingested in {:.1}s ({:.0} rows/s); {} payments ingested in {:.1}s ({:.0} rows/s); \
         {} relations in {:.1}s; {} payee labels cached in {:.1}s; {} circles in {:.2}s; \
         flow.section of {} loans in {:.1}s",
        b.loans, b.loan_ingest_s, b.loan_ingest_rows_per_s, b.payments, b.payment_ingest_s,
        b.payment_ingest_rows_per_s, b.relations, b.relation_ingest_s, b.payee_names, b.label_seed_s,
        b.circles, b.circles_s, b.flow_sections, b.flow_sections_s
    );
    // the route, in process (no TCP), authentication off, classifier not loaded: cached labels
    let cfg = Config {
        data_dir: b.data_dir.clone(),
        insecure_no_auth: true,
        ..Config::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut ms = rt.block_on(async {
        use tower::ServiceExt;
        // as `serve` does before listening: open and check the stores (a one-time cost of a
        // read of each file, not part of any request)
        let state = crate::AppState::open(cfg, None)?;
        let app = crate::app(state);
        let mut ms = Vec::with_capacity(iterations);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..iterations {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = format!("L{:08}", 1 + x % b.loans);
            let req = axum::http::Request::builder()
                .uri(format!("/v1/loans/{id}/flow?portfolio={}", b.portfolio))
                .body(axum::body::Body::empty())?;
            let t = Instant::now();
            let resp = app.clone().oneshot(req).await?;
            let status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), 1 << 24).await?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            anyhow::ensure!(
                status.is_success(),
                "{id}: {status} {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok::<_, anyhow::Error>(ms)
    })?;
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "GET /v1/loans/{{id}}/flow over {} random loans: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms.len(),
        q(0.5),
        q(0.95),
        q(0.99),
        q(1.0)
    );
    println!(
        "{}",
        serde_json::json!({"book": b, "flow_ms": {"p50": q(0.5), "p95": q(0.95), "p99": q(0.99), "max": q(1.0), "n": ms.len()}})
    );
    Ok(())
}
