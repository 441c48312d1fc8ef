//! touxiang-testkit: what tests, examples and load runs use and the product never does — a
//! development-only crate (no production crate depends on it).
//!
//! - [`KeywordLabeler`]: a deterministic keyword labeler (real GB/T codes) for the batch engine,
//!   HTTP job and upload tests and for measuring engine overhead without the encoder.
//! - [`write_csv`], [`sample_rows`], [`sample_csv`]: small input books.
//! - the `touxiang-batch-fake` binary: the batch engine driven by the keyword labeler (the
//!   kill-and-resume tests run it as a child process; `gen` and `bench` for load runs).

mod keyword;
mod rows;

pub use keyword::KeywordLabeler;
pub use rows::{sample_csv, sample_rows, write_csv};
