//! `touxiang ingest` (load a loan file into a portfolio) and `touxiang bench aggregate`.
//!
//! Ingest writes to `DATA_DIR/portfolio.sqlite` in one transaction (WAL mode), so it is safe
//! while the server runs: the server keeps answering from the last committed state and picks
//! up the new generation on its next query.
//!
//! **Labeling.** Loans without an `industry_code` are labeled by the trained classifier, loaded
//! only when the first such row is reached
//! ([`crate::engine::load_labeler`]). When no classifier is available the ingest still runs,
//! so a book whose rows all carry `industry_code` is accepted; but if any accepted row needs a
//! label the whole ingest fails with a clear message and nothing is written. `--no-label`
//! stores such loans without an industry (counted in `industry_missing`; a later
//! `touxiang batch` can label them).
//!
//! **Rejected rows.** The summary lists the first `limits.max_reported_row_errors` (default
//! 1000) row problems and counts them all (`rejected_total`); every one is written to a CSV
//! report (`row,field,reason`): `--errors FILE`, or by default
//! `DATA_DIR/ingest-reports/<report_id>.csv` (`report_path` in the summary; the server serves
//! it at `/v1/portfolios/{name}/ingest-reports/{report_id}`).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use clap::Args;
use touxiang_datasets::{LabelError, LabelResult, Labeler};
use touxiang_portfolio::{
    lendingclub, ColumnMap, ErrorReport, IngestOptions, IngestReport, PortfolioError,
    PortfolioStore, RegionScheme,
};

use crate::cli::Common;
use crate::config::{Config, FlagOverrides};

/// Arguments of `touxiang ingest`.
#[derive(Args, Debug, Clone)]
pub struct IngestArgs {
    #[command(flatten)]
    pub common: Common,
    /// Portfolio name (created on the first ingest).
    #[arg(long)]
    pub portfolio: String,
    /// Loan file: .csv, .xlsx or .jsonl.
    pub file: PathBuf,
    /// Column renames `canonical=source,...` (e.g. `loan_id=借据号,balance=余额`).
    #[arg(long)]
    pub map: Option<String>,
    /// `all-or-nothing` (any bad row → nothing written) or `commit-valid` (bad rows listed, the
    /// rest written).
    #[arg(long, default_value = "all-or-nothing")]
    pub mode: String,
    /// Taxonomy of the classifier used for loans without industry_code.
    #[arg(long)]
    pub taxonomy: Option<String>,
    /// Store loans without industry_code unlabeled instead of running the classifier.
    #[arg(long)]
    pub no_label: bool,
    /// Label without the kNN vote over the artifact's exemplars (heads-only calibration): faster
    /// and no first-run embedding, but not the labels online classify gives. By default the
    /// vote takes part, as in `serve`: the first run embeds the shipped exemplars (63 k for
    /// GB/T, a few minutes; cached under DATA_DIR/embedding-cache), then labeling is about
    /// 15 % slower per distinct text.
    #[arg(long)]
    pub heads_only: bool,
    /// The kNN vote (the default now; kept so existing scripts keep working).
    #[arg(long, hide = true, conflicts_with = "heads_only")]
    pub neighbors: bool,
    /// XLSX sheet (default: the first).
    #[arg(long)]
    pub sheet: Option<String>,
    /// Region table, fixed at the first ingest: china (GB/T 2260, default) or us_states.
    #[arg(long)]
    pub region_scheme: Option<String>,
    /// Currency, fixed at the first ingest (default CNY).
    #[arg(long)]
    pub currency: Option<String>,
    /// `lendingclub`: the Lending Club column map, status map, US states and USD.
    #[arg(long)]
    pub preset: Option<String>,
    /// Write every row problem to this CSV (`row,field,reason`; the header alone when none).
    /// Default: `DATA_DIR/ingest-reports/<report_id>.csv`, only when a row was rejected.
    #[arg(long, value_name = "FILE")]
    pub errors: Option<PathBuf>,
}

/// Ingest options from CLI arguments.
pub fn ingest_options(a: &IngestArgs) -> anyhow::Result<IngestOptions> {
    let mut o = match a.preset.as_deref() {
        None => IngestOptions::default(),
        Some("lendingclub") => lendingclub::ingest_options(),
        Some(p) => anyhow::bail!("--preset: unknown preset {p:?} (lendingclub)"),
    };
    o.mode = crate::routes::portfolio::parse_mode(&a.mode)
        .with_context(|| format!("--mode: {:?} is not all-or-nothing or commit-valid", a.mode))?;
    if let Some(m) = &a.map {
        o.map = ColumnMap::parse(m).context("--map")?;
    }
    if a.region_scheme.is_some() || a.currency.is_some() {
        let mut c = o.config.clone().unwrap_or_default();
        if let Some(r) = &a.region_scheme {
            c.region_scheme = RegionScheme::parse(r)
                .with_context(|| format!("--region-scheme: {r:?} is not china or us_states"))?;
        }
        if let Some(cur) = &a.currency {
            c.currency = cur.clone();
        }
        o.config = Some(c);
    }
    o.sheet = a.sheet.clone();
    if let Some(f) = &a.errors {
        o.error_report = ErrorReport::File(f.clone());
    }
    Ok(o)
}

