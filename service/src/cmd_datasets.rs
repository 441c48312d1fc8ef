//! `touxiang datasets lendingclub --loans FILE --out DIR`: turn the Lending Club book into a
//! custom flat taxonomy (its 14 `purpose` values) with labeled examples, in the shapes
//! `touxiang train --taxonomy-csv … --examples …` and `touxiang eval --data …` read:
//!
//! * `DIR/lendingclub-purpose.csv` — `code,name,parent`;
//! * `DIR/train.jsonl` — `{"text","code"}` of the train + calibration share (by a seeded hash of
//!   `loan_id`, see [`touxiang_training::lendingclub_examples`]);
//! * `DIR/test.jsonl` — the held-out rest, never seen by training.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use touxiang_training::{lendingclub_examples, Split, SplitRatios};

#[derive(Subcommand, Debug)]
pub enum DatasetsCmd {
    /// Lending Club loans.csv → custom taxonomy CSV + train/test JSONL.
    Lendingclub(LendingclubArgs),
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
    let DatasetsCmd::Lendingclub(a) = cmd;
    let (tax, examples, skipped) = lendingclub_examples(&a.loans, a.seed, SplitRatios::default())
        .with_context(|| format!("reading {}", a.loans.display()))?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let csv_path = a.out.join(format!("{}.csv", tax.id()));
    let mut w = csv::Writer::from_path(&csv_path)?;
    w.write_record(["code", "name", "parent"])?;
    for n in tax.nodes() {
        w.write_record([n.code.as_str(), &n.name, n.parent.as_deref().unwrap_or("")])?;
    }
    w.flush()?;
    let open = |name: &str| -> anyhow::Result<std::io::BufWriter<std::fs::File>> {
        let p = a.out.join(name);
        Ok(std::io::BufWriter::new(
            std::fs::File::create(&p).with_context(|| format!("creating {}", p.display()))?,
        ))
    };
    let (mut train, mut test) = (open("train.jsonl")?, open("test.jsonl")?);
    let (mut n_train, mut n_test) = (0, 0);
    for e in &examples {
        let line = serde_json::json!({"text": e.text, "code": e.code});
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
