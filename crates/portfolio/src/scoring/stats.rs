//! The formulas: the beta-binomial moment fit of the prior strength, the shrunk rate and the
//! one-sided two-proportion z-test.

/// Upper bound of the prior strength κ (used when no between-segment variance is detectable).
pub const MAX_STRENGTH: f64 = 1.0e6;

/// Fit the beta-binomial prior strength κ by the method of moments over sibling segments given
/// as `(n_i, x_i)`; returns `(m, κ)`. `None` when fewer than `min_siblings` siblings have loans.
pub fn fit_prior_strength(siblings: &[(u64, u64)], min_siblings: usize) -> (f64, Option<f64>) {
    let n_tot: f64 = siblings.iter().map(|s| s.0 as f64).sum();
    let x_tot: f64 = siblings.iter().map(|s| s.1 as f64).sum();
    let m = if n_tot > 0.0 { x_tot / n_tot } else { 0.0 };
    let live: Vec<&(u64, u64)> = siblings.iter().filter(|s| s.0 > 0).collect();
    let k = live.len();
    if k < min_siblings.max(2) {
        return (m, None);
    }
    let s: f64 = live
        .iter()
        .map(|(n, x)| {
            let p = *x as f64 / *n as f64;
            *n as f64 * (p - m) * (p - m)
        })
        .sum();
    let sum_n2: f64 = live.iter().map(|(n, _)| (*n as f64) * (*n as f64)).sum();
    let denom = n_tot - sum_n2 / n_tot;
    let v = m * (1.0 - m);
    if v <= 0.0 || denom <= 0.0 {
        return (m, Some(MAX_STRENGTH));
    }
    let tau2 = ((s - (k as f64 - 1.0) * v) / denom).max(0.0);
    let kappa = if tau2 <= 0.0 {
        MAX_STRENGTH
    } else {
        (v / tau2 - 1.0).clamp(0.0, MAX_STRENGTH)
    };
    (m, Some(kappa))
}

/// Posterior mean `(x + κ m)/(n + κ)`.
pub fn shrink(x: u64, n: u64, m: f64, kappa: f64) -> f64 {
    let d = n as f64 + kappa;
    if d > 0.0 {
        (x as f64 + kappa * m) / d
    } else {
        m
    }
}

/// One-sided two-proportion z-test of `x_c/n_c > x_b/n_b`: `(z, p-value)`.
pub fn two_proportion_z(x_c: u64, n_c: u64, x_b: u64, n_b: u64) -> (f64, f64) {
    if n_c == 0 || n_b == 0 {
        return (0.0, 1.0);
    }
    let (pc, pb) = (x_c as f64 / n_c as f64, x_b as f64 / n_b as f64);
    let p = (x_c + x_b) as f64 / (n_c + n_b) as f64;
    let se = (p * (1.0 - p) * (1.0 / n_c as f64 + 1.0 / n_b as f64)).sqrt();
    if se <= 0.0 {
        return (0.0, 1.0);
    }
    let z = (pc - pb) / se;
    (z, 0.5 * libm::erfc(z / std::f64::consts::SQRT_2))
}
