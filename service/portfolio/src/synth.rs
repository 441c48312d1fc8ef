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

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustc_hash::FxHashMap;
use serde::Serialize;
use touxiang_datasets::{Decision, LabelError, LabelResult, Labeler, PathStep};

use crate::agg::{AggQuery, Dimension, OverdueDef};
use crate::error::Result;
use crate::ingest::{IngestMode, IngestOptions};
use crate::refdata::{china_counties, industry_classes, industry_path};
use crate::store::PortfolioStore;

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

/// Customer types used.
pub const CUSTOMER_TYPES: [&str; 6] = [
    "大型企业",
    "中型企业",
    "小型企业",
    "微型企业",
    "个体工商户",
    "个人",
];
const CUSTOMER_W: [f64; 6] = [0.05, 0.15, 0.30, 0.20, 0.15, 0.15];
const CUSTOMER_RISK: [f64; 6] = [0.4, 0.7, 1.0, 1.4, 1.3, 0.9];
const SECTION_W: [(&str, f64, f64); 20] = [
    // section, weight, base monthly risk of falling overdue
    ("A", 0.04, 0.012),
    ("B", 0.02, 0.010),
    ("C", 0.30, 0.008),
    ("D", 0.03, 0.003),
    ("E", 0.10, 0.012),
    ("F", 0.20, 0.010),
    ("G", 0.07, 0.008),
    ("H", 0.04, 0.014),
    ("I", 0.02, 0.006),
    ("J", 0.01, 0.004),
    ("K", 0.01, 0.003),
    ("L", 0.03, 0.009),
    ("M", 0.02, 0.006),
    ("N", 0.01, 0.007),
    ("O", 0.02, 0.011),
    ("P", 0.02, 0.004),
    ("Q", 0.01, 0.004),
    ("R", 0.02, 0.009),
    ("S", 0.01, 0.008),
    ("T", 0.02, 0.008),
];
const BIG_PROVINCES: [&str; 8] = ["44", "32", "33", "37", "11", "31", "51", "42"];
const TEMPLATES: [&str; 6] = [
    "用于{}业务，补充流动资金，采购原材料",
    "{}项目购置生产设备",
    "{}经营周转，支付货款",
    "扩建{}厂房",
    "{}门店日常经营",
    "支付{}相关工资及周转",
];
const PERSONAL_TEMPLATES: [&str; 4] = [
    "个人消费，从事{}工作，装修住房",
    "购车（本人从事{}）",
    "子女教育学费，本人从事{}",
    "个人经营，{}小店进货",
];

fn pick(rng: &mut ChaCha8Rng, w: &[f64]) -> usize {
    let t: f64 = w.iter().sum();
    let mut x = rng.random::<f64>() * t;
    for (i, v) in w.iter().enumerate() {
        if x < *v {
            return i;
        }
        x -= v;
    }
    w.len() - 1
}

struct LoanState {
    class: u16,
    county: u16,
    region_form: u8,
    customer: u8,
    product: &'static str,
    amount: f64,
    issue: chrono::NaiveDate,
    issue_s: String,
    template: u8,
    risk: f64,
    days: u32,
    unlabeled: bool,
    branch: u8,
}

fn month_end(y: i32, m: u32) -> chrono::NaiveDate {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    chrono::NaiveDate::from_ymd_opt(ny, nm, 1).expect("valid") - chrono::Duration::days(1)
}

/// Class codes with names unique in GB/T 4754 (so [`NameMatchLabeler`] is exact on them).
fn unique_classes() -> Vec<(String, String)> {
    static CACHE: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    CACHE.get_or_init(compute_unique_classes).clone()
}

fn compute_unique_classes() -> Vec<(String, String)> {
    let all = industry_classes();
    let mut count: FxHashMap<&str, usize> = FxHashMap::default();
    for (_, n) in &all {
        *count.entry(n.as_str()).or_default() += 1;
    }
    let names: Vec<&str> = all.iter().map(|(_, n)| n.as_str()).collect();
    all.iter()
        .filter(|(_, n)| {
            count[n.as_str()] == 1
                && n.chars().count() >= 3
                && !names.iter().any(|o| o != n && o.contains(n.as_str()))
        })
        .cloned()
        .collect()
}

