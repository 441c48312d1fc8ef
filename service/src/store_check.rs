//! `serve` refuses to start on a damaged store instead of starting "ready" without its data.
//!
//! Every store opens through [`touxiang_sqlite::open_store`] (`PRAGMA quick_check`, the store's
//! tables, a schema version): an existing file that is empty, corrupt or without its tables is
//! refused with a message naming the file and the recovery step. The stores the application
//! state holds (portfolio, fund flow, keys, review) are opened by [`crate::AppState::open`];
//! the others are opened in the background (the exemplar store) or by jobs (batch files), so
//! [`check_stores`], called by `AppState::open`, opens those that exist before the server
//! listens, so that damage stops the start.

use anyhow::Context;

use crate::cmd_batch::{CACHE_FILE, REVIEW_KEYS_FILE};
use crate::config::Config;

/// Open (and check) every store of the data dir that exists and that the application state
/// does not hold. Nothing is created.
pub fn check_stores(cfg: &Config) -> anyhow::Result<()> {
    let dir = cfg.data_dir.as_path();
    touxiang_vectors::check_store_files(&dir.join("vectors"))
        .with_context(|| format!("checking the exemplar store under {}", dir.display()))?;
    let cache = dir.join(CACHE_FILE);
    if cache.exists() {
        touxiang_batch::LabelCache::open(Some(&cache), "", "")?;
    }
    let keys = dir.join(REVIEW_KEYS_FILE);
    if keys.exists() {
        crate::cmd_batch::open_keys(&keys)?;
    }
    Ok(())
}
