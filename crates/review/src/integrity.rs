//! The review database is opened with an integrity check ([`touxiang_sqlite::open_store`]):
//! an existing `review.sqlite` that is empty, corrupt or without the review tables is refused
//! instead of becoming an empty queue (labels and pending items silently gone).

use std::path::Path;

use rusqlite::Connection;
use touxiang_sqlite::StoreSchema;

use crate::ReviewError;

/// The review store's shape: the tables every version has had and the migration steps.
pub(crate) const STORE_SCHEMA: StoreSchema = StoreSchema {
    store: "review store",
    tables: &["meta", "items", "labels", "skips", "audit"],
    migrations: &[crate::store::SCHEMA],
};

/// Open (creating it only when the file does not exist) and check the review database.
pub(crate) fn open(path: &Path) -> Result<Connection, ReviewError> {
    Ok(touxiang_sqlite::open_store(path, &STORE_SCHEMA)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store at schema version 1 opens under the current code and keeps its items.
    #[test]
    fn a_version_1_store_opens() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(crate::REVIEW_DB_FILE);
        touxiang_sqlite::create_store_at_version(&p, &STORE_SCHEMA, 1).unwrap();
        Connection::open(&p)
            .unwrap()
            .execute(
                "INSERT INTO items (review_id, queue, origin_queue, text, taxonomy, exposure,
                     uncertainty, log2_base, prio_key, reason, suggestions, neighbors,
                     required_labels, stage, status, enqueued_ms)
                 VALUES ('rv-old', 'default', 'default', '采购热轧钢卷', 'gbt4754-2017', 1.0,
                     0.5, 0.0, 0.0, 'low_confidence', '[]', '[]', 1, 'first', 'pending', 0)",
                [],
            )
            .unwrap();
        let store = crate::ReviewStore::open_file(&p, crate::ReviewConfig::default()).unwrap();
        let stats = store.stats(chrono::Utc::now()).unwrap();
        let q = stats.queues.iter().find(|q| q.queue == "default").unwrap();
        assert_eq!(q.pending, 1);
        drop(store);
        let version: i32 = Connection::open(&p)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, STORE_SCHEMA.version());
    }
}