/// Generate the book, calling `f` for each row: all loans of month 0, then month 1, ...
pub fn generate(spec: &SynthSpec, mut f: impl FnMut(&SynthLoan)) {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let classes = unique_classes();
    let sec_of: Vec<usize> = classes
        .iter()
        .map(|(c, _)| {
            let s = industry_path(c)
                .and_then(|p| p[0].clone())
                .unwrap_or_default();
            SECTION_W.iter().position(|(x, ..)| *x == s).unwrap_or(0)
        })
        .collect();
    let mut by_section: Vec<Vec<u16>> = vec![Vec::new(); SECTION_W.len()];
    for (i, s) in sec_of.iter().enumerate() {
        by_section[*s].push(i as u16);
    }
    let sec_w: Vec<f64> = SECTION_W
        .iter()
        .enumerate()
        .map(|(i, (_, w, _))| if by_section[i].is_empty() { 0.0 } else { *w })
        .collect();
    let counties = china_counties();
    let county_w: Vec<f64> = counties
        .iter()
        .map(|(c, _)| {
            if BIG_PROVINCES.contains(&&c[..2]) {
                4.0
            } else {
                1.0
            }
        })
        .collect();
    // cumulative weights for fast county sampling
    let mut cum = Vec::with_capacity(county_w.len());
    let mut acc = 0.0;
    for w in &county_w {
        acc += w;
        cum.push(acc);
    }
    let (y0, m0) = spec.first_month;
    let start = chrono::NaiveDate::from_ymd_opt(y0, m0, 1).expect("valid first month");
    let mut loans: Vec<LoanState> = (0..spec.loans)
        .map(|_| {
            let s = pick(&mut rng, &sec_w);
            let class = by_section[s][rng.random_range(0..by_section[s].len())];
            let x = rng.random::<f64>() * acc;
            let county = cum.partition_point(|c| *c <= x).min(counties.len() - 1) as u16;
            let customer = pick(&mut rng, &CUSTOMER_W) as u8;
            let personal = customer == 5;
            let product = if personal {
                ["个人消费贷款", "个人住房贷款", "个人经营贷款"][rng.random_range(0..3)]
            } else {
                ["流动资金贷款", "固定资产贷款", "项目贷款", "经营性贷款"][rng.random_range(0..4)]
            };
            let scale = [7.0, 6.5, 6.0, 5.5, 5.2, 5.0][customer as usize];
            let amount = (10f64.powf(scale - 0.5 + rng.random::<f64>()) / 1000.0).round() * 1000.0;
            let issue = start - chrono::Duration::days(rng.random_range(1..1095));
            let prov = &counties[county as usize].0[..2];
            let prov_mult = if ["44", "32", "33"].contains(&prov) {
                0.9
            } else if ["21", "22", "23"].contains(&prov) {
                1.4
            } else {
                1.0
            };
            let risk = SECTION_W[s].2 * CUSTOMER_RISK[customer as usize] * prov_mult;
            LoanState {
                issue_s: issue.format("%Y-%m-%d").to_string(),
                class,
                county,
                region_form: pick(&mut rng, &[0.7, 0.2, 0.1]) as u8,
                customer,
                product,
                amount,
                issue,
                template: rng.random_range(0..6) as u8,
                risk,
                days: 0,
                unlabeled: rng.random::<f64>() < spec.unlabeled_share,
                branch: rng.random_range(1..=20),
            }
        })
        .collect();
    let mut row = SynthLoan {
        loan_id: String::new(),
        purpose_text: String::new(),
        amount: 0.0,
        balance: 0.0,
        overdue_days: 0,
        region_code: String::new(),
        county: String::new(),
        customer_type: "",
        product: "",
        issue_date: String::new(),
        as_of_date: String::new(),
        industry_code: String::new(),
        true_class: String::new(),
        branch: String::new(),
    };
    // Burn-in: run the overdue dynamics for 6 months before the first snapshot so the book
    // starts near its steady state (otherwise every segment "deteriorates" in month 2).
    for _ in 0..6 {
        for l in loans.iter_mut() {
            l.days = if l.days > 0 {
                if rng.random::<f64>() < 0.6 {
                    l.days + 30
                } else {
                    0
                }
            } else if rng.random::<f64>() < l.risk {
                rng.random_range(1..30)
            } else {
                0
            };
        }
    }
    for m in 0..spec.months {
        let total = (m0 as usize - 1) + m;
        let (y, mm) = (y0 + (total / 12) as i32, (total % 12) as u32 + 1);
        let asof = month_end(y, mm);
        let asof_s = asof.format("%Y-%m-%d").to_string();
        let last = m + 1 == spec.months;
        for (i, l) in loans.iter_mut().enumerate() {
            let (code, name) = &classes[l.class as usize];
            let county = &counties[l.county as usize].0;
            let mut p = l.risk;
            if spec.shock && last && is_construction(code) && county.starts_with("44") {
                p *= 4.0;
            }
            l.days = if l.days > 0 {
                if rng.random::<f64>() < 0.6 {
                    l.days + 30
                } else {
                    0
                }
            } else if rng.random::<f64>() < p {
                rng.random_range(1..30)
            } else {
                0
            };
            let age_m = ((asof - l.issue).num_days() / 30) as f64;
            row.loan_id.clear();
            write!(FmtAdapter(&mut row.loan_id), "L{i:08}").expect("string write");
            let tpl = if l.customer == 5 {
                PERSONAL_TEMPLATES[l.template as usize % 4]
            } else {
                TEMPLATES[l.template as usize]
            };
            row.purpose_text = tpl.replace("{}", name);
            row.amount = l.amount;
            row.balance = (l.amount * (1.0 - 0.02 * age_m).max(0.1)).round();
            row.overdue_days = l.days;
            row.region_code = match l.region_form {
                0 => county.clone(),
                1 => county[..4].to_string(),
                _ => format!("{}0000", &county[..2]),
            };
            row.county = county.clone();
            row.customer_type = CUSTOMER_TYPES[l.customer as usize];
            row.product = l.product;
            row.issue_date.clone_from(&l.issue_s);
            row.as_of_date.clone_from(&asof_s);
            row.industry_code = if l.unlabeled {
                String::new()
            } else {
                code.clone()
            };
            row.true_class.clone_from(code);
            row.branch = format!("支行{:02}", l.branch);
            f(&row);
        }
    }
}

