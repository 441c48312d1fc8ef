//! Load run: N reviewers claiming and labeling concurrently through the library.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use rand::Rng;
use serde::Serialize;

use crate::{NewItem, ReviewConfig, ReviewError, ReviewStore, Stage, Synchronous};

/// Settings of a load run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Concurrent reviewers (threads).
    pub reviewers: usize,
    /// Items enqueued before the reviewers start.
    pub items: usize,
    /// Items enqueued while the reviewers work (by one producer thread).
    pub extra_items: usize,
    /// Rate of the producer (items per second; 0 = as fast as possible).
    pub enqueue_rps: f64,
    /// Double-review share.
    pub double_review_rate: f64,
    /// Each reviewer opens its own store (own SQLite connection) instead of sharing one.
    pub separate_connections: bool,
    /// Durability level.
    pub synchronous: Synchronous,
    /// Queue name.
    pub queue: String,
    /// Mean time a reviewer looks at an item between claim and label (ms; uniform on
    /// 0..2×mean). 0 = closed loop at full speed (saturation test).
    pub think_ms: f64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            reviewers: 20,
            items: 2000,
            extra_items: 0,
            enqueue_rps: 20.0,
            double_review_rate: 0.1,
            separate_connections: false,
            synchronous: Synchronous::Full,
            queue: "default".into(),
            think_ms: 0.0,
        }
    }
}

/// Figures of a load run.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Reviewers.
    pub reviewers: usize,
    /// Items enqueued in total.
    pub items: u64,
    /// Successful claims.
    pub claims: u64,
    /// Labels acknowledged (label calls that returned Ok).
    pub labels_acked: u64,
    /// Items final at the end.
    pub items_final: u64,
    /// (item, stage) handed out more than once — must be 0 (leases never expire in the run).
    pub duplicate_claims: u64,
    /// Acknowledged labels missing from the store afterwards — must be 0.
    pub lost_labels: u64,
    /// Claim latency percentiles and maximum (ms).
    pub claim_p50_ms: f64,
    /// 99th percentile of claim latency (ms).
    pub claim_p99_ms: f64,
    /// Maximum claim latency (ms).
    pub claim_max_ms: f64,
    /// Label latency median (ms).
    pub label_p50_ms: f64,
    /// Label latency 99th percentile (ms).
    pub label_p99_ms: f64,
    /// Wall time (s).
    pub wall_secs: f64,
    /// Labels per second.
    pub labels_per_sec: f64,
}

/// An acknowledged label: (review id, stage, reviewer, code).
type Ack = (String, Stage, String, String);

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Taxonomy used by the load run: codes `A`..`E`, each with children `A1`..`A9`.
fn load_lookup(_tax: &str, code: &str) -> Option<Vec<String>> {
    let mut c = code.chars();
    let head = c.next()?;
    if !('A'..='E').contains(&head) {
        return None;
    }
    match c.as_str() {
        "" => Some(vec![code.to_string()]),
        d if d.len() == 1 && d.chars().all(|x| ('1'..='9').contains(&x)) => {
            Some(vec![head.to_string(), code.to_string()])
        }
        _ => None,
    }
}

