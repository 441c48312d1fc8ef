//! A deterministic synthetic Chinese loan book (seeded ChaCha8 RNG) and the benchmark.
//!
//! The book is realistic in shape: GB/T 4754-2017 class codes weighted toward manufacturing,
//! wholesale/retail (F) and construction (E); GB/T 2260 region codes given at county, city or 6-digit
//! province spelling, weighted toward the large provinces; customer types 大型/中型/小型/微型企业,
//! 个体工商户, 个人; products matching the customer type; monthly snapshots (month-end `as_of_date`)
//! in which balances amortise and overdue days evolve (a loan stays overdue with probability 0.6,
//! its days growing by 30; a current loan falls overdue with its risk `p`; six burn-in months
//! precede the first snapshot so the book starts near its steady state). Optionally a **shock**
//! quadruples the risk of 建筑业 (section E) loans in 广东 (44) in the last month, so early warnings have
//! something known to find.

use serde::Serialize;

mod benchmark;
mod book;
mod csv_book;
mod labeler;

pub use benchmark::{bench, BenchReport};
pub use book::{generate, CUSTOMER_TYPES};
pub use csv_book::{write_csv, write_rows_csv};
pub use labeler::NameMatchLabeler;

/// Parameters of a synthetic book.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SynthSpec {
    /// Distinct loans (each appears in every monthly snapshot).
    pub loans: usize,
    /// Monthly snapshots (month-ends from `first_month`).
    pub months: usize,
    /// RNG seed.
    pub seed: u64,
    /// Share of rows whose `industry_code` is left empty (to be labeled on ingest).
    pub unlabeled_share: f64,
    /// First snapshot month (year, month).
    pub first_month: (i32, u32),
    /// Quadruple the risk of E 建筑业 × 44 广东 in the last month.
    pub shock: bool,
}

impl Default for SynthSpec {
    fn default() -> Self {
        SynthSpec {
            loans: 10_000,
            months: 3,
            seed: 42,
            unlabeled_share: 0.0,
            first_month: (2025, 1),
            shock: false,
        }
    }
}

/// One generated loan snapshot row (canonical columns as strings, as written to CSV).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SynthLoan {
    /// loan_id.
    pub loan_id: String,
    /// purpose_text.
    pub purpose_text: String,
    /// amount.
    pub amount: f64,
    /// balance.
    pub balance: f64,
    /// overdue_days.
    pub overdue_days: u32,
    /// region_code as written (county, city, or 6-digit province form).
    pub region_code: String,
    /// The county the loan really sits in.
    pub county: String,
    /// customer_type.
    pub customer_type: &'static str,
    /// product.
    pub product: &'static str,
    /// issue_date.
    pub issue_date: String,
    /// as_of_date.
    pub as_of_date: String,
    /// industry_code column value (empty when left for the labeler).
    pub industry_code: String,
    /// The true class code (what a correct labeler returns).
    pub true_class: String,
    /// An extra column (kept as attribute).
    pub branch: String,
}
