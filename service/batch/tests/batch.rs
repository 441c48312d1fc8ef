//! End-to-end tests of the batch engine with the fake keyword labeler.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use touxiang_batch::fake::KeywordLabeler;
use touxiang_batch::{
    merge_shards, read_output, run, BatchError, BatchHooks, BatchOptions, Format, InputEncoding,
    ReviewRequest, ReviewSink, ReviewSinkError, Shard,
};
use touxiang_datasets::{Labeler, Taxonomy};

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn sample_csv(path: &Path, n: usize) {
    let rows = common::sample_rows(n);
    let v: Vec<(&str, &str, &str, &str)> = rows
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str(), "1000", ""))
        .collect();
    common::write_csv(path, &v);
}

// ---------------------------------------------------------------------------------------------
// Bad rows

#[test]
fn bad_rows_are_reported_with_row_numbers_and_the_rest_proceeds() {
    let d = dir();
    let input = d.path().join("in.csv");
    let (gbk, _, _) = encoding_rs::GBK.encode("A7,种植水稻,700");
    let mut bytes: Vec<u8> = Vec::new();
    bytes.extend_from_slice("loan_id,purpose_text,balance\n".as_bytes()); // line 1
    bytes.extend_from_slice("A1,采购热轧钢卷,100\n".as_bytes()); // line 2, row 1
    bytes.extend_from_slice("A2,,200\n".as_bytes()); // row 2: empty text
    bytes.extend_from_slice("A3,\"unterminated 钢材,300\n".as_bytes()); // row 3: broken quote
    bytes.extend_from_slice("A4,超市进货,400\n".as_bytes()); // row 4
    bytes.extend_from_slice("A5,\"烤串\"店,500\n".as_bytes()); // row 5: text after quote
    bytes.extend_from_slice("A6,楼盘开发\n".as_bytes()); // row 6: wrong field count
    bytes.extend_from_slice(&gbk); // row 7: GBK bytes
    bytes.push(b'\n');
    bytes.extend_from_slice(b"A8,\xff\xfe bad,800\r\n"); // row 8: invalid UTF-8
    bytes.extend_from_slice("A9,\"多行\n文本 钢材\",900\n".as_bytes()); // row 9: quoted newline, ok
    bytes.extend_from_slice("\n".as_bytes()); // blank line: not a row
    bytes.extend_from_slice("A10, \u{3000} ,1000\n".as_bytes()); // row 10: whitespace only
    bytes.extend_from_slice("A11,餐厅装修,abc\n".as_bytes()); // row 11: ok, bad balance
    std::fs::write(&input, &bytes).unwrap();

    let out = d.path().join("out.csv");
    let mut opts = BatchOptions::new(&input, &out);
    opts.balance_column = Some("balance".into());
    let labeler = KeywordLabeler::new();
    let s = run(&opts, &labeler, &BatchHooks::default()).unwrap();
    let rows = read_output(&out, Format::Csv).unwrap();

    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        ["A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8", "A9", "A10", "A11"]
    );
    let errored: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.error.is_some())
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(errored, [2, 3, 5, 6, 7, 8, 10]);
    for r in rows.iter().filter(|r| r.error.is_some()) {
        assert!(r.code.is_none() && r.decision.is_none());
    }
    assert_eq!(rows[0].code.as_deref(), Some("3120"));
    assert_eq!(rows[3].code.as_deref(), Some("5211"));
    assert_eq!(rows[8].code.as_deref(), Some("3120"));
    assert_eq!(rows[10].code.as_deref(), Some("6210"));
    assert_eq!(s.counters.rows, 11);
    assert_eq!(s.counters.errors, 7);
    assert_eq!(s.counters.labeled, 4);

    let issue = |row: u64| s.issues.iter().find(|i| i.row == row).unwrap();
    assert_eq!(issue(2).reason, "empty text");
    assert_eq!(issue(2).line, Some(3));
    assert!(issue(3).reason.contains("unterminated"), "{:?}", issue(3));
    assert_eq!(issue(3).line, Some(4));
    assert_eq!(issue(3).id, "A3");
    assert!(issue(5).reason.contains("quote"));
    assert!(issue(6).reason.contains("expected 3 fields, found 2"));
    assert!(issue(7).reason.contains("invalid UTF-8"));
    assert!(
        issue(7).reason.contains("种植水稻"),
        "GBK hint: {}",
        issue(7).reason
    );
    assert_eq!(issue(7).field, "purpose_text");
    assert_eq!(issue(8).line, Some(9));
    assert_eq!(issue(10).reason, "text is only whitespace");
    assert_eq!(issue(10).line, Some(13));
    assert_eq!(issue(11).field, "balance");
    assert!(rows[1].error.as_deref().unwrap().starts_with("row 2:"));
}

