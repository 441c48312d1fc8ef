//! `touxiang batch`: batch reclassification of a loan file (CSV, XLSX, JSONL, Parquet) with a
//! progress bar, resumable checkpoints, shards, review routing and a diff report — and the
//! [`ReviewStoreSink`] that routes `review` rows into the review queues (used by HTTP jobs too).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use clap::Args;
use rusqlite::OptionalExtension;
use touxiang_batch::{
    BatchHooks, BatchOptions, BatchSummary, Format, InputEncoding, ProgressBar, ReviewRequest,
    ReviewSink, ReviewSinkError, Shard,
};
use touxiang_datasets::Labeler;
use touxiang_review::ReviewStore;

use crate::cli::Common;
use crate::config::{Config, FlagOverrides};

/// File (in the data directory) mapping batch idempotency keys to review ids.
pub const REVIEW_KEYS_FILE: &str = "batch-review-keys.sqlite";
/// The shared label cache of batch runs (in the data directory).
pub const CACHE_FILE: &str = "batch-cache.sqlite";

/// Arguments of `touxiang batch`.
#[derive(Args, Debug, Clone)]
pub struct BatchArgs {
    #[command(flatten)]
    pub common: Common,
    /// Input file (.csv, .xlsx, .jsonl, .parquet).
    #[arg(long)]
    pub input: PathBuf,
    /// Output file (.csv, .xlsx, .jsonl, .parquet): one row per input row, in input order.
    #[arg(long)]
    pub output: PathBuf,
    /// Column with the row id.
    #[arg(long, default_value = "loan_id")]
    pub id_column: String,
    /// Column with the purpose text.
    #[arg(long, default_value = "purpose_text")]
    pub text_column: String,
    /// Continue from the checkpoint of an interrupted run (OUTPUT.ckpt.json), if any.
    #[arg(long)]
    pub resume: bool,
    /// Process only shard i of n (0-based, e.g. 0/4; a Kubernetes indexed Job passes
    /// $JOB_COMPLETION_INDEX/N). Shard outputs concatenate to the full result.
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<Shard>,
    /// Route rows to the review queue (classify.review_queue) by the rule of `/v1/classify`:
    /// `review` decisions, disagreements with the neighbour vote, QA samples of `auto` decisions
    /// (classify.qa_sample_rate).
    #[arg(long)]
    pub review: bool,
    /// Column with the previous code of each row (for the diff report).
    #[arg(long)]
    pub old_code_column: Option<String>,
    /// Column with each row's balance (summed per old → new flow in the diff report).
    #[arg(long)]
    pub balance_column: Option<String>,
    /// Column with the borrower's name, read by the model with the purpose text.
    #[arg(long)]
    pub borrower_name_column: Option<String>,
    /// Column with the borrower's business scope (经营范围), read with the purpose text.
    #[arg(long)]
    pub business_scope_column: Option<String>,
    /// Write the diff report as JSON here.
    #[arg(long)]
    pub diff_json: Option<PathBuf>,
    /// Write the diff report as XLSX here.
    #[arg(long)]
    pub diff_xlsx: Option<PathBuf>,
    /// Taxonomy of the classifier (default: classify.default_taxonomy).
    #[arg(long)]
    pub taxonomy: Option<String>,
    /// No progress bar on stderr.
    #[arg(long)]
    pub no_progress: bool,
    /// Input format when the extension does not tell (csv, xlsx, jsonl, parquet).
    #[arg(long)]
    pub input_format: Option<String>,
    /// Output format when the extension does not tell.
    #[arg(long)]
    pub output_format: Option<String>,
    /// Encoding of CSV/JSONL input: utf-8 (default) or gb18030 (GBK).
    #[arg(long)]
    pub encoding: Option<String>,
    /// XLSX sheet (default: the first).
    #[arg(long)]
    pub sheet: Option<String>,
    /// Rows per chunk (unit of checkpoints and cancellation; default 4096).
    #[arg(long)]
    pub chunk_size: Option<usize>,
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
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    s.parse::<Shard>().map_err(|e| e.to_string())
}

