//! Qdrant backend: the shared behavioural suite against a real server when
//! `TOUXIANG_TEST_QDRANT_URL` is set (e.g. `http://localhost:6334`); skipped with a note otherwise.
//! Startup against an unreachable server is tested always.

use std::time::{Duration, Instant};

use touxiang_vectors::conformance::{self, point, unit_vector};
use touxiang_vectors::{
    Filter, QdrantConfig, QdrantStore, ResilientConfig, ResilientStore, VectorError, VectorStore,
};

const DIM: usize = 384;

#[tokio::test]
async fn conformance_suite_on_real_qdrant() {
    let Ok(url) = std::env::var("TOUXIANG_TEST_QDRANT_URL") else {
        // Written straight to stderr so it shows even under the test harness's output capture.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: Qdrant conformance suite (set TOUXIANG_TEST_QDRANT_URL, e.g. http://localhost:6334, to run it)"
        );
        return;
    };
    let api_key = std::env::var("TOUXIANG_TEST_QDRANT_API_KEY").ok();
    let run = format!("{}", std::process::id());
    let failures = conformance::run_all(
        |name| {
            let mut cfg = QdrantConfig::new(&url, format!("touxiang_test_{run}_{name}"), DIM);
            cfg.api_key = api_key.clone();
            async move { QdrantStore::new(cfg).expect("client") }
        },
        DIM,
    )
    .await;
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Nothing listens on port 9 of localhost: construction succeeds, calls fail as Unavailable.
#[tokio::test]
async fn unreachable_server_does_not_break_startup() {
    let mut cfg = QdrantConfig::new("http://127.0.0.1:9", "touxiang", DIM);
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
}
