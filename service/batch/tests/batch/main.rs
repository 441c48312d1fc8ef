//! End-to-end tests of the batch engine with the fake keyword labeler.

#[path = "../common/mod.rs"]
mod common;

mod bad_rows;
mod dedup;
mod diff;
mod formats;
mod jobs;
mod resume;
mod review;
mod shards;

use std::path::Path;

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn sample_csv(path: &Path, n: usize) {
    let rows = common::sample_rows(n);
    let v: Vec<(&str, &str, &str, &str)> = rows
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str(), "1000", ""))
        .collect();
    common::write_csv(path, &v);
}
