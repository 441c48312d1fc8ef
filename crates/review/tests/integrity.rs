//! A damaged review database is refused instead of becoming an empty queue.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{gbt, t};
use touxiang_review::*;

fn cfg() -> ReviewConfig {
    ReviewConfig {
        double_review_rate: 0.0,
        synchronous: Synchronous::Normal,
        seed: Some(1),
        ..ReviewConfig::default()
    }
}

/// A store with pending items and final labels, closed (WAL checkpointed into the file).
fn store_with_data(dir: &Path) {
    let s = ReviewStore::open(dir, cfg()).unwrap();
    for i in 0..300 {
        let it = NewItem::new("default", &format!("贷款用途 {i} 补充流动资金"), "gbt", 0.5);
        s.enqueue(&it, t(i)).unwrap();
    }
    for i in 0..20 {
        let c = s
            .claim("default", "r1", Duration::from_secs(600), t(1000 + i))
            .unwrap()
            .expect("an item");
        s.label(&c.review_id, "r1", "6291", None, &gbt, t(1000 + i))
            .unwrap();
    }
}

fn assert_refused(dir: &Path) -> String {
    let db = dir.join(REVIEW_DB_FILE);
    let e = ReviewStore::open(dir, cfg()).err().expect("refused");
    assert!(
        matches!(e, ReviewError::Store(ref s) if s.is_damaged()),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.contains(&db.display().to_string()), "{msg}");
    assert!(msg.contains("touxiang restore"), "{msg}");
    assert!(msg.contains("move it away"), "{msg}");
    msg
}

#[test]
fn an_empty_review_database_is_refused() {
    let d = tempfile::tempdir().unwrap();
    store_with_data(d.path());
    let db = d.path().join(REVIEW_DB_FILE);
    std::fs::File::create(&db).unwrap(); // truncated to 0 bytes
    let msg = assert_refused(d.path());
    assert!(msg.contains("0 bytes"), "{msg}");
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0, "left as it was");
}

#[test]
fn a_review_database_with_garbage_in_the_middle_is_refused() {
    let d = tempfile::tempdir().unwrap();
    store_with_data(d.path());
    let db = d.path().join(REVIEW_DB_FILE);
    let mut bytes = std::fs::read(&db).unwrap();
    let mid = bytes.len() / 2 / 4096 * 4096;
    bytes[mid..mid + 2 * 4096].fill(0xA5);
    std::fs::write(&db, &bytes).unwrap();
    assert_refused(d.path());
}

#[test]
fn a_review_database_without_its_tables_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join(REVIEW_DB_FILE);
    // a database file that exists but holds no tables
    let c = rusqlite::Connection::open(&db).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.close().unwrap();
    let msg = assert_refused(d.path());
    assert!(msg.contains("no tables"), "{msg}");
}

#[test]
fn a_missing_review_database_is_created_fresh_and_reopens_with_its_data() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join(REVIEW_DB_FILE);
    assert!(!db.exists());
    let s = ReviewStore::open(d.path(), cfg()).unwrap();
    assert!(s.stats(t(0)).unwrap().queues.is_empty());
    drop(s);
    store_with_data(d.path());
    let s = ReviewStore::open(d.path(), cfg()).unwrap();
    let q = &s.stats(t(2000)).unwrap().queues[0];
    assert_eq!((q.pending, q.labeled), (280, 20));
}
