//! In-memory int8 rows of the embedded store: interner, compiled filters and the exact scan.

use std::collections::HashMap;

use rayon::prelude::*;

use super::codes::{candidates, Codes, Query4};
use crate::{Filter, Hit, Payload};

/// String interner for the filterable payload fields.
#[derive(Default)]
struct Dict {
    map: HashMap<String, u32>,
}

impl Dict {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&v) = self.map.get(s) {
            return v;
        }
        let v = self.map.len() as u32;
        self.map.insert(s.to_owned(), v);
        v
    }
    fn get(&self, s: &str) -> Option<u32> {
        self.map.get(s).copied()
    }
}

/// The taxonomy column of a deleted or replaced slot (no interned string has this id).
const DEAD: u32 = u32::MAX;

/// In-memory state. Slots are append-only: replacing or deleting a point leaves a dead slot
/// (payload `None`, taxonomy [`DEAD`]); dead slots are dropped at the next open.
pub(super) struct Mem {
    dim: usize,
    /// Rows as int8 with one scale per row (symmetric, the largest |x| maps to 127). A quarter
    /// of the memory of f32 and of the bytes each exact scan reads (the scan is bound by memory
    /// bandwidth): 58 714 e5 exemplars hold 22 MiB instead of 90 MiB. Cosine scores move by
    /// about 5e-4 on unit 384-d vectors, far inside the 1e-3 the conformance suite allows and
    /// the 0.99 exact-match similarity. SQLite keeps the f32 originals.
    pub(super) vectors: Vec<i8>,
    pub(super) scales: Vec<f32>,
    /// 4-bit codes of the rows for the scan's first pass (`None` for an odd dimension).
    pub(super) codes: Option<Codes>,
    ids: Vec<String>,
    pub(super) payloads: Vec<Option<Payload>>,
    tax: Vec<u32>,
    src: Vec<u32>,
    model: Vec<u32>,
    dict: Dict,
    by_id: HashMap<String, usize>,
    pub(super) live: usize,
}

/// A filter compiled against the interner.
pub(super) struct Compiled<'a> {
    pub(super) never: bool,
    tax: Option<u32>,
    srcs: Option<Vec<u32>>,
    model: Option<u32>,
    prefix: Option<&'a str>,
}

impl Mem {
    pub(super) fn new(dim: usize) -> Self {
        Self {
            dim,
            vectors: Vec::new(),
            scales: Vec::new(),
            codes: Codes::new(dim),
            ids: Vec::new(),
            payloads: Vec::new(),
            tax: Vec::new(),
            src: Vec::new(),
            model: Vec::new(),
            dict: Dict::default(),
            by_id: HashMap::new(),
            live: 0,
        }
    }

    pub(super) fn slots(&self) -> usize {
        self.ids.len()
    }

    /// Row `slot`, dequantised.
    pub(super) fn row(&self, slot: usize) -> Vec<f32> {
        let s = self.scales[slot];
        self.qrow(slot).iter().map(|&x| f32::from(x) * s).collect()
    }

    #[inline(always)]
    fn qrow(&self, slot: usize) -> &[i8] {
        &self.vectors[slot * self.dim..(slot + 1) * self.dim]
    }

    /// Dot product of `q` with row `slot`.
    #[inline(always)]
    pub(super) fn score(&self, q: &[f32], slot: usize) -> f32 {
        dot(q, self.qrow(slot)) * self.scales[slot]
    }

