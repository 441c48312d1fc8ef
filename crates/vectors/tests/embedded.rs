//! Embedded backend: the shared behavioural suite plus persistence and HNSW checks.

use std::time::Duration;

use touxiang_vectors::conformance::{self, perturb, point, unit_vector};
use touxiang_vectors::{EmbeddedConfig, EmbeddedStore, Filter, VectorStore};

const DIM: usize = 384;

fn open(dir: &std::path::Path) -> EmbeddedStore {
    EmbeddedStore::open(EmbeddedConfig::new(dir, DIM)).expect("open store")
}

#[tokio::test]
async fn conformance_suite_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let failures = conformance::run_all(
        |name| {
            let dir = tmp.path().join(name);
            async move { open(&dir) }
        },
        DIM,
    )
    .await;
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Same suite with the HNSW index forced on from the first point (threshold 1) and a tiny
/// `filtered_exact_max`, so filtered searches go through the HNSW filter path too.
#[tokio::test]
async fn conformance_suite_hnsw() {
    let tmp = tempfile::tempdir().unwrap();
    let failures = conformance::run_all(
        |name| {
            let dir = tmp.path().join(name);
            async move {
                let mut cfg = EmbeddedConfig::new(&dir, DIM);
                cfg.ann_threshold = 1;
                cfg.filtered_exact_max = 0;
                let s = EmbeddedStore::open(cfg).unwrap();
                HnswSynced(s)
            }
        },
        DIM,
    )
    .await;
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Waits for the background indexer after every write, so searches really use the graph.
struct HnswSynced(EmbeddedStore);

#[async_trait::async_trait]
impl VectorStore for HnswSynced {
    async fn upsert(&self, p: Vec<touxiang_vectors::Point>) -> touxiang_vectors::Result<()> {
        self.0.upsert(p).await?;
        assert!(self.0.wait_for_index(Duration::from_secs(20)));
        Ok(())
    }
    async fn search(
        &self,
        q: &[f32],
        k: usize,
        f: &Filter,
    ) -> touxiang_vectors::Result<Vec<touxiang_vectors::Hit>> {
        self.0.search(q, k, f).await
    }
    async fn delete(&self, ids: Vec<String>) -> touxiang_vectors::Result<()> {
        self.0.delete(ids).await
    }
    async fn count(&self, f: &Filter) -> touxiang_vectors::Result<u64> {
        self.0.count(f).await
    }
    async fn contains(&self, ids: &[String], f: &Filter) -> touxiang_vectors::Result<Vec<bool>> {
        self.0.contains(ids, f).await
    }
    async fn health(&self) -> touxiang_vectors::Result<touxiang_vectors::Health> {
        self.0.health().await
    }
}

#[tokio::test]
async fn persists_across_reopen_with_replacements_and_deletes() {
    let tmp = tempfile::tempdir().unwrap();
    let a = point("a", unit_vector(DIM, 1), "6291", "seed");
    let b = point("b", unit_vector(DIM, 2), "6210", "seed");
    let c = point("c", unit_vector(DIM, 3), "3130", "reviewed");
    let a2 = point("a", unit_vector(DIM, 4), "0111", "reviewed");
    {
        let s = open(tmp.path());
        s.upsert(vec![a.clone(), b.clone(), c.clone()])
            .await
            .unwrap();
        s.upsert(vec![a2.clone()]).await.unwrap();
        s.delete(vec!["b".into()]).await.unwrap();
    }
    let s = open(tmp.path());
    assert_eq!(s.count(&Filter::all()).await.unwrap(), 2);
    let hits = s.search(&a2.vector, 3, &Filter::all()).await.unwrap();
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].id, "a");
    assert_eq!(hits[0].payload, a2.payload);
    // rows are held as int8 in memory: scores within 1e-3 of the cosine
    assert!((hits[0].score - 1.0).abs() < 1e-3);
    assert!(hits.iter().all(|h| h.id != "b"));
    let hits = s.search(&c.vector, 1, &Filter::all()).await.unwrap();
    assert_eq!(hits[0].payload, c.payload);
}

#[tokio::test]
async fn reopen_with_other_dimension_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    drop(open(tmp.path()));
    let err = EmbeddedStore::open(EmbeddedConfig::new(tmp.path(), 128))
        .err()
        .expect("dimension change must fail");
    assert!(err.to_string().contains("dim"), "{err}");
}

