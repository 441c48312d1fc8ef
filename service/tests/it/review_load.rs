//! Load run (ignored by default; prints figures):
//!
//! ```text
//! cargo test -p touxiang --test it review_load -- --ignored --nocapture
//! ```
//!
//! A real `touxiang serve` child process (`--insecure-no-auth`) on a data directory holding a
//! small classifier trained here on a custom taxonomy (`mini`, so `/v1/classify` works without
//! shipped artifacts) and `TOUXIANG_ITEMS` review items (default 2000) enqueued through the
//! review store library before the start. Then, over real TCP: `TOUXIANG_REVIEWERS` reviewers
//! (default 20) claim and label as fast as they can until the queue is empty, while 4 client
//! connections send `/v1/classify` at 20 requests/s in total (each classified item may itself be routed to review at
//! the QA rate). The server is killed with SIGKILL right after, the store reopened, and the run
//! reports claim/label/classify latency percentiles, duplicate claims and lost labels.
//! `TOUXIANG_THINK_MS` (default 0: stress) is the reading time between claim and label.
//! `TOUXIANG_LOAD_TAXONOMY=gbt4754-2017` classifies with the shipped GB/T 4754 classifier
//! instead of `mini` (its exemplars are embedded in the background on this first start).
//! A label's latency includes embedding its text for the exemplar store (active learning), so
//! labels and classify share the encoder.

use crate::common;
use crate::raw_http;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use touxiang_review::{LabelFilter, NewItem, ReviewConfig, ReviewStore};

const LABELS: &[&str] = &["A1", "A2", "C1", "C2", "H1", "A", "C", "H"];

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i]
}

fn train_into(data_dir: &std::path::Path) {
    common::train_mini(data_dir);
}

