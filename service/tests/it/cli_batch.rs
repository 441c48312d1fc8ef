//! The built `touxiang` binary: `batch` with the shipped classifier and the real encoder (output
//! rows, shards, review routing idempotency) and the clear error without a classifier, `ingest`
//! (pre-labeled file without any model, the clear error when labels are needed, `--no-label`,
//! all-or-nothing exit status) and a tiny `bench aggregate`.
//!
//! Except in the runs that label (`touxiang_with_model`), the model is never loaded:
//! `TOUXIANG_PYTHON` points at a missing program and `--model-dir` at an empty directory, so any
//! attempt to fetch the model fails at once.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TEXTS: [&str; 5] = [
    "采购钢材",
    "烤串店装修",
    "补充流动资金",
    "超市进货",
    "楼盘开发",
];

struct Env {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    data: PathBuf,
    model: PathBuf,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let data = dir.join("data");
    let model = dir.join("no-model");
    std::fs::create_dir_all(&model).unwrap();
    Env {
        _tmp: tmp,
        dir,
        data,
        model,
    }
}

fn touxiang(e: &Env, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_touxiang"))
        .args(args)
        .arg("--data-dir")
        .arg(&e.data)
        .arg("--model-dir")
        .arg(&e.model)
        .env("TOUXIANG_PYTHON", "/nonexistent/python3")
        .env_remove("TOUXIANG_DATA_DIR")
        .output()
        .expect("run touxiang")
}

/// `touxiang ARGS` with the real encoder (fetched once by the test binary) and the shipped
/// GB/T artifact, as a user runs it.
fn touxiang_with_model(e: &Env, args: &[&str]) -> Output {
    touxiang_with_model_env(e, args, &[])
}

/// `batch` runs here label `--heads-only`: the default kNN vote would first embed the shipped
/// artifact's 63 k exemplars into each fresh data dir (minutes per test); the vote's path on the
/// command line is `exemplar_index::command_line_labelers_vote_over_neighbours_unless_heads_only`.
fn touxiang_with_model_env(e: &Env, args: &[&str], envs: &[(&str, &str)]) -> Output {
    crate::common::model();
    let heads_only: &[&str] = if args.first() == Some(&"batch") {
        &["--heads-only"]
    } else {
        &[]
    };
    Command::new(env!("CARGO_BIN_EXE_touxiang"))
        .args(args)
        .args(heads_only)
        .envs(envs.iter().copied())
        .arg("--data-dir")
        .arg(&e.data)
        .arg("--model-dir")
        .arg(touxiang_model::test_model_dir())
        .env_remove("TOUXIANG_DATA_DIR")
        .output()
        .expect("run touxiang")
}