/// Build the batch options of a CLI run (paths as given; cache in the data directory).
pub fn options(cfg: &Config, a: &BatchArgs) -> anyhow::Result<BatchOptions> {
    let mut o = BatchOptions::new(&a.input, &a.output);
    o.id_column = a.id_column.clone();
    o.text_column = a.text_column.clone();
    o.resume = a.resume;
    o.shard = a.shard;
    o.review = a.review;
    o.old_code_column = a.old_code_column.clone();
    o.balance_column = a.balance_column.clone();
    o.borrower_name_column = a.borrower_name_column.clone();
    o.business_scope_column = a.business_scope_column.clone();
    o.diff_json = a.diff_json.clone();
    o.diff_xlsx = a.diff_xlsx.clone();
    o.input_format = a
        .input_format
        .as_deref()
        .map(str::parse::<Format>)
        .transpose()?;
    o.output_format = a
        .output_format
        .as_deref()
        .map(str::parse::<Format>)
        .transpose()?;
    if let Some(e) = &a.encoding {
        o.input_encoding = e.parse::<InputEncoding>()?;
    }
    o.sheet = a.sheet.clone();
    if let Some(c) = a.chunk_size {
        anyhow::ensure!(c > 0, "--chunk-size must be at least 1");
        o.chunk_size = c;
    }
    o.cache_path = Some(cfg.data_dir.join(CACHE_FILE));
    Ok(o)
}

