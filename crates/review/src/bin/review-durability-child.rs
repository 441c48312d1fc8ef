//! Child process of the kill -9 durability test (`tests/durability.rs`).
//!
//! `review-durability-child DB_FILE N`: enqueues, claims and labels N items one after another in
//! the review store at DB_FILE (synchronous=FULL) and prints `ACK <review_id> <code>` (flushed)
//! after each `label` call has returned. The parent kills it with SIGKILL at an arbitrary point
//! and checks that every acknowledged label is in the store.

use std::io::Write;
use std::time::Duration;

use chrono::Utc;
use touxiang_review::{NewItem, ReviewConfig, ReviewStore, Synchronous};

fn lookup(_tax: &str, code: &str) -> Option<Vec<String>> {
    (code.len() == 4 && code.chars().all(|c| c.is_ascii_digit())).then(|| {
        vec![
            code[..2].to_string(),
            code[..3].to_string(),
            code.to_string(),
        ]
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(db), Some(n)) = (args.next(), args.next()) else {
        eprintln!("usage: review-durability-child DB_FILE N");
        std::process::exit(2);
    };
    let n: usize = n.parse().unwrap_or_else(|_| {
        eprintln!("N must be a number, got {n:?}");
        std::process::exit(2);
    });
    let config = ReviewConfig {
        synchronous: Synchronous::Full,
        double_review_rate: 0.0,
        ..ReviewConfig::default()
    };
    let store = match ReviewStore::open_file(&db, config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("open {db}: {e}");
            std::process::exit(1);
        }
    };
    let stdout = std::io::stdout();
    for i in 0..n {
        let run = || -> Result<String, touxiang_review::ReviewError> {
            let mut item = NewItem::new("default", &format!("流动资金贷款 {i}"), "t", 0.5);
            item.amount = Some(1000.0 + i as f64);
            store.enqueue(&item, Utc::now())?;
            let claimed = store
                .claim("default", "child", Duration::from_secs(600), Utc::now())?
                .expect("an item was just enqueued");
            let code = format!("{}", 1000 + i % 9000);
            store.label(
                &claimed.review_id,
                "child",
                &code,
                None,
                &lookup,
                Utc::now(),
            )?;
            Ok(format!("ACK {} {code}", claimed.review_id))
        };
        match run() {
            Ok(line) => {
                let mut out = stdout.lock();
                // Only after label() returned: the label is committed.
                if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                    std::process::exit(0); // parent went away
                }
            }
            Err(e) => {
                eprintln!("item {i}: {e}");
                std::process::exit(1);
            }
        }
    }
}