/// `touxiang ingest`: print the summary as JSON (the first row problems; all of them in the
/// report file, which stderr names); exit status 2 when rows were rejected and nothing was
/// written (all-or-nothing).
pub fn run(a: IngestArgs) -> anyhow::Result<()> {
    let cfg = a.common.load(FlagOverrides::default())?;
    let report = run_with(&cfg, &a)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if report.rejected_total > 0 {
        let listed = if report.rejected_truncated {
            format!(" (the first {} listed above)", report.rejected.len())
        } else {
            String::new()
        };
        let file = match &report.report_path {
            Some(p) => format!("; all of them in {}", p.display()),
            None => String::new(),
        };
        eprintln!(
            "{} row problem(s) in {} row(s){listed}{file}",
            report.rejected_total, report.rejected_rows
        );
    }
    if !report.committed && report.rejected_total > 0 {
        eprintln!(
            "nothing was written (mode all-or-nothing; use --mode commit-valid to write the valid rows)"
        );
        std::process::exit(2);
    }
    Ok(())
}

/// Ingest from CLI arguments; returns the report.
pub fn run_with(cfg: &Config, a: &IngestArgs) -> anyhow::Result<IngestReport> {
    // the same names as the HTTP routes accept
    crate::routes::portfolio::name::validate(&a.portfolio)
        .map_err(|e| anyhow::anyhow!("--portfolio: {e}"))?;
    let mut opts = ingest_options(a)?;
    opts.max_reported_row_errors = Some(cfg.limits.max_reported_row_errors);
    let taxonomy = a
        .taxonomy
        .clone()
        .unwrap_or_else(|| cfg.classify.default_taxonomy.clone());
    let lazy =
        (!a.no_label).then(|| LazyLabeler::new(cfg.clone(), taxonomy.clone(), !a.heads_only));
    let store = PortfolioStore::open(&cfg.data_dir).with_context(|| {
        format!(
            "cannot open the portfolio store in {}",
            cfg.data_dir.display()
        )
    })?;
    let labeler = lazy.as_ref().map(|l| l as &dyn Labeler);
    match store.ingest_file(&a.portfolio, &a.file, &opts, labeler) {
        Ok(r) => Ok(r),
        Err(PortfolioError::Label(_)) if lazy.as_ref().and_then(|l| l.load_error()).is_some() => anyhow::bail!(
            "{} has loans without industry_code that need the classifier for taxonomy '{taxonomy}', \
             which is not available ({}). Nothing was written. Add an industry_code column, \
             install the trained classifier, or pass --no-label to store them without industry.",
            a.file.display(),
            lazy.as_ref().and_then(|l| l.load_error()).unwrap_or_default()
        ),
        Err(e) => Err(anyhow::Error::new(e).context(format!("ingest of {} failed", a.file.display()))),
    }
}

/// The classifier, loaded on the first `label` call: a book whose rows all carry
/// `industry_code` never loads the model. A failed load is remembered and reported by every call.
pub struct LazyLabeler {
    cfg: Config,
    taxonomy: String,
    neighbors: bool,
    inner: OnceLock<Result<Arc<dyn Labeler>, String>>,
}

impl LazyLabeler {
    /// A labeler for `taxonomy` that loads on first use (`neighbors`: see
    /// [`crate::engine::load_labeler`]).
    pub fn new(cfg: Config, taxonomy: String, neighbors: bool) -> Self {
        LazyLabeler {
            cfg,
            taxonomy,
            neighbors,
            inner: OnceLock::new(),
        }
    }

    fn get(&self) -> &Result<Arc<dyn Labeler>, String> {
        self.inner.get_or_init(|| {
            crate::engine::load_labeler(&self.cfg, &self.taxonomy, self.neighbors)
                .map_err(|e| format!("{e:#}"))
        })
    }

    /// Why loading failed, if it was tried and failed.
    pub fn load_error(&self) -> Option<String> {
        match self.inner.get() {
            Some(Err(e)) => Some(e.clone()),
            _ => None,
        }
    }
}

impl Labeler for LazyLabeler {
    fn label(&self, texts: &[&str]) -> Result<Vec<LabelResult>, LabelError> {
        match self.get() {
            Ok(l) => l.label(texts),
            Err(e) => Err(LabelError(e.clone())),
        }
    }
    fn model_version(&self) -> String {
        match self.get() {
            Ok(l) => l.model_version(),
            Err(_) => "unavailable".into(),
        }
    }
    fn taxonomy_version(&self) -> String {
        match self.get() {
            Ok(l) => l.taxonomy_version(),
            Err(_) => self.taxonomy.clone(),
        }
    }
}

/// Arguments of `touxiang bench aggregate`.
#[derive(Args, Debug, Clone)]
pub struct BenchAggregateArgs {
    /// Distinct loans per monthly snapshot.
    #[arg(long, default_value_t = 1_000_000)]
    pub loans: usize,
    /// Monthly snapshots.
    #[arg(long, default_value_t = 1)]
    pub months: usize,
    /// Timed repetitions of the query.
    #[arg(long, default_value_t = 50)]
    pub iterations: usize,
    /// Working directory for the generated CSV and store (default: a temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// `touxiang bench aggregate`: generate a synthetic Chinese book, ingest it, time a
/// two-dimension group-by with a filter ([`touxiang_portfolio::bench`]).
pub fn bench_aggregate(a: BenchAggregateArgs) -> anyhow::Result<()> {
    let r = touxiang_portfolio::bench(a.loans, a.months, a.iterations, a.dir.as_deref())?;
    println!(
        "{} rows ingested in {:.1}s ({:.0} rows/s); snapshot build {:.0} ms; \
         aggregate p50 {:.1} ms, p95 {:.1} ms over {} runs ({} result rows, {} loans matched)",
        r.rows,
        r.ingest_ms / 1e3,
        r.ingest_rows_per_s,
        r.snapshot_build_ms,
        r.agg_p50_ms,
        r.agg_p95_ms,
        r.iterations,
        r.result_rows,
        r.matched_loans
    );
    println!("{}", serde_json::to_string_pretty(&r)?);
    Ok(())
}
