//! The ingest entry points on [`PortfolioStore`] and the row loop (part of [`super`]).

use std::fs::File;
use std::io::{Cursor, Read};
use std::path::Path;
use std::time::Instant;

use rusqlite::{params, Connection, OptionalExtension, Statement, TransactionBehavior};
use touxiang_datasets::Labeler;

use crate::error::{PortfolioError, Result};
use crate::purpose::KeywordPurposeLabeler;
use crate::store::{read_config, PortfolioStore};

use super::read::{self, RowSource};
use super::report::{RejectLog, SETTLE_EVERY};
use super::validate::{resolve_columns, LoanRow, Validator};
use super::write::Writer;
use super::{IngestMode, IngestOptions, IngestReport, InputFormat, RowError, CANONICAL_COLUMNS};

/// Page cache of the temporary key table, KiB.
const SEEN_CACHE_KIB: i64 = 8 * 1024;

impl PortfolioStore {
    /// Ingest a file; the format is taken from the extension.
    pub fn ingest_file(
        &self,
        portfolio: &str,
        path: &Path,
        opts: &IngestOptions,
        labeler: Option<&dyn Labeler>,
    ) -> Result<IngestReport> {
        let format = InputFormat::from_path(path).ok_or_else(|| {
            PortfolioError::UnsupportedFormat(format!(
                "cannot tell the format of {} (use .csv, .xlsx or .jsonl)",
                path.display()
            ))
        })?;
        self.ingest_file_as(portfolio, path, format, opts, labeler)
    }

    /// Ingest a file in a given format (e.g. an upload spooled to a temporary file). CSV and
    /// JSONL are read record by record, XLSX cell by cell: memory does not grow with the file.
    pub fn ingest_file_as(
        &self,
        portfolio: &str,
        path: &Path,
        format: InputFormat,
        opts: &IngestOptions,
        labeler: Option<&dyn Labeler>,
    ) -> Result<IngestReport> {
        let mut opts = opts.clone();
        if opts.source_name.is_none() {
            opts.source_name = Some(path.display().to_string());
        }
        match format {
            InputFormat::Xlsx => {
                let mut src = read::open_file(path, format, opts.sheet.as_deref())?;
                self.ingest_source(portfolio, &mut *src, &opts, labeler)
            }
            _ => self.ingest_reader(portfolio, format, File::open(path)?, &opts, labeler),
        }
    }

    /// Ingest from in-memory bytes.
    pub fn ingest_bytes(
        &self,
        portfolio: &str,
        format: InputFormat,
        bytes: Vec<u8>,
        opts: &IngestOptions,
        labeler: Option<&dyn Labeler>,
    ) -> Result<IngestReport> {
        match format {
            InputFormat::Xlsx => {
                let mut src = read::open_bytes(bytes, format, opts.sheet.as_deref())?;
                self.ingest_source(portfolio, &mut *src, opts, labeler)
            }
            _ => self.ingest_reader(portfolio, format, Cursor::new(bytes), opts, labeler),
        }
    }

    /// Ingest a CSV or JSONL stream (rows are read one at a time; memory stays bounded).
    pub fn ingest_reader<R: Read>(
        &self,
        portfolio: &str,
        format: InputFormat,
        reader: R,
        opts: &IngestOptions,
        labeler: Option<&dyn Labeler>,
    ) -> Result<IngestReport> {
        let mut src = read::open_reader(reader, format)?;
        self.ingest_source(portfolio, &mut *src, opts, labeler)
    }