    pub(super) fn push(&mut self, id: String, vector: &[f32], payload: Payload) {
        if let Some(old) = self.by_id.remove(&id) {
            self.retire(old);
        }
        let slot = self.ids.len();
        let max = vector.iter().fold(0f32, |m, x| m.max(x.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        self.vectors.extend(
            vector
                .iter()
                .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8),
        );
        self.scales.push(scale);
        if let Some(codes) = &mut self.codes {
            let start = self.vectors.len() - self.dim;
            codes.push(&self.vectors[start..], scale);
        }
        self.tax.push(self.dict.intern(&payload.taxonomy));
        self.src.push(self.dict.intern(&payload.source));
        self.model.push(self.dict.intern(&payload.model_version));
        self.payloads.push(Some(payload));
        self.by_id.insert(id.clone(), slot);
        self.ids.push(id);
        self.live += 1;
    }

    pub(super) fn contains(&self, id: &str, c: &Compiled<'_>) -> bool {
        !c.never
            && self
                .by_id
                .get(id)
                .is_some_and(|&slot| self.matches(c, slot))
    }

    pub(super) fn remove(&mut self, id: &str) {
        if let Some(slot) = self.by_id.remove(id) {
            self.retire(slot);
        }
    }

    /// Marks a slot dead (its point was replaced or deleted).
    fn retire(&mut self, slot: usize) {
        self.payloads[slot] = None;
        self.tax[slot] = DEAD;
        self.live -= 1;
    }

    pub(super) fn compile<'a>(&self, f: &'a Filter) -> Compiled<'a> {
        let mut never = false;
        let mut lookup = |s: &str| {
            let v = self.dict.get(s);
            if v.is_none() {
                never = true;
            }
            v.unwrap_or(u32::MAX)
        };
        let tax = f.taxonomy.as_deref().map(&mut lookup);
        let model = f.model_version.as_deref().map(&mut lookup);
        let srcs = f.sources.as_ref().map(|s| {
            s.iter()
                .filter_map(|s| self.dict.get(s))
                .collect::<Vec<_>>()
        });
        if srcs.as_ref().is_some_and(|s| s.is_empty()) {
            never = true;
        }
        Compiled {
            never,
            tax,
            srcs,
            model,
            prefix: f.code_prefix.as_deref(),
        }
    }

    #[inline(always)]
    pub(super) fn matches(&self, c: &Compiled<'_>, slot: usize) -> bool {
        // The interned columns first: the payload (a cache line per row) only for a prefix.
        self.tax[slot] != DEAD
            && c.tax.is_none_or(|t| self.tax[slot] == t)
            && c.model.is_none_or(|m| self.model[slot] == m)
            && c.srcs.as_ref().is_none_or(|s| s.contains(&self.src[slot]))
            && c.prefix.is_none_or(|pre| {
                self.payloads[slot]
                    .as_ref()
                    .is_some_and(|p| p.code.starts_with(pre))
            })
    }

    pub(super) fn count(&self, f: &Filter) -> usize {
        if f.is_empty() {
            return self.live;
        }
        let c = self.compile(f);
        if c.never {
            return 0;
        }
        (0..self.slots()).filter(|&s| self.matches(&c, s)).count()
    }

    /// Top-k over slots in `range` that pass `c`: (score, slot), unsorted; the scores are the
    /// exact f32 query · int8 row ones. With `codes`, the first pass ranks by the 4-bit codes
    /// and [`candidates`] of them are scored exactly (the search path); without, by an integer
    /// dot over the int8 rows that errs by ~1e-5 and `k + 16` are scored exactly (the ground
    /// truth of `search_exact_blocking`).
    pub(super) fn exact_range(
        &self,
        q: &[f32],
        k: usize,
        c: &Compiled<'_>,
        range: std::ops::Range<usize>,
        parallel_min: usize,
        codes: bool,
    ) -> Vec<(f32, usize)> {
        const CHUNK: usize = 8192;
        let first = match (&self.codes, codes) {
            (Some(codes), true) => FirstPass::Codes(Query4::new(q), codes),
            _ => FirstPass::Int8(QueryI16::new(q)),
        };
        let wide = match first {
            FirstPass::Codes(..) => candidates(k),
            FirstPass::Int8(_) => k.saturating_add(RESCORE_MARGIN),
        };
        let mut all = if range.len() >= parallel_min {
            let starts: Vec<usize> = range.clone().step_by(CHUNK).collect();
            let parts: Vec<Vec<(f32, usize)>> = starts
                .par_iter()
                .map(|&s| self.scan(&first, wide, c, s..(s + CHUNK).min(range.end)))
                .collect();
            let mut all: Vec<(f32, usize)> = parts.into_iter().flatten().collect();
            top_k(&mut all, wide);
            all
        } else {
            self.scan(&first, wide, c, range)
        };
        let mut out: Vec<(f32, usize)> = all
            .drain(..)
            .map(|(_, slot)| (self.score(q, slot), slot))
            .collect();
        top_k(&mut out, k);
        out
    }

    fn scan(
        &self,
        q: &FirstPass<'_>,
        k: usize,
        c: &Compiled<'_>,
        range: std::ops::Range<usize>,
    ) -> Vec<(f32, usize)> {
        let mut out: Vec<(f32, usize)> = Vec::with_capacity(4 * k + 16);
        scan_best(self, q, k, c, range, &mut out);
        top_k(&mut out, k);
        out
    }

    pub(super) fn hit(&self, score: f32, slot: usize) -> Option<Hit> {
        self.payloads[slot].as_ref().map(|p| Hit {
            id: self.ids[slot].clone(),
            score,
            payload: p.clone(),
        })
    }
}

/// Candidates beyond `k` that the integer scan passes on to be scored exactly.
const RESCORE_MARGIN: usize = 16;

/// The query as 16-bit integers, scaled so its largest component is ±32 767 (an error of at
/// most 1/65 534 of that component; rows are int8, so a product sum stays far inside i32:
/// 384 · 127 · 32 767 < 2³¹).
pub(super) struct QueryI16 {
    q: Vec<i16>,
}

impl QueryI16 {
    fn new(q: &[f32]) -> Self {
        let max = q.iter().fold(0f32, |m, x| m.max(x.abs()));
        let s = if max > 0.0 { 32767.0 / max } else { 0.0 };
        Self {
            q: q.iter().map(|x| (x * s).round() as i16).collect(),
        }
    }
}

/// The query of a scan's first pass.
pub(super) enum FirstPass<'a> {
    /// Over the 4-bit codes.
    Codes(Query4, &'a Codes),
    /// Over the int8 rows.
    Int8(QueryI16),
}

