//! Load run of the review store through the library (no HTTP):
//!
//! `cargo run --release -p touxiang-review --example review_load -- [reviewers] [items]
//!  [extra_items] [enqueue_rps] [shared|separate] [full|normal] [think_ms]`
//!
//! `think_ms` = mean time a reviewer reads an item before labeling (0 = saturation).
//!
//! Prints a JSON report: claim p50/p99/max, label p50/p99, duplicate claims, lost labels.
//! Exits 1 when a claim was duplicated or an acknowledged label lost.

use touxiang_review::{run_load, LoadOptions, Synchronous};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: f64| -> f64 {
        args.get(i)
            .map(|s| {
                s.parse()
                    .unwrap_or_else(|_| panic!("argument {} must be a number: {s}", i + 1))
            })
            .unwrap_or(d)
    };
    let opts = LoadOptions {
        reviewers: num(0, 20.0) as usize,
        items: num(1, 2000.0) as usize,
        extra_items: num(2, 200.0) as usize,
        enqueue_rps: num(3, 20.0),
        separate_connections: args.get(4).map(String::as_str) == Some("separate"),
        synchronous: if args.get(5).map(String::as_str) == Some("normal") {
            Synchronous::Normal
        } else {
            Synchronous::Full
        },
        think_ms: num(6, 0.0),
        ..LoadOptions::default()
    };
    let dir = std::env::temp_dir().join(format!("touxiang-review-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let report = run_load(&dir, &opts).expect("load run failed");
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{}",
        serde_json::to_string_pretty(&report).expect("report serialises")
    );
    if report.duplicate_claims > 0 || report.lost_labels > 0 {
        std::process::exit(1);
    }
}
