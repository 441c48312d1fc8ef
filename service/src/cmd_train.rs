//! `touxiang train`: corpus → embeddings (cached) → heads, kNN, calibration → artifacts.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use touxiang_datasets::{Taxonomy, GBT4754_ID};
use touxiang_model::{E5Model, Precision};
use touxiang_training::{train, CorpusOptions, CorpusSource, TrainConfig, Tree};

use crate::cli::Common;
use crate::config::FlagOverrides;
use crate::engine::E5;

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub common: Common,
    /// Taxonomy id: `gbt4754-2017` (corpus from the NBS notes) or a custom one.
    #[arg(long, default_value = GBT4754_ID)]
    pub taxonomy: String,
    /// GB/T 4754 notes (read at training time, never copied).
    #[arg(long, default_value = "../shared/datasets/gbt4754-2017/notes.jsonl")]
    pub notes: PathBuf,
    /// Custom taxonomy CSV (code,name,parent[,level]); with --examples.
    #[arg(long)]
    pub taxonomy_csv: Option<PathBuf>,
    /// Labeled examples JSONL ({"text","code"}) for a custom taxonomy.
    #[arg(long)]
    pub examples: Option<PathBuf>,
    /// Extra labeled JSONL files (e.g. `touxiang export-labels` output) added to training.
    #[arg(long = "include")]
    pub include: Vec<PathBuf>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output root (default DATA_DIR/artifacts); artifacts go to OUT/<taxonomy>/<version>/.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Target precision for the auto-accept and level thresholds.
    #[arg(long)]
    pub target_precision: Option<f64>,
    /// Shallowest level a label may have to be decided `auto` (a level name of the taxonomy,
    /// e.g. `section` for banks that report 门类 only, or its depth, 0 = top). Default: the
    /// second level (`division` for GB/T 4754), the only level of a flat taxonomy.
    #[arg(long)]
    pub auto_min_level: Option<String>,
    /// Labeled loan texts ({"text","code"[,"borrower_name","business_scope"]} JSONL) on which the
    /// mixture, temperatures and thresholds are fitted instead of the corpus's calibration split,
    /// e.g. `eval/data/loan-dev/calib.jsonl`, plus reviewed labels as they accumulate
    /// (`touxiang export-labels` output); repeatable; lines marked `"split": "test"` are refused.
    #[arg(long = "calib-examples")]
    pub calib_examples: Vec<PathBuf>,
    /// Refit only the calibration of this artifact directory on --calib-examples (heads and
    /// exemplars kept, about a minute instead of a full training run); the result is a new
    /// version under OUT (default DATA_DIR/artifacts), loaded by the next `serve`.
    #[arg(long, value_name = "ARTIFACT_DIR")]
    pub recalibrate: Option<PathBuf>,
    /// How surely the thresholds must reach the target precision on the calibration texts: at
    /// the lower end of the Wilson interval this many standard errors below the measured rate
    /// (0 = the measured rate, the default of a training run; a recalibration keeps the
    /// artifact's own value; the shipped GB/T classifier uses 1.645, the one-sided 95 % bound;
    /// `DecisionTargets::precision_z` has the trade-off measured on loan text).
    #[arg(long)]
    pub precision_z: Option<f64>,
    /// With --recalibrate: labeled loan texts (same format as --calib-examples, repeatable)
    /// added to the artifact's exemplars (source `written`) before the calibration is refitted,
    /// so the neighbour vote and the lexical voter see loan-shaped wording, e.g.
    /// `eval/data/loan-exemplars/*.jsonl`. Vague lines join the vague class (skipped when the
    /// classifier has none); a file may not also be a calibration file (its lines would be
    /// their own neighbours).
    #[arg(long = "exemplar-examples", requires = "recalibrate")]
    pub exemplar_examples: Vec<PathBuf>,
}

/// The calibration loans of `path`; a line of the held-out test half is an error.
fn calib_loans(
    path: &std::path::Path,
    tax: &Taxonomy,
) -> anyhow::Result<Vec<(touxiang_training::LoanText, String)>> {
    let data = touxiang_eval::load_labeled_jsonl(path, tax)?;
    if let Some((i, _)) = data
        .iter()
        .enumerate()
        .find(|(_, d)| d.split.as_deref() == Some("test"))
    {
        anyhow::bail!(
            "--calib-examples {}: record {} is marked \"split\": \"test\" — the test half is never fitted on",
            path.display(),
            i + 1
        );
    }
    Ok(data.iter().map(|d| (d.loan(), d.code.clone())).collect())
}