fn is_construction(code: &str) -> bool {
    // E 建筑业 = divisions 47-50
    matches!(&code[..2], "47" | "48" | "49" | "50")
}

struct FmtAdapter<'a>(&'a mut String);
impl std::io::Write for FmtAdapter<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .push_str(std::str::from_utf8(b).map_err(std::io::Error::other)?);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Write the book as CSV with the canonical header plus a `branch` attribute column; returns rows.
pub fn write_csv(spec: &SynthSpec, path: &Path) -> Result<u64> {
    let mut w = CsvBook::create(path)?;
    let mut res = Ok(());
    generate(spec, |r| {
        if res.is_ok() {
            res = w.write(r);
        }
    });
    res?;
    w.finish()
}

/// Write already generated rows as CSV (same layout as [`write_csv`]); returns rows.
pub fn write_rows_csv<'a>(
    rows: impl IntoIterator<Item = &'a SynthLoan>,
    path: &Path,
) -> Result<u64> {
    let mut w = CsvBook::create(path)?;
    for r in rows {
        w.write(r)?;
    }
    w.finish()
}

struct CsvBook {
    w: csv::Writer<std::io::BufWriter<std::fs::File>>,
    n: u64,
    buf: [String; 3],
}

fn csv_err(e: csv::Error) -> crate::error::PortfolioError {
    crate::error::PortfolioError::Csv(e.to_string())
}

