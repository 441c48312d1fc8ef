//! End-to-end tests of the batch engine with the fake keyword labeler.

mod bad_rows;
mod dedup;
mod diff;
mod formats;
mod jobs;
mod resume;
mod review;
mod shards;

use touxiang_testkit::sample_csv;

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
