//! 4-bit codes of the int8 rows: the exact scan's first pass reads these (half the bytes), and
//! only its best candidates are scored from the int8 rows.
//!
//! Why: a neighbour search over the 62 969 shipped exemplars read 24 MB of int8 rows per query,
//! more than this machine's 16 MB L3; memory bound, it took ~2 ms on two cores and, running
//! beside another request's encoder pass, slowed that too. Serving paced single-item classify
//! (`wrk -t1 -c4 -d40s --latency -s eval/bench/classify_paced.lua URL -- 60 4`) measured p99
//! 34.4 ms with the int8 scan and 24.9 ms with no neighbour search at all.
//!
//! The code of a row is its int8 values re-quantized to 4 bits with a scale of their own
//! (`u = round(x · 7 / max|x|) + 8`, 1..=15); value `j` of the first half and value `j` of the
//! second share byte `j` (low and high nibble). The query is quantized to int8. A code score
//! errs by about 0.01 in cosine (one 4-bit step is a seventh of the row's largest value),
//! while the best neighbours of a query sit within a few hundredths of each other: the first
//! pass keeps [`candidates`] rows, many more than asked for, and the final `k` come from
//! scoring those exactly (see `crate::embedded::mem`).
//!
//! Checked on the served store (62 969 exemplar vectors) with `cargo run --release -p
//! touxiang-vectors --example first_pass_check -- STORE_DIR N K` (stored vectors plus noise as
//! queries): the same top-k scores as scoring every int8 row for 600/600 queries at k 10 and
//! 300/300 at k 20 and 50 (with `8·k` candidates instead of `32·k`: 276/300 at k 50); p50 per
//! search 0.89 against 1.05 ms (k 10). Served (same paced classify load as above): p99 31–33
//! ms against 34.4 ms.

/// How many first-pass candidates are scored exactly for a search of `k`.
pub(super) fn candidates(k: usize) -> usize {
    k.saturating_mul(32).max(k.saturating_add(512))
}

/// The 4-bit codes of every row, appended as rows are.
pub(super) struct Codes {
    /// Half the dimension: bytes per row.
    half: usize,
    bytes: Vec<u8>,
    /// Per row: the float value of one code step.
    scales: Vec<f32>,
}

impl Codes {
    /// Codes for rows of `dim` values; `None` for an odd dimension (the scan then reads the int8
    /// rows directly).
    pub(super) fn new(dim: usize) -> Option<Self> {
        (dim > 0 && dim.is_multiple_of(2)).then(|| Self {
            half: dim / 2,
            bytes: Vec::new(),
            scales: Vec::new(),
        })
    }

    pub(super) fn reserve(&mut self, rows: usize) {
        self.bytes.reserve(rows * self.half);
        self.scales.reserve(rows);
    }

    /// Appends the code of an int8 row whose values are worth `scale` each.
    pub(super) fn push(&mut self, row: &[i8], scale: f32) {
        let max = row.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
        let (step, inv) = if max > 0 {
            (f32::from(max) / 7.0, 7.0 / f32::from(max))
        } else {
            (1.0, 0.0)
        };
        let u = |v: i8| ((f32::from(v) * inv).round().clamp(-7.0, 7.0) as i32 + 8) as u8;
        let (lo, hi) = row.split_at(self.half);
        self.bytes
            .extend(lo.iter().zip(hi).map(|(&a, &b)| u(a) | (u(b) << 4)));
        self.scales.push(step * scale);
    }

    #[inline(always)]
    pub(super) fn row(&self, slot: usize) -> &[u8] {
        &self.bytes[slot * self.half..(slot + 1) * self.half]
    }

    #[inline(always)]
    pub(super) fn scale(&self, slot: usize) -> f32 {
        self.scales[slot]
    }
}

/// A query for the code pass: int8 halves matching the code layout, and the correction for the
/// codes' +8 offset.
pub(super) struct Query4 {
    lo: Vec<i8>,
    hi: Vec<i8>,
    offset: i32,
}