/// `touxiang batch`: run, print the summary as JSON on stdout.
pub fn run(a: BatchArgs) -> anyhow::Result<()> {
    let cfg = a.common.load(FlagOverrides::default())?;
    let summary = run_with(&cfg, &a)?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

/// Run a batch from CLI arguments; returns the summary.
pub fn run_with(cfg: &Config, a: &BatchArgs) -> anyhow::Result<BatchSummary> {
    let opts = options(cfg, a)?;
    let taxonomy = a
        .taxonomy
        .clone()
        .unwrap_or_else(|| cfg.classify.default_taxonomy.clone());
    let labeler: Arc<dyn Labeler> = crate::engine::load_labeler(cfg, &taxonomy, !a.heads_only)
        .with_context(|| {
            format!(
                "touxiang batch needs the trained classifier for taxonomy '{taxonomy}' \
                 (model + artifacts under {}), and it could not be loaded",
                cfg.data_dir.display()
            )
        })?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create {}", cfg.data_dir.display()))?;
    let mut hooks = BatchHooks::default();
    if a.review {
        hooks.review = Some(Arc::new(ReviewStoreSink::open(cfg, &taxonomy)?));
    }
    let bar = (!a.no_progress).then(|| ProgressBar::start(hooks.progress.clone()));
    let res = touxiang_batch::run(&opts, labeler.as_ref(), &hooks);
    if let Some(b) = bar {
        b.finish();
    }
    Ok(res?)
}

/// Routes the rows of a batch run that [`crate::review::review_item`] sends to review into the
/// review store (`DATA_DIR/review.sqlite`, queue `classify.review_queue`).
///
/// Idempotency: the batch engine gives each row a key and re-sends rows after a crash; the
/// review store has no lookup by external key, so this sink keeps `key → review_id` in
/// `DATA_DIR/batch-review-keys.sqlite` and answers a known key with the stored id. The key is
/// recorded right after the enqueue commits; a crash in the instant between the two can still
/// enqueue that one row twice on resume.
pub struct ReviewStoreSink {
    store: Arc<ReviewStore>,
    keys: Mutex<rusqlite::Connection>,
    queue: String,
    taxonomy: String,
    /// QA sampler of `auto` decisions (`classify.qa_sample_rate`, or the server's current rate).
    qa: touxiang_review::Sampler,
}

impl ReviewStoreSink {
    /// Open the review store and the key map of the data directory (the CLI: a process of its
    /// own).
    pub fn open(cfg: &Config, taxonomy: &str) -> anyhow::Result<ReviewStoreSink> {
        let rc = touxiang_review::ReviewConfig {
            double_review_rate: cfg.review.double_review_rate,
            // Short-lived CLI processes: SQLite's own checkpoints.
            checkpoint_interval: None,
            ..Default::default()
        };
        let store = ReviewStore::open(&cfg.data_dir, rc).with_context(|| {
            format!("cannot open the review store in {}", cfg.data_dir.display())
        })?;
        Self::with_store(cfg, Arc::new(store), taxonomy, cfg.classify.qa_sample_rate)
    }

    /// Route into `store`, the review store the server already holds (HTTP jobs: one store per
    /// process, with the double-review rate as an admin last set it), QA-sampling `auto` rows
    /// at `qa_rate` (the server's current one), opening the key map.
    pub fn with_store(
        cfg: &Config,
        store: Arc<ReviewStore>,
        taxonomy: &str,
        qa_rate: f64,
    ) -> anyhow::Result<ReviewStoreSink> {
        let qa = touxiang_review::Sampler::from_os(qa_rate)
            .map_err(|e| anyhow::anyhow!("classify.qa_sample_rate: {e}"))?;
        let keys = open_keys(&cfg.data_dir.join(REVIEW_KEYS_FILE))?;
        Ok(ReviewStoreSink {
            store,
            keys: Mutex::new(keys),
            queue: cfg.classify.review_queue.clone(),
            taxonomy: taxonomy.to_string(),
            qa,
        })
    }
}

/// `batch-review-keys.sqlite`: which input row was enqueued as which review item (a resumed
/// run does not enqueue twice). Opened with the integrity check of [`touxiang_sqlite`].
pub const REVIEW_KEYS_SCHEMA: touxiang_sqlite::StoreSchema = touxiang_sqlite::StoreSchema {
    store: "batch review-key map",
    tables: &["review_keys"],
    migrations: &["CREATE TABLE IF NOT EXISTS review_keys (
             key TEXT PRIMARY KEY,
             review_id TEXT NOT NULL,
             created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
         ) WITHOUT ROWID;"],
};

pub(crate) fn open_keys(path: &Path) -> anyhow::Result<rusqlite::Connection> {
    let c = touxiang_sqlite::open_store(path, &REVIEW_KEYS_SCHEMA)?;
    c.busy_timeout(std::time::Duration::from_secs(60))?;
    c.execute_batch("PRAGMA journal_mode=WAL;")
        .with_context(|| format!("cannot open {}", path.display()))?;
    Ok(c)
}

impl ReviewSink for ReviewStoreSink {
    fn offer(&self, r: &ReviewRequest<'_>) -> Result<Option<String>, ReviewSinkError> {
        let err = |e: &dyn std::fmt::Display| ReviewSinkError(e.to_string());
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let known: Option<String> = keys
            .query_row(
                "SELECT review_id FROM review_keys WHERE key = ?1",
                [r.key],
                |x| x.get(0),
            )
            .optional()
            .map_err(|e| err(&e))?;
        if known.is_some() {
            return Ok(known);
        }
        let mut context = serde_json::Map::new();
        context.insert("batch_row".into(), r.row.into());
        let offered = crate::review::Offered {
            text: r.text,
            external_id: Some(r.id.to_string()),
            amount: r.amount,
            label: r.label,
            context,
        };
        let Some(item) = crate::review::review_item(&self.qa, &self.queue, &self.taxonomy, offered)
        else {
            return Ok(None);
        };
        metrics::counter!("touxiang_review_enqueued_total", "reason" => item.reason.as_str())
            .increment(1);
        let id = self
            .store
            .enqueue(&item, chrono::Utc::now())
            .map_err(|e| err(&format!("row {} ({}): {e}", r.row, r.id)))?;
        keys.execute(
            "INSERT OR REPLACE INTO review_keys (key, review_id) VALUES (?1, ?2)",
            rusqlite::params![r.key, id],
        )
        .map_err(|e| err(&e))?;
        Ok(Some(id))
    }
}