impl CsvBook {
    fn create(path: &Path) -> Result<Self> {
        let file = std::fs::File::create(path)?;
        let mut w = csv::Writer::from_writer(std::io::BufWriter::with_capacity(1 << 20, file));
        w.write_record([
            "loan_id",
            "purpose_text",
            "amount",
            "balance",
            "overdue_days",
            "region_code",
            "customer_type",
            "product",
            "issue_date",
            "as_of_date",
            "industry_code",
            "branch",
        ])
        .map_err(csv_err)?;
        Ok(CsvBook {
            w,
            n: 0,
            buf: Default::default(),
        })
    }

    fn write(&mut self, r: &SynthLoan) -> Result<()> {
        use std::fmt::Write as _;
        let [a, b, d] = &mut self.buf;
        a.clear();
        b.clear();
        d.clear();
        let _ = write!(a, "{}", r.amount);
        let _ = write!(b, "{}", r.balance);
        let _ = write!(d, "{}", r.overdue_days);
        self.w
            .write_record([
                r.loan_id.as_str(),
                &r.purpose_text,
                a,
                b,
                d,
                &r.region_code,
                r.customer_type,
                r.product,
                &r.issue_date,
                &r.as_of_date,
                &r.industry_code,
                &r.branch,
            ])
            .map_err(csv_err)?;
        self.n += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<u64> {
        self.w.flush()?;
        Ok(self.n)
    }
}

/// A fake industry labeler for tests and benchmarks: finds a GB/T 4754 class name (unique names
/// only) inside the text (leftmost-longest match), and returns that class with confidence 0.9; otherwise
/// abstains (`code = None`).
pub struct NameMatchLabeler {
    names: Vec<(String, String)>,
    ac: aho_corasick::AhoCorasick,
}

impl Default for NameMatchLabeler {
    fn default() -> Self {
        Self::new()
    }
}

impl NameMatchLabeler {
    /// Build over the unique class names.
    pub fn new() -> Self {
        let names = unique_classes();
        let ac = aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(names.iter().map(|(_, n)| n.as_str()))
            .expect("class names form an automaton");
        NameMatchLabeler { names, ac }
    }
}

impl Labeler for NameMatchLabeler {
    fn label(&self, texts: &[&str]) -> std::result::Result<Vec<LabelResult>, LabelError> {
        Ok(texts
            .iter()
            .map(|t| {
                let hit = self
                    .ac
                    .find(*t)
                    .map(|m| &self.names[m.pattern().as_usize()]);
                match hit.and_then(|(c, _)| industry_path(c).map(|p| (c, p))) {
                    Some((c, p)) => LabelResult {
                        code: Some(c.clone()),
                        level: Some("class".into()),
                        name: crate::refdata::industry_name(c),
                        path: p
                            .iter()
                            .flatten()
                            .map(|code| PathStep {
                                code: code.clone(),
                                name: crate::refdata::industry_name(code).unwrap_or_default(),
                                confidence: 0.9,
                            })
                            .collect(),
                        confidence: 0.9,
                        decision: Decision::Auto,
                        model_version: self.model_version(),
                        taxonomy_version: self.taxonomy_version(),
                    },
                    None => LabelResult {
                        code: None,
                        level: None,
                        name: None,
                        path: vec![],
                        confidence: 0.0,
                        decision: Decision::Review,
                        model_version: self.model_version(),
                        taxonomy_version: self.taxonomy_version(),
                    },
                }
            })
            .collect())
    }
    fn model_version(&self) -> String {
        "name-match-test-v1".into()
    }
    fn taxonomy_version(&self) -> String {
        "gbt4754-2017".into()
    }
}

/// Benchmark figures (printed by `examples/bench.rs`).
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Distinct loans per snapshot.
    pub loans: usize,
    /// Snapshots.
    pub months: usize,
    /// Rows ingested.
    pub rows: u64,
    /// CSV size.
    pub csv_bytes: u64,
    /// Time to generate the CSV.
    pub generate_ms: f64,
    /// Ingest wall time (one transaction, incl. validation, labeling of the unlabeled share).
    pub ingest_ms: f64,
    /// Rows per second ingested.
    pub ingest_rows_per_s: f64,
    /// First query (builds the columnar snapshot from SQLite).
    pub snapshot_build_ms: f64,
    /// The timed query.
    pub query: String,
    /// Timed repetitions.
    pub iterations: usize,
    /// Median latency.
    pub agg_p50_ms: f64,
    /// 95th percentile latency.
    pub agg_p95_ms: f64,
    /// Rows in the answer.
    pub result_rows: usize,
    /// Loans matched by the filter in the latest snapshot.
    pub matched_loans: u64,
}