/// Lines added per `--exemplar-examples` file.
type WrittenCounts = Vec<(String, usize)>;

/// `--exemplar-examples`: a staged copy of the artifact in `dir` whose `exemplars.jsonl` also
/// carries the written lines of `files` (as the borrower fields and text read together, the
/// way queries are read); `None` when there are none. Lines already there are not repeated.
fn with_written_exemplars(
    cfg: &crate::config::Config,
    dir: &std::path::Path,
    files: &[PathBuf],
    calib: &[PathBuf],
) -> anyhow::Result<(Option<tempfile::TempDir>, WrittenCounts)> {
    if files.is_empty() {
        return Ok((None, Vec::new()));
    }
    let mut written = Vec::new();
    let meta = touxiang_training::ArtifactMeta::load(dir)
        .with_context(|| format!("--recalibrate {}", dir.display()))?;
    let tax = crate::engine::taxonomy_registry(cfg)?
        .get(&meta.taxonomy_id)
        .with_context(|| format!("taxonomy '{}' is not installed", meta.taxonomy_id))?;
    // vague lines join as exemplars of the vague class when the classifier has one
    let vague_class = meta.tree.vague().is_some();
    let (mut texts, mut codes, mut sources) = touxiang_training::read_exemplar_lines(dir)?
        .with_context(|| format!("{} has no exemplars.jsonl", dir.display()))?;
    let mut seen: std::collections::HashSet<(String, String)> =
        texts.iter().cloned().zip(codes.iter().cloned()).collect();
    for f in files {
        anyhow::ensure!(
            !calib.iter().any(|c| same_file(c, f)),
            "{} is given both as --exemplar-examples and --calib-examples: its lines would be \
             their own neighbours during calibration",
            f.display()
        );
        let mut added = 0usize;
        for (loan, code) in calib_loans(f, &tax)? {
            if code == touxiang_training::VAGUE_CODE && !vague_class {
                continue;
            }
            let text = loan.model_text();
            if seen.insert((text.clone(), code.clone())) {
                texts.push(text);
                codes.push(code);
                // provenance: not an NBS note term (the taxonomy search reads those); the API
                // shows every source but `reviewed` as `seed`
                sources.push("written".into());
                added += 1;
            }
        }
        eprintln!("{}: {added} written exemplars added", f.display());
        written.push((f.display().to_string(), added));
    }
    let staged = tempfile::Builder::new()
        .prefix(".touxiang-exemplars-")
        .tempdir_in(&cfg.data_dir)
        .context("staging the artifact")?;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        // the exemplar vectors are re-derived from the texts (through the embedding cache)
        let skip = ["exemplars.jsonl", "exemplars.safetensors"];
        if e.file_type()?.is_file() && !skip.iter().any(|f| e.file_name() == *f) {
            std::fs::copy(e.path(), staged.path().join(e.file_name()))?;
        }
    }
    touxiang_training::write_exemplar_lines(staged.path(), &texts, &codes, &sources)?;
    Ok((Some(staged), written))
}

fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Depth of `level` in `tree`: one of its level names or a depth number.
fn level_depth(tree: &Tree, level: &str) -> anyhow::Result<usize> {
    let n = tree.depth_count();
    let names: Vec<&str> = (0..n).map(|d| tree.level_name(d)).collect();
    names
        .iter()
        .position(|l| *l == level)
        .or_else(|| level.parse::<usize>().ok().filter(|&d| d < n))
        .with_context(|| {
            format!(
                "--auto-min-level {level:?}: taxonomy {} has levels {} (or depths 0..{})",
                tree.id,
                names.join(", "),
                n - 1
            )
        })
}

