//! The embedded store's HNSW index and the background thread that builds and extends it.

use std::sync::{Arc, Weak};
use std::time::Duration;

use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::hnsw::Hnsw;

use super::mem::dot;
use super::{EmbeddedStore, Inner};

/// Cosine distance for unit vectors, `1 - dot` clamped at 0 (anndists' `DistDot` asserts on
/// rounding just above 1 and is not vectorised).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct UnitDot;

impl Distance<f32> for UnitDot {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        (1.0 - dot(va, vb)).max(0.0)
    }
}

/// A built HNSW graph over slots `< indexed_upto` (dead slots among them are filtered out).
pub(super) struct AnnIndex {
    pub(super) hnsw: Hnsw<'static, f32, UnitDot>,
    pub(super) indexed_upto: usize,
}

impl EmbeddedStore {
    pub(super) fn maybe_start_indexer(&self) {
        let live = self.inner.mem.read().live;
        let mut running = self.inner.indexer.lock();
        if *running {
            self.inner.wake.notify_all();
            return;
        }
        if live < self.inner.cfg.ann_threshold {
            return;
        }
        *running = true;
        let weak = Arc::downgrade(&self.inner);
        let spawned = std::thread::Builder::new()
            .name("touxiang-hnsw".into())
            .spawn(move || {
                let w = weak.clone();
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| indexer_loop(w)))
                    .is_err()
                {
                    tracing::error!("HNSW indexer panicked; searches fall back to exact");
                    if let Some(inner) = weak.upgrade() {
                        *inner.ann.write() = None;
                    }
                }
            });
        if let Err(e) = spawned {
            *running = false;
            tracing::error!("cannot start HNSW indexer thread, searches stay exact: {e}");
        }
    }
}

/// Background indexer: builds the HNSW graph (unpublished until complete, searches stay exact
/// meanwhile), then keeps inserting new slots in small batches. Exits when the store is dropped.
fn indexer_loop(weak: Weak<Inner>) {
    const BATCH: usize = 20_000;
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let slots = inner.mem.read().slots();
        let have = inner.ann.read().as_ref().map(|a| a.indexed_upto);
        match have {
            None => {
                let t0 = std::time::Instant::now();
                let p = inner.cfg.hnsw;
                let hnsw: Hnsw<'static, f32, UnitDot> = Hnsw::new(
                    p.max_connections,
                    slots.max(1024) * 2,
                    16,
                    p.ef_construction,
                    UnitDot,
                );
                let mut upto = 0;
                while upto < slots {
                    let end = (upto + BATCH).min(slots);
                    let batch = copy_live(&inner, upto..end);
                    let refs: Vec<(&[f32], usize)> =
                        batch.iter().map(|(v, s)| (v.as_slice(), *s)).collect();
                    hnsw.parallel_insert_slice(&refs);
                    upto = end;
                }
                tracing::info!(
                    "HNSW index built over {upto} slots in {:.1}s",
                    t0.elapsed().as_secs_f64()
                );
                *inner.ann.write() = Some(AnnIndex {
                    hnsw,
                    indexed_upto: upto,
                });
            }
            Some(upto) if upto < slots => {
                let end = (upto + BATCH).min(slots);
                let batch = copy_live(&inner, upto..end);
                let mut guard = inner.ann.write();
                if let Some(a) = guard.as_mut() {
                    let refs: Vec<(&[f32], usize)> =
                        batch.iter().map(|(v, s)| (v.as_slice(), *s)).collect();
                    if refs.len() > 64 {
                        a.hnsw.parallel_insert_slice(&refs);
                    } else {
                        for r in refs {
                            a.hnsw.insert_slice(r);
                        }
                    }
                    a.indexed_upto = end;
                }
            }
            Some(_) => {
                let mut running = inner.indexer.lock();
                let (s, _) = (inner.mem.read().slots(), ());
                if s == slots {
                    inner
                        .wake
                        .wait_for(&mut running, Duration::from_millis(500));
                }
            }
        }
    }
}

/// Copies the live vectors among `range` out of the matrix (so the HNSW insert runs without
/// holding the store lock).
fn copy_live(inner: &Inner, range: std::ops::Range<usize>) -> Vec<(Vec<f32>, usize)> {
    let mem = inner.mem.read();
    range
        .filter(|&s| mem.payloads[s].is_some())
        .map(|s| (mem.row(s), s))
        .collect()
}
