//! Qdrant backend.
//!
//! The tests that need a real server are `#[ignore]`d with the reason, so a plain `cargo test`
//! lists them as ignored (never as a silent pass). Run them against a server with
//!
//! ```text
//! TOUXIANG_TEST_QDRANT_URL=http://127.0.0.1:6334 cargo test -p touxiang-vectors --test qdrant -- --include-ignored
//! ```
//!
//! (`TOUXIANG_TEST_QDRANT_API_KEY` when the server wants a key). Run with `--ignored` but without
//! the variable, they fail with that message. Each run uses its own collections
//! (`touxiang_test_<pid>_…`) and deletes them at the end. Startup against an unreachable server
//! is tested always.

use std::time::{Duration, Instant};

use touxiang_vectors::conformance::{self, point, unit_vector};
use touxiang_vectors::{
    Filter, QdrantConfig, QdrantStore, ResilientConfig, ResilientStore, VectorError, VectorStore,
};

const DIM: usize = 384;
const NEEDS_SERVER: &str = "needs a Qdrant server: set TOUXIANG_TEST_QDRANT_URL";

/// The server under test; panics (the test fails, it is not skipped) when the variable is unset.
fn server_url() -> String {
    std::env::var("TOUXIANG_TEST_QDRANT_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| {
            panic!("{NEEDS_SERVER} (e.g. http://127.0.0.1:6334, the gRPC port) to run this test")
        })
}

fn server_config(collection: &str, dim: usize) -> QdrantConfig {
    server_config_named(
        format!("touxiang_test_{}_{collection}", std::process::id()),
        dim,
    )
}

fn server_config_named(collection: String, dim: usize) -> QdrantConfig {
    let mut cfg = QdrantConfig::new(server_url(), collection, dim);
    cfg.api_key = std::env::var("TOUXIANG_TEST_QDRANT_API_KEY").ok();
    cfg
}

/// Deletes the collections of this run (best effort) when dropped.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let names = std::mem::take(&mut self.0);
        // own thread and runtime: this may run inside the test's runtime
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            for n in names {
                let store = QdrantStore::new(server_config_named(n, DIM)).unwrap();
                let _ = rt.block_on(store.delete_collection());
            }
        })
        .join();
    }
}

/// A local address where nothing listens (bound, then released).
fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

#[tokio::test]
#[ignore = "needs a Qdrant server: set TOUXIANG_TEST_QDRANT_URL"]
async fn conformance_suite_on_real_qdrant() {
    let mut cleanup = Cleanup(Vec::new());
    let failures = conformance::run_all(
        |name| {
            let cfg = server_config(&format!("plain_{name}"), DIM);
            cleanup.0.push(cfg.collection.clone());
            async move { QdrantStore::new(cfg).expect("client") }
        },
        DIM,
    )
    .await;
    assert!(failures.is_empty(), "{failures:#?}");
}

/// What `serve` uses: the Qdrant store behind the resilience wrapper (outbox).
#[tokio::test]
#[ignore = "needs a Qdrant server: set TOUXIANG_TEST_QDRANT_URL"]
async fn conformance_suite_on_real_qdrant_through_wrapper() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cleanup = Cleanup(Vec::new());
    let failures = conformance::run_all(
        |name| {
            let cfg = server_config(&format!("resilient_{name}"), DIM);
            cleanup.0.push(cfg.collection.clone());
            let dir = tmp.path().join(name);
            async move {
                let inner = QdrantStore::new(cfg).expect("client");
                ResilientStore::open(inner, ResilientConfig::new(dir, DIM)).unwrap()
            }
        },
        DIM,
    )
    .await;
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Writes accepted while the server is unreachable stay in the outbox across a restart and
/// reach the real server, in order, once the new process can reach it.
#[tokio::test]
#[ignore = "needs a Qdrant server: set TOUXIANG_TEST_QDRANT_URL"]
async fn outbox_filled_while_down_is_replayed_into_real_qdrant() {
    let tmp = tempfile::tempdir().unwrap();
    let up_cfg = server_config("outbox", DIM);
    let _cleanup = Cleanup(vec![up_cfg.collection.clone()]);
    let pts: Vec<_> = (0..4)
        .map(|i| {
            point(
                &format!("o{i}"),
                unit_vector(DIM, 70 + i),
                "6291",
                "reviewed",
            )
        })
        .collect();
    {
        let mut down_cfg = up_cfg.clone();
        down_cfg.url = closed_port_url();
        down_cfg.timeout = Duration::from_millis(500);
        down_cfg.connect_timeout = Duration::from_millis(300);
        let mut rc = ResilientConfig::new(tmp.path(), DIM);
        rc.retry_initial = Duration::from_secs(60);
        let down = ResilientStore::open(QdrantStore::new(down_cfg).unwrap(), rc).unwrap();
        down.upsert(pts[..3].to_vec()).await.unwrap();
        down.upsert(pts[3..].to_vec()).await.unwrap();
        down.delete(vec!["o0".into()]).await.unwrap();
        assert_eq!(down.pending_writes(), 3);
        assert!(down
            .search(&pts[1].vector, 1, &Filter::all())
            .await
            .is_err());
    }
    let up = ResilientStore::open(
        QdrantStore::new(up_cfg.clone()).unwrap(),
        ResilientConfig::new(tmp.path(), DIM),
    )
    .unwrap();
    assert!(
        up.flush(Duration::from_secs(20)).await,
        "outbox not drained"
    );
    let direct = QdrantStore::new(up_cfg).unwrap();
    assert_eq!(direct.count(&Filter::all()).await.unwrap(), 3);
    let hits = direct
        .search(&pts[3].vector, 4, &Filter::all())
        .await
        .unwrap();
    assert_eq!(hits[0].id, "o3");
    assert_eq!(hits[0].payload, pts[3].payload);
    assert!(hits.iter().all(|h| h.id != "o0"), "the queued delete lost");
    let h = up.health().await.unwrap();
    assert!(h.ok && h.pending_writes == 0, "{h:?}");
}

