//! Behavioural test suite every [`VectorStore`] backend must pass.
//!
//! Each check expects an empty store of dimension `dim` and returns `Err(description)` on the
//! first violated expectation, so it can be driven from `#[tokio::test]`s of any backend (the
//! embedded one always, Qdrant when `TOUXIANG_TEST_QDRANT_URL` is set). [`run_all`] runs every
//! check, each against a store produced by the `fresh` factory.

use std::future::Future;

use chrono::{TimeZone, Utc};

use crate::{Filter, Payload, Point, VectorError, VectorStore};

/// Outcome of one check.
pub type Check = Result<(), String>;

/// Deterministic pseudo-random unit vector (splitmix64 + Box–Muller-free uniform in [-1, 1]).
pub fn unit_vector(dim: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    let mut v: Vec<f32> = (0..dim)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
        })
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// `base` moved towards a random direction by `eps` (then normalised): a "similar text".
pub fn perturb(base: &[f32], eps: f32, seed: u64) -> Vec<f32> {
    let noise = unit_vector(base.len(), seed);
    let mut v: Vec<f32> = base.iter().zip(&noise).map(|(b, n)| b + eps * n).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// Builds a point with a payload in taxonomy `gbt4754-2017`, model `e5-test`.
pub fn point(id: &str, vector: Vec<f32>, code: &str, source: &str) -> Point {
    Point {
        id: id.to_owned(),
        vector,
        payload: Payload {
            text: format!("exemplar {id}"),
            code: code.to_owned(),
            taxonomy: "gbt4754-2017".into(),
            source: source.to_owned(),
            reviewer: (source == "reviewed").then(|| "r1".to_owned()),
            created_at: Utc
                .timestamp_opt(1_767_225_600, 0)
                .single()
                .unwrap_or_default(),
            model_version: "e5-test".into(),
        },
    }
}

macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {{
        let ok: bool = $cond;
        if !ok {
            return Err(format!($($arg)+));
        }
    }};
}

fn e(err: VectorError) -> String {
    err.to_string()
}

/// Seeds of the basic checks: 20 points, codes cycling over four classes.
const CODES: [&str; 4] = ["6291", "6210", "3130", "0111"];

async fn seed(store: &dyn VectorStore, dim: usize) -> Result<Vec<Point>, String> {
    let pts: Vec<Point> = (0..20)
        .map(|i| {
            point(
                &format!("seed-{i}"),
                unit_vector(dim, 1000 + i),
                CODES[i as usize % 4],
                "seed",
            )
        })
        .collect();
    store.upsert(pts.clone()).await.map_err(e)?;
    Ok(pts)
}

/// Upserted points are counted and found; the nearest of a perturbed copy is the original;
/// scores are cosine similarities in descending order.
pub async fn check_upsert_search(store: &dyn VectorStore, dim: usize) -> Check {
    let pts = seed(store, dim).await?;
    let n = store.count(&Filter::all()).await.map_err(e)?;
    ensure!(n == 20, "count after 20 upserts = {n}");
    for (i, p) in pts.iter().enumerate().step_by(3) {
        let q = perturb(&p.vector, 0.3, 77 + i as u64);
        let hits = store.search(&q, 5, &Filter::all()).await.map_err(e)?;
        ensure!(hits.len() == 5, "k=5 gave {} hits", hits.len());
        ensure!(
            hits[0].id == p.id,
            "nearest of perturbed {} is {}",
            p.id,
            hits[0].id
        );
        ensure!(
            hits[0].payload == p.payload,
            "payload of {} came back changed",
            p.id
        );
        let expect: f32 = p.vector.iter().zip(&q).map(|(a, b)| a * b).sum();
        ensure!(
            (hits[0].score - expect).abs() < 1e-3,
            "score {} is not the cosine {expect}",
            hits[0].score
        );
        ensure!(
            hits.windows(2).all(|w| w[0].score >= w[1].score),
            "hits not sorted by score"
        );
    }
    let hits = store
        .search(&pts[0].vector, 100, &Filter::all())
        .await
        .map_err(e)?;
    ensure!(
        hits.len() == 20,
        "k larger than the store gave {} hits",
        hits.len()
    );
    ensure!(
        (hits[0].score - 1.0).abs() < 1e-3,
        "self-similarity {}",
        hits[0].score
    );
    Ok(())
}