/// Generate `n_loans` loans × `months` snapshots into a temporary store, ingest them (CSV,
/// CommitValid, 5 % of rows labeled by [`NameMatchLabeler`]), then time `iterations` runs of a
/// two-dimension group-by with a filter on the latest snapshot:
/// `by=industry.section,region.province&customer_type=小型企业,微型企业&overdue_days_gt=30`.
pub fn bench(
    n_loans: usize,
    months: usize,
    iterations: usize,
    dir: Option<&Path>,
) -> Result<BenchReport> {
    let tmp = tempfile::tempdir()?;
    let dir = dir.unwrap_or(tmp.path());
    std::fs::create_dir_all(dir)?;
    let csv_path = dir.join("bench-book.csv");
    let spec = SynthSpec {
        loans: n_loans,
        months,
        seed: 7,
        unlabeled_share: 0.05,
        ..SynthSpec::default()
    };
    let t = Instant::now();
    let rows = write_csv(&spec, &csv_path)?;
    let generate_ms = t.elapsed().as_secs_f64() * 1e3;
    let csv_bytes = std::fs::metadata(&csv_path)?.len();
    let store_path = dir.join("bench-portfolio.sqlite");
    let _ = std::fs::remove_file(&store_path);
    let store = PortfolioStore::open_file(&store_path)?;
    let labeler = NameMatchLabeler::new();
    let t = Instant::now();
    let rep = store.ingest_file(
        "bench",
        &csv_path,
        &IngestOptions {
            mode: IngestMode::CommitValid,
            ..IngestOptions::default()
        },
        Some(&labeler),
    )?;
    let ingest_ms = t.elapsed().as_secs_f64() * 1e3;
    if !rep.rejected.is_empty() {
        return Err(crate::error::PortfolioError::Csv(format!(
            "benchmark book had {} rejected rows, first: {:?}",
            rep.rejected.len(),
            rep.rejected.first()
        )));
    }
    let q = AggQuery {
        overdue: OverdueDef::DaysGt(30),
        ..AggQuery::new(
            "bench",
            &[Dimension::IndustrySection, Dimension::RegionProvince],
        )
        .filter(Dimension::CustomerType, &["小型企业", "微型企业"])
    };
    let t = Instant::now();
    let first = store.aggregate(&q)?;
    let snapshot_build_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut lat = Vec::with_capacity(iterations);
    for _ in 0..iterations.max(1) {
        let t = Instant::now();
        let r = store.aggregate(&q)?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(r);
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    Ok(BenchReport {
        loans: n_loans,
        months,
        rows,
        csv_bytes,
        generate_ms,
        ingest_ms,
        ingest_rows_per_s: rows as f64 / (ingest_ms / 1e3),
        snapshot_build_ms,
        query: "by=industry.section,region.province&customer_type=小型企业,微型企业&overdue_days_gt=30 (latest month, with change vs previous)".into(),
        iterations: lat.len(),
        agg_p50_ms: pct(0.5),
        agg_p95_ms: pct(0.95),
        result_rows: first.rows.len(),
        matched_loans: first.totals.metrics.loans,
    })
}