#[test]
fn gb18030_input_is_decoded_when_declared() {
    let d = dir();
    let input = d.path().join("in.csv");
    let (bytes, _, _) =
        encoding_rs::GBK.encode("loan_id,purpose_text\nG1,采购热轧钢卷\nG2,超市進貨超市\n");
    std::fs::write(&input, &bytes).unwrap();
    let out = d.path().join("out.jsonl");
    let mut opts = BatchOptions::new(&input, &out);
    opts.input_encoding = InputEncoding::Gb18030;
    run(&opts, &KeywordLabeler::new(), &BatchHooks::default()).unwrap();
    let rows = read_output(&out, Format::Jsonl).unwrap();
    assert_eq!(rows[0].code.as_deref(), Some("3120"));
    assert_eq!(rows[1].code.as_deref(), Some("5211"));
}

#[test]
fn jsonl_bad_lines_are_reported() {
    let d = dir();
    let input = d.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"loan_id\":1,\"purpose_text\":\"采购钢材\"}\n{broken\n[1,2]\n{\"loan_id\":\"x\"}\n\n{\"loan_id\":\"y\",\"purpose_text\":\"超市\"}\n",
    )
    .unwrap();
    let out = d.path().join("out.csv");
    let s = run(
        &BatchOptions::new(&input, &out),
        &KeywordLabeler::new(),
        &BatchHooks::default(),
    )
    .unwrap();
    let rows = read_output(&out, Format::Csv).unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0].id, "1");
    assert_eq!(rows[0].code.as_deref(), Some("3120"));
    assert!(rows[1].error.as_deref().unwrap().contains("invalid JSON"));
    assert!(rows[2]
        .error
        .as_deref()
        .unwrap()
        .contains("not a JSON object"));
    assert!(rows[3].error.as_deref().unwrap().contains("missing"));
    assert_eq!(rows[4].code.as_deref(), Some("5211"));
    let lines: Vec<(u64, Option<u64>)> = s.issues.iter().map(|i| (i.row, i.line)).collect();
    assert_eq!(lines, [(2, Some(2)), (3, Some(3)), (4, Some(4))]);
}

