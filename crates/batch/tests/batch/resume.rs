//! Cancel, resume and checkpoints: torn tails, `kill -9`, other input, a crash after the final
//! rename.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use touxiang_batch::{run, BatchError, BatchHooks, BatchOptions};
use touxiang_datasets::Labeler;
use touxiang_testkit::KeywordLabeler;

use super::{dir, sample_csv};

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