pub fn run(a: TrainArgs) -> anyhow::Result<()> {
    let cfg = a.common.load(FlagOverrides::default())?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| cfg.data_dir.join("artifacts"));
    if let Some(z) = a.precision_z {
        anyhow::ensure!(
            (0.0..=3.0).contains(&z),
            "--precision-z must be between 0 and 3"
        );
    }
    if let Some(dir) = &a.recalibrate {
        let (staged, written) =
            with_written_exemplars(&cfg, dir, &a.exemplar_examples, &a.calib_examples)?;
        let from = staged.as_ref().map_or(dir.as_path(), |t| t.path());
        return recalibrate(&cfg, from, &a.calib_examples, &out, a.precision_z, &written);
    }
    let (tax, tree, source) = match (&a.taxonomy_csv, &a.examples) {
        (Some(csv), Some(ex)) => {
            let tax = Taxonomy::from_csv_path(&a.taxonomy, csv)?;
            install_taxonomy(&cfg.data_dir, &a.taxonomy, csv)?;
            let tree = Tree::from_taxonomy(&tax, false)?;
            let examples = touxiang_training::load_examples_jsonl(
                ex,
                &tree,
                a.seed,
                touxiang_training::SplitRatios::default(),
            )?;
            (
                Cow::Owned(tax),
                tree,
                CorpusSource::Examples {
                    examples,
                    with_names: true,
                },
            )
        }
        (None, None) if a.taxonomy == GBT4754_ID => {
            anyhow::ensure!(
                a.notes.exists(),
                "notes file {} not found (pass --notes)",
                a.notes.display()
            );
            (
                Cow::Borrowed(Taxonomy::gbt4754()),
                Tree::from_taxonomy(Taxonomy::gbt4754(), true)?,
                CorpusSource::Notes {
                    notes_path: a.notes.clone(),
                    options: CorpusOptions::default(),
                },
            )
        }
        _ => anyhow::bail!("a custom taxonomy needs both --taxonomy-csv and --examples"),
    };
    let auto_min_depth = a
        .auto_min_level
        .as_deref()
        .map(|l| level_depth(&tree, l))
        .transpose()?;
    let mut tc = TrainConfig::new(tree, source, &out);
    if let Some(d) = auto_min_depth {
        tc.targets.auto_min_depth = d;
    }
    tc.seed = a.seed;
    if let Some(z) = a.precision_z {
        tc.targets.precision_z = z;
    }
    tc.extra_examples = a.include.clone();
    for p in &a.calib_examples {
        let loans = calib_loans(p, &tax)?;
        eprintln!(
            "calibrating on {} loan texts from {}",
            loans.len(),
            p.display()
        );
        tc.calib_loans.extend(loans);
    }
    tc.cache_dir = Some(cfg.data_dir.join("embedding-cache"));
    if let Some(p) = a.target_precision {
        anyhow::ensure!(
            (0.5..1.0).contains(&p),
            "--target-precision must be in [0.5, 1)"
        );
        tc.targets.level_precision = p;
        tc.targets.auto_precision = p;
    }
    let model = Arc::new(
        E5Model::ensure_and_load(&cfg.model_dir(), Precision::Q4).context("loading the encoder")?,
    );
    let report = train(&tc, &E5(model))?;
    println!("{}", report.corpus);
    println!("{}", serde_json::to_string_pretty(&report)?);
    eprintln!("artifacts written to {}", report.artifact_dir.display());
    Ok(())
}

/// `train --recalibrate DIR`: the artifact's calibration refitted on the calibration loans.
fn recalibrate(
    cfg: &crate::config::Config,
    dir: &std::path::Path,
    calib: &[PathBuf],
    out: &std::path::Path,
    precision_z: Option<f64>,
    written_exemplars: &[(String, usize)],
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !calib.is_empty(),
        "--recalibrate needs the labeled texts to fit on (--calib-examples FILE, repeatable)"
    );
    let arts = touxiang_training::Artifacts::load(dir)
        .with_context(|| format!("--recalibrate {}", dir.display()))?;
    let reg = crate::engine::taxonomy_registry(cfg)?;
    let tax = reg.get(&arts.meta.taxonomy_id).with_context(|| {
        format!(
            "taxonomy '{}' of {} is not installed in this data dir",
            arts.meta.taxonomy_id,
            dir.display()
        )
    })?;
    arts.check_taxonomy(&tax)?;
    let mut loans = Vec::new();
    for p in calib {
        loans.extend(calib_loans(p, &tax)?);
    }
    let model = Arc::new(
        E5Model::ensure_and_load(&cfg.model_dir(), Precision::Q4).context("loading the encoder")?,
    );
    let index = crate::engine::exemplar_index_for(cfg, dir, &model)?.with_context(|| {
        format!(
            "{} has no exemplars.jsonl: the neighbour vote cannot be calibrated",
            dir.display()
        )
    })?;
    let cache = cfg.data_dir.join("embedding-cache");
    let report = touxiang_training::recalibrate(
        dir,
        arts,
        &index,
        &loans,
        &E5(model),
        &touxiang_training::RecalibrateOptions {
            cache_dir: Some(&cache),
            out_root: out,
            precision_z,
            written_exemplars,
        },
    )?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    eprintln!(
        "recalibrated {} on {} texts: artifacts written to {}",
        report.from_version,
        report.examples,
        report.artifact_dir.display()
    );
    Ok(())
}

