//! The batch engine: read in chunks, normalise + dedup, cache, label, write, checkpoint.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use touxiang_datasets::{Labeler, Taxonomy};

use crate::cache::LabelCache;
use crate::diff::{DiffAccumulator, DiffReport};
use crate::error::{BatchError, RowIssue};
use crate::input::{self, RawRow};
use crate::options::{BatchOptions, Format, Shard};
use crate::output::{self, RowWriter};
use crate::progress::{Progress, Stage};
use crate::review::ReviewSink;

mod checkpoint;
mod chunk;

use checkpoint::{fingerprint, sync_dir, Checkpoint, CHECKPOINT_VERSION};
use chunk::process_chunk;

/// What the caller plugs into a run besides the options: shared progress, the cancel flag, the
/// review sink, previous labels for the diff and the taxonomy.
#[derive(Clone)]
pub struct BatchHooks {
    /// Updated as the run goes; share it with a progress bar or a job status endpoint.
    pub progress: Arc<Progress>,
    /// Set to `true` to stop after the current chunk (checkpointed: `--resume` continues).
    pub cancel: Arc<AtomicBool>,
    /// Needed when [`BatchOptions::review`] is set.
    pub review: Option<Arc<dyn ReviewSink>>,
    /// Previous code per id (e.g. from the portfolio store), used for the diff report when the
    /// input has no old-code column (the column wins when both are present).
    pub previous_codes: Option<Arc<HashMap<String, String>>>,
    /// Taxonomy for the diff report's level comparison; `None` = GB/T 4754-2017.
    pub taxonomy: Option<Arc<Taxonomy>>,
}

impl Default for BatchHooks {
    fn default() -> Self {
        BatchHooks {
            progress: Progress::new(),
            cancel: Arc::new(AtomicBool::new(false)),
            review: None,
            previous_codes: None,
            taxonomy: None,
        }
    }
}

/// Counters of a run (also kept in the checkpoint).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Rows written to the output (= input rows of this shard processed).
    pub rows: u64,
    /// Rows with a label (a code, or an abstention without code).
    pub labeled: u64,
    /// Rows labeled without any code (the labeler abstained even at the top level).
    pub abstained: u64,
    /// Rows that could not be labeled (output row carries `error`).
    pub errors: u64,
    /// Rows with a non-fatal issue (e.g. unparsable balance, empty id).
    pub warnings: u64,
    /// Rows whose decision is `review`.
    pub review_rows: u64,
    /// Rows sent to the review sink.
    pub reviews_enqueued: u64,
    /// Distinct normalised texts per chunk, summed.
    pub unique_texts: u64,
    /// Of those, answered by the cache.
    pub cache_hits: u64,
    /// Texts sent to the labeler.
    pub labeled_texts: u64,
    /// Labeler calls.
    pub labeler_calls: u64,
}

/// The result of a completed run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchSummary {
    pub input: PathBuf,
    pub output: PathBuf,
    pub output_format: Format,
    pub model_version: String,
    pub taxonomy_version: String,
    /// Data rows in the whole input, when counted (always, except XLSX input without shard).
    pub input_rows: Option<u64>,
    pub shard: Option<Shard>,
    /// 1-based first and last input row of this run (`None` when it had no rows).
    pub first_row: Option<u64>,
    pub last_row: Option<u64>,
    /// Rows already done by an earlier, interrupted run that this one resumed.
    pub resumed_rows: u64,
    pub counters: Counters,
    /// Row problems, at most `max_issue_samples` (all are counted in `counters`).
    pub issues: Vec<RowIssue>,
    pub issues_truncated: bool,
    pub diff: Option<DiffReport>,
    /// Wall time of this invocation.
    pub elapsed_secs: f64,
}

