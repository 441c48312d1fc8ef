//! One chunk of a run: normalise and dedup the texts, answer from the cache, label the misses,
//! build the output rows, route reviews and feed the diff.

use std::collections::HashMap;
use std::sync::Arc;

use touxiang_datasets::{Decision, LabelResult, Labeler, Taxonomy};

use super::checkpoint::Checkpoint;
use super::BatchHooks;
use crate::cache::LabelCache;
use crate::error::{BatchError, RowIssue};
use crate::input::RawRow;
use crate::options::BatchOptions;
use crate::output::OutputRow;
use crate::progress::Progress;
use crate::review::ReviewRequest;

#[allow(clippy::too_many_arguments)]
pub(super) fn process_chunk(
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
        let norm = touxiang_text::normalize(&raw.text);
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
                }
                if opts.review {
                    let sink = hooks.review.as_ref().expect("checked at start");
                    let key = format!("{fp}:{}", raw.row);
                    review_id = sink
                        .offer(&ReviewRequest {
                            key: &key,
                            row: raw.row,
                            id: &raw.id,
                            text: &raw.text,
                            label,
                            amount: raw.balance,
                        })
                        .map_err(|e| BatchError::Review {
                            row: raw.row,
                            message: e.to_string(),
                        })?;
                    if review_id.is_some() {
                        state.counters.reviews_enqueued += 1;
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
