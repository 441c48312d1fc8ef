//! Review routing: every labeled row is offered to the sink; the rows it routes carry review
//! ids. (The service's sink applies the routing rule of `/v1/classify`; this one routes
//! `review` decisions only.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use touxiang_batch::{
    read_output, run, BatchError, BatchHooks, BatchOptions, Format, ReviewRequest, ReviewSink,
    ReviewSinkError,
};
use touxiang_testkit::KeywordLabeler;

use super::{dir, sample_csv};

#[derive(Default)]
struct MemorySink {
    by_key: Mutex<HashMap<String, String>>,
    texts: Mutex<Vec<(u64, String, String)>>,
    offered: Mutex<usize>,
}

impl ReviewSink for MemorySink {
    fn offer(&self, r: &ReviewRequest<'_>) -> Result<Option<String>, ReviewSinkError> {
        *self.offered.lock().unwrap() += 1;
        if r.label.decision != touxiang_datasets::Decision::Review {
            return Ok(None);
        }
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
        Ok(Some(id))
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
    assert_eq!(
        *sink.offered.lock().unwrap(),
        rows.len(),
        "every row is offered"
    );
    let sent = sink.texts.lock().unwrap();
    assert_eq!(sent.len(), review.len());
    let src = touxiang_testkit::sample_rows(200);
    for (row, id, text) in sent.iter() {
        assert_eq!(
            (id, text),
            (&src[*row as usize - 1].0, &src[*row as usize - 1].1)
        );
    }
}