impl Query4 {
    pub(super) fn new(q: &[f32]) -> Self {
        let max = q.iter().fold(0f32, |m, x| m.max(x.abs()));
        let s = if max > 0.0 { 127.0 / max } else { 0.0 };
        let q8: Vec<i8> = q
            .iter()
            .map(|x| (x * s).round().clamp(-127.0, 127.0) as i8)
            .collect();
        let half = q8.len() / 2;
        let offset = -8 * q8.iter().map(|&v| i32::from(v)).sum::<i32>();
        Self {
            lo: q8[..half].to_vec(),
            hi: q8[half..2 * half].to_vec(),
            offset,
        }
    }

    /// `Σ (u − 8) · q` over a code row (portable).
    pub(super) fn dot(&self, code: &[u8]) -> i32 {
        nibble_dot(code, &self.lo, &self.hi) + self.offset
    }

    /// [`Query4::dot`] with AVX2: nibbles split with a mask and a shift, multiplied with the
    /// query bytes and summed in pairs (`vpmaddubsw`: |pair| ≤ 2 · 15 · 127, two of them fit
    /// i16), then widened (`vpmaddwd`).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(super) fn dot_v3(&self, simd: pulp::x86::V3, code: &[u8]) -> i32 {
        use std::arch::x86_64::__m256i;
        let x = simd.avx2;
        let (cs, cr) = pulp::as_arrays::<32, _>(code);
        let (ls, lr) = pulp::as_arrays::<32, _>(&self.lo);
        let (hs, hr) = pulp::as_arrays::<32, _>(&self.hi);
        let nib: __m256i = pulp::cast([15u8; 32]);
        let ones: __m256i = pulp::cast([1i16; 16]);
        let mut acc: __m256i = pulp::cast([0i32; 8]);
        for ((c, l), h) in cs.iter().zip(ls).zip(hs) {
            let c: __m256i = pulp::cast(*c);
            let lo = x._mm256_and_si256(c, nib);
            let hi = x._mm256_and_si256(x._mm256_srli_epi16::<4>(c), nib);
            let p = x._mm256_add_epi16(
                x._mm256_maddubs_epi16(lo, pulp::cast(*l)),
                x._mm256_maddubs_epi16(hi, pulp::cast(*h)),
            );
            acc = x._mm256_add_epi32(acc, x._mm256_madd_epi16(p, ones));
        }
        let lanes: [i32; 8] = pulp::cast(acc);
        lanes.iter().sum::<i32>() + nibble_dot(cr, lr, hr) + self.offset
    }
}

/// `Σ low nibble · lo + high nibble · hi` over code bytes (without the +8 offset).
fn nibble_dot(code: &[u8], lo: &[i8], hi: &[i8]) -> i32 {
    code.iter()
        .zip(lo.iter().zip(hi))
        .map(|(&c, (&l, &h))| i32::from(c & 15) * i32::from(l) + i32::from(c >> 4) * i32::from(h))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_scores_track_the_int8_scores() {
        let dim = 384;
        let mut codes = Codes::new(dim).unwrap();
        let mut s = 7u32;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 255) as i32 - 127
        };
        let rows: Vec<Vec<i8>> = (0..50)
            .map(|_| (0..dim).map(|_| next() as i8).collect())
            .collect();
        for r in &rows {
            codes.push(r, 0.01);
        }
        let q: Vec<f32> = (0..dim).map(|_| next() as f32 / 127.0).collect();
        let q4 = Query4::new(&q);
        for (slot, r) in rows.iter().enumerate() {
            let exact: f32 = r
                .iter()
                .zip(&q)
                .map(|(&a, b)| f32::from(a) * 0.01 * b)
                .sum();
            let d = q4.dot(codes.row(slot));
            #[cfg(target_arch = "x86_64")]
            if let Some(simd) = pulp::x86::V3::try_new() {
                assert_eq!(q4.dot_v3(simd, codes.row(slot)), d);
            }
            let qscale = q.iter().fold(0f32, |m, x| m.max(x.abs())) / 127.0;
            let approx = d as f32 * codes.scale(slot) * qscale;
            // one 4-bit step is 127/7 int8 units: the error is a few steps' worth at most
            let bound = 0.01 * 18.2 * q.iter().map(|v| v.abs()).sum::<f32>();
            assert!((approx - exact).abs() <= bound, "{approx} vs {exact}");
        }
        assert!(Codes::new(383).is_none());
        assert_eq!(candidates(10), 522);
    }
}
