//! Quantizing one token's activations to Q8_0 in the packed lane layout.

#[cfg(target_arch = "x86_64")]
use super::simd;
use super::{Layout, QK};

/// Round to nearest (ties to even) for |v| < 2²²: branch-free and vectorizable, unlike
/// `round_ties_even` which is a libm call on baseline x86-64. (Reference for [`round_to_i8`].)
#[cfg(test)]
pub(super) fn round_small(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC) - MAGIC
}

/// `round_small(v) as i8` for v in [−128, 127], with integer ops only: after adding 1.5·2²³
/// the low mantissa byte is the rounded value in two's complement.
#[inline(always)]
pub(super) fn round_to_i8(v: f32) -> i8 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC).to_bits() as u8 as i8
}

/// Quantize one token's activations into the packed layout (see
/// [`PackedLinear::quantize`](super::PackedLinear::quantize)).
pub(super) fn quantize_row(
    lay: &Layout,
    row: &[f32],
    q: &mut [i8],
    d: &mut [f32],
    init: &mut [i32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if simd::avx2_fma() {
            // SAFETY: `avx2_fma` checked the features.
            return unsafe { quantize_row_avx2(lay, row, q, d, init) };
        }
    }
    quantize_row_generic(lay, row, q, d, init)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_row_avx2(
    lay: &Layout,
    row: &[f32],
    q: &mut [i8],
    d: &mut [f32],
    init: &mut [i32],
) {
    quantize_row_generic(lay, row, q, d, init)
}

#[inline(always)]
fn quantize_row_generic(lay: &Layout, row: &[f32], q: &mut [i8], d: &mut [f32], init: &mut [i32]) {
    let (n, lanes) = (lay.n, lay.lanes());
    let mut natural = [0i8; 4096];
    let natural = &mut natural[..n];
    let mut bscale = [0f32; 128];
    for (b, (xs, qs)) in row
        .chunks_exact(QK)
        .zip(natural.chunks_exact_mut(QK))
        .enumerate()
    {
        let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
        let s = amax / 127.0;
        let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
        for (o, v) in qs.iter_mut().zip(xs) {
            *o = round_to_i8((v * inv).clamp(-127.0, 127.0));
        }
        bscale[b] = s;
    }
    for (dst, &src) in q.chunks_exact_mut(4).zip(&lay.chunk_perm) {
        dst.copy_from_slice(&natural[src as usize * 4..][..4]);
    }
    for l in 0..lanes {
        d[l] = bscale[lay.lane_block[l] as usize];
        let (s, len) = lay.lane_range[l];
        let sum: i32 = natural[s as usize..(s + len) as usize]
            .iter()
            .map(|&v| v as i32)
            .sum();
        init[l] = -8 * sum;
    }
}
