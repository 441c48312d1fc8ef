//! The AVX2 and AVX-512 VNNI register tiles of the matrix multiply.

use super::{PackedLinear, QuantActs, LANES, QK, TILE_ROWS, TILE_TOKENS};
use std::arch::x86_64::*;

#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

macro_rules! tile_body {
    ($lin:ident, $acts:ident, $r:ident, $t:ident, $sums:ident, $R:ident, $T:ident, $dot:expr) => {{
        let (n, lanes) = ($lin.layout.n, $lin.layout.lanes());
        let wp: [*const u8; $R] = std::array::from_fn(|i| $lin.w.as_ptr().add(($r + i) * n));
        let wsp: [*const f32; $R] = std::array::from_fn(|i| $lin.ws.as_ptr().add(($r + i) * lanes));
        let ap: [*const i8; $T] = std::array::from_fn(|j| $acts.q.as_ptr().add(($t + j) * n));
        let adp: [*const f32; $T] = std::array::from_fn(|j| $acts.d.as_ptr().add(($t + j) * lanes));
        let ip: [*const i32; $T] =
            std::array::from_fn(|j| $acts.init.as_ptr().add(($t + j) * lanes));
        let mut acc = [[_mm256_setzero_ps(); $T]; $R];
        for (gi, &(off, g)) in $lin.layout.groups.iter().enumerate() {
            let lo = gi * LANES;
            let mut isum: [[__m256i; $T]; $R] = [[_mm256_setzero_si256(); $T]; $R];
            for j in 0..$T {
                let init = _mm256_loadu_si256(ip[j].add(lo) as *const __m256i);
                for i in 0..$R {
                    isum[i][j] = init;
                }
            }
            for k in 0..g {
                let p = off + k * QK;
                let av: [__m256i; $T] =
                    std::array::from_fn(|j| _mm256_loadu_si256(ap[j].add(p) as *const __m256i));
                for i in 0..$R {
                    let wv = _mm256_loadu_si256(wp[i].add(p) as *const __m256i);
                    for j in 0..$T {
                        isum[i][j] = $dot(isum[i][j], wv, av[j]);
                    }
                }
            }
            let ad: [__m256; $T] = std::array::from_fn(|j| _mm256_loadu_ps(adp[j].add(lo)));
            for i in 0..$R {
                let ws = _mm256_loadu_ps(wsp[i].add(lo));
                for j in 0..$T {
                    acc[i][j] = _mm256_fmadd_ps(
                        _mm256_cvtepi32_ps(isum[i][j]),
                        _mm256_mul_ps(ws, ad[j]),
                        acc[i][j],
                    );
                }
            }
        }
        for i in 0..$R {
            for j in 0..$T {
                $sums[i][j] = hsum(acc[i][j]);
            }
        }
    }};
}

#[inline(always)]
unsafe fn dot_vnni(acc: __m256i, w: __m256i, a: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(acc, w, a)
}

/// # Safety
/// The CPU must have AVX-512 VNNI + VL, AVX2 and FMA; rows/tokens in range.
#[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512vnni")]
pub(super) unsafe fn tile_vnni<const R: usize, const T: usize>(
    lin: &PackedLinear,
    acts: &QuantActs,
    r: usize,
    t: usize,
    sums: &mut [[f32; TILE_TOKENS]; TILE_ROWS],
) {
    tile_body!(lin, acts, r, t, sums, R, T, dot_vnni)
}

/// # Safety
/// The CPU must have AVX2 and FMA; rows/tokens in range.
///
/// Not the VNNI body with `vpmaddubsw`+`vpmaddwd` in place of `vpdpbusd`: with 16 vector
/// registers a tile of `R·T` 32-bit accumulators plus `R·T` float sums spills. Here the
/// `vpmaddubsw` pair sums of a group (≤ 8 vectors) are added as 16-bit integers — each pair sum
/// is at most 2·15·127 = 3 810 in magnitude, eight of them 30 480 < 2¹⁵, so nothing wraps — and
/// widened with one `vpmaddwd` per group instead of one per vector: the same integer sums with a
/// third fewer instructions, and only `R·T` registers live in the inner loop.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn tile_avx2<const R: usize, const T: usize>(
    lin: &PackedLinear,
    acts: &QuantActs,
    r: usize,
    t: usize,
    sums: &mut [[f32; TILE_TOKENS]; TILE_ROWS],
) {
    let (n, lanes) = (lin.layout.n, lin.layout.lanes());
    let wp: [*const u8; R] = std::array::from_fn(|i| lin.w.as_ptr().add((r + i) * n));
    let wsp: [*const f32; R] = std::array::from_fn(|i| lin.ws.as_ptr().add((r + i) * lanes));
    let ap: [*const i8; T] = std::array::from_fn(|j| acts.q.as_ptr().add((t + j) * n));
    let adp: [*const f32; T] = std::array::from_fn(|j| acts.d.as_ptr().add((t + j) * lanes));
    let ip: [*const i32; T] = std::array::from_fn(|j| acts.init.as_ptr().add((t + j) * lanes));
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); T]; R];
    for (gi, &(off, g)) in lin.layout.groups.iter().enumerate() {
        let lo = gi * LANES;
        let mut s16: [[__m256i; T]; R] = [[_mm256_setzero_si256(); T]; R];
        for k in 0..g {
            let p = off + k * QK;
            let av: [__m256i; T] =
                std::array::from_fn(|j| _mm256_loadu_si256(ap[j].add(p) as *const __m256i));
            for i in 0..R {
                let wv = _mm256_loadu_si256(wp[i].add(p) as *const __m256i);
                for j in 0..T {
                    s16[i][j] = _mm256_add_epi16(s16[i][j], _mm256_maddubs_epi16(wv, av[j]));
                }
            }
        }
        for j in 0..T {
            let init = _mm256_loadu_si256(ip[j].add(lo) as *const __m256i);
            let ad = _mm256_loadu_ps(adp[j].add(lo));
            for i in 0..R {
                let isum = _mm256_add_epi32(init, _mm256_madd_epi16(s16[i][j], ones));
                let ws = _mm256_loadu_ps(wsp[i].add(lo));
                acc[i][j] =
                    _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(ws, ad), acc[i][j]);
            }
        }
    }
    for i in 0..R {
        for j in 0..T {
            sums[i][j] = hsum(acc[i][j]);
        }
    }
}
