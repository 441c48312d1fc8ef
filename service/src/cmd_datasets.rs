//! Labeled splits of the public datasets, in the shapes `touxiang train` and `touxiang eval` read.
//!
//! `touxiang datasets lendingclub --loans FILE --out DIR` turns the Lending Club book into a
//! custom flat taxonomy (its 14 `purpose` values) with labeled examples:
//!
//! * `DIR/lendingclub-purpose.csv` — `code,name,parent` (a purpose that would start a spreadsheet
//!   formula, see [`touxiang_datasets::csv_safe`], is refused: the file is read back by
//!   `touxiang train --taxonomy-csv`, so its codes cannot be escaped with a leading `'`);
//! * `DIR/train.jsonl` — `{"text","code"}` of the train + calibration share (by a seeded hash of
//!   `loan_id`, see [`touxiang_training::lendingclub_examples`]);
//! * `DIR/test.jsonl` — the held-out rest, never seen by training.
//!
//! `touxiang datasets gbt --notes FILE --out DIR` writes the GB/T 4754 corpus that
//! `touxiang train` builds from the notes with the same seed, split the same way:
//! `DIR/train.jsonl` (train + calibration) and `DIR/test.jsonl` (the held-out note items), so
//! `touxiang eval --data DIR/test.jsonl --baseline-train DIR/train.jsonl` reports the shipped
//! classifier and the baseline on exactly the split training held out. The files are derived
//! from `../shared` at run time; they are not part of the project.
//!
//! `touxiang datasets synth-book --out FILE [--loans 2000] [--months 6] [--seed 42] [--shock]`
//! writes the deterministic synthetic Chinese loan book of [`touxiang_portfolio::synth`] as CSV
//! (every row with its `industry_code`, so `touxiang ingest` needs no model) to try the
//! dashboard; `--shock` plants a known deterioration (建筑业 × 广东 in the last month).

use std::borrow::Cow;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use touxiang_datasets::{csv_safe, Taxonomy};
use touxiang_training::{
    build_corpus, lendingclub_examples, CorpusOptions, Example, Split, SplitRatios, Tree,
};

#[derive(Subcommand, Debug)]
pub enum DatasetsCmd {
    /// Lending Club loans.csv → custom taxonomy CSV + train/test JSONL.
    Lendingclub(LendingclubArgs),
    /// GB/T 4754 notes → the training corpus's train/test JSONL (the split `train` holds out).
    Gbt(GbtArgs),
    /// A synthetic Chinese loan book (CSV with industry codes) to try the dashboard:
    /// `touxiang ingest --portfolio NAME FILE` loads it as is, no model needed.
    SynthBook(SynthBookArgs),
}

#[derive(Args, Debug)]
pub struct SynthBookArgs {
    /// Output CSV file.
    #[arg(long)]
    pub out: PathBuf,
    /// Distinct loans (each appears in every monthly snapshot).
    #[arg(long, default_value_t = 2000)]
    pub loans: usize,
    /// Monthly snapshots (month-ends from January 2025).
    #[arg(long, default_value_t = 6)]
    pub months: usize,
    /// Generator seed (the same seed writes the same book).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Quadruple the risk of 建筑业 (section E) loans in 广东 (44) in the last month, so the
    /// early warnings (`GET /v1/alerts`) have something known to find.
    #[arg(long)]
    pub shock: bool,
}

#[derive(Args, Debug)]
pub struct GbtArgs {
    /// GB/T 4754 notes (read here, never copied into the project).
    #[arg(long, default_value = "../shared/datasets/gbt4754-2017/notes.jsonl")]
    pub notes: PathBuf,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Split seed; `touxiang train --seed` with the same value holds out the same items.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[derive(Args, Debug)]
pub struct LendingclubArgs {
    /// The Lending Club file (columns loan_id, purpose, title, desc).
    #[arg(
        long,
        default_value = "../shared/datasets/lendingclub-2007-2011/loans.csv"
    )]
    pub loans: PathBuf,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