/// Copy a custom taxonomy's CSV to `DATA_DIR/taxonomies/<id>.csv`, where `serve`, `eval`,
/// `ingest` and `batch` look for taxonomies, so the classifier trained here is loaded by them.
/// A different file already installed under that id is an error (pick another id or remove it).
fn install_taxonomy(
    data_dir: &std::path::Path,
    id: &str,
    csv: &std::path::Path,
) -> anyhow::Result<()> {
    let dir = data_dir.join("taxonomies");
    let dest = dir.join(format!("{id}.csv"));
    let new = std::fs::read(csv).with_context(|| format!("reading {}", csv.display()))?;
    match std::fs::read(&dest) {
        Ok(old) if old == new => return Ok(()),
        Ok(_) => anyhow::bail!(
            "{} already holds a different taxonomy '{id}': remove it or train under another --taxonomy id",
            dest.display()
        ),
        Err(_) => {}
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(&dest, new).with_context(|| format!("writing {}", dest.display()))?;
    eprintln!("taxonomy '{id}' installed at {}", dest.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{calib_loans, install_taxonomy, level_depth};
    use touxiang_datasets::Taxonomy;
    use touxiang_training::Tree;

    #[test]
    fn auto_min_level_is_a_level_name_or_depth_of_the_taxonomy() {
        let tree = Tree::from_taxonomy(Taxonomy::gbt4754(), true).unwrap();
        assert_eq!(level_depth(&tree, "section").unwrap(), 0);
        assert_eq!(level_depth(&tree, "class").unwrap(), 3);
        assert_eq!(level_depth(&tree, "2").unwrap(), 2);
        for bad in ["4", "industry", ""] {
            let e = level_depth(&tree, bad).unwrap_err().to_string();
            assert!(
                e.contains("--auto-min-level") && e.contains("section, division, group, class"),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn calibration_loans_keep_borrower_fields_and_never_take_the_test_half() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("calib.jsonl");
        std::fs::write(
            &f,
            "{\"text\":\"采购原材料\",\"code\":\"1312\",\"borrower_name\":\"鲁丰面粉有限公司\",\"split\":\"calib\"}\n",
        )
        .unwrap();
        let loans = calib_loans(&f, Taxonomy::gbt4754()).unwrap();
        assert_eq!(loans.len(), 1);
        assert_eq!(loans[0].0.model_text(), "鲁丰面粉有限公司，采购原材料");
        assert_eq!(loans[0].1, "1312");
        std::fs::write(
            &f,
            "{\"text\":\"采购原材料\",\"code\":\"1312\"}\n{\"text\":\"驾校购车\",\"code\":\"8391\",\"split\":\"test\"}\n",
        )
        .unwrap();
        let e = calib_loans(&f, Taxonomy::gbt4754())
            .unwrap_err()
            .to_string();
        assert!(e.contains("record 2") && e.contains("test"), "{e}");
    }

    #[test]
    fn a_custom_taxonomy_is_installed_once_and_never_silently_replaced() {
        let d = tempfile::tempdir().unwrap();
        let csv = d.path().join("t.csv");
        std::fs::write(&csv, "code,name,parent\na,A,\n").unwrap();
        install_taxonomy(d.path(), "t", &csv).unwrap();
        let dest = d.path().join("taxonomies/t.csv");
        assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(&csv).unwrap());
        install_taxonomy(d.path(), "t", &csv).unwrap(); // same file again: fine
        std::fs::write(&csv, "code,name,parent\nb,B,\n").unwrap();
        let e = install_taxonomy(d.path(), "t", &csv)
            .unwrap_err()
            .to_string();
        assert!(e.contains("different taxonomy 't'"), "{e}");
    }
}