/// Active learning: a reviewed point upserted is the top hit of the next search for a similar
/// vector, and changes the majority code among the neighbours.
pub async fn check_active_learning(store: &dyn VectorStore, dim: usize) -> Check {
    let center = unit_vector(dim, 42);
    // Three seed exemplars of 6210 moderately close to the query region.
    let seeds: Vec<Point> = (0..3)
        .map(|i| {
            point(
                &format!("al-seed-{i}"),
                perturb(&center, 1.2, 500 + i),
                "6210",
                "seed",
            )
        })
        .collect();
    store.upsert(seeds).await.map_err(e)?;
    let query = perturb(&center, 0.2, 9);
    let before = store.search(&query, 3, &Filter::all()).await.map_err(e)?;
    ensure!(
        before.iter().all(|h| h.payload.code == "6210"),
        "before review the neighbours should all be 6210: {:?}",
        before.iter().map(|h| &h.payload.code).collect::<Vec<_>>()
    );
    let reviewed: Vec<Point> = (0..2)
        .map(|i| {
            point(
                &format!("al-rev-{i}"),
                perturb(&center, 0.1, 600 + i),
                "6291",
                "reviewed",
            )
        })
        .collect();
    store.upsert(reviewed).await.map_err(e)?;
    let after = store.search(&query, 3, &Filter::all()).await.map_err(e)?;
    ensure!(after.len() == 3, "after: {} hits", after.len());
    ensure!(
        after[0].payload.source == "reviewed" && after[0].payload.code == "6291",
        "top hit after review is {} ({})",
        after[0].id,
        after[0].payload.code
    );
    ensure!(
        after[0].payload.reviewer.as_deref() == Some("r1"),
        "reviewer lost: {:?}",
        after[0].payload.reviewer
    );
    let votes = after.iter().filter(|h| h.payload.code == "6291").count();
    ensure!(
        votes == 2,
        "6291 should win the 3-NN vote, got {votes} votes"
    );
    Ok(())
}

/// Every filter field restricts search and count; an empty `sources` list matches nothing.
pub async fn check_filters(store: &dyn VectorStore, dim: usize) -> Check {
    let mut pts = Vec::new();
    for i in 0..24u64 {
        let mut p = point(
            &format!("f-{i}"),
            unit_vector(dim, 3000 + i),
            ["6291", "6210", "3130"][i as usize % 3],
            ["seed", "reviewed", "template"][(i / 3) as usize % 3],
        );
        if i % 2 == 1 {
            p.payload.taxonomy = "other-tax".into();
        }
        if i >= 20 {
            p.payload.model_version = "e5-old".into();
        }
        pts.push(p);
    }
    store.upsert(pts.clone()).await.map_err(e)?;
    let filters = vec![
        Filter {
            taxonomy: Some("gbt4754-2017".into()),
            ..Filter::default()
        },
        Filter {
            sources: Some(vec!["reviewed".into(), "template".into()]),
            ..Filter::default()
        },
        Filter {
            model_version: Some("e5-old".into()),
            ..Filter::default()
        },
        Filter {
            code_prefix: Some("62".into()),
            ..Filter::default()
        },
        Filter {
            taxonomy: Some("gbt4754-2017".into()),
            sources: Some(vec!["seed".into()]),
            model_version: Some("e5-test".into()),
            code_prefix: Some("629".into()),
        },
        Filter {
            taxonomy: Some("no-such".into()),
            ..Filter::default()
        },
        Filter {
            sources: Some(vec![]),
            ..Filter::default()
        },
    ];
    for f in &filters {
        let expected: Vec<&Point> = pts.iter().filter(|p| f.matches(&p.payload)).collect();
        let n = store.count(f).await.map_err(e)?;
        ensure!(
            n as usize == expected.len(),
            "count({f:?}) = {n}, expected {}",
            expected.len()
        );
        let q = unit_vector(dim, 5);
        let hits = store.search(&q, 50, f).await.map_err(e)?;
        ensure!(
            hits.len() == expected.len(),
            "search({f:?}) gave {} hits, expected {}",
            hits.len(),
            expected.len()
        );
        ensure!(
            hits.iter().all(|h| f.matches(&h.payload)),
            "search({f:?}) returned a point outside the filter"
        );
        if let Some(target) = expected.first() {
            let hits = store.search(&target.vector, 1, f).await.map_err(e)?;
            ensure!(
                hits.first().map(|h| h.id.as_str()) == Some(target.id.as_str()),
                "filtered self-search for {} failed",
                target.id
            );
        }
    }
    Ok(())
}

