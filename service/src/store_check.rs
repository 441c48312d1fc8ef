//! `serve` refuses to start on a damaged store instead of starting "ready" without its data.
//!
//! Every store opens through [`touxiang_sqlite::open_store`] (`PRAGMA quick_check`, the store's
//! tables, a schema version): an existing file that is empty, corrupt or without its tables is
//! refused with a message naming the file and the recovery step. Some stores are opened only
//! on first use (portfolios), in the background (the exemplar store) or by jobs (batch files);
//! [`check_stores`] opens those that exist before the server listens, so that damage stops the
//! start. The key store is checked by [`crate::auth::startup`] (`ensure_admin`) and the review
//! store is opened eagerly by `serve`.

use std::path::Path;

use anyhow::Context;

use crate::cmd_batch::{CACHE_FILE, REVIEW_KEYS_FILE};
use crate::AppState;

/// Open (and check) every store of the data dir that exists and is not opened at start anyway.
/// Nothing is created.
pub fn check_stores(state: &AppState) -> anyhow::Result<()> {
    let cfg = state.config();
    let dir = cfg.data_dir.as_path();
    if dir.join(touxiang_portfolio::store::STORE_FILE).exists() {
        // opened once and kept for the routes
        crate::ext::Ext::of(state)
            .store()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    if dir.join(touxiang_flow::store::STORE_FILE).exists() {
        // opened once and kept for the routes
        crate::routes::flow::flow_store(state).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
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
    if cfg.insecure_no_auth {
        // with authentication on, ensure_admin opens (and checks) the key store
        check_key_store(dir)?;
    }
    Ok(())
}

/// With authentication off the key store is opened only by key-management calls: check it now
/// when it exists.
fn check_key_store(dir: &Path) -> anyhow::Result<()> {
    let db = dir.join(touxiang_auth::AUTH_DB_FILE);
    if db.exists() {
        touxiang_auth::KeyStore::open_file(db)?;
    }
    Ok(())
}
