//! Row problems of one ingest (part of [`super`]): the capped list in the summary, exact counts,
//! and the full list as a CSV report file.
//!
//! Problems are collected in a small pending buffer and *settled* in row order whenever no
//! earlier row can still produce one (the ingest settles after each written chunk, and forces a
//! chunk out when the buffer fills): then the first [`IngestOptions::max_reported_row_errors`]
//! are kept for [`IngestReport::rejected`], every one is counted, and every one (up to
//! [`IngestOptions::max_report_file_rows`]) is appended to the report file. Memory stays bounded
//! whatever the number of bad rows.
//!
//! ## Report files
//! By default ([`ErrorReport::Store`]) the report is kept beside the store:
//! `DIR/ingest-reports/<report_id>.csv` (columns `row,field,reason`, text cells through
//! [`touxiang_datasets::csv_safe`]) with `<report_id>.json` ([`ReportMeta`]) naming the portfolio;
//! a report exists only once both are in place, and only when a row was rejected. The newest
//! [`REPORTS_KEPT`] reports are kept. [`ErrorReport::File`] writes the CSV to a given path (also
//! when nothing was rejected: the header alone). Files are written under a `.part` name and
//! renamed when complete; a failed ingest leaves none behind.
//!
//! ## Use by other ingests
//! [`RejectLog`] is public so the fund-flow crate's payment and relation ingests keep the same
//! report, in the same directory with the same [`ReportMeta`], served by the same route:
//! [`RejectLog::new`] (or [`RejectLog::in_dir`]), [`RejectLog::push`], [`RejectLog::settle`]
//! whenever no earlier row can add a problem, then [`RejectLog::finish`] before the commit; when
//! the commit fails after all, [`ReportFiles::discard`] the files [`RejectSummary::files`] names.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use touxiang_datasets::csv_safe;

use crate::error::{PortfolioError, Result};
use crate::store::PortfolioStore;

use super::{IngestMode, IngestOptions, IngestReport, RowError};

/// Row problems listed in the summary by default.
pub const DEFAULT_MAX_REPORTED_ROW_ERRORS: usize = 1000;
/// Row problems written to a report file by default, at most (about 0.5 GB of CSV).
pub const DEFAULT_MAX_REPORT_FILE_ROWS: u64 = 10_000_000;
/// Directory of the kept reports, inside the store's directory.
pub const REPORTS_DIR: &str = "ingest-reports";
/// Reports kept in [`REPORTS_DIR`]; older ones are deleted when a new one is written.
pub const REPORTS_KEPT: usize = 100;
/// Header of a report file.
pub const REPORT_HEADER: [&str; 3] = ["row", "field", "reason"];
/// Pending (unsettled) problems that force a settle.
pub(super) const SETTLE_EVERY: usize = 4096;
/// `.part` files older than this are left-overs of a crashed process.
const STALE_PART: Duration = Duration::from_secs(24 * 3600);

/// Where the full list of row problems goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ErrorReport {
    /// `DIR/ingest-reports/<report_id>.csv` beside the store, when any row was rejected;
    /// found again with [`PortfolioStore::ingest_report`].
    #[default]
    Store,
    /// This file (the header alone when nothing was rejected).
    File(PathBuf),
    /// No file: only the capped list and the counts.
    None,
}

/// What `<report_id>.json` records about a kept report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportMeta {
    pub report_id: String,
    pub portfolio: String,
    /// Source name of the ingest (file name).
    pub source: String,
    pub mode: IngestMode,
    /// Whether the ingest committed.
    pub committed: bool,
    /// Row problems in the CSV.
    pub rows: u64,
    /// Row problems in all.
    pub rejected_total: u64,
    /// UTC, RFC 3339.
    pub created_at: String,
}

/// A kept report: its metadata and the path of its CSV.
#[derive(Debug, Clone)]
pub struct ReportInfo {
    pub meta: ReportMeta,
    pub path: PathBuf,
}