#[test]
#[ignore = "load run: prints figures, takes ~1 min"]
fn reviewers_label_while_classify_runs() {
    let n_items = env_usize("TOUXIANG_ITEMS", 2000);
    let n_reviewers = env_usize("TOUXIANG_REVIEWERS", 20);
    let rps = env_usize("TOUXIANG_CLASSIFY_RPS", 20) as f64;
    let taxonomy: &'static str = std::env::var("TOUXIANG_LOAD_TAXONOMY")
        .map(|t| &*t.leak())
        .unwrap_or("mini");
    // Time a reviewer spends reading an item between claim and label (0 = stress test).
    let think = Duration::from_millis(env_usize("TOUXIANG_THINK_MS", 0) as u64);
    let dir = tempfile::tempdir().unwrap();
    train_into(dir.path());
    {
        let cfg = ReviewConfig {
            checkpoint_interval: None,
            double_review_rate: 0.0,
            ..ReviewConfig::default()
        };
        let store = ReviewStore::open(dir.path(), cfg).unwrap();
        for i in 0..n_items {
            let mut it = NewItem::new(
                "default",
                &format!(
                    "贷款用途第{i}条：{}",
                    common::MINI_EXAMPLES[i % 5].1[i % 10]
                ),
                "mini",
                (i % 97) as f64 / 97.0,
            );
            it.amount = Some(10_000.0 * (1 + i % 50) as f64);
            it.double_review = Some(false);
            store.enqueue(&it, Utc::now()).unwrap();
        }
    }
    let addr = raw_http::free_addr();
    // Classified items go to a separate queue so the reviewers' count stays exact.
    let mut child = raw_http::spawn_server(
        dir.path(),
        &addr,
        &[
            ("TOUXIANG_CLASSIFY__REVIEW_QUEUE", "from-classify"),
            ("TOUXIANG_CLASSIFY__QA_SAMPLE_RATE", "0.1"),
            ("TOUXIANG_REVIEW__DOUBLE_REVIEW_RATE", "0"),
        ],
    );
    assert!(
        raw_http::wait_ready(&addr, Duration::from_secs(120)),
        "not ready"
    );
    let (st, body) = raw_http::request(
        &addr,
        "POST",
        "/v1/classify",
        Some(&json!({"items": [{"text": "采购热轧钢卷"}], "taxonomy": taxonomy})),
    )
    .unwrap();
    assert_eq!(st, 200, "classify warm-up: {body}");

    let done = Arc::new(AtomicBool::new(false));
    // Classify clients at a fixed total rate (open loop: 4 connections share the schedule, so
    // one slow answer does not lower the offered rate, as with several origination systems).
    const CLIENTS: u32 = 4;
    let classify = {
        let (addr, done) = (addr.clone(), done.clone());
        std::thread::spawn(move || {
            let period = Duration::from_secs_f64(1.0 / rps);
            let start = Instant::now();
            let workers: Vec<_> = (0..CLIENTS)
                .map(|w| {
                    let (addr, done) = (addr.clone(), done.clone());
                    std::thread::spawn(move || {
                        let (mut lat, mut non_200) = (Vec::new(), 0usize);
                        let mut k = w;
                        while !done.load(Ordering::Relaxed) {
                            let next = start + period * k;
                            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                                std::thread::sleep(wait);
                            }
                            k += CLIENTS;
                            let (_, ts) = common::MINI_EXAMPLES[k as usize % 5];
                            let text = format!("{}及相关支出{k}", ts[k as usize % 10]);
                            let t = Instant::now();
                            let r = raw_http::request(
                                &addr,
                                "POST",
                                "/v1/classify",
                                Some(
                                    &json!({"items": [{"id": format!("c{k}"), "text": text, "amount": 50000}], "taxonomy": taxonomy}),
                                ),
                            );
                            lat.push(t.elapsed().as_secs_f64() * 1e3);
                            if !matches!(r, Ok((200, _))) {
                                non_200 += 1;
                            }
                        }
                        (lat, non_200)
                    })
                })
                .collect();
            let (mut lat, mut non_200) = (Vec::new(), 0);
            for w in workers {
                let (l, n) = w.join().unwrap();
                lat.extend(l);
                non_200 += n;
            }
            (lat, non_200, start.elapsed().as_secs_f64())
        })
    };

    let claimed: Arc<Mutex<Vec<String>>> = Arc::default();
    let acked: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let t0 = Instant::now();
    let reviewers: Vec<_> = (0..n_reviewers)
        .map(|r| {
            let (addr, claimed, acked) = (addr.clone(), claimed.clone(), acked.clone());
            std::thread::spawn(move || {
                let reviewer = format!("rev{r}");
                let (mut claim_ms, mut label_ms, mut errors) = (Vec::new(), Vec::new(), 0usize);
                let mut i = r;
                loop {
                    let t = Instant::now();
                    let (st, body) = raw_http::request(
                        &addr,
                        "POST",
                        "/v1/review/claim",
                        Some(&json!({"queue": "default", "reviewer": reviewer})),
                    )
                    .unwrap();
                    claim_ms.push(t.elapsed().as_secs_f64() * 1e3);
                    if st == 204 {
                        break;
                    }
                    assert_eq!(st, 200, "{body}");
                    let id = raw_http::json(&body)["review_id"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    claimed.lock().unwrap().push(id.clone());
                    i += 1;
                    std::thread::sleep(think);
                    let code = LABELS[i % LABELS.len()];
                    let t = Instant::now();
                    let (st, body) = raw_http::request(
                        &addr,
                        "POST",
                        &format!("/v1/review/{id}/label"),
                        Some(&json!({"code": code, "reviewer": reviewer})),
                    )
                    .unwrap();
                    label_ms.push(t.elapsed().as_secs_f64() * 1e3);
                    if st == 200 {
                        acked.lock().unwrap().insert(id, code.to_string());
                    } else {
                        errors += 1;
                        eprintln!("label {id}: {st} {body}");
                    }
                }
                (claim_ms, label_ms, errors)
            })
        })
        .collect();
    let (mut claim_ms, mut label_ms, mut errors) = (Vec::new(), Vec::new(), 0);
    for h in reviewers {
        let (c, l, e) = h.join().unwrap();
        claim_ms.extend(c);
        label_ms.extend(l);
        errors += e;
    }
    let review_secs = t0.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let (mut cls_ms, cls_errors, cls_secs) = classify.join().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();

    let claimed = claimed.lock().unwrap().clone();
    let unique: HashSet<&String> = claimed.iter().collect();
    let duplicates = claimed.len() - unique.len();
    let acked = acked.lock().unwrap().clone();
    let store = ReviewStore::open(
        dir.path(),
        ReviewConfig {
            checkpoint_interval: None,
            ..ReviewConfig::default()
        },
    )
    .unwrap();
    let finals: HashMap<String, String> = store
        .labels_since(&LabelFilter::default())
        .unwrap()
        .into_iter()
        .map(|f| (f.review_id, f.code))
        .collect();
    let lost = acked
        .iter()
        .filter(|(id, code)| finals.get(*id) != Some(*code))
        .count();
    let stats = store.stats(Utc::now()).unwrap();
    let from_classify = stats
        .queues
        .iter()
        .find(|q| q.queue == "from-classify")
        .map(|q| q.pending)
        .unwrap_or(0);

    println!("review load run: {n_items} items, {n_reviewers} reviewers (think {think:?}), classify ({taxonomy}) at {rps} rps (real TCP, dev build)");
    println!(
        "  reviewers: {} claims + {} labels in {review_secs:.1} s ({:.0} labels/s)",
        claim_ms.len(),
        label_ms.len(),
        label_ms.len() as f64 / review_secs
    );
    let n_claims = claim_ms.len();
    println!(
        "  claim  p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  (n={n_claims})",
        pct(&mut claim_ms, 50.0),
        pct(&mut claim_ms, 99.0),
        pct(&mut claim_ms, 100.0)
    );
    println!(
        "  label  p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        pct(&mut label_ms, 50.0),
        pct(&mut label_ms, 99.0),
        pct(&mut label_ms, 100.0)
    );
    println!(
        "  classify: {} requests in {cls_secs:.1} s ({:.1} rps), non-200 {cls_errors}, p50 {:.1} ms p99 {:.1} ms; {from_classify} items routed to review",
        cls_ms.len(),
        cls_ms.len() as f64 / cls_secs,
        pct(&mut cls_ms, 50.0),
        pct(&mut cls_ms, 99.0)
    );
    println!(
        "  duplicate claims: {duplicates}; label errors: {errors}; acknowledged labels: {}; lost after kill -9: {lost}",
        acked.len()
    );
    assert_eq!(duplicates, 0);
    assert_eq!(lost, 0);
    assert_eq!(acked.len(), n_items);
    assert_eq!(cls_errors, 0);
}