/// The scan's loop: ranks the matching rows of `range` by `score` (proportional to the true
/// score up to the first pass's error), keeping the best `k` in `out`.
#[inline(always)]
fn scan_loop(
    mem: &Mem,
    k: usize,
    c: &Compiled<'_>,
    range: std::ops::Range<usize>,
    out: &mut Vec<(f32, usize)>,
    score: impl Fn(usize) -> f32,
) {
    // Rows below the k-th best kept so far cannot enter: only the rest are pushed and
    // selected from.
    let mut floor = f32::NEG_INFINITY;
    for slot in range {
        if !mem.matches(c, slot) {
            continue;
        }
        let sc = score(slot);
        if sc < floor {
            continue;
        }
        out.push((sc, slot));
        if out.len() >= 4 * k + 16 {
            top_k(out, k);
            floor = out.iter().map(|e| e.0).fold(f32::INFINITY, f32::min);
        }
    }
}

/// [`scan_loop`] with the best dot product this CPU has. Search of 63 000 rows, k = 50, p50
/// over 300 queries on the 2-core AMD EPYC of session 12 (`cargo run --release -p
/// touxiang-vectors --example vector_bench -- --sizes 63000 --queries 300 --hnsw-max 0 --k
/// 50`): f32 query × int8 row as floats 1.75 ms; the i16 query with AVX2 `vpmaddwd` 1.4 ms
/// (the compiler, left to itself, widened to 32 bits and used `vpmulld`: 1.5 ms); the 4-bit
/// codes see `crate::embedded::codes`. The crate forbids `unsafe`, hence pulp's safe wrappers.
fn scan_best(
    mem: &Mem,
    q: &FirstPass<'_>,
    k: usize,
    c: &Compiled<'_>,
    range: std::ops::Range<usize>,
    out: &mut Vec<(f32, usize)>,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(simd) = *V3 {
            // Runs the closure with AVX2 enabled, so the loop and the dot inline with it.
            return match q {
                FirstPass::Codes(q, codes) => simd.vectorize(|| {
                    let score = |s| q.dot_v3(simd, codes.row(s)) as f32 * codes.scale(s);
                    scan_loop(mem, k, c, range, out, score)
                }),
                FirstPass::Int8(q) => simd.vectorize(|| {
                    let score = |s| dot_i16_v3(simd, &q.q, mem.qrow(s)) as f32 * mem.scales[s];
                    scan_loop(mem, k, c, range, out, score)
                }),
            };
        }
    }
    match q {
        FirstPass::Codes(q, codes) => {
            let score = |s| q.dot(codes.row(s)) as f32 * codes.scale(s);
            scan_loop(mem, k, c, range, out, score)
        }
        FirstPass::Int8(q) => {
            let score = |s| dot_i16(&q.q, mem.qrow(s)) as f32 * mem.scales[s];
            scan_loop(mem, k, c, range, out, score)
        }
    }
}

/// AVX2 + FMA, when the CPU has them (pulp's safe wrappers of the intrinsics).
#[cfg(target_arch = "x86_64")]
static V3: std::sync::LazyLock<Option<pulp::x86::V3>> =
    std::sync::LazyLock::new(pulp::x86::V3::try_new);

/// Integer dot product of an i16 query with an int8 row (portable).
fn dot_i16(a: &[i16], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum()
}

/// [`dot_i16`] with AVX2: 16 row bytes widened to i16 (`vpmovsxbw`), multiplied with the query
/// and summed in pairs into i32 (`vpmaddwd`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn dot_i16_v3(simd: pulp::x86::V3, a: &[i16], b: &[i8]) -> i32 {
    use std::arch::x86_64::{__m128i, __m256i};
    let x = simd.avx2;
    let (qa, qr) = pulp::as_arrays::<16, _>(a);
    let (ra, rr) = pulp::as_arrays::<16, _>(b);
    let mut acc: __m256i = pulp::cast([0i32; 8]);
    for (q, r) in qa.iter().zip(ra) {
        let q: __m256i = pulp::cast(*q);
        let r: __m128i = pulp::cast(*r);
        acc = x._mm256_add_epi32(acc, x._mm256_madd_epi16(q, x._mm256_cvtepi8_epi16(r)));
    }
    let lanes: [i32; 8] = pulp::cast(acc);
    lanes.iter().sum::<i32>() + dot_i16(qr, rr)
}

/// Keeps the `k` best (highest score) entries of `v`, unsorted.
pub(super) fn top_k(v: &mut Vec<(f32, usize)>, k: usize) {
    if v.len() > k {
        if k == 0 {
            v.clear();
            return;
        }
        v.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        v.truncate(k);
    }
}

/// Dot product of an f32 query with a row of f32 or int8 (unscaled), with 8 independent
/// accumulators so the compiler vectorises it.
#[inline(always)]
pub(crate) fn dot<T: Copy + Into<f32>>(a: &[f32], b: &[T]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i].into();
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * (*y).into();
    }
    s
}