/// Upserting an existing id replaces vector and payload; the count does not grow.
pub async fn check_replace(store: &dyn VectorStore, dim: usize) -> Check {
    let pts = seed(store, dim).await?;
    let old = pts[4].clone();
    let mut new = point(&old.id, unit_vector(dim, 8888), "7777", "reviewed");
    new.payload.text = "relabelled".into();
    store.upsert(vec![new.clone()]).await.map_err(e)?;
    let n = store.count(&Filter::all()).await.map_err(e)?;
    ensure!(n == 20, "count after replacing = {n}");
    let hits = store
        .search(&new.vector, 1, &Filter::all())
        .await
        .map_err(e)?;
    ensure!(
        hits[0].id == old.id
            && hits[0].payload.code == "7777"
            && hits[0].payload.text == "relabelled",
        "replacement not returned: {:?}",
        hits.first()
    );
    let hits = store
        .search(&old.vector, 20, &Filter::all())
        .await
        .map_err(e)?;
    let same: Vec<_> = hits.iter().filter(|h| h.id == old.id).collect();
    ensure!(
        same.len() == 1,
        "id {} appears {} times",
        old.id,
        same.len()
    );
    ensure!(
        same[0].payload.code == "7777" && (same[0].score - 1.0).abs() > 0.05,
        "old vector/payload still searchable"
    );
    // A batch with the same id twice: the last one wins.
    let a = point("dup", unit_vector(dim, 1), "A", "seed");
    let b = point("dup", unit_vector(dim, 2), "B", "seed");
    store.upsert(vec![a, b.clone()]).await.map_err(e)?;
    let hits = store
        .search(&b.vector, 1, &Filter::all())
        .await
        .map_err(e)?;
    ensure!(
        hits[0].id == "dup" && hits[0].payload.code == "B",
        "last write in a batch must win: {:?}",
        hits.first().map(|h| &h.payload.code)
    );
    ensure!(
        store.count(&Filter::all()).await.map_err(e)? == 21,
        "duplicate ids in a batch created two points"
    );
    Ok(())
}

/// Deleted ids disappear from search, count and `contains`; unknown ids are ignored.
pub async fn check_delete(store: &dyn VectorStore, dim: usize) -> Check {
    let pts = seed(store, dim).await?;
    store
        .delete(vec![
            pts[0].id.clone(),
            pts[1].id.clone(),
            "never-existed".into(),
        ])
        .await
        .map_err(e)?;
    let n = store.count(&Filter::all()).await.map_err(e)?;
    ensure!(n == 18, "count after deleting 2 = {n}");
    // which points the store holds (seeding resumes from it): deleted and unknown ids are not
    let ids = vec![pts[0].id.clone(), pts[2].id.clone(), "never-existed".into()];
    let held = store.contains(&ids, &Filter::all()).await.map_err(e)?;
    ensure!(held == [false, true, false], "contains = {held:?}");
    // … and only with a payload that matches: another encoder's point must be embedded anew
    let other = Filter {
        model_version: Some("another-encoder".into()),
        ..Filter::default()
    };
    let held = store.contains(&ids, &other).await.map_err(e)?;
    ensure!(
        held == [false, false, false],
        "contains (other model) = {held:?}"
    );
    let hits = store
        .search(&pts[0].vector, 20, &Filter::all())
        .await
        .map_err(e)?;
    ensure!(
        hits.iter().all(|h| h.id != pts[0].id && h.id != pts[1].id),
        "deleted point returned"
    );
    Ok(())
}

/// Bad input yields an error naming the field; nothing is stored.
pub async fn check_invalid_input(store: &dyn VectorStore, dim: usize) -> Check {
    let good = point("ok", unit_vector(dim, 1), "6291", "seed");
    let short = point("short", vec![1.0; dim - 1], "6291", "seed");
    match store.upsert(vec![good, short]).await {
        Err(VectorError::DimensionMismatch { field, .. }) => {
            ensure!(field == "points[1].vector", "field = {field}")
        }
        other => return Err(format!("wrong-dimension upsert gave {other:?}")),
    }
    let zero = point("zero", vec![0.0; dim], "6291", "seed");
    ensure!(
        matches!(
            store.upsert(vec![zero]).await,
            Err(VectorError::InvalidInput { .. })
        ),
        "zero vector accepted"
    );
    let mut no_code = point("nocode", unit_vector(dim, 2), "", "seed");
    no_code.payload.code.clear();
    ensure!(
        matches!(
            store.upsert(vec![no_code]).await,
            Err(VectorError::InvalidInput { .. })
        ),
        "empty code accepted"
    );
    ensure!(
        store.count(&Filter::all()).await.map_err(e)? == 0,
        "a rejected batch was partly stored"
    );
    ensure!(
        store.search(&[1.0; 3], 1, &Filter::all()).await.is_err() || dim == 3,
        "wrong-dimension query accepted"
    );
    let h = store.health().await.map_err(e)?;
    ensure!(h.ok, "health not ok: {h:?}");
    Ok(())
}

/// Runs every check, each on a fresh empty store from `fresh`; returns the failures.
pub async fn run_all<S, F, Fut>(mut fresh: F, dim: usize) -> Vec<String>
where
    S: VectorStore,
    F: FnMut(&'static str) -> Fut,
    Fut: Future<Output = S>,
{
    let mut failures = Vec::new();
    macro_rules! run {
        ($name:literal, $f:ident) => {{
            let store = fresh($name).await;
            if let Err(msg) = $f(&store, dim).await {
                failures.push(format!("{}: {}", $name, msg));
            }
        }};
    }
    run!("upsert_search", check_upsert_search);
    run!("active_learning", check_active_learning);
    run!("filters", check_filters);
    run!("replace", check_replace);
    run!("delete", check_delete);
    run!("invalid_input", check_invalid_input);
    failures
}