#[test]
fn missing_column_is_a_clear_error() {
    let d = dir();
    let input = d.path().join("in.csv");
    std::fs::write(&input, "id,text\n1,a\n").unwrap();
    let err = run(
        &BatchOptions::new(&input, d.path().join("o.csv")),
        &KeywordLabeler::new(),
        &BatchHooks::default(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("\"loan_id\" not found") && msg.contains("id, text"),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------------------
// Dedup and cache

#[test]
fn dedup_within_chunks_and_cache_across_chunks_and_runs() {
    let d = dir();
    let input = d.path().join("in.csv");
    let variants = [
        "采购热轧钢卷",
        " 采购热轧钢卷 ",
        "采购　热轧钢卷",
        "超市进货",
        "ＡＢＣ超市",
        "ABC超市",
    ];
    let rows: Vec<(String, String)> = (0..600)
        .map(|i| (format!("D{i}"), variants[i % variants.len()].to_string()))
        .collect();
    let v: Vec<(&str, &str, &str, &str)> = rows
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str(), "", ""))
        .collect();
    common::write_csv(&input, &v);
    // Distinct after normalisation: 采购热轧钢卷, 采购 热轧钢卷, 超市进货, ABC超市.
    let cache = d.path().join("cache.sqlite");
    let mut opts = BatchOptions::new(&input, d.path().join("out.csv"));
    opts.cache_path = Some(cache.clone());
    opts.chunk_size = 50;
    let labeler = KeywordLabeler::new();
    let s = run(&opts, &labeler, &BatchHooks::default()).unwrap();
    assert_eq!(
        labeler.texts(),
        4,
        "each distinct normalised text labeled once"
    );
    assert_eq!(s.counters.labeled_texts, 4);
    assert_eq!(
        s.counters.unique_texts,
        12 * 4,
        "4 distinct texts in each of 12 chunks"
    );
    assert_eq!(s.counters.cache_hits, 12 * 4 - 4);

    // A second run with the same cache labels nothing.
    let labeler2 = KeywordLabeler::new();
    opts.output = d.path().join("out2.csv");
    run(&opts, &labeler2, &BatchHooks::default()).unwrap();
    assert_eq!(labeler2.calls(), 0);
    assert_eq!(
        std::fs::read(d.path().join("out.csv")).unwrap(),
        std::fs::read(d.path().join("out2.csv")).unwrap()
    );

    // Another model version does not reuse those labels.
    let labeler3 = KeywordLabeler::new().with_model_version("fake-keywords-2");
    opts.output = d.path().join("out3.csv");
    run(&opts, &labeler3, &BatchHooks::default()).unwrap();
    assert_eq!(labeler3.texts(), 4);

    // Nor does the same model labeling another way (neighbours voting): its cache scope
    // differs, while its rows still carry the model version.
    let labeler4 = Scoped(KeywordLabeler::new());
    opts.output = d.path().join("out4.csv");
    run(&opts, &labeler4, &BatchHooks::default()).unwrap();
    assert_eq!(labeler4.0.texts(), 4);
    let out4 = std::fs::read_to_string(d.path().join("out4.csv")).unwrap();
    assert!(out4.contains(&labeler4.model_version()) && !out4.contains("+knn"));
}

/// The keyword labeler with another cache scope than its model version.
struct Scoped(KeywordLabeler);

impl Labeler for Scoped {
    fn label(
        &self,
        t: &[&str],
    ) -> Result<Vec<touxiang_datasets::LabelResult>, touxiang_datasets::LabelError> {
        self.0.label(t)
    }
    fn model_version(&self) -> String {
        self.0.model_version()
    }
    fn taxonomy_version(&self) -> String {
        self.0.taxonomy_version()
    }
    fn cache_scope(&self) -> String {
        format!("{}+knn", self.0.model_version())
    }
}

// ---------------------------------------------------------------------------------------------
// Formats

fn write_input(path: &Path, format: Format, rows: &[(String, String)]) {
    match format {
        Format::Csv => {
            let v: Vec<(&str, &str, &str, &str)> = rows
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str(), "", ""))
                .collect();
            common::write_csv(path, &v);
        }
        Format::Jsonl => {
            let mut f = std::fs::File::create(path).unwrap();
            for (a, b) in rows {
                writeln!(
                    f,
                    "{}",
                    serde_json::json!({"loan_id": a, "purpose_text": b, "other": 1})
                )
                .unwrap();
            }
        }
        Format::Xlsx => {
            let mut wb = rust_xlsxwriter::Workbook::new();
            let ws = wb.add_worksheet();
            ws.write_string(0, 0, "note").unwrap();
            ws.write_string(0, 1, "purpose_text").unwrap();
            ws.write_string(0, 2, "loan_id").unwrap();
            for (i, (a, b)) in rows.iter().enumerate() {
                ws.write_string(i as u32 + 1, 1, b).unwrap();
                ws.write_string(i as u32 + 1, 2, a).unwrap();
            }
            wb.save(path).unwrap();
        }
        Format::Parquet => {
            use parquet::data_type::{ByteArray, ByteArrayType};
            let schema = Arc::new(
                parquet::schema::parser::parse_message_type(
                    "message m { REQUIRED BYTE_ARRAY loan_id (UTF8); OPTIONAL BYTE_ARRAY purpose_text (UTF8); }",
                )
                .unwrap(),
            );
            let f = std::fs::File::create(path).unwrap();
            let mut w = parquet::file::writer::SerializedFileWriter::new(
                f,
                schema,
                Arc::new(parquet::file::properties::WriterProperties::builder().build()),
            )
            .unwrap();
            // Two row groups.
            for part in rows.chunks(rows.len().div_ceil(2)) {
                let mut rg = w.next_row_group().unwrap();
                let mut ci = 0;
                while let Some(mut col) = rg.next_column().unwrap() {
                    let vals: Vec<ByteArray> = part
                        .iter()
                        .map(|(a, b)| {
                            ByteArray::from(if ci == 0 { a.as_str() } else { b.as_str() })
                        })
                        .collect();
                    let defs = vec![1i16; part.len()];
                    col.typed::<ByteArrayType>()
                        .write_batch(&vals, (ci == 1).then_some(&defs[..]), None)
                        .unwrap();
                    col.close().unwrap();
                    ci += 1;
                }
                rg.close().unwrap();
            }
            w.close().unwrap();
        }
    }
}