    fn ingest_source(
        &self,
        portfolio: &str,
        src: &mut dyn RowSource,
        opts: &IngestOptions,
        labeler: Option<&dyn Labeler>,
    ) -> Result<IngestReport> {
        let started = Instant::now();
        if portfolio.trim().is_empty() {
            return Err(crate::error::invalid("portfolio", "empty portfolio name"));
        }
        // Required columns are checked against the header (JSONL: the first object's keys).
        resolve_columns(src.headers(), &opts.map)?;
        // JSONL: canonical keys (or mapped source keys) first seen on a later line are still
        // canonical fields, not attributes.
        let mut known: Vec<&str> = CANONICAL_COLUMNS
            .iter()
            .copied()
            .filter(|c| !opts.map.0.iter().any(|(k, _)| k == c))
            .collect();
        known.extend(opts.map.0.iter().map(|(_, s)| s.as_str()));
        src.add_columns(&known);
        let headers = src.headers().to_vec();
        let cols = resolve_columns(&headers, &opts.map)?;

        let mut conn = self.connect()?;
        SeenKeys::create(&conn)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let config = match read_config(&tx, portfolio)? {
            Some((stored, _)) => {
                if let Some(c) = &opts.config {
                    if *c != stored {
                        return Err(PortfolioError::ConfigConflict(format!(
                            "portfolio {portfolio:?} exists with region table {} / purpose taxonomy {} / {}; \
                             this ingest asks for {} / {} / {}",
                            stored.region_scheme.as_str(),
                            stored.purpose_scheme.id,
                            stored.currency,
                            c.region_scheme.as_str(),
                            c.purpose_scheme.id,
                            c.currency
                        )));
                    }
                }
                stored
            }
            None => {
                let c = opts.config.clone().unwrap_or_default();
                tx.execute(
                    "INSERT INTO portfolios (name, region_scheme, purpose_scheme, currency) VALUES (?1,?2,?3,?4)",
                    params![
                        portfolio,
                        c.region_scheme.as_str(),
                        serde_json::to_string(&c.purpose_scheme).expect("serialisable"),
                        c.currency
                    ],
                )?;
                c
            }
        };
        let source = opts.source_name.as_deref().unwrap_or("-");
        tx.execute(
            "INSERT INTO ingests (portfolio, source, mode, accepted, rejected) VALUES (?1,?2,?3,0,0)",
            params![
                portfolio,
                source,
                match opts.mode {
                    IngestMode::AllOrNothing => "all_or_nothing",
                    IngestMode::CommitValid => "commit_valid",
                }
            ],
        )?;
        let ingest_id = tx.last_insert_rowid();
        let purpose = KeywordPurposeLabeler::new();
        let mut validator = Validator {
            config: &config,
            status_map: &opts.status_map,
            region_cache: Default::default(),
            industry_cache: Default::default(),
            purpose_labeler: purpose.clone(),
        };
        let mut writer = Writer {
            portfolio,
            ingest_id,
            labeler,
            label_cache: Default::default(),
            purpose_model: touxiang_datasets::Labeler::model_version(&purpose),
            purpose_tax: config.purpose_scheme.id.clone(),
            report: IngestReport {
                portfolio: portfolio.to_string(),
                accepted: 0,
                rejected: Vec::new(),
                rejected_total: 0,
                rejected_rows: 0,
                rejected_truncated: false,
                report_id: None,
                report_url: None,
                report_path: None,
                report_rows: 0,
                committed: false,
                mode: opts.mode,
                rows_read: 0,
                valid_rows: 0,
                industry_labeled: 0,
                industry_from_input: 0,
                industry_missing: 0,
                elapsed_ms: 0,
            },
        };
        let mut log = RejectLog::for_ingest(self, opts);
        let batch_size = if opts.label_batch == 0 {
            256
        } else {
            opts.label_batch
        };
        let all_or_nothing = opts.mode == IngestMode::AllOrNothing;
        let mut batch: Vec<LoanRow> = Vec::with_capacity(batch_size);
        let mut seen = SeenKeys::prepare(&tx)?;
        let mut stored = Stored::prepare(&tx, portfolio)?;
        let mut buf = Vec::new();
        let mut extra = Vec::new();
        let mut row_errs = Vec::new();
        while let Some(next) = src.next_row(&mut buf, &mut extra)? {
            if log.pending_len() >= SETTLE_EVERY {
                // Rows in `batch` may still turn out duplicates of stored loans: write (or, when
                // nothing will be committed, check) them first, then every problem is final.
                if all_or_nothing && !log.is_empty() {
                    stored.check(batch.drain(..), &mut writer.report, &mut log)?;
                } else {
                    writer.flush(&tx, &mut batch, &mut log)?;
                }
                log.settle()?;
            }
            writer.report.rows_read += 1;
            let row = match next {
                Ok(r) => r,
                Err((row, reason)) => {
                    log.push(RowError {
                        row,
                        field: "*".into(),
                        reason,
                    });
                    continue;
                }
            };
            row_errs.clear();
            let Some(loan) = validator.validate(row, &cols, &headers, &buf, &extra, &mut row_errs)
            else {
                for e in row_errs.drain(..) {
                    log.push(e);
                }
                continue;
            };
            if let Some(first) = seen.first_row(&loan)? {
                log.push(RowError {
                    row,
                    field: "loan_id".into(),
                    reason: format!(
                        "duplicate: loan {:?} as of {} already appears in row {first} of this file",
                        loan.loan_id, loan.as_of_date,
                    ),
                });
                continue;
            }
            writer.report.valid_rows += 1;
            if all_or_nothing && !log.is_empty() {
                // Nothing will be committed: only check against stored loans, skip labeling/writing.
                let rows = batch.drain(..).chain(std::iter::once(loan));
                stored.check(rows, &mut writer.report, &mut log)?;
                continue;
            }
            batch.push(loan);
            if batch.len() >= batch_size {
                writer.flush(&tx, &mut batch, &mut log)?;
                log.settle()?;
            }
        }
        let aborted = all_or_nothing && !log.is_empty();
        if aborted {
            stored.check(batch.drain(..), &mut writer.report, &mut log)?;
        } else {
            writer.flush(&tx, &mut batch, &mut log)?;
        }
        drop((seen, stored));
        let mut report = writer.report;
        let aborted = aborted || (all_or_nothing && !log.is_empty());
        let files = log.finish_into(&mut report, source, !aborted)?;
        if let Err(e) = finish_tx(tx, &mut report, ingest_id, aborted) {
            files.discard();
            return Err(e);
        }
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }
}

