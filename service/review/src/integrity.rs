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