pub fn run(cmd: DatasetsCmd) -> anyhow::Result<()> {
    match cmd {
        DatasetsCmd::Lendingclub(a) => lendingclub(a),
        DatasetsCmd::Gbt(a) => gbt(a),
        DatasetsCmd::SynthBook(a) => synth_book(a),
    }
}

/// Book size from which `GET /v1/alerts` (default parameters) finds the shock as the strongest
/// alert (seed 42: z ≈ 5 at 50 000 loans × 4 months; at 2 000 loans the segment has ~25 loans
/// and ~1 extra overdue one, below any test's power).
const SHOCK_VISIBLE_LOANS: usize = 50_000;

/// `touxiang datasets synth-book`: write [`touxiang_portfolio::synth`]'s book (every row with
/// its industry code, canonical columns plus a `branch` attribute) and print
/// `{"rows", "path", "loans", "months", "seed", "shock"}`.
fn synth_book(a: SynthBookArgs) -> anyhow::Result<()> {
    use touxiang_portfolio::synth::{write_csv, SynthSpec};
    anyhow::ensure!(a.loans >= 1, "--loans must be at least 1");
    anyhow::ensure!(a.months >= 1, "--months must be at least 1");
    anyhow::ensure!(
        !a.shock || a.months >= 2,
        "--shock needs --months of at least 2 (the shock is measured against the months before)"
    );
    let spec = SynthSpec {
        loans: a.loans,
        months: a.months,
        seed: a.seed,
        unlabeled_share: 0.0,
        shock: a.shock,
        ..SynthSpec::default()
    };
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let rows = write_csv(&spec, &a.out).with_context(|| format!("writing {}", a.out.display()))?;
    let path = std::fs::canonicalize(&a.out).unwrap_or(a.out.clone());
    if a.shock && a.loans < SHOCK_VISIBLE_LOANS {
        eprintln!(
            "note: the shocked segment (建筑业 × 广东) holds about 1.2 % of the loans ({} here); \
             GET /v1/alerts singles it out reliably from about {SHOCK_VISIBLE_LOANS} loans \
             (e.g. --loans {SHOCK_VISIBLE_LOANS} --months 4)",
            a.loans * 12 / 1000
        );
    }
    println!(
        "{}",
        serde_json::json!({
            "rows": rows, "path": path, "loans": a.loans, "months": a.months,
            "seed": a.seed, "shock": a.shock,
        })
    );
    Ok(())
}

fn lendingclub(a: LendingclubArgs) -> anyhow::Result<()> {
    let (tax, examples, skipped) = lendingclub_examples(&a.loans, a.seed, SplitRatios::default())
        .with_context(|| format!("reading {}", a.loans.display()))?;
    // OWASP CSV injection: every cell must pass `csv_safe` unchanged. Escaping (a leading `'`)
    // would break the codes `touxiang train` matches against the examples, so refuse instead.
    let rows: Vec<[&str; 3]> = tax
        .nodes()
        .iter()
        .map(|n| [n.code.as_str(), &n.name, n.parent.as_deref().unwrap_or("")])
        .collect();
    for v in rows.iter().flatten() {
        anyhow::ensure!(
            matches!(csv_safe(v), Cow::Borrowed(_)),
            "purpose {v:?} in {} would start a spreadsheet formula in the taxonomy CSV; rename it",
            a.loans.display()
        );
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let csv_path = a.out.join(format!("{}.csv", tax.id()));
    let mut w = csv::Writer::from_path(&csv_path)?;
    w.write_record(["code", "name", "parent"])?;
    for r in &rows {
        w.write_record(r)?;
    }
    w.flush()?;
    let (n_train, n_test) = write_splits(&a.out, &examples)?;
    println!(
        "{}",
        serde_json::json!({
            "taxonomy": tax.id(),
            "taxonomy_csv": csv_path,
            "codes": tax.len(),
            "train": n_train,
            "test": n_test,
            "skipped_without_text": skipped,
        })
    );
    Ok(())
}

fn gbt(a: GbtArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.notes.exists(),
        "notes file {} not found (pass --notes)",
        a.notes.display()
    );
    let tree = Tree::from_taxonomy(Taxonomy::gbt4754(), true)?;
    let opts = CorpusOptions {
        seed: a.seed,
        ..CorpusOptions::default()
    };
    let corpus = build_corpus(&a.notes, &tree, &opts)
        .with_context(|| format!("building the corpus from {}", a.notes.display()))?;
    let (n_train, n_test) = write_splits(&a.out, &corpus.examples)?;
    println!(
        "{}",
        serde_json::json!({
            "taxonomy": corpus.taxonomy_id,
            "corpus_version": corpus.version(),
            "train": n_train,
            "test": n_test,
        })
    );
    Ok(())
}