/// Commit (recording the counts and bumping the generation), or roll back when aborted.
fn finish_tx(
    tx: rusqlite::Transaction<'_>,
    report: &mut IngestReport,
    ingest_id: i64,
    aborted: bool,
) -> Result<()> {
    if aborted {
        tx.rollback()?;
        report.accepted = 0;
        report.industry_labeled = 0;
        report.industry_from_input = 0;
        report.industry_missing = 0;
        report.committed = false;
        return Ok(());
    }
    tx.execute(
        "UPDATE ingests SET accepted=?1, rejected=?2 WHERE id=?3",
        params![
            report.accepted as i64,
            report.rejected_total as i64,
            ingest_id
        ],
    )?;
    tx.execute(
        "UPDATE portfolios SET generation = generation + 1 WHERE name=?1",
        [&report.portfolio],
    )?;
    tx.commit()?;
    report.committed = true;
    Ok(())
}

/// The `(loan_id, as_of_date)` keys of this file so far, with their first row: a temporary
/// table (SQLite's temp store spills to disk past its page cache), so duplicate detection does
/// not hold every key in memory.
struct SeenKeys<'c> {
    insert: Statement<'c>,
    first: Statement<'c>,
}

impl<'c> SeenKeys<'c> {
    fn create(conn: &Connection) -> Result<()> {
        conn.execute_batch(&format!(
            "PRAGMA temp.cache_size = -{SEEN_CACHE_KIB};
             CREATE TEMP TABLE IF NOT EXISTS ingest_seen (
                 loan_id TEXT NOT NULL, as_of_date TEXT NOT NULL, row INTEGER NOT NULL,
                 PRIMARY KEY (loan_id, as_of_date)) WITHOUT ROWID;
             DELETE FROM temp.ingest_seen;"
        ))?;
        Ok(())
    }

    fn prepare(tx: &'c Connection) -> Result<Self> {
        Ok(SeenKeys {
            insert: tx.prepare(
                "INSERT INTO temp.ingest_seen (loan_id, as_of_date, row) VALUES (?1,?2,?3) \
                 ON CONFLICT DO NOTHING",
            )?,
            first: tx
                .prepare("SELECT row FROM temp.ingest_seen WHERE loan_id=?1 AND as_of_date=?2")?,
        })
    }

    /// Record the loan's key; when it was already seen, the row it was first seen in.
    fn first_row(&mut self, l: &LoanRow) -> Result<Option<u64>> {
        if self
            .insert
            .execute(params![l.loan_id, l.as_of_date, l.row as i64])?
            == 1
        {
            return Ok(None);
        }
        let r: Option<i64> = self
            .first
            .query_row(params![l.loan_id, l.as_of_date], |r| r.get(0))
            .optional()?;
        Ok(Some(r.unwrap_or(0) as u64))
    }
}

/// Checks valid rows against the loans already stored (all-or-nothing after a rejection, when
/// nothing is written).
struct Stored<'c> {
    exists: Statement<'c>,
    portfolio: &'c str,
}

impl<'c> Stored<'c> {
    fn prepare(tx: &'c Connection, portfolio: &'c str) -> Result<Self> {
        Ok(Stored {
            exists: tx.prepare(
                "SELECT 1 FROM loans WHERE portfolio=?1 AND loan_id=?2 AND as_of_date=?3",
            )?,
            portfolio,
        })
    }

    fn check(
        &mut self,
        rows: impl Iterator<Item = LoanRow>,
        report: &mut IngestReport,
        log: &mut RejectLog,
    ) -> Result<()> {
        for l in rows {
            if self
                .exists
                .exists(params![self.portfolio, l.loan_id, l.as_of_date])?
            {
                report.valid_rows -= 1;
                log.push(RowError {
                    row: l.row,
                    field: "loan_id".into(),
                    reason: format!(
                        "duplicate: loan {:?} as of {} is already stored in portfolio {:?}",
                        l.loan_id, l.as_of_date, self.portfolio
                    ),
                });
            }
        }
        Ok(())
    }
}
