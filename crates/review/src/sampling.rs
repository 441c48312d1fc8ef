//! Routing helpers: which classified items go to review, and rate sampling.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use touxiang_datasets::Decision;

use crate::{Reason, ReviewError};

/// Bernoulli sampler at a configurable rate with an injectable RNG; `&self` methods, so one
/// instance can be shared by request handlers (`Sync` when `R: Send`). Used for QA samples of
/// `auto` decisions and for the double-review share.
pub struct Sampler<R = StdRng> {
    rate_bits: AtomicU64,
    rng: Mutex<R>,
}

fn check_rate(rate: f64) -> Result<f64, ReviewError> {
    if rate.is_finite() && (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(ReviewError::InvalidInput {
            field: "rate",
            message: format!("must be within 0..=1, got {rate}"),
        })
    }
}

impl Sampler<StdRng> {
    /// A sampler seeded from the operating system.
    pub fn from_os(rate: f64) -> Result<Self, ReviewError> {
        Self::new(rate, StdRng::from_os_rng())
    }

    /// A reproducible sampler (tests, replays).
    pub fn seeded(rate: f64, seed: u64) -> Result<Self, ReviewError> {
        Self::new(rate, StdRng::seed_from_u64(seed))
    }
}

impl<R: Rng> Sampler<R> {
    /// A sampler drawing from `rng`; `rate` must be within 0..=1.
    pub fn new(rate: f64, rng: R) -> Result<Self, ReviewError> {
        Ok(Sampler {
            rate_bits: AtomicU64::new(check_rate(rate)?.to_bits()),
            rng: Mutex::new(rng),
        })
    }

    /// Current rate.
    pub fn rate(&self) -> f64 {
        f64::from_bits(self.rate_bits.load(Ordering::Relaxed))
    }

    /// Change the rate at run time (admin setting).
    pub fn set_rate(&self, rate: f64) -> Result<(), ReviewError> {
        self.rate_bits
            .store(check_rate(rate)?.to_bits(), Ordering::Relaxed);
        Ok(())
    }

    /// Draw: `true` with probability `rate` (never at 0, always at 1).
    pub fn sample(&self) -> bool {
        let rate = self.rate();
        if rate <= 0.0 {
            return false;
        }
        if rate >= 1.0 {
            return true;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        rng.random_bool(rate)
    }
}

/// Should a classified item go to review, and why?
///
/// * `decision == Review` → [`Reason::Review`];
/// * else, when the classifier's path and the neighbour vote's path (both root first) differ at
///   a depth both reach → [`Reason::Disagreement`] (a coarser label that is an ancestor of the
///   other is not a disagreement; an empty vote path means no vote);
/// * else, when `qa` draws true → [`Reason::QaSample`] (the QA draw is made only for items that
///   would otherwise be auto-accepted, so the QA rate is a share of `auto` decisions);
/// * else `None` (auto).
pub fn review_reason<R: Rng>(
    decision: Decision,
    classifier_path: &[&str],
    vote_path: &[&str],
    qa: &Sampler<R>,
) -> Option<Reason> {
    if decision == Decision::Review {
        return Some(Reason::Review);
    }
    let disagree = classifier_path
        .iter()
        .zip(vote_path.iter())
        .any(|(a, b)| a != b);
    if disagree {
        return Some(Reason::Disagreement);
    }
    if qa.sample() {
        return Some(Reason::QaSample);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_bounds_and_extremes() {
        assert!(Sampler::seeded(-0.1, 1).is_err());
        assert!(Sampler::seeded(f64::NAN, 1).is_err());
        assert!(Sampler::seeded(1.5, 1).is_err());
        let s = Sampler::seeded(0.0, 1).unwrap();
        assert!((0..1000).all(|_| !s.sample()));
        s.set_rate(1.0).unwrap();
        assert!((0..1000).all(|_| s.sample()));
        assert!(s.set_rate(2.0).is_err());
        assert_eq!(s.rate(), 1.0);
    }

    #[test]
    fn rate_is_respected_and_seed_reproducible() {
        let a = Sampler::seeded(0.05, 42).unwrap();
        let b = Sampler::seeded(0.05, 42).unwrap();
        let xs: Vec<bool> = (0..20_000).map(|_| a.sample()).collect();
        let ys: Vec<bool> = (0..20_000).map(|_| b.sample()).collect();
        assert_eq!(xs, ys);
        let share = xs.iter().filter(|x| **x).count() as f64 / xs.len() as f64;
        // 20 000 draws at p = 0.05: sd ≈ 0.0015; allow > 4 sd.
        assert!((share - 0.05).abs() < 0.007, "share {share}");
    }

    #[test]
    fn routing() {
        let never = Sampler::seeded(0.0, 1).unwrap();
        let always = Sampler::seeded(1.0, 1).unwrap();
        let cls = ["H", "62", "629", "6291"];
        assert_eq!(
            review_reason(Decision::Review, &cls, &cls, &never),
            Some(Reason::Review)
        );
        assert_eq!(review_reason(Decision::Auto, &cls, &cls, &never), None);
        assert_eq!(
            review_reason(Decision::Auto, &cls, &["H", "62", "621", "6210"], &never),
            Some(Reason::Disagreement)
        );
        // A coarser vote on the same branch agrees; no vote agrees.
        assert_eq!(
            review_reason(Decision::Auto, &cls, &["H", "62"], &never),
            None
        );
        assert_eq!(review_reason(Decision::Auto, &cls, &[], &never), None);
        assert_eq!(
            review_reason(Decision::Auto, &cls, &cls, &always),
            Some(Reason::QaSample)
        );
    }
}
