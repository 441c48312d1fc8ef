//! Batch reclassification of loan books (issue 5).
//!
//! [`run`] reads an input file (CSV, XLSX, JSONL or Parquet) in chunks, normalises and
//! deduplicates the purpose texts, answers repeated texts from a persistent [`LabelCache`],
//! labels the rest with any [`touxiang_datasets::Labeler`], and writes one output row per input
//! row, in input order, with the columns of [`OUTPUT_COLUMNS`].
//!
//! Files during a run (for `--output OUT`):
//! - `OUT.part`: the rows done so far (CSV, or JSONL for JSONL output), fsynced per chunk;
//! - `OUT.ckpt.json`: the checkpoint, replaced atomically after each chunk: rows done, the part
//!   file's length, counters, row issues, the diff accumulator and a fingerprint (SHA-256 of the
//!   whole input file and of every option that changes the output, model/taxonomy versions).
//!
//! With `resume`, a run killed at any point (even `kill -9`) truncates `OUT.part` to the
//! checkpointed length and goes on from the next row, so every input row appears exactly once,
//! in order. On success the part becomes `OUT` (atomic rename for CSV/JSONL; XLSX and Parquet,
//! which cannot be appended to, are assembled from the CSV part at the end) and the checkpoint is
//! removed.
//!
//! Memory stays bounded by the chunk size, the cache's in-process memo and the diff
//! accumulator, whatever the file size; the exception is XLSX input, whose shared-string table
//! calamine keeps in memory (the sheet's cells themselves are streamed), and XLSX output, which
//! rust_xlsxwriter writes in constant-memory mode but is limited to 1 048 575 rows.
//!
//! Row problems (empty text, broken CSV quoting, wrong field count, invalid UTF-8 or GBK bytes,
//! invalid JSON) never stop a run: the row is still in the output with an `error` and no label,
//! and is listed in [`BatchSummary::issues`] with its row number.

mod cache;
mod diff;
mod engine;
mod error;
mod input;
mod job;
mod options;
mod output;
mod progress;
mod review;
pub mod synth;

pub use cache::LabelCache;
pub use diff::{DiffAccumulator, DiffReport, Flow, FlowExample, LevelDiff};
pub use engine::{run, BatchHooks, BatchSummary, Counters};
pub use error::{BatchError, RowIssue};
pub use job::{BatchJob, JobError, JobRegistry, JobSnapshot, JobState};
pub use options::{BatchOptions, Format, InputEncoding, Shard};
pub use output::{
    for_each_output_row, merge_shards, read_output, OutputRow, OUTPUT_COLUMNS, XLSX_MAX_ROWS,
};
pub use progress::{Progress, ProgressBar, ProgressSnapshot, Stage};
pub use review::{ReviewRequest, ReviewSink, ReviewSinkError};
