//! Persistent label cache keyed by (normalised text, model version, taxonomy version).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};
use touxiang_datasets::LabelResult;

use crate::error::BatchError;

/// Labels of normalised texts, stored in SQLite (table `label_cache`) so repeated texts cost
/// nothing across chunks, runs and shards sharing the file. A small in-process memo (cleared when
/// it reaches its capacity, so memory stays bounded) sits in front of SQLite for the hot head of
/// the distribution ("补充流动资金"…).
pub struct LabelCache {
    conn: Connection,
    desc: String,
    model_version: String,
    taxonomy_version: String,
    memo: HashMap<String, Arc<LabelResult>>,
    memo_cap: usize,
}

const TABLE: &str = "CREATE TABLE IF NOT EXISTS label_cache (
    model_version TEXT NOT NULL,
    taxonomy_version TEXT NOT NULL,
    text TEXT NOT NULL,
    label TEXT NOT NULL,
    PRIMARY KEY (model_version, taxonomy_version, text)
) WITHOUT ROWID;";

/// The cache file's shape for the integrity check at open ([`touxiang_sqlite::open_store`]).
const STORE_SCHEMA: touxiang_sqlite::StoreSchema = touxiang_sqlite::StoreSchema {
    store: "batch label cache",
    tables: &["label_cache"],
    migrations: &[TABLE],
};

fn cache_err(desc: &str, e: impl std::fmt::Display) -> BatchError {
    BatchError::Cache {
        path: desc.to_string(),
        message: e.to_string(),
    }
}

impl LabelCache {
    /// Open the cache at `path` (created when the file does not exist), or an in-memory cache
    /// when `path` is `None`. An existing file that is empty, corrupt or without the cache table
    /// is refused ([`BatchError::Store`]).
    pub fn open(
        path: Option<&Path>,
        model_version: &str,
        taxonomy_version: &str,
    ) -> Result<LabelCache, BatchError> {
        let desc = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| ":memory:".into());
        let conn = match path {
            Some(p) => {
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| BatchError::io("cannot create cache directory", dir, e))?;
                }
                touxiang_sqlite::open_store(p, &STORE_SCHEMA)?
            }
            None => Connection::open_in_memory().map_err(|e| cache_err(&desc, e))?,
        };
        conn.busy_timeout(std::time::Duration::from_secs(60))
            .map_err(|e| cache_err(&desc, e))?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; {TABLE}"
        ))
        .map_err(|e| cache_err(&desc, e))?;
        Ok(LabelCache {
            conn,
            desc,
            model_version: model_version.to_string(),
            taxonomy_version: taxonomy_version.to_string(),
            memo: HashMap::new(),
            memo_cap: 200_000,
        })
    }

    /// The cached label of a normalised text, if any.
    pub fn get(&mut self, text: &str) -> Result<Option<Arc<LabelResult>>, BatchError> {
        if let Some(l) = self.memo.get(text) {
            return Ok(Some(l.clone()));
        }
        let json: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT label FROM label_cache WHERE model_version = ?1 AND taxonomy_version = ?2 AND text = ?3",
            )
            .and_then(|mut st| {
                st.query_row(
                    params![self.model_version, self.taxonomy_version, text],
                    |r| r.get(0),
                )
                .optional()
            })
            .map_err(|e| cache_err(&self.desc, e))?;
        let Some(json) = json else { return Ok(None) };
        // A row that no longer parses (e.g. written by an incompatible version) is a miss.
        let Ok(label) = serde_json::from_str::<LabelResult>(&json) else {
            return Ok(None);
        };
        let label = Arc::new(label);
        self.remember(text, label.clone());
        Ok(Some(label))
    }

    /// Store labels of normalised texts (one transaction).
    pub fn put_many(&mut self, items: &[(&str, Arc<LabelResult>)]) -> Result<(), BatchError> {
        let tx = self
            .conn
            .transaction()
            .map_err(|e| cache_err(&self.desc, e))?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO label_cache (model_version, taxonomy_version, text, label) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(|e| cache_err(&self.desc, e))?;
            for (text, label) in items {
                let json = serde_json::to_string(&**label).map_err(|e| cache_err(&self.desc, e))?;
                st.execute(params![
                    self.model_version,
                    self.taxonomy_version,
                    text,
                    json
                ])
                .map_err(|e| cache_err(&self.desc, e))?;
            }
        }
        tx.commit().map_err(|e| cache_err(&self.desc, e))?;
        for (text, label) in items {
            self.remember(text, label.clone());
        }
        Ok(())
    }

    /// Number of cached labels for this model and taxonomy version.
    pub fn len(&self) -> Result<u64, BatchError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM label_cache WHERE model_version = ?1 AND taxonomy_version = ?2",
                params![self.model_version, self.taxonomy_version],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| cache_err(&self.desc, e))
    }

    /// Whether the cache holds no label for this model and taxonomy version.
    pub fn is_empty(&self) -> Result<bool, BatchError> {
        Ok(self.len()? == 0)
    }

    fn remember(&mut self, text: &str, label: Arc<LabelResult>) {
        if self.memo.len() >= self.memo_cap {
            self.memo.clear();
        }
        self.memo.insert(text.to_string(), label);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache at schema version 1 opens under the current code and keeps its entries.
    #[test]
    fn a_version_1_cache_opens() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("cache.sqlite");
        touxiang_sqlite::create_store_at_version(&p, &STORE_SCHEMA, 1).unwrap();
        Connection::open(&p)
            .unwrap()
            .execute(
                "INSERT INTO label_cache VALUES ('m', 't', '采购原材料', '{}')",
                [],
            )
            .unwrap();
        let cache = LabelCache::open(Some(&p), "m", "t").unwrap();
        assert_eq!(cache.len().unwrap(), 1);
        let version: i32 = cache
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, STORE_SCHEMA.version());
    }
}
