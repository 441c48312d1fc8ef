//! Elementwise loops compiled for AVX2+FMA when the CPU has them (the crate itself targets
//! baseline x86-64, where these loops would run 4-wide without FMA, or not vectorize at all).

/// Whether the AVX2+FMA builds may run: the CPU has them and `TOUXIANG_KERNEL` does not
/// ask for the scalar path (one decision, [`super::Isa::detect`], for every SIMD path).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn avx2_fma() -> bool {
    super::Isa::detect() != super::Isa::Scalar
}

/// `x[i] = f(x[i])`.
#[inline(always)]
pub fn map(x: &mut [f32], f: impl Fn(f32) -> f32 + Copy) {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2_fma() {
            // SAFETY: `avx2_fma` checked the features.
            return unsafe { map_avx2(x, f) };
        }
    }
    x.iter_mut().for_each(|v| *v = f(*v));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn map_avx2(x: &mut [f32], f: impl Fn(f32) -> f32 + Copy) {
    x.iter_mut().for_each(|v| *v = f(*v));
}

/// Run `f` compiled with AVX2+FMA enabled when available (for closures whose loops should
/// vectorize with them; `f` must be `#[inline(always)]`-friendly).
#[inline(always)]
pub fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2_fma() {
            // SAFETY: `avx2_fma` checked the features.
            return unsafe { call_avx2(f) };
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn call_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}
