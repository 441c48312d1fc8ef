//! The checkpoint of a run (atomic save, load) and the fingerprint that ties it to one input,
//! one set of options and one model/taxonomy version.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{BatchHooks, Counters};
use crate::diff::DiffAccumulator;
use crate::error::{BatchError, RowIssue};
use crate::options::{BatchOptions, Format};

pub(super) const CHECKPOINT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Checkpoint {
    pub(super) version: u32,
    pub(super) fingerprint: String,
    /// Input rows of this shard consumed (all of them are in the part file).
    pub(super) rows_done: u64,
    /// Length of the part file holding exactly those rows (with the header).
    pub(super) part_bytes: u64,
    pub(super) counters: Counters,
    pub(super) issues: Vec<RowIssue>,
    pub(super) issues_truncated: bool,
    pub(super) diff: Option<DiffAccumulator>,
}

impl Checkpoint {
    pub(super) fn load(path: &Path) -> Result<Option<Checkpoint>, BatchError> {
        match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BatchError::io("cannot read checkpoint", path, e)),
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| BatchError::Checkpoint {
                    path: path.to_path_buf(),
                    message: format!("unreadable: {e}"),
                }),
        }
    }

    /// Write atomically: temp file, fsync, rename, fsync the directory.
    pub(super) fn save(&self, path: &Path) -> Result<(), BatchError> {
        let tmp = crate::options::suffixed(path, ".tmp");
        let json = serde_json::to_vec(self).map_err(|e| BatchError::Checkpoint {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        {
            let mut f = File::create(&tmp).map_err(|e| BatchError::io("cannot write", &tmp, e))?;
            f.write_all(&json)
                .and_then(|_| f.sync_all())
                .map_err(|e| BatchError::io("cannot write", &tmp, e))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| BatchError::io("cannot rename to", path, e))?;
        sync_dir(path);
        Ok(())
    }
}

pub(super) fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// SHA-256 of the whole input file plus every option that changes the output.
pub(super) fn fingerprint(
    opts: &BatchOptions,
    in_fmt: Format,
    out_fmt: Format,
    model: &str,
    taxonomy: &str,
    hooks: &BatchHooks,
) -> Result<String, BatchError> {
    let mut f =
        File::open(&opts.input).map_err(|e| BatchError::io("cannot open input", &opts.input, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| BatchError::io("cannot read input", &opts.input, e))?;
        if n == 0 {
            break;
        }
        len += n as u64;
        h.update(&buf[..n]);
    }
    let input_sha = hex::encode(h.finalize());
    let ident = serde_json::json!({
        "v": CHECKPOINT_VERSION,
        "input_sha256": input_sha,
        "input_len": len,
        "input_format": in_fmt,
        "encoding": opts.input_encoding,
        "sheet": opts.sheet,
        "output_format": out_fmt,
        "id_column": opts.id_column,
        "text_column": opts.text_column,
        "shard": opts.shard,
        "review": opts.review,
        "old_code_column": opts.old_code_column,
        "balance_column": opts.balance_column,
        "previous_codes": hooks.previous_codes.as_ref().map(|m| m.len()),
        "taxonomy": hooks.taxonomy.as_ref().map(|t| t.version().to_string()),
        "model_version": model,
        "taxonomy_version": taxonomy,
    });
    Ok(hex::encode(Sha256::digest(ident.to_string().as_bytes())))
}
