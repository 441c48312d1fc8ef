//! The batch engine: read in chunks, normalise + dedup, cache, label, write, checkpoint.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use touxiang_datasets::{Decision, LabelResult, Labeler, Taxonomy};

use crate::cache::LabelCache;
use crate::diff::{DiffAccumulator, DiffReport};
use crate::error::{BatchError, RowIssue};
use crate::input::{self, RawRow};
use crate::options::{BatchOptions, Format, Shard};
use crate::output::{self, OutputRow, RowWriter};
use crate::progress::{Progress, Stage};
use crate::review::{ReviewRequest, ReviewSink};

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

const CHECKPOINT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Checkpoint {
    version: u32,
    fingerprint: String,
    /// Input rows of this shard consumed (all of them are in the part file).
    rows_done: u64,
    /// Length of the part file holding exactly those rows (with the header).
    part_bytes: u64,
    counters: Counters,
    issues: Vec<RowIssue>,
    issues_truncated: bool,
    diff: Option<DiffAccumulator>,
}

impl Checkpoint {
    fn load(path: &Path) -> Result<Option<Checkpoint>, BatchError> {
        match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BatchError::io("cannot read checkpoint", path, e)),
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| BatchError::Checkpoint {
                    path: path.to_path_buf(),
                    message: format!("unreadable: {e}"),
                }),
        }
    }

    /// Write atomically: temp file, fsync, rename, fsync the directory.
    fn save(&self, path: &Path) -> Result<(), BatchError> {
        let tmp = crate::options::suffixed(path, ".tmp");
        let json = serde_json::to_vec(self).map_err(|e| BatchError::Checkpoint {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        {
            let mut f = File::create(&tmp).map_err(|e| BatchError::io("cannot write", &tmp, e))?;
            f.write_all(&json)
                .and_then(|_| f.sync_all())
                .map_err(|e| BatchError::io("cannot write", &tmp, e))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| BatchError::io("cannot rename to", path, e))?;
        sync_dir(path);
        Ok(())
    }
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// SHA-256 of the whole input file plus every option that changes the output.
fn fingerprint(
    opts: &BatchOptions,
    in_fmt: Format,
    out_fmt: Format,
    model: &str,
    taxonomy: &str,
    hooks: &BatchHooks,
) -> Result<String, BatchError> {
    let mut f =
        File::open(&opts.input).map_err(|e| BatchError::io("cannot open input", &opts.input, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| BatchError::io("cannot read input", &opts.input, e))?;
        if n == 0 {
            break;
        }
        len += n as u64;
        h.update(&buf[..n]);
    }
    let input_sha = hex::encode(h.finalize());
    let ident = serde_json::json!({
        "v": CHECKPOINT_VERSION,
        "input_sha256": input_sha,
        "input_len": len,
        "input_format": in_fmt,
        "encoding": opts.input_encoding,
        "sheet": opts.sheet,
        "output_format": out_fmt,
        "id_column": opts.id_column,
        "text_column": opts.text_column,
        "shard": opts.shard,
        "review": opts.review,
        "old_code_column": opts.old_code_column,
        "balance_column": opts.balance_column,
        "previous_codes": hooks.previous_codes.as_ref().map(|m| m.len()),
        "taxonomy": hooks.taxonomy.as_ref().map(|t| t.version().to_string()),
        "model_version": model,
        "taxonomy_version": taxonomy,
    });
    Ok(hex::encode(Sha256::digest(ident.to_string().as_bytes())))
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

#[allow(clippy::too_many_arguments)]
fn process_chunk(
    opts: &BatchOptions,
    labeler: &dyn Labeler,
    hooks: &BatchHooks,
    taxonomy: &Taxonomy,
    fp: &str,
    cache: &mut LabelCache,
    state: &mut Checkpoint,
    chunk: &[RawRow],
    model: &str,
    tax_version: &str,
) -> Result<Vec<OutputRow>, BatchError> {
    let progress = &hooks.progress;
    let issue = |state: &mut Checkpoint, raw: &RawRow, field: &str, reason: &str| {
        if state.issues.len() < opts.max_issue_samples {
            state.issues.push(RowIssue {
                row: raw.row,
                line: raw.line,
                id: raw.id.clone(),
                field: field.to_string(),
                reason: reason.to_string(),
            });
        } else {
            state.issues_truncated = true;
        }
    };

    // Normalise and dedup.
    let mut keys: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut slot: Vec<Result<usize, String>> = Vec::with_capacity(chunk.len());
    for raw in chunk {
        if !raw.warnings.is_empty() {
            state.counters.warnings += 1;
        }
        for (f, r) in &raw.warnings {
            issue(state, raw, f, r);
        }
        if let Some((field, reason)) = &raw.problem {
            issue(state, raw, field, reason);
            slot.push(Err(format!("row {}: {field}: {reason}", raw.row)));
            continue;
        }
        let norm = crate::norm::normalize(&raw.text);
        if norm.is_empty() {
            let reason = if raw.text.is_empty() {
                "empty text"
            } else {
                "text is only whitespace"
            };
            issue(state, raw, &opts.text_column, reason);
            slot.push(Err(format!(
                "row {}: {}: {reason}",
                raw.row, opts.text_column
            )));
            continue;
        }
        let next = keys.len();
        let k = *index.entry(norm).or_insert_with_key(|n| {
            keys.push(n.clone());
            next
        });
        slot.push(Ok(k));
    }

    // Cache, then the labeler for the misses.
    let mut labels: Vec<Option<Arc<LabelResult>>> = Vec::with_capacity(keys.len());
    for k in &keys {
        labels.push(cache.get(k)?);
    }
    let misses: Vec<usize> = (0..keys.len()).filter(|&i| labels[i].is_none()).collect();
    let c = &mut state.counters;
    c.unique_texts += keys.len() as u64;
    c.cache_hits += (keys.len() - misses.len()) as u64;
    Progress::add(&progress.unique_texts, keys.len() as u64);
    Progress::add(&progress.cache_hits, (keys.len() - misses.len()) as u64);
    let first_row = chunk.first().map(|r| r.row).unwrap_or(0);
    for batch in misses.chunks(opts.label_batch_size) {
        let texts: Vec<&str> = batch.iter().map(|&i| keys[i].as_str()).collect();
        let got = labeler.label(&texts).map_err(|e| BatchError::Labeler {
            row: first_row,
            message: e.to_string(),
        })?;
        if got.len() != texts.len() {
            return Err(BatchError::Labeler {
                row: first_row,
                message: format!("{} labels for {} texts", got.len(), texts.len()),
            });
        }
        state.counters.labeler_calls += 1;
        state.counters.labeled_texts += texts.len() as u64;
        Progress::add(&progress.labeled_texts, texts.len() as u64);
        let got: Vec<Arc<LabelResult>> = got.into_iter().map(Arc::new).collect();
        let items: Vec<(&str, Arc<LabelResult>)> =
            texts.iter().copied().zip(got.iter().cloned()).collect();
        cache.put_many(&items)?;
        for (&i, l) in batch.iter().zip(got) {
            labels[i] = Some(l);
        }
    }

    // Output rows, review routing, diff.
    let mut out = Vec::with_capacity(chunk.len());
    for (raw, s) in chunk.iter().zip(slot) {
        let old = raw.old_code.clone().or_else(|| {
            hooks
                .previous_codes
                .as_ref()
                .and_then(|m| m.get(&raw.id).cloned())
        });
        let row = match s {
            Err(msg) => {
                state.counters.errors += 1;
                Progress::add(&progress.errors, 1);
                if let Some(d) = state.diff.as_mut() {
                    d.add(
                        taxonomy,
                        raw.row,
                        &raw.id,
                        &raw.text,
                        old.as_deref(),
                        None,
                        raw.balance,
                    );
                }
                OutputRow {
                    id: raw.id.clone(),
                    code: None,
                    level: None,
                    name: None,
                    confidence: None,
                    decision: None,
                    model_version: model.to_string(),
                    taxonomy_version: tax_version.to_string(),
                    section: None,
                    division: None,
                    group: None,
                    class: None,
                    review_id: None,
                    error: Some(msg),
                }
            }
            Ok(k) => {
                let label = labels[k].as_ref().expect("every key is labeled");
                state.counters.labeled += 1;
                if label.code.is_none() {
                    state.counters.abstained += 1;
                }
                let mut review_id = None;
                if label.decision == Decision::Review {
                    state.counters.review_rows += 1;
                    Progress::add(&progress.review_rows, 1);
                    if opts.review {
                        let sink = hooks.review.as_ref().expect("checked at start");
                        let key = format!("{fp}:{}", raw.row);
                        let id = sink
                            .enqueue(&ReviewRequest {
                                key: &key,
                                row: raw.row,
                                id: &raw.id,
                                text: &raw.text,
                                label,
                            })
                            .map_err(|e| BatchError::Review {
                                row: raw.row,
                                message: e.to_string(),
                            })?;
                        state.counters.reviews_enqueued += 1;
                        review_id = Some(id);
                    }
                }
                if let Some(d) = state.diff.as_mut() {
                    d.add(
                        taxonomy,
                        raw.row,
                        &raw.id,
                        &raw.text,
                        old.as_deref(),
                        label.code.as_deref(),
                        raw.balance,
                    );
                }
                let at = |d: usize| label.code_at(d).map(str::to_string);
                OutputRow {
                    id: raw.id.clone(),
                    code: label.code.clone(),
                    level: label.level.clone(),
                    name: label.name.clone(),
                    confidence: Some(label.confidence),
                    decision: Some(label.decision.as_str().to_string()),
                    model_version: label.model_version.clone(),
                    taxonomy_version: label.taxonomy_version.clone(),
                    section: at(0),
                    division: at(1),
                    group: at(2),
                    class: at(3),
                    review_id,
                    error: None,
                }
            }
        };
        state.counters.rows += 1;
        out.push(row);
    }
    Ok(out)
}