/// A collection made for another vector size is refused with a message naming both sizes.
#[tokio::test]
#[ignore = "needs a Qdrant server: set TOUXIANG_TEST_QDRANT_URL"]
async fn collection_of_another_dimension_is_refused() {
    let small = server_config("dim", 8);
    let _cleanup = Cleanup(vec![small.collection.clone()]);
    let s8 = QdrantStore::new(small.clone()).unwrap();
    s8.upsert(vec![point("a", unit_vector(8, 1), "6291", "seed")])
        .await
        .unwrap();
    let mut big = small;
    big.dim = DIM;
    let s384 = QdrantStore::new(big).unwrap();
    let err = s384
        .upsert(vec![point("b", unit_vector(DIM, 1), "6291", "seed")])
        .await
        .unwrap_err();
    assert!(matches!(err, VectorError::Backend(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("size 8") && msg.contains("384"), "{msg}");
}

/// A collection deleted while the store is in use is created again by the next write.
#[tokio::test]
#[ignore = "needs a Qdrant server: set TOUXIANG_TEST_QDRANT_URL"]
async fn collection_deleted_behind_its_back_is_created_again() {
    let cfg = server_config("recreate", DIM);
    let _cleanup = Cleanup(vec![cfg.collection.clone()]);
    let store = QdrantStore::new(cfg.clone()).unwrap();
    let a = point("a", unit_vector(DIM, 1), "6291", "seed");
    store.upsert(vec![a.clone()]).await.unwrap();
    QdrantStore::new(cfg)
        .unwrap()
        .delete_collection()
        .await
        .unwrap();
    // the first call after the deletion fails (not found) and forgets the collection ...
    let first = store.upsert(vec![a.clone()]).await;
    if first.is_err() {
        store.upsert(vec![a.clone()]).await.unwrap();
    }
    // ... the next one creates it with its payload indexes
    assert_eq!(store.count(&Filter::all()).await.unwrap(), 1);
    let f = Filter {
        code_prefix: Some("62".into()),
        ..Filter::default()
    };
    assert_eq!(store.search(&a.vector, 1, &f).await.unwrap()[0].id, "a");
}

/// Nothing listens on the port: construction succeeds, calls fail as Unavailable, fast.
#[tokio::test]
async fn unreachable_server_does_not_break_startup() {
    let mut cfg = QdrantConfig::new(closed_port_url(), "touxiang", DIM);
    cfg.timeout = Duration::from_millis(500);
    cfg.connect_timeout = Duration::from_millis(300);
    let store = QdrantStore::new(cfg).expect("construction must not contact the server");
    let t = Instant::now();
    let err = store
        .search(&unit_vector(DIM, 1), 5, &Filter::all())
        .await
        .unwrap_err();
    assert!(matches!(err, VectorError::Unavailable(_)), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let h = store.health().await.unwrap();
    assert!(!h.ok);

    // Behind the resilience wrapper: writes are accepted into the outbox, reads fail fast.
    let tmp = tempfile::tempdir().unwrap();
    let mut rc = ResilientConfig::new(tmp.path(), DIM);
    rc.retry_initial = Duration::from_secs(60);
    let rs = ResilientStore::open(store, rc).unwrap();
    rs.upsert(vec![point("x", unit_vector(DIM, 2), "6291", "reviewed")])
        .await
        .unwrap();
    assert_eq!(rs.pending_writes(), 1);
    assert_eq!(
        VectorStore::pending_writes(&rs),
        1,
        "the trait reports the outbox depth"
    );
    let t = Instant::now();
    let err = rs
        .search(&unit_vector(DIM, 1), 5, &Filter::all())
        .await
        .unwrap_err();
    assert!(err.is_unavailable());
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "circuit should be open: {:?}",
        t.elapsed()
    );
    assert!(!rs.health().await.unwrap().ok);
}
