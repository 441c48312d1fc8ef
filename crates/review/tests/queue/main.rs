//! Behaviour of the review store: leases, priorities, skip/release, labels, double review,
//! audit, stats, export, agreement.

#[path = "../common/mod.rs"]
mod common;

mod concurrency;
mod double_review;
mod leases;
mod priority;
mod queues;
mod records;

use std::time::Duration;

use touxiang_review::*;

const TTL: Duration = Duration::from_secs(600);

fn cfg() -> ReviewConfig {
    ReviewConfig {
        double_review_rate: 0.0,
        synchronous: Synchronous::Normal,
        seed: Some(1),
        ..ReviewConfig::default()
    }
}

fn item(text: &str, uncertainty: f64, amount: f64) -> NewItem {
    let mut it = NewItem::new("default", text, "gbt", uncertainty);
    it.amount = Some(amount);
    it
}

fn open(dir: &tempfile::TempDir, config: ReviewConfig) -> ReviewStore {
    ReviewStore::open(dir.path(), config).unwrap()
}
