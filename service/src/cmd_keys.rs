//! `touxiang keys create|revoke|list` and `touxiang export-labels`.
//!
//! Both are safe while the server runs on the same data directory: the key store and the review
//! store are SQLite databases in WAL mode; a revocation takes effect on the server's next
//! request, and the export reads committed labels on its own connection.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use touxiang_auth::{KeyStore, Role};
use touxiang_review::{LabelFilter, ReviewConfig, ReviewStore};

use crate::cli::Common;
use crate::config::FlagOverrides;

/// `touxiang keys …`.
#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Create a key and print it (once: only its hash is stored).
    Create {
        #[command(flatten)]
        common: Common,
        /// originator | reviewer | analyst | admin.
        #[arg(long)]
        role: String,
        /// Key name (for reviewer keys: the reviewer id).
        #[arg(long)]
        name: String,
    },
    /// Revoke a key by key id or by the name of an active key.
    Revoke {
        #[command(flatten)]
        common: Common,
        /// Key id (`key_…`) or name.
        key: String,
    },
    /// List keys (never the keys themselves).
    List {
        #[command(flatten)]
        common: Common,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn data_dir(common: &Common) -> anyhow::Result<PathBuf> {
    Ok(common.load(FlagOverrides::default())?.data_dir)
}

/// Run `touxiang keys …`.
pub fn run_keys(cmd: KeysCmd) -> anyhow::Result<()> {
    match cmd {
        KeysCmd::Create { common, role, name } => {
            let role: Role = role.parse()?;
            let dir = data_dir(&common)?;
            let ks = KeyStore::open(&dir)?;
            let (key_id, key) = ks.create(role, &name)?;
            eprintln!(
                "created {role} key {key_id} named {name:?} in {} — the key is shown once:",
                dir.display()
            );
            println!("{key}");
            Ok(())
        }
        KeysCmd::Revoke { common, key } => {
            let ks = KeyStore::open(data_dir(&common)?)?;
            let info = ks.revoke(&key)?;
            println!(
                "revoked {} ({} key named {:?})",
                info.key_id, info.role, info.name
            );
            Ok(())
        }
        KeysCmd::List { common, json } => {
            let ks = KeyStore::open(data_dir(&common)?)?;
            let keys = ks.list()?;
            let mut out = std::io::stdout().lock();
            if json {
                for k in keys {
                    writeln!(out, "{}", serde_json::to_string(&k)?)?;
                }
            } else {
                writeln!(
                    out,
                    "{:<22} {:<24} {:<11} {:<26} STATUS",
                    "KEY_ID", "NAME", "ROLE", "CREATED"
                )?;
                for k in keys {
                    let status = match k.revoked_at {
                        Some(t) => format!("revoked {}", t.to_rfc3339()),
                        None => "active".into(),
                    };
                    writeln!(
                        out,
                        "{:<22} {:<24} {:<11} {:<26} {status}",
                        k.key_id,
                        k.name,
                        k.role.as_str(),
                        k.created_at.to_rfc3339()
                    )?;
                }
            }
            Ok(())
        }
    }
}

/// `touxiang export-labels`.
#[derive(Args, Debug)]
pub struct ExportLabelsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Only labels of this taxonomy.
    #[arg(long)]
    pub taxonomy: Option<String>,
    /// Only labels that became final at or after this time (RFC 3339, e.g. 2026-01-31T00:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Output file (JSON lines: text, code, taxonomy, reviewer, labeled_at, source, review_id…);
    /// `touxiang train --include FILE` reads it.
    #[arg(long)]
    pub out: PathBuf,
}

/// Run `touxiang export-labels`: writes `--out` atomically (temporary file + rename) and prints
/// the number of labels written.
pub fn run_export_labels(a: ExportLabelsArgs) -> anyhow::Result<()> {
    let dir = data_dir(&a.common)?;
    let since = a
        .since
        .as_deref()
        .map(|s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|d| d.with_timezone(&chrono::Utc))
                .with_context(|| format!("--since: {s:?} is not an RFC 3339 time"))
        })
        .transpose()?;
    // Reading, not creating: a mistyped --data-dir once made a fresh empty store and exported 0
    // labels with exit status 0.
    let db = dir.join(touxiang_review::REVIEW_DB_FILE);
    anyhow::ensure!(
        db.is_file(),
        "no review store at {} (is --data-dir {} the service's data directory?)",
        db.display(),
        dir.display()
    );
    // Short-lived process: no background checkpoint thread.
    let cfg = ReviewConfig {
        checkpoint_interval: None,
        ..ReviewConfig::default()
    };
    let store = ReviewStore::open(&dir, cfg)
        .with_context(|| format!("opening the review store in {}", dir.display()))?;
    let filter = LabelFilter {
        since,
        taxonomy: a.taxonomy.clone(),
        limit: None,
    };
    let tmp = a.out.with_extension("jsonl.tmp");
    let f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut w = std::io::BufWriter::new(f);
    let n = store.export_labels(&mut w, &filter)?;
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &a.out)
        .with_context(|| format!("renaming {} to {}", tmp.display(), a.out.display()))?;
    println!("exported {n} labels to {}", a.out.display());
    Ok(())
}
