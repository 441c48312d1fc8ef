//! `touxiang-batch-fake`: the batch engine driven by the deterministic keyword labeler.
//!
//! Used by the kill-and-resume test (as a child process) and as the benchmark runner:
//!
//! ```text
//! touxiang-batch-fake gen   --rows N [--unique-ratio 0.3] --out FILE.csv
//! touxiang-batch-fake run   --input IN --output OUT [--cache DB] [--delay-ms MS] [--chunk N]
//!                           [--shard i/n] [--resume] [--progress] [--old-code-column C]
//!                           [--balance-column C] [--diff-json F]
//! touxiang-batch-fake bench --rows N [--unique-ratio 0.3] [--chunk N] --dir DIR
//! ```
//! `run` and `bench` print a JSON summary on stdout.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use touxiang_batch::{run, synth, BatchHooks, BatchOptions, ProgressBar};
use touxiang_testkit::KeywordLabeler;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match real_main(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(args: &[String]) -> Result<(), String> {
    let (cmd, rest) = args
        .split_first()
        .ok_or("usage: touxiang-batch-fake gen|run|bench ...")?;
    let mut flags: HashMap<String, String> = HashMap::new();
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        let name = a
            .strip_prefix("--")
            .ok_or(format!("unexpected argument {a}"))?;
        if matches!(name, "resume" | "progress") {
            flags.insert(name.into(), "true".into());
        } else {
            let v = it.next().ok_or(format!("--{name} needs a value"))?;
            flags.insert(name.into(), v.clone());
        }
    }
    let get = |k: &str| flags.get(k).cloned();
    let need = |k: &str| get(k).ok_or(format!("--{k} is required"));
    let num = |k: &str, d: u64| -> Result<u64, String> {
        get(k).map_or(Ok(d), |v| {
            v.parse().map_err(|_| format!("--{k}: not a number"))
        })
    };
    let ratio = get("unique-ratio")
        .map_or(Ok(0.3), |v| v.parse::<f64>())
        .map_err(|_| "--unique-ratio: not a number".to_string())?;
    match cmd.as_str() {
        "gen" => {
            let s = synth::generate_loans_csv(
                need("out")?.as_ref(),
                num("rows", 1000)?,
                ratio,
                num("seed", 42)?,
            )
            .map_err(|e| e.to_string())?;
            println!("{}", serde_json::to_string(&s).unwrap_or_default());
        }
        "run" => {
            let mut opts = BatchOptions::new(need("input")?, need("output")?);
            opts.cache_path = get("cache").map(Into::into);
            opts.chunk_size = num("chunk", 4096)? as usize;
            opts.resume = flags.contains_key("resume");
            opts.shard = get("shard")
                .map(|s| s.parse())
                .transpose()
                .map_err(|e| format!("{e}"))?;
            opts.old_code_column = get("old-code-column");
            opts.balance_column = get("balance-column");
            opts.diff_json = get("diff-json").map(Into::into);
            let labeler =
                KeywordLabeler::new().with_delay(Duration::from_millis(num("delay-ms", 0)?));
            let hooks = BatchHooks::default();
            let bar = flags
                .contains_key("progress")
                .then(|| ProgressBar::start(hooks.progress.clone()));
            let res = run(&opts, &labeler, &hooks);
            if let Some(b) = bar {
                b.finish();
            }
            let s = res.map_err(|e| e.to_string())?;
            println!("{}", serde_json::to_string(&s).unwrap_or_default());
        }
        "bench" => {
            let labeler = KeywordLabeler::new();
            let hooks = BatchHooks::default();
            let bar = flags
                .contains_key("progress")
                .then(|| ProgressBar::start(hooks.progress.clone()));
            let r = synth::run_benchmark(
                need("dir")?.as_ref(),
                num("rows", 1_000_000)?,
                ratio,
                num("chunk", 4096)? as usize,
                &labeler,
                &hooks,
            );
            if let Some(b) = bar {
                b.finish();
            }
            let r = r.map_err(|e| e.to_string())?;
            println!(
                "rows {} | unique texts in input {} | generate {:.1}s | run {:.1}s | {:.0} rows/s | texts sent to labeler {} ({:.0}/s) | cache hits {}",
                r.rows,
                r.unique_texts_in_input,
                r.generate_secs,
                r.run_secs,
                r.rows_per_sec,
                r.summary.counters.labeled_texts,
                r.labeled_texts_per_sec,
                r.summary.counters.cache_hits
            );
        }
        other => return Err(format!("unknown command {other} (gen, run, bench)")),
    }
    Ok(())
}
