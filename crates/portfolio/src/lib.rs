//! Portfolio store, ingest, aggregation, risk scores and early warnings for touxiang.
//!
//! * [`PortfolioStore`] — the SQLite store (`DIR/portfolio.sqlite`, WAL).
//! * [`PortfolioStore::ingest_file`] / [`PortfolioStore::ingest_file_as`] /
//!   [`PortfolioStore::ingest_bytes`] — CSV, XLSX, JSONL ingest in bounded memory, with per-row
//!   error reports: the first problems in the summary, all of them in a CSV report file
//!   ([`ingest`] documents validation, row numbers, transactions and reports).
//! * [`PortfolioStore::aggregate`] — group-by over any dimensions with overdue metrics,
//!   period-over-period change, top-N and concentration ([`agg`] documents the semantics);
//!   [`export::to_csv`] / [`export::to_xlsx`] export any result.
//! * [`PortfolioStore::scores`] / [`PortfolioStore::alerts`] — empirical-Bayes shrunk segment risk
//!   and early-warning alerts ([`scoring`] documents the formulas and the test).
//! * [`lendingclub`] — the Lending Club proof book; [`synth`] — a deterministic synthetic Chinese
//!   book and the [`synth::bench`] benchmark.

pub mod agg;
pub mod error;
pub mod export;
pub mod ingest;
pub mod lendingclub;
pub mod purpose;
pub mod refdata;
pub mod scoring;
pub mod store;
pub mod synth;

pub use agg::{
    drill_down, AggQuery, AggResult, AggRow, Change, Concentration, Dimension, Filter, KeyValue,
    Metric, Metrics, OverdueDef, SnapshotSel, Totals,
};
pub use error::{PortfolioError, Result};
pub use ingest::{
    ColumnMap, ErrorReport, IngestMode, IngestOptions, IngestReport, InputFormat, LoanStatus,
    ReportInfo, ReportMeta, RowError,
};
pub use purpose::KeywordPurposeLabeler;
pub use refdata::{PurposeScheme, RegionScheme};
pub use scoring::{Alert, AlertQuery, ScoreQuery, SegmentScore};
pub use store::{PortfolioConfig, PortfolioInfo, PortfolioStore};
pub use synth::{bench, BenchReport};