fn write_input(path: &Path, n: usize) {
    let mut s = String::from("loan_id,purpose_text,old_code,balance\n");
    for i in 0..n {
        s.push_str(&format!(
            "L{i:04},{},{},{}\n",
            TEXTS[i % TEXTS.len()],
            if i % 2 == 0 { "3120" } else { "5211" },
            100 + i
        ));
    }
    std::fs::write(path, s).unwrap();
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

#[test]
fn batch_end_to_end_shards_and_diff() {
    let e = env();
    let input = e.dir.join("in.csv");
    let n = 403;
    write_input(&input, n);
    let out = e.dir.join("out.csv");
    let diff = e.dir.join("diff.json");
    let o = touxiang_with_model(
        &e,
        &[
            "batch",
            "--input",
            p(&input),
            "--output",
            p(&out),
            "--old-code-column",
            "old_code",
            "--balance-column",
            "balance",
            "--diff-json",
            p(&diff),
            "--no-progress",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON summary");
    assert_eq!(summary["counters"]["rows"], n as u64);
    assert!(
        summary["model_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("tx1-")),
        "the shipped classifier labeled: {summary}"
    );
    let whole = std::fs::read_to_string(&out).unwrap();
    let ids: Vec<&str> = whole
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let want: Vec<String> = (0..n).map(|i| format!("L{i:04}")).collect();
    assert_eq!(ids, want);
    assert!(e.data.join("batch-cache.sqlite").is_file());
    let d: serde_json::Value = serde_json::from_slice(&std::fs::read(&diff).unwrap()).unwrap();
    assert_eq!(d["rows_with_old_code"], n as u64);

    // Shards concatenate (CSV: later shards without their header) to the whole output.
    let mut joined = String::new();
    for i in 0..3 {
        let part = e.dir.join(format!("part{i}.csv"));
        let shard = format!("{i}/3");
        let o = touxiang_with_model(
            &e,
            &[
                "batch",
                "--input",
                p(&input),
                "--output",
                p(&part),
                "--shard",
                &shard,
                "--no-progress",
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        let t = std::fs::read_to_string(&part).unwrap();
        if i == 0 {
            joined.push_str(&t);
        } else {
            joined.push_str(&t[t.find('\n').unwrap() + 1..]);
        }
    }
    assert_eq!(joined, whole);

    // A bad shard is refused, naming the flag.
    let o = touxiang(
        &e,
        &[
            "batch",
            "--input",
            p(&input),
            "--output",
            p(&out),
            "--shard",
            "3/3",
        ],
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("shard"),
        "{}",
        text(&o)
    );
}

fn batch_review_run(e: &Env, input: &Path, out: &Path, qa_rate: &str) -> serde_json::Value {
    let o = touxiang_with_model_env(
        e,
        &[
            "batch",
            "--input",
            p(input),
            "--output",
            p(out),
            "--review",
            "--balance-column",
            "balance",
            "--no-progress",
        ],
        &[("TOUXIANG_CLASSIFY__QA_SAMPLE_RATE", qa_rate)],
    );
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
}

/// Review items of the data dir: (external id, reason, amount).
fn review_items(e: &Env) -> Vec<(String, String, Option<f64>)> {
    let c = rusqlite::Connection::open(e.data.join("review.sqlite")).unwrap();
    let mut q = c
        .prepare("SELECT external_id, reason, amount FROM items ORDER BY external_id")
        .unwrap();
    q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn batch_review_routing_is_idempotent() {
    let e = env();
    let input = e.dir.join("in.csv");
    write_input(&input, 60);
    let out = e.dir.join("out.csv");
    let s1 = batch_review_run(&e, &input, &out, "0");
    let review_rows = s1["counters"]["review_rows"].as_u64().unwrap();
    assert!(
        review_rows > 0,
        "the classifier abstains on 补充流动资金 and sends it to review"
    );
    // every `review` decision is routed, and (the rule of /v1/classify) so is an `auto` label
    // the neighbour vote disagrees with
    let enqueued = s1["counters"]["reviews_enqueued"].as_u64().unwrap();
    assert!(enqueued >= review_rows, "{s1}");
    let items = review_items(&e);
    assert_eq!(items.len() as u64, enqueued);
    let reviews = items.iter().filter(|i| i.1 == "review").count() as u64;
    assert_eq!(reviews, review_rows);
    assert!(items
        .iter()
        .all(|i| i.1 == "review" || i.1 == "disagreement"));
    // Each item carries its row's balance as the exposure its priority weighs.
    for (id, _, amount) in &items {
        let i: f64 = id.trim_start_matches('L').parse().unwrap();
        assert_eq!(*amount, Some(100.0 + i), "{id}");
    }
    // Output rows carry the review ids.
    let outp = std::fs::read_to_string(&out).unwrap();
    assert_eq!(outp.matches(",rv_").count() as u64, enqueued);
    // The same run again (same keys) does not enqueue the rows twice.
    let s2 = batch_review_run(&e, &input, &out, "0");
    assert_eq!(s2["counters"]["review_rows"], review_rows);
    assert_eq!(review_items(&e).len() as u64, enqueued);
}

#[test]
fn batch_review_routing_follows_the_classify_rule_qa_samples_included() {
    let e = env();
    let input = e.dir.join("in.csv");
    write_input(&input, 20);
    let out = e.dir.join("out.csv");
    // QA rate 1: every `auto` label is sampled, as /v1/classify would at that rate
    let s = batch_review_run(&e, &input, &out, "1");
    assert_eq!(s["counters"]["reviews_enqueued"], 20, "{s}");
    let items = review_items(&e);
    assert_eq!(items.len(), 20);
    assert!(items.iter().any(|i| i.1 == "qa_sample"), "{items:?}");
    // the item offers the alternative classes with their paths, as a classify item does
    let c = rusqlite::Connection::open(e.data.join("review.sqlite")).unwrap();
    let sugg: String = c
        .query_row(
            "SELECT suggestions FROM items WHERE reason = 'review' LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let sugg: serde_json::Value = serde_json::from_str(&sugg).unwrap();
    let alt = sugg
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == "alternative")
        .unwrap_or_else(|| panic!("no alternative in {sugg}"));
    assert_eq!(alt["level"], "class", "{sugg}");
    assert_eq!(alt["path"].as_array().unwrap().len(), 4, "{sugg}");
}

#[test]
fn batch_without_classifier_says_so() {
    let e = env();
    let input = e.dir.join("in.csv");
    write_input(&input, 5);
    let out = e.dir.join("out.csv");
    let o = touxiang(
        &e,
        &[
            "batch",
            "--input",
            p(&input),
            "--output",
            p(&out),
            "--no-progress",
        ],
    );
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("needs the trained classifier"), "{}", text(&o));
    assert!(!out.exists());
}

const HEADER: &str = "loan_id,purpose_text,amount,balance,overdue_days,region_code,customer_type,product,issue_date,as_of_date,industry_code";

#[test]
fn ingest_cli() {
    let e = env();
    let labeled = e.dir.join("labeled.csv");
    std::fs::write(
        &labeled,
        format!(
            "{HEADER}\nC1,采购钢材,100,90,0,110101,小型企业,经营贷,2024-01-01,2025-01-31,3120\n\
             C2,烤串店,50,40,35,440300,个人,经营贷,2024-02-01,2025-01-31,6291\n"
        ),
    )
    .unwrap();
    // Every row carries industry_code: no classifier needed.
    let o = touxiang(&e, &["ingest", "--portfolio", "p1", p(&labeled)]);
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["accepted"], 2);
    assert_eq!(r["rejected"], serde_json::json!([]));
    assert_eq!(r["industry_from_input"], 2);

    // Rows without industry_code need the classifier: a clear error, nothing written.
    let unlabeled = e.dir.join("unlabeled.jsonl");
    std::fs::write(
        &unlabeled,
        r#"{"loan_id":"U1","purpose_text":"超市进货","balance":10,"overdue_days":0,"region_code":"310000","as_of_date":"2025-01-31"}
"#,
    )
    .unwrap();
    let o = touxiang(&e, &["ingest", "--portfolio", "p1", p(&unlabeled)]);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--no-label") && err.contains("Nothing was written"),
        "{}",
        text(&o)
    );
    let o = touxiang(
        &e,
        &["ingest", "--portfolio", "p1", "--no-label", p(&unlabeled)],
    );
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["accepted"], 1);
    assert_eq!(r["industry_missing"], 1);

    // All-or-nothing with bad rows: summary on stdout, exit status 2; --map renames columns.
    let bad = e.dir.join("bad.csv");
    std::fs::write(
        &bad,
        "借据号,用途,余额,逾期天数,地区,日期,行业\nD1,采购钢材,-1,0,110101,2025-01-31,3120\nD2,采购钢材,5,0,110101,2025-01-31,3120\n",
    )
    .unwrap();
    let map = "loan_id=借据号,purpose_text=用途,balance=余额,overdue_days=逾期天数,region_code=地区,as_of_date=日期,industry_code=行业";
    let o = touxiang(&e, &["ingest", "--portfolio", "p2", "--map", map, p(&bad)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["accepted"], 0);
    assert_eq!(r["rejected"][0]["row"], 2);
    assert_eq!(r["rejected"][0]["field"], "balance");
    let o = touxiang(
        &e,
        &[
            "ingest",
            "--portfolio",
            "p2",
            "--map",
            map,
            "--mode",
            "commit-valid",
            p(&bad),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["accepted"], 1);
    assert_eq!(r["rejected"].as_array().unwrap().len(), 1);
}

#[test]
fn bench_aggregate_small() {
    let e = env();
    let o = Command::new(env!("CARGO_BIN_EXE_touxiang"))
        .args(["bench", "aggregate", "--loans", "2000", "--iterations", "3"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("aggregate p50"), "{out}");
    drop(e);
}
