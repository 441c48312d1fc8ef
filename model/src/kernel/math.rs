//! Fast elementwise math in f32: `exp`, `erf` and the exact GELU (branch-free, so loops over
//! slices vectorize).

use rayon::prelude::*;

use super::simd;

/// `eˣ` in f32 (Cephes `expf`: Cody–Waite reduction, degree-6 polynomial, ~1 ulp), written
/// branch-free so loops over slices vectorize; inputs are clamped to the finite range.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5·2²³: adding it rounds to an integer in the low bits
    let x = x.clamp(-87.0, 88.0);
    let kb = x * std::f32::consts::LOG2_E + MAGIC;
    let k = kb - MAGIC;
    let r = x - k * 0.693_359_4 - k * -2.121_944_4e-4;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_65;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^k from the integer k held in kb's mantissa (integer ops only, so this vectorizes).
    let ki = kb.to_bits().wrapping_sub(MAGIC.to_bits()) as i32;
    f32::from_bits((ki.wrapping_add(127) << 23) as u32) * y
}

/// `erf(x)`, Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5·10⁻⁷), branch-free.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let p = 1.061_405_4_f32;
    let p = p * t - 1.453_152;
    let p = p * t + 1.421_413_8;
    let p = p * t - 0.284_496_74;
    let p = p * t + 0.254_829_6;
    let y = 1.0 - p * t * exp(-a * a);
    y.copysign(x)
}

/// Exact (erf) GELU: `x · Φ(x)`, to within 10⁻⁷·|x|.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GELU in place over a slice (vectorized; parallel when large).
pub fn gelu_slice(x: &mut [f32]) {
    const CHUNK: usize = 16 * 1024;
    let f = |c: &mut [f32]| simd::map(c, gelu);
    if x.len() > 2 * CHUNK {
        x.par_chunks_mut(CHUNK).for_each(f);
    } else {
        f(x);
    }
}
