//! Jobs: a run in the background, and its cancellation.

use std::sync::Arc;

use touxiang_batch::{BatchHooks, BatchOptions};
use touxiang_testkit::KeywordLabeler;

use super::{dir, sample_csv};

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
