//! `touxiang backup` / `touxiang restore`: a consistent copy of a data dir's state and its way
//! back.
//!
//! What is copied: every SQLite store (`*.sqlite` in the data dir and its `vectors/` folder —
//! review labels and queue, API keys, portfolios, batch caches, the exemplar store and its
//! outbox) through SQLite's online backup API, so a backup taken while the service runs is a
//! consistent snapshot of each store; the operator's `admin.key`; installed taxonomies
//! (`taxonomies/`) and trained classifiers (`artifacts/`). Not copied: the encoder
//! (`touxiang model fetch` brings it back) and the embedding cache (rebuilt on use).
//! `manifest.json` lists every file with its size and SHA-256.
//!
//! Restore checks the manifest and runs `PRAGMA quick_check` on every database before it
//! touches the data dir, refuses a data dir that already holds stores unless `--force`, and
//! must run while the service is stopped.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cli::Common;
use crate::config::FlagOverrides;

#[derive(Args, Debug)]
pub struct BackupArgs {
    #[command(flatten)]
    pub common: Common,
    /// Directory to write the backup to (created; must be empty or new).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub common: Common,
    /// A directory written by `touxiang backup`.
    #[arg(long)]
    pub from: PathBuf,
    /// Replace the stores the data dir already holds.
    #[arg(long)]
    pub force: bool,
}

/// `manifest.json` of a backup.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub created_at: String,
    pub touxiang_version: String,
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Path relative to the data dir, `/`-separated.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

const MANIFEST: &str = "manifest.json";

/// The files a backup holds, relative to `data`: (path, is a SQLite database).
fn state_files(data: &Path) -> anyhow::Result<Vec<(PathBuf, bool)>> {
    let mut out = Vec::new();
    for sub in [Path::new(""), Path::new("vectors")] {
        let Ok(rd) = std::fs::read_dir(data.join(sub)) else {
            continue;
        };
        for e in rd {
            let p = e?.path();
            if p.is_file() && p.extension().is_some_and(|x| x == "sqlite") {
                out.push((p.strip_prefix(data)?.to_path_buf(), true));
            }
        }
    }
    if data.join("admin.key").is_file() {
        out.push((PathBuf::from("admin.key"), false));
    }
    for tree in ["taxonomies", "artifacts"] {
        let root = data.join(tree);
        if root.is_dir() {
            let mut stack = vec![root];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d)? {
                    let p = e?.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if p.is_file() {
                        out.push((p.strip_prefix(data)?.to_path_buf(), false));
                    }
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

fn sha256_file(p: &Path) -> anyhow::Result<(u64, String)> {
    let mut f = std::fs::File::open(p).with_context(|| format!("reading {}", p.display()))?;
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h)?;
    Ok((n, hex::encode(h.finalize())))
}

fn quick_check(p: &Path) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open_with_flags(p, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {}", p.display()))?;
    let r: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .with_context(|| format!("{} is not a readable SQLite database", p.display()))?;
    anyhow::ensure!(r == "ok", "{}: quick_check says {r}", p.display());
    Ok(())
}

/// Write a backup of `data` into `out`; returns its manifest.
pub fn backup(data: &Path, out: &Path) -> anyhow::Result<Manifest> {
    anyhow::ensure!(
        data.is_dir(),
        "data dir {} does not exist (is --data-dir right?)",
        data.display()
    );
    if out.exists() {
        anyhow::ensure!(
            std::fs::read_dir(out)?.next().is_none(),
            "{} is not empty: back up into a new directory",
            out.display()
        );
    }
    let mut files = Vec::new();
    for (rel, is_db) in state_files(data)? {
        let (src, dst) = (data.join(&rel), out.join(&rel));
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if is_db {
            let conn = rusqlite::Connection::open_with_flags(
                &src,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .with_context(|| format!("opening {}", src.display()))?;
            conn.backup(rusqlite::MAIN_DB, &dst, None)
                .with_context(|| format!("backing up {}", src.display()))?;
            quick_check(&dst)?;
        } else {
            std::fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
        }
        let (bytes, sha256) = sha256_file(&dst)?;
        files.push(ManifestFile {
            path: rel.to_string_lossy().replace('\\', "/"),
            bytes,
            sha256,
        });
    }
    anyhow::ensure!(
        files.iter().any(|f| f.path.ends_with(".sqlite")),
        "{} holds no store to back up (is --data-dir right?)",
        data.display()
    );
    let m = Manifest {
        created_at: chrono::Utc::now().to_rfc3339(),
        touxiang_version: env!("CARGO_PKG_VERSION").to_string(),
        files,
    };
    std::fs::write(out.join(MANIFEST), serde_json::to_vec_pretty(&m)?)?;
    Ok(m)
}

/// Restore the backup in `from` into `data` (the service must be stopped).
pub fn restore(from: &Path, data: &Path, force: bool) -> anyhow::Result<Manifest> {
    let mp = from.join(MANIFEST);
    let m: Manifest = serde_json::from_slice(
        &std::fs::read(&mp)
            .with_context(|| format!("{} is not a touxiang backup", from.display()))?,
    )
    .with_context(|| format!("reading {}", mp.display()))?;
    // verify everything before touching the data dir
    for f in &m.files {
        anyhow::ensure!(
            !f.path.split('/').any(|c| c == ".." || c.is_empty()),
            "manifest path {:?} is not inside the backup",
            f.path
        );
        let p = from.join(&f.path);
        let (bytes, sha) = sha256_file(&p)?;
        anyhow::ensure!(
            bytes == f.bytes && sha == f.sha256,
            "{} does not match the manifest (damaged backup)",
            p.display()
        );
        if f.path.ends_with(".sqlite") {
            quick_check(&p)?;
        }
    }
    let existing: Vec<&str> = m
        .files
        .iter()
        .filter(|f| f.path.ends_with(".sqlite") && data.join(&f.path).exists())
        .map(|f| f.path.as_str())
        .collect();
    anyhow::ensure!(
        force || existing.is_empty(),
        "{} already holds {} — stop the service and pass --force to replace them",
        data.display(),
        existing.join(", ")
    );
    for f in &m.files {
        let dst = data.join(&f.path);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = dst.with_extension("restore-tmp");
        std::fs::copy(from.join(&f.path), &tmp)?;
        // stale WAL/SHM files of the replaced database would be replayed over the restored one
        for ext in ["sqlite-wal", "sqlite-shm"] {
            let side = dst.with_extension(ext);
            if f.path.ends_with(".sqlite") && side.exists() {
                std::fs::remove_file(&side)?;
            }
        }
        std::fs::rename(&tmp, &dst).with_context(|| format!("writing {}", dst.display()))?;
    }
    Ok(m)
}

pub fn run_backup(a: BackupArgs) -> anyhow::Result<()> {
    let cfg = a.common.load(FlagOverrides::default())?;
    let m = backup(&cfg.data_dir, &a.out)?;
    eprintln!(
        "backed up {} files of {} to {}",
        m.files.len(),
        cfg.data_dir.display(),
        a.out.display()
    );
    println!("{}", serde_json::to_string_pretty(&m)?);
    Ok(())
}

pub fn run_restore(a: RestoreArgs) -> anyhow::Result<()> {
    let cfg = a.common.load(FlagOverrides::default())?;
    let m = restore(&a.from, &cfg.data_dir, a.force)?;
    eprintln!(
        "restored {} files from {} into {}",
        m.files.len(),
        a.from.display(),
        cfg.data_dir.display()
    );
    Ok(())
}