/// Is `s` a report id (`ir_` and 32 lowercase hex digits)? Anything else is never looked up.
pub fn is_report_id(s: &str) -> bool {
    s.strip_prefix("ir_").is_some_and(|h| {
        h.len() == 32
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn new_report_id() -> String {
    format!("ir_{:032x}", rand::random::<u128>())
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Directory of kept ingest reports of the store file `store_file`: [`REPORTS_DIR`] beside it
/// (what [`PortfolioStore::reports_dir`] answers, without opening the store).
pub fn reports_dir_of(store_file: &Path) -> PathBuf {
    store_file
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(REPORTS_DIR)
}

impl PortfolioStore {
    /// Directory of kept ingest reports (`ingest-reports` beside the store file).
    pub fn reports_dir(&self) -> PathBuf {
        reports_dir_of(self.path())
    }

    /// A kept ingest report of `portfolio`; `None` when the id is malformed, unknown, or belongs
    /// to another portfolio.
    pub fn ingest_report(&self, portfolio: &str, report_id: &str) -> Result<Option<ReportInfo>> {
        if !is_report_id(report_id) {
            return Ok(None);
        }
        let dir = self.reports_dir();
        let meta = match std::fs::read(dir.join(format!("{report_id}.json"))) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let meta: ReportMeta = serde_json::from_slice(&meta).map_err(|e| {
            PortfolioError::Io(std::io::Error::other(format!(
                "ingest report {report_id}: unreadable metadata: {e}"
            )))
        })?;
        let path = dir.join(format!("{report_id}.csv"));
        if meta.portfolio != portfolio || meta.report_id != report_id || !path.is_file() {
            return Ok(None);
        }
        Ok(Some(ReportInfo { meta, path }))
    }
}

struct Target {
    /// Final path of the CSV.
    path: PathBuf,
    /// Kept in the store (id, and the meta written beside it).
    id: Option<String>,
    /// Write the file even when nothing was rejected.
    always: bool,
}

/// The CSV being written, under its `.part` name.
struct Out {
    w: csv::Writer<File>,
    tmp: PathBuf,
}

/// The row problems of one ingest (see the module documentation): problems are
/// [`pushed`](Self::push), [`settled`](Self::settle) in row order once no earlier row can add
/// one, and [`finished`](Self::finish) into a [`RejectSummary`] (with the report file in place)
/// before the ingest commits. Dropped unfinished (a failed ingest), it removes its partial file.
pub struct RejectLog {
    max_listed: usize,
    listed: Vec<RowError>,
    pending: Vec<RowError>,
    total: u64,
    rows: u64,
    last_row: Option<u64>,
    target: Option<Target>,
    out: Option<Out>,
    file_max: u64,
    file_rows: u64,
}

/// Files a finished report left (removed again when the ingest fails after all).
#[derive(Debug, Default)]
#[must_use = "discard the files when the ingest fails after all"]
pub struct ReportFiles(Vec<PathBuf>);

impl ReportFiles {
    /// Remove the files (the ingest failed after the report was finished). Best effort.
    pub fn discard(self) {
        for p in self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The row problems of a finished [`RejectLog`] (the fields of an ingest summary).
#[derive(Debug)]
pub struct RejectSummary {
    /// The first problems, in row order (at most the `max_listed` of [`RejectLog::new`]).
    pub rejected: Vec<RowError>,
    /// Problems in all.
    pub rejected_total: u64,
    /// Distinct rows with at least one problem.
    pub rejected_rows: u64,
    /// `rejected` lists fewer problems than `rejected_total`.
    pub rejected_truncated: bool,
    /// Id of the report kept in the store's report directory (`None` when no row was rejected,
    /// or the report went elsewhere).
    pub report_id: Option<String>,
    /// File the report was written to (`None` when none was).
    pub report_path: Option<PathBuf>,
    /// Problems in the report file (`rejected_total` unless it reached the file's cap).
    pub report_rows: u64,
    /// The files written: [`ReportFiles::discard`] them when the ingest fails after all.
    pub files: ReportFiles,
}

impl RejectLog {
    /// A log whose full report is kept beside `store` ([`ErrorReport::Store`]: found again with
    /// [`PortfolioStore::ingest_report`], only when a row is rejected). At most `max_listed`
    /// problems are listed in the summary and `max_file_rows` written to the file (defaults
    /// [`DEFAULT_MAX_REPORTED_ROW_ERRORS`], [`DEFAULT_MAX_REPORT_FILE_ROWS`]).
    pub fn new(store: &PortfolioStore, max_listed: usize, max_file_rows: u64) -> Self {
        Self::in_dir(&store.reports_dir(), max_listed, max_file_rows)
    }

    /// As [`RejectLog::new`], given the store's report directory ([`reports_dir_of`] its file)
    /// instead of the open store.
    pub fn in_dir(reports_dir: &Path, max_listed: usize, max_file_rows: u64) -> Self {
        let id = new_report_id();
        let target = Target {
            path: reports_dir.join(format!("{id}.csv")),
            id: Some(id),
            always: false,
        };
        Self::with_target(Some(target), max_listed, max_file_rows)
    }

    /// The log of a loan ingest, as its options ask.
    pub(super) fn for_ingest(store: &PortfolioStore, opts: &IngestOptions) -> Self {
        let max_listed = opts
            .max_reported_row_errors
            .unwrap_or(DEFAULT_MAX_REPORTED_ROW_ERRORS);
        let max_file_rows = opts
            .max_report_file_rows
            .unwrap_or(DEFAULT_MAX_REPORT_FILE_ROWS);
        match &opts.error_report {
            ErrorReport::Store => Self::new(store, max_listed, max_file_rows),
            ErrorReport::File(p) => {
                let target = Target {
                    path: p.clone(),
                    id: None,
                    always: true,
                };
                Self::with_target(Some(target), max_listed, max_file_rows)
            }
            ErrorReport::None => Self::with_target(None, max_listed, max_file_rows),
        }
    }

    fn with_target(target: Option<Target>, max_listed: usize, max_file_rows: u64) -> Self {
        RejectLog {
            max_listed,
            listed: Vec::new(),
            pending: Vec::new(),
            total: 0,
            rows: 0,
            last_row: None,
            target,
            out: None,
            file_max: max_file_rows,
            file_rows: 0,
        }
    }

    /// Record a problem (settled later, in row order).
    pub fn push(&mut self, e: RowError) {
        self.pending.push(e);
    }

    /// No problem recorded so far.
    pub fn is_empty(&self) -> bool {
        self.total == 0 && self.pending.is_empty()
    }

    /// Problems waiting to be settled.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    fn open(&mut self) -> Result<()> {
        let Some(t) = &self.target else {
            return Ok(());
        };
        if self.out.is_some() {
            return Ok(());
        }
        if let Some(dir) = t.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = with_suffix(&t.path, ".part");
        let f = File::create(&tmp)?;
        let mut w = csv::WriterBuilder::new()
            .buffer_capacity(1 << 16)
            .from_writer(f);
        let out = |e: csv::Error| PortfolioError::Io(std::io::Error::other(e));
        w.write_record(REPORT_HEADER).map_err(out)?;
        self.out = Some(Out { w, tmp });
        Ok(())
    }

    /// Settle every pending problem: the caller guarantees no earlier row can add one.
    pub fn settle(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_by_key(|e| e.row); // stable: a row's problems keep their order
        if self.target.is_some() && self.file_rows < self.file_max {
            self.open()?;
        }
        let io = |e: csv::Error| PortfolioError::Io(std::io::Error::other(e));
        let mut row_buf = String::with_capacity(24);
        for e in pending.drain(..) {
            self.total += 1;
            if self.last_row != Some(e.row) {
                self.rows += 1;
                self.last_row = Some(e.row);
            }
            if self.file_rows < self.file_max {
                if let Some(out) = &mut self.out {
                    row_buf.clear();
                    use std::fmt::Write;
                    let _ = write!(row_buf, "{}", e.row);
                    out.w
                        .write_record([
                            row_buf.as_str(),
                            csv_safe(&e.field).as_ref(),
                            csv_safe(&e.reason).as_ref(),
                        ])
                        .map_err(io)?;
                    self.file_rows += 1;
                }
            }
            if self.listed.len() < self.max_listed {
                self.listed.push(e);
            }
        }
        self.pending = pending; // keep the capacity
        Ok(())
    }

    /// Settle, fill the report's problem fields, and complete the file (see [`Self::finish`]).
    pub(super) fn finish_into(
        self,
        report: &mut IngestReport,
        source: &str,
        will_commit: bool,
    ) -> Result<ReportFiles> {
        let s = self.finish(&report.portfolio, source, report.mode, will_commit)?;
        report.rejected = s.rejected;
        report.rejected_total = s.rejected_total;
        report.rejected_rows = s.rejected_rows;
        report.rejected_truncated = s.rejected_truncated;
        if s.report_path.is_some() {
            report.report_id = s.report_id;
            report.report_path = s.report_path;
            report.report_rows = s.report_rows;
        }
        Ok(s.files)
    }

    /// Settle, and complete the file: renamed into place; in the store with its [`ReportMeta`]
    /// (`portfolio`, `source`, `mode`, and `will_commit` as `committed`), older reports pruned.
    /// Call it before the commit, and discard [`RejectSummary::files`] if the commit fails.
    pub fn finish(
        mut self,
        portfolio: &str,
        source: &str,
        mode: IngestMode,
        will_commit: bool,
    ) -> Result<RejectSummary> {
        self.settle()?;
        let rejected = std::mem::take(&mut self.listed);
        let mut s = RejectSummary {
            rejected_total: self.total,
            rejected_rows: self.rows,
            rejected_truncated: self.total > rejected.len() as u64,
            rejected,
            report_id: None,
            report_path: None,
            report_rows: 0,
            files: ReportFiles::default(),
        };
        let always = match &self.target {
            None => return Ok(s),
            Some(t) => t.always,
        };
        if self.out.is_none() {
            if !always {
                return Ok(s);
            }
            self.open()?;
        }
        let target = self.target.take().expect("checked above");
        let meta = MetaCtx {
            portfolio,
            source,
            mode,
            will_commit,
        };
        s.report_rows = self.file_rows;
        s.report_id = target.id.clone();
        s.report_path = Some(target.path.clone());
        s.files = self.complete(target, &meta)?;
        Ok(s)
    }

    fn complete(mut self, target: Target, ctx: &MetaCtx<'_>) -> Result<ReportFiles> {
        let out = self.out.take().expect("report file open");
        let tmp = out.tmp.clone();
        let done = (|| -> Result<ReportFiles> {
            let f = out
                .w
                .into_inner()
                .map_err(|e| PortfolioError::Io(std::io::Error::other(e.to_string())))?;
            f.sync_data()?;
            drop(f);
            std::fs::rename(&tmp, &target.path)?;
            let mut files = ReportFiles(vec![target.path.clone()]);
            if let Some(id) = &target.id {
                let meta = ReportMeta {
                    report_id: id.clone(),
                    portfolio: ctx.portfolio.to_string(),
                    source: ctx.source.to_string(),
                    mode: ctx.mode,
                    committed: ctx.will_commit,
                    rows: self.file_rows,
                    rejected_total: self.total,
                    created_at: chrono::Utc::now()
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                };
                let meta_path = target.path.with_extension("json");
                let meta_tmp = with_suffix(&meta_path, ".part");
                let bytes = serde_json::to_vec_pretty(&meta).map_err(std::io::Error::other)?;
                std::fs::write(&meta_tmp, bytes)?;
                std::fs::rename(&meta_tmp, &meta_path)?;
                files.0.push(meta_path);
                if let Some(dir) = target.path.parent() {
                    prune(dir, REPORTS_KEPT);
                }
            }
            Ok(files)
        })();
        if done.is_err() {
            let _ = std::fs::remove_file(&tmp);
            let _ = std::fs::remove_file(&target.path);
        }
        done
    }
}

/// What a kept report's metadata records about its ingest.
struct MetaCtx<'a> {
    portfolio: &'a str,
    source: &'a str,
    mode: IngestMode,
    will_commit: bool,
}

impl Drop for RejectLog {
    fn drop(&mut self) {
        // An ingest that failed (or a report never completed): leave no partial file behind.
        if let Some(out) = self.out.take() {
            drop(out.w);
            let _ = std::fs::remove_file(&out.tmp);
        }
    }
}

/// Keep the newest `keep` reports of `dir` (by the time of their metadata); delete `.part`
/// left-overs older than a day. Best effort: errors are ignored.
fn prune(dir: &Path, keep: usize) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    let mut metas: Vec<(SystemTime, PathBuf)> = Vec::new();
    for e in rd.flatten() {
        let p = e.path();
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let mtime = e
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        if name.ends_with(".part") {
            if now.duration_since(mtime).unwrap_or_default() > STALE_PART {
                let _ = std::fs::remove_file(&p);
            }
        } else if name.ends_with(".json") && is_report_id(name.trim_end_matches(".json")) {
            metas.push((mtime, p));
        }
    }
    if metas.len() <= keep {
        return;
    }
    metas.sort();
    let drop_n = metas.len() - keep;
    for (_, meta) in metas.into_iter().take(drop_n) {
        let _ = std::fs::remove_file(&meta);
        let _ = std::fs::remove_file(meta.with_extension("csv"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_ids() {
        let id = new_report_id();
        assert!(is_report_id(&id), "{id}");
        for bad in [
            "",
            "ir_",
            "ir_../../etc/passwd",
            "IR_0123456789abcdef0123456789abcdef",
            "ir_0123456789ABCDEF0123456789abcdef",
            "ir_0123456789abcdef0123456789abcde",
        ] {
            assert!(!is_report_id(bad), "{bad}");
        }
    }

    #[test]
    fn prune_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let mut ids = Vec::new();
        for i in 0..5u64 {
            let id = format!("ir_{:032x}", i);
            std::fs::write(dir.path().join(format!("{id}.csv")), "row,field,reason\n").unwrap();
            let m = dir.path().join(format!("{id}.json"));
            std::fs::write(&m, "{}").unwrap();
            let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + i);
            File::options()
                .write(true)
                .open(&m)
                .unwrap()
                .set_modified(t)
                .unwrap();
            ids.push(id);
        }
        prune(dir.path(), 2);
        let left: Vec<bool> = ids
            .iter()
            .map(|id| dir.path().join(format!("{id}.json")).exists())
            .collect();
        assert_eq!(left, vec![false, false, false, true, true]);
        assert!(!dir.path().join(format!("{}.csv", ids[0])).exists());
    }
}
