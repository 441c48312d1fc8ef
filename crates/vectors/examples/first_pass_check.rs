//! Does the search's 4-bit first pass return what a full int8 scan returns? On a real store:
//! queries are stored vectors with gaussian noise (σ 0.02 per value, renormalised); each is
//! searched with `search_blocking` (4-bit codes, then exact scoring of the candidates) and with
//! `search_exact_blocking` (every int8 row scored), and the top-k compared.
//!
//! `cargo run --release -p touxiang-vectors --example first_pass_check -- STORE_DIR [QUERIES] [K]`
//! (STORE_DIR holds `vectors.sqlite`, e.g. `DATA_DIR/vectors`; work on a copy while a server runs).
use std::time::Instant;

use rand::{Rng, SeedableRng};
use touxiang_vectors::{EmbeddedConfig, EmbeddedStore, Filter};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    let dir = a
        .get(1)
        .ok_or("usage: first_pass_check STORE_DIR [QUERIES] [K]")?;
    let n: usize = a.get(2).map(|s| s.parse()).transpose()?.unwrap_or(600);
    let k: usize = a.get(3).map(|s| s.parse()).transpose()?.unwrap_or(10);
    let conn = rusqlite::Connection::open(std::path::Path::new(dir).join("vectors.sqlite"))?;
    let mut stmt = conn.prepare("SELECT vector FROM points ORDER BY rowid")?;
    let rows: Vec<Vec<u8>> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let dim = rows.first().ok_or("empty store")?.len() / 4;
    let store = EmbeddedStore::open(EmbeddedConfig::new(dir, dim))?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let (mut same_ids, mut same_scores) = (0, 0);
    let (mut t_codes, mut t_int8) = (Vec::new(), Vec::new());
    let all = Filter::default();
    for _ in 0..n {
        let b = &rows[rng.random_range(0..rows.len())];
        let mut q: Vec<f32> = b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) + gauss(&mut rng) * 0.02)
            .collect();
        let norm = q.iter().map(|v| v * v).sum::<f32>().sqrt();
        q.iter_mut().for_each(|v| *v /= norm);
        let t = Instant::now();
        let exact = store.search_exact_blocking(&q, k, &all)?;
        t_int8.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let fast = store.search_blocking(&q, k, &all)?;
        t_codes.push(t.elapsed().as_secs_f64() * 1e3);
        same_ids += usize::from(exact.iter().map(|h| &h.id).eq(fast.iter().map(|h| &h.id)));
        same_scores += usize::from(
            exact
                .iter()
                .map(|h| h.score)
                .eq(fast.iter().map(|h| h.score)),
        );
    }
    let p50 = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "{} points, {n} queries, k {k}: same top-k scores {same_scores}/{n}, same ids in the same \
         order {same_ids}/{n} (ties between identical vectors may swap); p50 full int8 scan {:.2} ms, \
         4-bit first pass {:.2} ms",
        rows.len(),
        p50(&mut t_int8),
        p50(&mut t_codes)
    );
    Ok(())
}

/// Standard normal sample (Box–Muller).
fn gauss(rng: &mut impl Rng) -> f32 {
    let (u, v): (f32, f32) = (rng.random_range(f32::EPSILON..1.0), rng.random());
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}
