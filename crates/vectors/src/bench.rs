//! Recall and data helpers for benchmarking the embedded store (used by the `vector_bench`
//! example and the tests).

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{EmbeddedStore, Filter, Result, VectorError};

/// Mean recall@k of `store`'s configured search (HNSW when built) against exact search over
/// the same store: |approx ∩ exact| / |exact|, averaged over `queries`.
pub fn recall_at_k(
    store: &EmbeddedStore,
    queries: &[Vec<f32>],
    k: usize,
    filter: &Filter,
) -> Result<f64> {
    if queries.is_empty() {
        return Err(VectorError::invalid("queries", "no queries"));
    }
    let mut sum = 0.0;
    for q in queries {
        let exact = store.search_exact_blocking(q, k, filter)?;
        let approx = store.search_blocking(q, k, filter)?;
        if exact.is_empty() {
            sum += 1.0;
            continue;
        }
        let found = approx
            .iter()
            .filter(|h| exact.iter().any(|e| e.id == h.id))
            .count();
        sum += found as f64 / exact.len() as f64;
    }
    Ok(sum / queries.len() as f64)
}

/// Reads raw little-endian `f32` rows of `dim` values (e.g. `/tmp/touxiang-real-embeddings.f32`)
/// and L2-normalises them. Errors name the file and the offending row.
pub fn read_f32_rows(path: &Path, dim: usize) -> Result<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path)
        .map_err(|e| VectorError::Storage(format!("read {}: {e}", path.display())))?;
    let row_bytes = dim * 4;
    if dim == 0 || bytes.len() % row_bytes != 0 {
        return Err(VectorError::invalid(
            path.display().to_string(),
            format!("size {} is not a multiple of {dim} f32 values", bytes.len()),
        ));
    }
    bytes
        .chunks_exact(row_bytes)
        .enumerate()
        .map(|(i, row)| {
            let v: Vec<f32> = row
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            crate::normalized(&v, &format!("{} row {i}", path.display()))
        })
        .collect()
}

/// Synthetic clustered unit vectors: `clusters` random centres, points = centre + gaussian
/// noise of total norm ≈ `spread` (then normalised). A stand-in for real embeddings, which
/// are far from uniform on the sphere.
pub fn synthetic_clustered(
    n: usize,
    dim: usize,
    clusters: usize,
    spread: f32,
    seed: u64,
) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..clusters.max(1))
        .map(|_| normalize_in_place(gaussian(&mut rng, dim, 1.0)))
        .collect();
    (0..n)
        .map(|_| {
            let c = &centres[rng.random_range(0..centres.len())];
            let noise = gaussian(&mut rng, dim, spread / (dim as f32).sqrt());
            normalize_in_place(c.iter().zip(&noise).map(|(a, b)| a + b).collect())
        })
        .collect()
}

/// Grows `base` to `n` rows: the originals first, then copies of random base rows perturbed
/// with gaussian noise of total norm ≈ `noise` (normalised). Tiling real embeddings this way
/// keeps their cluster structure while making every row distinct.
pub fn tile_perturb(base: &[Vec<f32>], n: usize, noise: f32, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out: Vec<Vec<f32>> = base.iter().take(n).cloned().collect();
    if base.is_empty() {
        return out;
    }
    let dim = base[0].len();
    while out.len() < n {
        let b = &base[rng.random_range(0..base.len())];
        let g = gaussian(&mut rng, dim, noise / (dim as f32).sqrt());
        out.push(normalize_in_place(
            b.iter().zip(&g).map(|(a, x)| a + x).collect(),
        ));
    }
    out
}

/// Queries "near" the data: random rows perturbed by `noise` (as a new text of a known kind).
pub fn queries_from(data: &[Vec<f32>], count: usize, noise: f32, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    if data.is_empty() {
        return Vec::new();
    }
    let dim = data[0].len();
    (0..count)
        .map(|_| {
            let b = &data[rng.random_range(0..data.len())];
            let g = gaussian(&mut rng, dim, noise / (dim as f32).sqrt());
            normalize_in_place(b.iter().zip(&g).map(|(a, x)| a + x).collect())
        })
        .collect()
}

fn gaussian(rng: &mut StdRng, dim: usize, sigma: f32) -> Vec<f32> {
    (0..dim)
        .map(|_| {
            // Box–Muller.
            let u1: f32 = rng.random_range(f32::EPSILON..1.0);
            let u2: f32 = rng.random::<f32>();
            sigma * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        })
        .collect()
}

fn normalize_in_place(mut v: Vec<f32>) -> Vec<f32> {
    let n = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// Recall@k of exact search when the matrix is stored as `f16` instead of `f32` (the memory
/// halving option), measured without building a store: exact f32 top-k vs exact f16 top-k.
pub fn f16_recall_at_k(data: &[Vec<f32>], queries: &[Vec<f32>], k: usize) -> f64 {
    use half::f16;
    let half_rows: Vec<Vec<f16>> = data
        .iter()
        .map(|r| r.iter().map(|x| f16::from_f32(*x)).collect())
        .collect();
    let top = |scores: Vec<(f32, usize)>| {
        let mut s = scores;
        s.sort_by(|a, b| b.0.total_cmp(&a.0));
        s.truncate(k);
        s.into_iter().map(|x| x.1).collect::<Vec<_>>()
    };
    let mut sum = 0.0;
    for q in queries {
        let exact = top(data
            .iter()
            .enumerate()
            .map(|(i, r)| (crate::embedded::dot(q, r), i))
            .collect());
        let approx = top(half_rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.iter().zip(q).map(|(a, b)| a.to_f32() * b).sum::<f32>(), i))
            .collect());
        sum += approx.iter().filter(|i| exact.contains(i)).count() as f64 / k as f64;
    }
    sum / queries.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_and_tiled_rows_are_unit_and_sized() {
        let base = synthetic_clustered(50, 16, 4, 0.5, 1);
        assert_eq!(base.len(), 50);
        let t = tile_perturb(&base, 120, 0.1, 2);
        assert_eq!(t.len(), 120);
        assert_eq!(t[..50], base[..]);
        for r in &t {
            let n: f32 = r.iter().map(|x| x * x).sum();
            assert!((n - 1.0).abs() < 1e-4);
        }
        assert_ne!(t[50], t[51]);
        let q = queries_from(&base, 7, 0.1, 3);
        assert_eq!(q.len(), 7);
    }

    #[test]
    fn read_rows_checks_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.f32");
        let rows: Vec<f32> = (0..8).map(|i| i as f32 + 1.0).collect();
        std::fs::write(
            &p,
            rows.iter()
                .flat_map(|x| x.to_le_bytes())
                .collect::<Vec<u8>>(),
        )
        .unwrap();
        assert_eq!(read_f32_rows(&p, 4).unwrap().len(), 2);
        let e = read_f32_rows(&p, 3).unwrap_err();
        assert!(e.to_string().contains("e.f32"), "{e}");
    }

    #[test]
    fn f16_recall_is_high_but_measured() {
        let data = synthetic_clustered(500, 32, 5, 0.6, 4);
        let q = queries_from(&data, 20, 0.2, 5);
        let r = f16_recall_at_k(&data, &q, 10);
        assert!((0.5..=1.0).contains(&r), "{r}");
    }
}