/// `DIR/train.jsonl` (train and calibration splits) and `DIR/test.jsonl` (held out), one
/// `{"text","code","source"}` per line (`source` keeps generated examples, e.g. `template`,
/// visible); returns the two counts.
fn write_splits(dir: &std::path::Path, examples: &[Example]) -> anyhow::Result<(usize, usize)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let open = |name: &str| -> anyhow::Result<std::io::BufWriter<std::fs::File>> {
        let p = dir.join(name);
        Ok(std::io::BufWriter::new(
            std::fs::File::create(&p).with_context(|| format!("creating {}", p.display()))?,
        ))
    };
    let (mut train, mut test) = (open("train.jsonl")?, open("test.jsonl")?);
    let (mut n_train, mut n_test) = (0, 0);
    for e in examples {
        let line = serde_json::json!({"text": e.text, "code": e.code, "source": e.source.as_str()});
        if e.split == Split::Test {
            writeln!(test, "{line}")?;
            n_test += 1;
        } else {
            writeln!(train, "{line}")?;
            n_train += 1;
        }
    }
    train.flush()?;
    test.flush()?;
    Ok((n_train, n_test))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::Path;

    use super::*;

    /// (text, code, source) of every line of `DIR/name`.
    fn lines(dir: &Path, name: &str) -> Vec<(String, String, String)> {
        std::fs::read_to_string(dir.join(name))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let f = |k: &str| {
                    v[k].as_str()
                        .unwrap_or_else(|| panic!("{k} in {l}"))
                        .to_string()
                };
                (f("text"), f("code"), f("source"))
            })
            .collect()
    }

    fn texts(v: &[(String, String, String)]) -> HashSet<String> {
        v.iter().map(|l| l.0.clone()).collect()
    }

    #[test]
    fn gbt_splits_hold_out_what_training_holds_out() {
        let d = tempfile::tempdir().unwrap();
        let notes = d.path().join("notes.jsonl");
        // Made-up items under real class codes (two per line so the parser's "name：a、b" form
        // is exercised too).
        let mut s = String::new();
        for (code, stem) in [
            ("0111", "稻"),
            ("1311", "米"),
            ("3130", "钢"),
            ("6291", "串"),
        ] {
            let items: Vec<String> = (0..12)
                .map(|i| format!("\"{stem}料甲{i}：{stem}品乙{i}、{stem}货丙{i}\""))
                .collect();
            s.push_str(&format!(
                "{{\"code\": \"{code}\", \"definition\": [], \"includes\": [{}], \"excludes\": []}}\n",
                items.join(", ")
            ));
        }
        std::fs::write(&notes, s).unwrap();
        let out = d.path().join("out");
        run(DatasetsCmd::Gbt(GbtArgs {
            notes: notes.clone(),
            out: out.clone(),
            seed: 7,
        }))
        .unwrap();
        let (train, test) = (lines(&out, "train.jsonl"), lines(&out, "test.jsonl"));
        assert!(!test.is_empty() && !train.is_empty());
        // nothing held out is trained on, and generated examples are marked as such
        assert!(texts(&train).is_disjoint(&texts(&test)));
        assert!(train.iter().any(|l| l.2 == "template"));
        assert!(test.iter().all(|l| l.2 != "template"));
        // the held-out set is the one `touxiang train --seed 7` builds
        let tree = Tree::from_taxonomy(Taxonomy::gbt4754(), true).unwrap();
        let opts = CorpusOptions {
            seed: 7,
            ..CorpusOptions::default()
        };
        let corpus = build_corpus(&notes, &tree, &opts).unwrap();
        let held: HashSet<String> = corpus
            .split(Split::Test)
            .iter()
            .map(|e| e.text.clone())
            .collect();
        assert_eq!(texts(&test), held);
        assert_eq!(train.len() + test.len(), corpus.examples.len());
        // a missing notes file is an error naming it
        let err = run(DatasetsCmd::Gbt(GbtArgs {
            notes: d.path().join("nope.jsonl"),
            out,
            seed: 7,
        }))
        .unwrap_err();
        assert!(err.to_string().contains("nope.jsonl"), "{err}");
    }

    #[test]
    fn lendingclub_writes_taxonomy_and_disjoint_splits() {
        let d = tempfile::tempdir().unwrap();
        let loans = d.path().join("loans.csv");
        let mut s = String::from("loan_id,purpose,title,desc\n");
        for i in 0..60 {
            let p = ["car", "wedding", "medical"][i % 3];
            s.push_str(&format!(
                "LC{i:04},{p},{p} loan {i},paying for the {p} number {i}\n"
            ));
        }
        std::fs::write(&loans, s).unwrap();
        let out = d.path().join("lc");
        run(DatasetsCmd::Lendingclub(LendingclubArgs {
            loans,
            out: out.clone(),
            seed: 42,
        }))
        .unwrap();
        let csv = std::fs::read_to_string(out.join("lendingclub-purpose.csv")).unwrap();
        for p in ["car", "wedding", "medical"] {
            assert!(
                csv.lines().any(|l| l.starts_with(&format!("{p},"))),
                "{csv}"
            );
        }
        let (train, test) = (lines(&out, "train.jsonl"), lines(&out, "test.jsonl"));
        assert_eq!(train.len() + test.len(), 60);
        assert!(!test.is_empty());
        assert!(texts(&train).is_disjoint(&texts(&test)));
    }

    #[test]
    fn lendingclub_refuses_formula_like_purposes_and_keeps_numbers() {
        let d = tempfile::tempdir().unwrap();
        for (i, purpose) in ["=1+1", "@SUM(A1)", "-12.5"].into_iter().enumerate() {
            let loans = d.path().join(format!("loans{i}.csv"));
            let mut s = String::from("loan_id,purpose,title,desc\n");
            for j in 0..20 {
                let p = if j % 2 == 0 { "car" } else { purpose };
                s.push_str(&format!("LC{j:04},{p},{p} loan {j},paying for it {j}\n"));
            }
            std::fs::write(&loans, s).unwrap();
            let out = d.path().join(format!("lc{i}"));
            let res = run(DatasetsCmd::Lendingclub(LendingclubArgs {
                loans,
                out: out.clone(),
                seed: 42,
            }));
            let csv_path = out.join("lendingclub-purpose.csv");
            if purpose == "-12.5" {
                // a number is not a formula: written as is
                res.unwrap();
                let csv = std::fs::read_to_string(&csv_path).unwrap();
                assert!(csv.lines().any(|l| l == "-12.5,-12.5,"), "{csv}");
            } else {
                let err = res.unwrap_err().to_string();
                assert!(err.contains(purpose) && err.contains("formula"), "{err}");
                assert!(!csv_path.exists());
            }
        }
    }
}