/// Run a batch: label every input row (of the shard) and write one output row per input row, in
/// input order. See the crate docs for the files it leaves while running and on success.
pub fn run(
    opts: &BatchOptions,
    labeler: &dyn Labeler,
    hooks: &BatchHooks,
) -> Result<BatchSummary, BatchError> {
    let started = Instant::now();
    let progress = &hooks.progress;
    progress.set_stage(Stage::Starting);
    if opts.chunk_size == 0 || opts.label_batch_size == 0 {
        return Err(BatchError::Options {
            option: "chunk_size",
            message: "chunk and label batch sizes must be at least 1".into(),
        });
    }
    if opts.review && hooks.review.is_none() {
        return Err(BatchError::Options {
            option: "review",
            message: "review routing was asked for but no review sink is configured".into(),
        });
    }
    let in_fmt = opts.resolved_input_format()?;
    let out_fmt = opts.resolved_output_format()?;
    if opts.input == opts.output {
        return Err(BatchError::Options {
            option: "output",
            message: "output must differ from input".into(),
        });
    }
    let part_fmt = if out_fmt == Format::Jsonl {
        Format::Jsonl
    } else {
        Format::Csv
    };
    let model = labeler.model_version();
    let scope = labeler.cache_scope();
    let tax_version = labeler.taxonomy_version();
    let diff_enabled = opts.old_code_column.is_some() || hooks.previous_codes.is_some();
    let taxonomy = hooks.taxonomy.clone().unwrap_or_else(Taxonomy::gbt4754_arc);

    progress.set_stage(Stage::Scanning);
    let fp = fingerprint(opts, in_fmt, out_fmt, &scope, &tax_version, hooks)?;
    let ckpt_path = opts.checkpoint_path();
    let part_path = opts.part_path();

    let resumed = if opts.resume {
        match Checkpoint::load(&ckpt_path)? {
            Some(c) if c.version != CHECKPOINT_VERSION || c.fingerprint != fp => {
                return Err(BatchError::CheckpointMismatch {
                    path: ckpt_path,
                    message: "input file, options or model/taxonomy version differ".into(),
                })
            }
            other => other,
        }
    } else {
        None
    };

    let total = if opts.shard.is_some() || in_fmt != Format::Xlsx {
        Some(input::count_rows(opts)?)
    } else {
        None
    };
    let (start, end) = match (opts.shard, total) {
        (Some(s), Some(t)) => s.range(t),
        (_, t) => (0, t.unwrap_or(u64::MAX)),
    };
    progress.set_total(total.map(|_| end - start));

    // Part file: fresh (header only) or truncated back to the checkpoint.
    let mut state;
    let mut part;
    match resumed {
        Some(c) => {
            // Killed between renaming the finished part to the output and removing the
            // checkpoint: the output *is* the complete part.
            if part_fmt == out_fmt && !part_path.exists() && opts.output.exists() {
                std::fs::rename(&opts.output, &part_path)
                    .map_err(|e| BatchError::io("cannot rename to", &part_path, e))?;
            }
            part = OpenOptions::new()
                .write(true)
                .open(&part_path)
                .map_err(|e| BatchError::io("cannot open partial output", &part_path, e))?;
            let len = part
                .metadata()
                .map_err(|e| BatchError::io("cannot stat", &part_path, e))?
                .len();
            if len < c.part_bytes {
                return Err(BatchError::Checkpoint {
                    path: ckpt_path,
                    message: format!(
                        "partial output {} has {len} bytes, fewer than the {} checkpointed",
                        part_path.display(),
                        c.part_bytes
                    ),
                });
            }
            part.set_len(c.part_bytes)
                .and_then(|_| part.seek(SeekFrom::Start(c.part_bytes)).map(|_| ()))
                .and_then(|_| part.sync_all())
                .map_err(|e| BatchError::io("cannot truncate", &part_path, e))?;
            state = c;
        }
        None => {
            part = File::create(&part_path)
                .map_err(|e| BatchError::io("cannot create", &part_path, e))?;
            let mut head = Vec::new();
            if part_fmt == Format::Csv {
                output::csv_header(&mut head);
            }
            part.write_all(&head)
                .and_then(|_| part.sync_all())
                .map_err(|e| BatchError::io("cannot write", &part_path, e))?;
            state = Checkpoint {
                version: CHECKPOINT_VERSION,
                fingerprint: fp.clone(),
                rows_done: 0,
                part_bytes: head.len() as u64,
                counters: Counters::default(),
                issues: Vec::new(),
                issues_truncated: false,
                diff: diff_enabled
                    .then(|| DiffAccumulator::new(&taxonomy, opts.diff_examples_per_flow)),
            };
            state.save(&ckpt_path)?;
        }
    }
    let resumed_rows = state.rows_done;
    {
        let c = &state.counters;
        let p = progress;
        use std::sync::atomic::Ordering::Relaxed;
        p.rows_read.store(c.rows, Relaxed);
        p.rows_done.store(c.rows, Relaxed);
        p.unique_texts.store(c.unique_texts, Relaxed);
        p.cache_hits.store(c.cache_hits, Relaxed);
        p.labeled_texts.store(c.labeled_texts, Relaxed);
        p.errors.store(c.errors, Relaxed);
        p.review_rows.store(c.review_rows, Relaxed);
    }

    let mut src = input::open(opts)?;
    let skip = start + state.rows_done;
    for _ in 0..skip {
        if src.next_row()?.is_none() {
            break;
        }
    }
    let mut cache = LabelCache::open(opts.cache_path.as_deref(), &scope, &tax_version)?;
    progress.set_stage(Stage::Labeling);

    let mut chunk: Vec<RawRow> = Vec::with_capacity(opts.chunk_size);
    let mut buf: Vec<u8> = Vec::new();
    loop {
        if hooks.cancel.load(Ordering::Relaxed) {
            return Err(BatchError::Cancelled {
                rows_done: state.rows_done,
            });
        }
        let remaining = end.saturating_sub(start + state.rows_done);
        chunk.clear();
        while (chunk.len() as u64) < remaining.min(opts.chunk_size as u64) {
            match src.next_row()? {
                Some(r) => chunk.push(r),
                None => break,
            }
        }
        if chunk.is_empty() {
            break;
        }
        Progress::add(&progress.rows_read, chunk.len() as u64);
        let rows = process_chunk(
            opts,
            labeler,
            hooks,
            &taxonomy,
            &fp,
            &mut cache,
            &mut state,
            &chunk,
            &model,
            &tax_version,
        )?;
        buf.clear();
        match part_fmt {
            Format::Jsonl => output::encode_jsonl(&rows, &mut buf),
            _ => output::encode_csv(&rows, &mut buf),
        }
        part.write_all(&buf)
            .and_then(|_| part.sync_data())
            .map_err(|e| BatchError::io("cannot write", &part_path, e))?;
        state.part_bytes += buf.len() as u64;
        state.rows_done += chunk.len() as u64;
        state.save(&ckpt_path)?;
        Progress::add(&progress.rows_done, chunk.len() as u64);
    }
    drop(part);

    // Assemble the output.
    progress.set_stage(Stage::Finishing);
    if part_fmt == out_fmt {
        std::fs::rename(&part_path, &opts.output)
            .map_err(|e| BatchError::io("cannot rename to", &opts.output, e))?;
        sync_dir(&opts.output);
    } else {
        let mut w = RowWriter::create(&opts.output, out_fmt)?;
        output::for_each_output_row(&part_path, part_fmt, |r| w.write(&r))?;
        w.finish()?;
        std::fs::remove_file(&part_path)
            .map_err(|e| BatchError::io("cannot remove", &part_path, e))?;
    }
    let diff = state.diff.as_ref().map(|d| d.report(opts.diff_top_flows));
    if let Some(d) = &diff {
        if let Some(p) = &opts.diff_json {
            d.write_json(p)?;
        }
        if let Some(p) = &opts.diff_xlsx {
            d.write_xlsx(p)?;
        }
    }
    std::fs::remove_file(&ckpt_path).map_err(|e| BatchError::io("cannot remove", &ckpt_path, e))?;
    progress.set_stage(Stage::Done);
    let n = state.rows_done;
    Ok(BatchSummary {
        input: opts.input.clone(),
        output: opts.output.clone(),
        output_format: out_fmt,
        model_version: model,
        taxonomy_version: tax_version,
        input_rows: total,
        shard: opts.shard,
        first_row: (n > 0).then_some(start + 1),
        last_row: (n > 0).then_some(start + n),
        resumed_rows,
        counters: state.counters,
        issues: state.issues,
        issues_truncated: state.issues_truncated,
        diff,
        elapsed_secs: started.elapsed().as_secs_f64(),
    })
}
