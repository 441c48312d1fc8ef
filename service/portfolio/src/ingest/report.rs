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

impl PortfolioStore {
    /// Directory of kept ingest reports (`ingest-reports` beside the store file).
    pub fn reports_dir(&self) -> PathBuf {
        self.path()
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(REPORTS_DIR)
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

/// The row problems of one ingest (see the module documentation).
pub(crate) struct RejectLog {
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
#[derive(Default)]
pub(super) struct ReportFiles(Vec<PathBuf>);

impl ReportFiles {
    pub(super) fn discard(self) {
        for p in self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl RejectLog {
    pub(super) fn new(store: &PortfolioStore, opts: &IngestOptions) -> Self {
        let target = match &opts.error_report {
            ErrorReport::Store => {
                let id = new_report_id();
                Some(Target {
                    path: store.reports_dir().join(format!("{id}.csv")),
                    id: Some(id),
                    always: false,
                })
            }
            ErrorReport::File(p) => Some(Target {
                path: p.clone(),
                id: None,
                always: true,
            }),
            ErrorReport::None => None,
        };
        RejectLog {
            max_listed: opts
                .max_reported_row_errors
                .unwrap_or(DEFAULT_MAX_REPORTED_ROW_ERRORS),
            listed: Vec::new(),
            pending: Vec::new(),
            total: 0,
            rows: 0,
            last_row: None,
            target,
            out: None,
            file_max: opts
                .max_report_file_rows
                .unwrap_or(DEFAULT_MAX_REPORT_FILE_ROWS),
            file_rows: 0,
        }
    }

    /// Record a problem (settled later, in row order).
    pub(super) fn push(&mut self, e: RowError) {
        self.pending.push(e);
    }

    /// No problem recorded so far.
    pub(super) fn is_empty(&self) -> bool {
        self.total == 0 && self.pending.is_empty()
    }

    /// Problems waiting to be settled.
    pub(super) fn pending_len(&self) -> usize {
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
    pub(super) fn settle(&mut self) -> Result<()> {
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

    /// Settle, fill the report's problem fields, and complete the file (renamed into place; in
    /// the store with its metadata, and older reports pruned).
    pub(super) fn finish(
        mut self,
        report: &mut IngestReport,
        source: &str,
        will_commit: bool,
    ) -> Result<ReportFiles> {
        self.settle()?;
        report.rejected = std::mem::take(&mut self.listed);
        report.rejected_total = self.total;
        report.rejected_rows = self.rows;
        report.rejected_truncated = self.total > report.rejected.len() as u64;
        let always = match &self.target {
            None => return Ok(ReportFiles::default()),
            Some(t) => t.always,
        };
        if self.out.is_none() {
            if !always {
                return Ok(ReportFiles::default());
            }
            self.open()?;
        }
        let target = self.target.take().expect("checked above");
        self.complete(target, report, source, will_commit)
    }

    fn complete(
        mut self,
        target: Target,
        report: &mut IngestReport,
        source: &str,
        will_commit: bool,
    ) -> Result<ReportFiles> {
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
                    portfolio: report.portfolio.clone(),
                    source: source.to_string(),
                    mode: report.mode,
                    committed: will_commit,
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
        match done {
            Ok(files) => {
                report.report_id = target.id.clone();
                report.report_path = Some(target.path.clone());
                report.report_rows = self.file_rows;
                Ok(files)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                let _ = std::fs::remove_file(&target.path);
                Err(e)
            }
        }
    }
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
