//! The classification engine: encoder + text pipeline + trained classifiers + exemplar store.
//! (Being filled in by the lead; the signatures below are stable.)

use std::sync::Arc;

use touxiang_datasets::Labeler;

use crate::config::Config;

/// A labeler (encoder + classifier of `taxonomy`) for command-line use (ingest, batch).
pub fn load_labeler(cfg: &Config, taxonomy: &str) -> anyhow::Result<Arc<dyn Labeler>> {
    let _ = cfg;
    anyhow::bail!("no trained classifier for taxonomy '{taxonomy}' yet (engine not wired)")
}