/// HNSW search over a few hundred clustered points agrees with exact search, including
/// points added after the graph was built (searched through the exact tail).
#[tokio::test]
async fn hnsw_matches_exact_on_clustered_data() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = EmbeddedConfig::new(tmp.path(), DIM);
    // Small graph: the dev profile compiles hnsw's generic code unoptimised.
    cfg.ann_threshold = 400;
    cfg.hnsw = touxiang_vectors::HnswParams {
        max_connections: 16,
        ef_construction: 64,
        ef_search: 64,
    };
    let s = EmbeddedStore::open(cfg).unwrap();
    let centers: Vec<Vec<f32>> = (0..12).map(|i| unit_vector(DIM, 10_000 + i)).collect();
    let pts: Vec<_> = (0..600u64)
        .map(|i| {
            let c = &centers[(i % 12) as usize];
            point(
                &format!("p{i}"),
                perturb(c, 0.8, i),
                ["6291", "6210"][(i % 2) as usize],
                "seed",
            )
        })
        .collect();
    s.upsert(pts[..500].to_vec()).await.unwrap();
    assert!(s.wait_for_index(Duration::from_secs(60)), "index not built");
    assert!(s.ann_indexed() >= 500);
    s.upsert(pts[500..].to_vec()).await.unwrap();
    let queries: Vec<Vec<f32>> = (0..50)
        .map(|i| perturb(&centers[i % 12], 0.8, 99_000 + i as u64))
        .collect();
    let recall = touxiang_vectors::bench::recall_at_k(&s, &queries, 10, &Filter::all()).unwrap();
    assert!(recall > 0.9, "recall@10 {recall}");
    // Filtered search through the graph never leaks other codes.
    let f = Filter {
        code_prefix: Some("629".into()),
        ..Filter::default()
    };
    for q in &queries[..10] {
        let hits = s.search(q, 10, &f).await.unwrap();
        assert_eq!(hits.len(), 10);
        assert!(hits.iter().all(|h| h.payload.code == "6291"));
    }
    let h = s.health().await.unwrap();
    assert!(h.detail.contains("hnsw"), "{}", h.detail);
}

/// The search's 4-bit first pass returns the same neighbours with the same scores as scoring
/// every int8 row, on dense clusters of near-duplicates (where the first pass's error matters
/// most), serial and parallel, for small and large k, with a filter and after deletions.
#[tokio::test]
async fn first_pass_returns_what_the_full_scan_returns() {
    let tmp = tempfile::tempdir().unwrap();
    for parallel_min_rows in [usize::MAX, 1024] {
        let mut cfg = EmbeddedConfig::new(tmp.path().join(format!("p{parallel_min_rows}")), DIM);
        cfg.parallel_min_rows = parallel_min_rows;
        let store = EmbeddedStore::open(cfg).unwrap();
        let mut points = Vec::new();
        for c in 0..40u64 {
            let centre = unit_vector(DIM, 1000 + c);
            for i in 0..150u64 {
                let id = format!("c{c}-{i}");
                let code = if i % 3 == 0 { "A01" } else { "B02" };
                points.push(point(
                    &id,
                    perturb(&centre, 0.15, c * 1000 + i),
                    code,
                    "seed",
                ));
            }
        }
        store.upsert(points).await.unwrap();
        store
            .delete((0..40).map(|c| format!("c{c}-7")).collect::<Vec<_>>())
            .await
            .unwrap();
        let only_a = Filter {
            code_prefix: Some("A".into()),
            ..Filter::default()
        };
        for q in 0..60u64 {
            let query = perturb(&unit_vector(DIM, 1000 + q % 40), 0.2, 77 + q);
            for (k, filter) in [
                (10, Filter::default()),
                (50, Filter::default()),
                (10, only_a.clone()),
            ] {
                let fast = store.search_blocking(&query, k, &filter).unwrap();
                let full = store.search_exact_blocking(&query, k, &filter).unwrap();
                assert_eq!(fast.len(), k);
                let scores =
                    |h: &[touxiang_vectors::Hit]| h.iter().map(|h| h.score).collect::<Vec<_>>();
                assert_eq!(scores(&fast), scores(&full), "query {q}, k {k}");
                assert!(
                    fast.iter().all(|h| !h.id.ends_with("-7")),
                    "a deleted point came back"
                );
            }
        }
    }
}