/// Run the load against a fresh store in `dir` (created; must not hold a review database of
/// another run). Every reviewer loops claim → label until all items are final. Returns the
/// figures; checks duplicate claims during the run and lost labels by reopening the store.
pub fn run_load(dir: &Path, opts: &LoadOptions) -> Result<LoadReport, ReviewError> {
    if opts.reviewers < 3 && opts.double_review_rate > 0.0 {
        return Err(ReviewError::InvalidInput {
            field: "reviewers",
            message:
                "double review needs at least 3 reviewers (two labels and a third adjudicator)"
                    .into(),
        });
    }
    let config = ReviewConfig {
        double_review_rate: opts.double_review_rate,
        synchronous: opts.synchronous,
        seed: Some(7),
        ..ReviewConfig::default()
    };
    let shared = Arc::new(ReviewStore::open(dir, config.clone())?);
    let texts = [
        "补充流动资金，采购热轧钢卷",
        "用于烤串店装修及购买冷柜",
        "购买农机",
    ];
    for i in 0..opts.items {
        let mut it = NewItem::new(&opts.queue, texts[i % texts.len()], "load", 0.3);
        it.amount = Some(((i * 7919) % 1_000_000) as f64);
        shared.enqueue(&it, Utc::now())?;
    }
    let total = Arc::new(AtomicU64::new(opts.items as u64));
    let producing = Arc::new(AtomicBool::new(opts.extra_items > 0));
    let finals = Arc::new(AtomicU64::new(0));
    let claimed: Arc<Mutex<HashMap<(String, Stage), u64>>> = Arc::default();
    let acked: Arc<Mutex<Vec<Ack>>> = Arc::default();
    let start = Instant::now();

    let producer = if opts.extra_items > 0 {
        let store = shared.clone();
        let (total, producing) = (total.clone(), producing.clone());
        let (n, rps, queue) = (opts.extra_items, opts.enqueue_rps, opts.queue.clone());
        Some(std::thread::spawn(move || -> Result<(), ReviewError> {
            let t0 = Instant::now();
            for i in 0..n {
                if rps > 0.0 {
                    let due = t0 + Duration::from_secs_f64(i as f64 / rps);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                let mut it = NewItem::new(&queue, "新增流动资金贷款", "load", 0.5);
                it.amount = Some(100_000.0);
                store.enqueue(&it, Utc::now())?;
                total.fetch_add(1, Ordering::SeqCst);
            }
            producing.store(false, Ordering::SeqCst);
            Ok(())
        }))
    } else {
        None
    };

    let mut handles = Vec::new();
    for r in 0..opts.reviewers {
        let store = if opts.separate_connections {
            Arc::new(ReviewStore::open(dir, config.clone())?)
        } else {
            shared.clone()
        };
        let (claimed, acked) = (claimed.clone(), acked.clone());
        let (total, producing, finals) = (total.clone(), producing.clone(), finals.clone());
        let queue = opts.queue.clone();
        let adjudication = config.adjudication_queue.clone();
        let think_ms = opts.think_ms;
        handles.push(std::thread::spawn(
            move || -> Result<(Vec<f64>, Vec<f64>), ReviewError> {
                let reviewer = format!("r{r}");
                let (mut claim_ms, mut label_ms) = (Vec::new(), Vec::new());
                let mut idle = 0u32;
                loop {
                    let mut got = None;
                    for q in [&queue, &adjudication] {
                        let t = Instant::now();
                        let c = store.claim(q, &reviewer, Duration::from_secs(3600), Utc::now())?;
                        claim_ms.push(t.elapsed().as_secs_f64() * 1e3);
                        if c.is_some() {
                            got = c;
                            break;
                        }
                    }
                    let Some(item) = got else {
                        // Nothing claimable for me: done when every item is final and no more
                        // will come; otherwise others hold leases that may come back.
                        let fin = finals.load(Ordering::SeqCst);
                        if !producing.load(Ordering::SeqCst) && fin >= total.load(Ordering::SeqCst)
                        {
                            break;
                        }
                        idle += 1;
                        std::thread::sleep(Duration::from_millis(2 * u64::from(idle.min(10))));
                        continue;
                    };
                    idle = 0;
                    *claimed
                        .lock()
                        .unwrap()
                        .entry((item.review_id.clone(), item.stage))
                        .or_default() += 1;
                    // Disagree now and then so adjudication is exercised.
                    let n: u32 = item.review_id.bytes().map(u32::from).sum::<u32>() + r as u32;
                    let code = format!("{}{}", ["A", "B", "C"][(n % 3) as usize], 1 + n % 2);
                    if think_ms > 0.0 {
                        let ms = rand::rng().random_range(0.0..2.0 * think_ms);
                        std::thread::sleep(Duration::from_secs_f64(ms / 1e3));
                    }
                    let t = Instant::now();
                    let out = store.label(
                        &item.review_id,
                        &reviewer,
                        &code,
                        None,
                        &load_lookup,
                        Utc::now(),
                    )?;
                    label_ms.push(t.elapsed().as_secs_f64() * 1e3);
                    if out.final_label.is_some() {
                        finals.fetch_add(1, Ordering::SeqCst);
                    }
                    acked.lock().unwrap().push((
                        item.review_id,
                        out.label.stage,
                        reviewer.clone(),
                        code,
                    ));
                }
                Ok((claim_ms, label_ms))
            },
        ));
    }
    let (mut claim_ms, mut label_ms) = (Vec::new(), Vec::new());
    for h in handles {
        let (c, l) = h.join().expect("reviewer thread panicked")?;
        claim_ms.extend(c);
        label_ms.extend(l);
    }
    if let Some(p) = producer {
        p.join().expect("producer thread panicked")?;
    }
    let wall = start.elapsed().as_secs_f64();
    drop(shared);

    // Reopen and verify every acknowledged label is there.
    let store = ReviewStore::open(dir, config)?;
    let acked = acked.lock().unwrap().clone();
    let mut lost = 0u64;
    let mut by_item: HashMap<String, Vec<(Stage, String, String)>> = HashMap::new();
    for (id, stage, rev, code) in &acked {
        by_item
            .entry(id.clone())
            .or_default()
            .push((*stage, rev.clone(), code.clone()));
    }
    for (id, want) in &by_item {
        let have = store.labels(id)?;
        for (stage, rev, code) in want {
            if !have
                .iter()
                .any(|l| l.stage == *stage && &l.reviewer == rev && &l.code == code)
            {
                lost += 1;
            }
        }
    }
    let stats = store.stats(Utc::now())?;
    let claimed = claimed.lock().unwrap();
    claim_ms.sort_by(f64::total_cmp);
    label_ms.sort_by(f64::total_cmp);
    Ok(LoadReport {
        reviewers: opts.reviewers,
        items: total.load(Ordering::SeqCst),
        claims: claimed.values().sum(),
        labels_acked: acked.len() as u64,
        items_final: stats.queues.iter().map(|q| q.labeled).sum(),
        duplicate_claims: claimed.values().map(|n| n - 1).sum(),
        lost_labels: lost,
        claim_p50_ms: pct(&claim_ms, 50.0),
        claim_p99_ms: pct(&claim_ms, 99.0),
        claim_max_ms: claim_ms.last().copied().unwrap_or(0.0),
        label_p50_ms: pct(&label_ms, 50.0),
        label_p99_ms: pct(&label_ms, 99.0),
        wall_secs: wall,
        labels_per_sec: acked.len() as f64 / wall,
    })
}
