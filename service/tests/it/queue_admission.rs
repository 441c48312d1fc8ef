//! Admission control of the embedding queue: a flood is shed with 429 and a `Retry-After` of the
//! expected wait (or the request count bound) while the requests admitted are answered.

use std::time::Duration;

use axum::response::IntoResponse;
use touxiang::error::ApiError;
use touxiang::queue::{EmbedQueue, QueueLimits};
use touxiang_model::Kind;

use crate::common::model;

async fn flood(q: &EmbedQueue, n: usize) -> (usize, Vec<ApiError>) {
    let ids = model()
        .tokenize(&["烧烤店购买冷柜用于门店经营"], Kind::Query)
        .unwrap();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (q, ids) = (q.clone(), ids.clone());
            tokio::spawn(async move { q.embed(ids).await })
        })
        .collect();
    let (mut ok, mut refused) = (0, Vec::new());
    for t in tasks {
        match t.await.unwrap() {
            Ok(v) => {
                assert_eq!(v.len(), 1);
                ok += 1;
            }
            Err(e) => refused.push(e),
        }
    }
    (ok, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_beyond_the_wait_budget_is_shed_with_retry_after() {
    let q = EmbedQueue::start(
        model(),
        QueueLimits {
            max_batch_tokens: 64,
            max_queue_tokens: 1 << 20,
            max_queue_requests: 1 << 20,
            max_wait: Duration::from_millis(20),
        },
    );
    // a first request measures the cost per token
    let (ok, refused) = flood(&q, 1).await;
    assert_eq!((ok, refused.len()), (1, 0));
    let (ok, refused) = flood(&q, 400).await;
    assert!(ok > 0, "admitted requests are answered");
    assert!(
        !refused.is_empty(),
        "400 at once exceed a 20 ms wait budget"
    );
    let e = refused.into_iter().next().unwrap();
    assert!(e.to_string().contains("expected wait"), "{e}");
    let resp = e.into_response();
    assert_eq!(resp.status(), axum::http::StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    // once drained, requests are admitted again
    assert_eq!(flood(&q, 1).await.0, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_number_of_waiting_requests_is_bounded() {
    let q = EmbedQueue::start(
        model(),
        QueueLimits {
            max_batch_tokens: 64,
            max_queue_tokens: 1 << 20,
            max_queue_requests: 4,
            max_wait: Duration::from_secs(3600),
        },
    );
    let (ok, refused) = flood(&q, 100).await;
    assert!(ok >= 4 && !refused.is_empty(), "{ok} admitted");
    assert!(refused
        .iter()
        .all(|e| e.to_string().contains("requests waiting")));
}
