//! Live progress shared between a running batch and its caller, and a terminal progress bar.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

const UNKNOWN: u64 = u64::MAX;

/// What the run is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Starting,
    /// Hashing/counting the input (for the fingerprint, shards and the total).
    Scanning,
    Labeling,
    /// Assembling XLSX/Parquet output and writing reports.
    Finishing,
    Done,
}

/// Counters updated by the engine as it goes (relaxed atomics; read them any time).
/// `rows_*` count rows of this run's shard.
#[derive(Debug)]
pub struct Progress {
    pub rows_read: AtomicU64,
    pub rows_done: AtomicU64,
    /// Distinct normalised texts per chunk, summed over chunks.
    pub unique_texts: AtomicU64,
    /// Of those, how many were answered by the label cache.
    pub cache_hits: AtomicU64,
    /// Texts sent to the labeler.
    pub labeled_texts: AtomicU64,
    /// Rows that could not be labeled.
    pub errors: AtomicU64,
    /// Rows whose decision is `review`.
    pub review_rows: AtomicU64,
    total: AtomicU64,
    stage: AtomicU8,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            rows_read: AtomicU64::new(0),
            rows_done: AtomicU64::new(0),
            unique_texts: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            labeled_texts: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            review_rows: AtomicU64::new(0),
            total: AtomicU64::new(UNKNOWN),
            stage: AtomicU8::new(0),
        }
    }
}

/// A plain copy of [`Progress`] (for `GET /v1/jobs/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressSnapshot {
    pub stage: Stage,
    pub rows_read: u64,
    pub rows_done: u64,
    pub total: Option<u64>,
    pub unique_texts: u64,
    pub cache_hits: u64,
    pub labeled_texts: u64,
    pub errors: u64,
    pub review_rows: u64,
}

impl Progress {
    /// A fresh, shareable progress record.
    pub fn new() -> Arc<Progress> {
        Arc::new(Progress::default())
    }

    /// Rows this run will process, once known.
    pub fn total(&self) -> Option<u64> {
        match self.total.load(Ordering::Relaxed) {
            UNKNOWN => None,
            n => Some(n),
        }
    }

    pub(crate) fn set_total(&self, total: Option<u64>) {
        self.total
            .store(total.unwrap_or(UNKNOWN), Ordering::Relaxed);
    }

    /// Current stage.
    pub fn stage(&self) -> Stage {
        match self.stage.load(Ordering::Relaxed) {
            0 => Stage::Starting,
            1 => Stage::Scanning,
            2 => Stage::Labeling,
            3 => Stage::Finishing,
            _ => Stage::Done,
        }
    }

    pub(crate) fn set_stage(&self, s: Stage) {
        let v = match s {
            Stage::Starting => 0,
            Stage::Scanning => 1,
            Stage::Labeling => 2,
            Stage::Finishing => 3,
            Stage::Done => 4,
        };
        self.stage.store(v, Ordering::Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Copy all counters.
    pub fn snapshot(&self) -> ProgressSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ProgressSnapshot {
            stage: self.stage(),
            rows_read: l(&self.rows_read),
            rows_done: l(&self.rows_done),
            total: self.total(),
            unique_texts: l(&self.unique_texts),
            cache_hits: l(&self.cache_hits),
            labeled_texts: l(&self.labeled_texts),
            errors: l(&self.errors),
            review_rows: l(&self.review_rows),
        }
    }
}

/// A terminal progress bar (indicatif, on stderr) that follows a [`Progress`] from a helper
/// thread: rows done / total, rows/s, ETA, unique texts, cache hits, errors.
/// Call [`ProgressBar::finish`] when the run returns (dropping it also stops the thread).
pub struct ProgressBar {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ProgressBar {
    /// Start drawing (about 4 updates a second).
    pub fn start(progress: Arc<Progress>) -> ProgressBar {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let bar = indicatif::ProgressBar::new(0);
            let style = indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} rows ({per_sec}, ETA {eta}) {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            let mut done = false;
            while !done {
                done = stop2.load(Ordering::Relaxed);
                let s = progress.snapshot();
                if let Some(t) = s.total {
                    bar.set_length(t);
                }
                bar.set_position(s.rows_done);
                bar.set_message(format!(
                    "{:?}; unique {}, cache hits {}, errors {}",
                    s.stage, s.unique_texts, s.cache_hits, s.errors
                ));
                if !done {
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
            bar.finish();
        });
        ProgressBar {
            stop,
            thread: Some(thread),
        }
    }

    /// Draw the final state and stop.
    pub fn finish(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ProgressBar {
    fn drop(&mut self) {
        self.stop_thread();
    }
}