#[test]
fn all_four_formats_round_trip() {
    let d = dir();
    let mut rows = common::sample_rows(120);
    rows[7].1 = "  ".into(); // an error row travels through every format too
    let cache = d.path().join("cache.sqlite");
    let mut reference = None;
    for inf in Format::ALL {
        let input = d.path().join(format!("in.{}", inf.as_str()));
        write_input(&input, inf, &rows);
        for outf in Format::ALL {
            let out = d
                .path()
                .join(format!("out-{}.{}", inf.as_str(), outf.as_str()));
            let mut opts = BatchOptions::new(&input, &out);
            opts.cache_path = Some(cache.clone());
            opts.chunk_size = 32;
            let s = run(&opts, &KeywordLabeler::new(), &BatchHooks::default()).unwrap();
            assert_eq!(s.counters.rows, 120, "{inf:?} -> {outf:?}");
            let got = read_output(&out, outf).unwrap();
            assert!(!opts.part_path().exists() && !opts.checkpoint_path().exists());
            match &reference {
                None => {
                    assert_eq!(got.len(), 120);
                    assert!(got[7].error.is_some());
                    assert_eq!(got[0].id, "L00000");
                    reference = Some(got);
                }
                Some(r) => assert_eq!(&got, r, "{inf:?} -> {outf:?}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shards

#[test]
fn shards_together_equal_the_whole() {
    let d = dir();
    let input = d.path().join("in.csv");
    sample_csv(&input, 1001);
    let cache = d.path().join("cache.sqlite");
    let labeler = KeywordLabeler::new();
    for fmt in [Format::Csv, Format::Jsonl, Format::Parquet] {
        let whole = d.path().join(format!("whole.{}", fmt.as_str()));
        let mut opts = BatchOptions::new(&input, &whole);
        opts.cache_path = Some(cache.clone());
        opts.chunk_size = 64;
        run(&opts, &labeler, &BatchHooks::default()).unwrap();
        let n = 4;
        let mut parts = Vec::new();
        let mut bytes = Vec::new();
        let mut firsts = Vec::new();
        for i in 0..n {
            let p = d.path().join(format!("shard{i}.{}", fmt.as_str()));
            let mut o = opts.clone();
            o.output = p.clone();
            o.shard = Some(Shard { index: i, count: n });
            let s = run(&o, &labeler, &BatchHooks::default()).unwrap();
            firsts.push(s.first_row);
            let b = std::fs::read(&p).unwrap();
            // The documented byte rule: CSV drops the header of shards after the first.
            if fmt == Format::Csv && i > 0 {
                let nl = b.iter().position(|&c| c == b'\n').unwrap();
                bytes.extend_from_slice(&b[nl + 1..]);
            } else {
                bytes.extend_from_slice(&b);
            }
            parts.push(p);
        }
        assert_eq!(firsts, [Some(1), Some(251), Some(501), Some(751)]);
        let merged = d.path().join(format!("merged.{}", fmt.as_str()));
        let m = merge_shards(&parts, &merged, fmt).unwrap();
        assert_eq!(m, 1001);
        assert_eq!(
            read_output(&merged, fmt).unwrap(),
            read_output(&whole, fmt).unwrap()
        );
        if fmt != Format::Parquet {
            assert_eq!(
                bytes,
                std::fs::read(&whole).unwrap(),
                "{fmt:?} concatenation"
            );
            assert_eq!(
                std::fs::read(&merged).unwrap(),
                std::fs::read(&whole).unwrap()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Cancel, resume, checkpoint

/// Labeler that raises the cancel flag after `after` calls.
struct CancelAfter {
    inner: KeywordLabeler,
    after: u64,
    calls: AtomicU64,
    flag: Arc<std::sync::atomic::AtomicBool>,
}

impl Labeler for CancelAfter {
    fn label(
        &self,
        t: &[&str],
    ) -> Result<Vec<touxiang_datasets::LabelResult>, touxiang_datasets::LabelError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 >= self.after {
            self.flag.store(true, Ordering::SeqCst);
        }
        self.inner.label(t)
    }
    fn model_version(&self) -> String {
        self.inner.model_version()
    }
    fn taxonomy_version(&self) -> String {
        self.inner.taxonomy_version()
    }
}

#[test]
fn cancel_then_resume_with_torn_tail_equals_uninterrupted() {
    let d = dir();
    let input = d.path().join("in.csv");
    sample_csv(&input, 700);
    let mut opts = BatchOptions::new(&input, d.path().join("ref.csv"));
    opts.chunk_size = 40;
    opts.label_batch_size = 4;
    opts.old_code_column = Some("old_code".into());
    run(&opts, &KeywordLabeler::new(), &BatchHooks::default()).unwrap();
    let reference = std::fs::read(d.path().join("ref.csv")).unwrap();

    opts.output = d.path().join("out.csv");
    let hooks = BatchHooks::default();
    let lab = CancelAfter {
        inner: KeywordLabeler::new(),
        after: 10,
        calls: AtomicU64::new(0),
        flag: hooks.cancel.clone(),
    };
    let err = run(&opts, &lab, &hooks).unwrap_err();
    let BatchError::Cancelled { rows_done } = err else {
        panic!("{err}")
    };
    assert!(rows_done > 0 && rows_done < 700, "{rows_done}");
    assert!(!opts.output.exists());
    // Simulate a crash between writing a chunk and its checkpoint: garbage after the checkpoint.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(opts.part_path())
        .unwrap();
    f.write_all(b"L99999,torn,row\nL9").unwrap();
    drop(f);

    opts.resume = true;
    let hooks2 = BatchHooks::default();
    let s = run(&opts, &KeywordLabeler::new(), &hooks2).unwrap();
    assert_eq!(s.resumed_rows, rows_done);
    assert_eq!(hooks2.progress.snapshot().rows_done, 700);
    assert_eq!(std::fs::read(&opts.output).unwrap(), reference);
    // The diff accumulated across the interruption matches the uninterrupted one.
    let mut o2 = opts.clone();
    o2.resume = false;
    o2.output = d.path().join("ref2.csv");
    let whole = run(&o2, &KeywordLabeler::new(), &BatchHooks::default()).unwrap();
    assert_eq!(s.diff, whole.diff);
    assert_eq!(s.counters.rows, whole.counters.rows);
}

#[test]
fn resume_refuses_a_checkpoint_of_other_input() {
    let d = dir();
    let input = d.path().join("in.csv");
    sample_csv(&input, 300);
    let hooks = BatchHooks::default();
    let mut opts = BatchOptions::new(&input, d.path().join("out.csv"));
    opts.chunk_size = 50;
    let lab = CancelAfter {
        inner: KeywordLabeler::new(),
        after: 1,
        calls: AtomicU64::new(0),
        flag: hooks.cancel.clone(),
    };
    assert!(matches!(
        run(&opts, &lab, &hooks),
        Err(BatchError::Cancelled { .. })
    ));
    sample_csv(&input, 301);
    opts.resume = true;
    let err = run(&opts, &KeywordLabeler::new(), &BatchHooks::default()).unwrap_err();
    assert!(
        matches!(err, BatchError::CheckpointMismatch { .. }),
        "{err}"
    );
    // Without --resume it starts over.
    opts.resume = false;
    let s = run(&opts, &KeywordLabeler::new(), &BatchHooks::default()).unwrap();
    assert_eq!(s.counters.rows, 301);
}

/// Read `rows_done` from a checkpoint file, if it exists and parses.
fn ckpt_rows(path: &Path) -> Option<u64> {
    let b = std::fs::read(path).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&b).ok()?;
    v["rows_done"].as_u64()
}

fn child(args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_touxiang-batch-fake"));
    c.args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    c
}

fn kill_when(out: &Path, args: &[&str], at_least: u64) -> u64 {
    let ckpt = PathBuf::from(format!("{}.ckpt.json", out.display()));
    let mut proc = child(args).spawn().unwrap();
    let t0 = std::time::Instant::now();
    loop {
        if let Some(n) = ckpt_rows(&ckpt) {
            if n >= at_least {
                break;
            }
        }
        if let Some(st) = proc.try_wait().unwrap() {
            panic!("child ended before the kill: {st}");
        }
        assert!(t0.elapsed().as_secs() < 120, "child too slow");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    proc.kill().unwrap(); // SIGKILL on Unix
    let st = proc.wait().unwrap();
    assert!(!st.success());
    ckpt_rows(&ckpt).unwrap()
}

#[test]
fn kill_9_and_resume_is_byte_identical_to_an_uninterrupted_run() {
    let d = dir();
    let input = d.path().join("in.csv");
    sample_csv(&input, 2000);
    let i = input.to_str().unwrap();

    // Uninterrupted reference (own cache).
    let reference = d.path().join("ref.csv");
    let st = child(&[
        "run",
        "--input",
        i,
        "--output",
        reference.to_str().unwrap(),
        "--chunk",
        "50",
        "--cache",
        d.path().join("ref.sqlite").to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );

    let out = d.path().join("out.csv");
    let o = out.to_str().unwrap();
    let cache = d.path().join("c.sqlite");
    let c = cache.to_str().unwrap();
    let slow = [
        "run",
        "--input",
        i,
        "--output",
        o,
        "--chunk",
        "50",
        "--cache",
        c,
        "--delay-ms",
        "15",
    ];
    let first = kill_when(&out, &slow, 300);
    let mut slow_resume = slow.to_vec();
    slow_resume.push("--resume");
    let second = kill_when(&out, &slow_resume, first + 400);
    assert!(second > first && second < 2000, "{first} {second}");
    assert!(!out.exists());

    let mut resume = vec![
        "run", "--input", i, "--output", o, "--chunk", "50", "--cache", c, "--resume",
    ];
    let done = child(&resume).output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(summary["resumed_rows"].as_u64(), Some(second));
    assert_eq!(summary["counters"]["rows"].as_u64(), Some(2000));
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&reference).unwrap()
    );
    assert!(!PathBuf::from(format!("{o}.ckpt.json")).exists());
    assert!(!PathBuf::from(format!("{o}.part")).exists());

    // Resuming again after completion simply redoes the run (no checkpoint) from the cache.
    resume.retain(|a| *a != "--resume");
    assert!(child(&resume).output().unwrap().status.success());
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&reference).unwrap()
    );
}

// ---------------------------------------------------------------------------------------------
// Review routing

#[derive(Default)]
struct MemorySink {
    by_key: Mutex<HashMap<String, String>>,
    texts: Mutex<Vec<(u64, String, String)>>,
}

impl ReviewSink for MemorySink {
    fn enqueue(&self, r: &ReviewRequest<'_>) -> Result<String, ReviewSinkError> {
        let mut m = self.by_key.lock().unwrap();
        let n = m.len();
        let id = m
            .entry(r.key.to_string())
            .or_insert_with(|| format!("rv_{n}"))
            .clone();
        self.texts
            .lock()
            .unwrap()
            .push((r.row, r.id.to_string(), r.text.to_string()));
        Ok(id)
    }
}

#[test]
fn review_rows_go_to_the_sink_and_carry_review_ids() {
    let d = dir();
    let input = d.path().join("in.csv");
    sample_csv(&input, 200);
    let mut opts = BatchOptions::new(&input, d.path().join("out.csv"));
    opts.review = true;
    assert!(matches!(
        run(&opts, &KeywordLabeler::new(), &BatchHooks::default()),
        Err(BatchError::Options {
            option: "review",
            ..
        })
    ));
    let sink = Arc::new(MemorySink::default());
    let hooks = BatchHooks {
        review: Some(sink.clone()),
        ..BatchHooks::default()
    };
    let s = run(&opts, &KeywordLabeler::new(), &hooks).unwrap();
    let rows = read_output(&opts.output, Format::Csv).unwrap();
    let review: Vec<&touxiang_batch::OutputRow> = rows
        .iter()
        .filter(|r| r.decision.as_deref() == Some("review"))
        .collect();
    assert!(!review.is_empty() && review.len() < rows.len());
    assert!(rows
        .iter()
        .all(|r| r.review_id.is_some() == (r.decision.as_deref() == Some("review"))));
    assert_eq!(s.counters.reviews_enqueued as usize, review.len());
    let sent = sink.texts.lock().unwrap();
    assert_eq!(sent.len(), review.len());
    let src = common::sample_rows(200);
    for (row, id, text) in sent.iter() {
        assert_eq!(
            (id, text),
            (&src[*row as usize - 1].0, &src[*row as usize - 1].1)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Diff report

#[test]
fn diff_report_counts_on_a_constructed_case() {
    let d = dir();
    let input = d.path().join("in.csv");
    common::write_csv(
        &input,
        &[
            ("r1", "采购钢材", "100", "3120"),     // unchanged
            ("r2", "采购钢材", "200", "3110"),     // C/31 same, group+class change
            ("r3", "烤串店", "300", "6210"),       // H/62 same, group+class change
            ("r4", "超市进货", "400", "1311"),     // changes from the section down
            ("r5", "软件开发", "500", "6513"),     // new is the group 651: class not comparable
            ("r6", "补充流动资金", "600", "3120"), // no new code
            ("r7", "采购钢材", "700", ""),         // no old code
            ("r8", "采购钢材", "800", "9999"),     // unknown old code
            ("r9", "采购钢材", "1,000", "3110"),   // same flow as r2
        ],
    );
    let mut opts = BatchOptions::new(&input, d.path().join("out.csv"));
    opts.old_code_column = Some("old_code".into());
    opts.balance_column = Some("balance".into());
    opts.diff_json = Some(d.path().join("diff.json"));
    opts.diff_xlsx = Some(d.path().join("diff.xlsx"));
    let hooks = BatchHooks {
        taxonomy: Some(Arc::new(Taxonomy::gbt4754().clone())),
        ..BatchHooks::default()
    };
    let s = run(&opts, &KeywordLabeler::new(), &hooks).unwrap();
    let r = s.diff.unwrap();
    assert_eq!(r.rows, 9);
    assert_eq!(r.rows_with_old_code, 8);
    assert_eq!(r.rows_without_old_code, 1);
    assert_eq!(r.unknown_old_codes, 1);
    assert_eq!(r.rows_without_new_code, 1);
    assert_eq!(r.unchanged, 1);
    assert_eq!(r.changed, 7);
    let lv: Vec<(&str, u64, u64, u64, u64)> = r
        .levels
        .iter()
        .map(|l| {
            (
                l.level.as_str(),
                l.compared,
                l.changed,
                l.unchanged,
                l.not_comparable,
            )
        })
        .collect();
    // compared rows: r1 r2 r3 r4 r5 r9 (r6 no new, r8 unknown old).
    assert_eq!(
        lv,
        [
            ("section", 6, 1, 5, 2),
            ("division", 6, 1, 5, 2),
            ("group", 6, 4, 2, 2),
            ("class", 5, 4, 1, 3),
        ]
    );
    assert_eq!(r.levels[2].changed_balance, 200.0 + 300.0 + 400.0 + 1000.0);
    assert_eq!(r.total_flows, 6);
    let top = &r.flows[0];
    assert_eq!(
        (top.old.as_str(), top.new.as_str(), top.count),
        ("3110", "3120", 2)
    );
    assert_eq!(top.balance, 1200.0);
    assert_eq!(top.old_name.as_deref(), Some("炼铁"));
    let ex: Vec<&str> = top.examples.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ex, ["r2", "r9"]);
    let none_flow = r.flows.iter().find(|f| f.new.is_empty()).unwrap();
    assert_eq!((none_flow.old.as_str(), none_flow.count), ("3120", 1));

    let json: touxiang_batch::DiffReport =
        serde_json::from_slice(&std::fs::read(d.path().join("diff.json")).unwrap()).unwrap();
    assert_eq!(json, r);
    use calamine::Reader;
    let mut wb: calamine::Xlsx<_> = calamine::open_workbook(d.path().join("diff.xlsx")).unwrap();
    assert_eq!(wb.sheet_names(), ["summary", "levels", "flows", "examples"]);
    let flows = wb.worksheet_range("flows").unwrap();
    assert_eq!(flows.height(), 1 + 6);

    // The same diff from a previous-codes map filled by the caller (e.g. the portfolio store).
    let mut prev = HashMap::new();
    for (id, c) in [
        ("r1", "3120"),
        ("r2", "3110"),
        ("r3", "6210"),
        ("r4", "1311"),
        ("r5", "6513"),
        ("r6", "3120"),
        ("r8", "9999"),
        ("r9", "3110"),
    ] {
        prev.insert(id.to_string(), c.to_string());
    }
    opts.old_code_column = None;
    opts.output = d.path().join("out2.csv");
    let hooks = BatchHooks {
        previous_codes: Some(Arc::new(prev)),
        ..BatchHooks::default()
    };
    let s2 = run(&opts, &KeywordLabeler::new(), &hooks).unwrap();
    assert_eq!(s2.diff.unwrap(), r);
}

// ---------------------------------------------------------------------------------------------
// Jobs

#[test]
fn job_runs_in_background_and_can_be_cancelled() {
    let d = dir();
    let input = d.path().join("in.csv");
    sample_csv(&input, 300);
    let reg = touxiang_batch::JobRegistry::new();
    let mut opts = BatchOptions::new(&input, d.path().join("out.csv"));
    opts.chunk_size = 20;
    let job = reg
        .spawn(
            opts.clone(),
            Arc::new(KeywordLabeler::new()),
            BatchHooks::default(),
        )
        .unwrap();
    let snap = job.wait();
    assert_eq!(snap.state, touxiang_batch::JobState::Succeeded);
    assert_eq!(snap.progress.rows_done, 300);
    assert_eq!(snap.progress.total, Some(300));
    assert_eq!(snap.summary.unwrap().counters.rows, 300);
    assert!(reg.get(job.id()).is_some());

    opts.output = d.path().join("slow.csv");
    let slow = KeywordLabeler::new().with_delay(std::time::Duration::from_millis(50));
    let job = reg
        .spawn(opts, Arc::new(slow), BatchHooks::default())
        .unwrap();
    assert!(reg.cancel(job.id()));
    let snap = job.wait();
    assert_eq!(snap.state, touxiang_batch::JobState::Cancelled);
    assert_eq!(snap.error.unwrap().code, "cancelled");
    assert!(snap.progress.rows_done < 300);
    assert_eq!(reg.list().len(), 2);
}

#[test]
fn resume_after_a_crash_between_final_rename_and_checkpoint_removal() {
    let d = dir();
    let input = d.path().join("in.csv");
    sample_csv(&input, 100);
    let mut opts = BatchOptions::new(&input, d.path().join("ref.jsonl"));
    run(&opts, &KeywordLabeler::new(), &BatchHooks::default()).unwrap();
    let reference = std::fs::read(&opts.output).unwrap();

    // One chunk holds every row; the cancel flag raised during it stops the run just before it
    // would finish, leaving a complete part file and its checkpoint.
    opts.output = d.path().join("out.jsonl");
    opts.chunk_size = 1000;
    let hooks = BatchHooks::default();
    let lab = CancelAfter {
        inner: KeywordLabeler::new(),
        after: 1,
        calls: AtomicU64::new(0),
        flag: hooks.cancel.clone(),
    };
    let err = run(&opts, &lab, &hooks).unwrap_err();
    assert!(
        matches!(err, BatchError::Cancelled { rows_done: 100 }),
        "{err}"
    );
    // The crash: the part was renamed to the output, the checkpoint not yet removed.
    std::fs::rename(opts.part_path(), &opts.output).unwrap();
    assert!(opts.checkpoint_path().exists());
    opts.resume = true;
    let s = run(&opts, &KeywordLabeler::new(), &BatchHooks::default()).unwrap();
    assert_eq!(s.resumed_rows, 100);
    assert_eq!(std::fs::read(&opts.output).unwrap(), reference);
    assert!(!opts.checkpoint_path().exists() && !opts.part_path().exists());
}
