//! Generating the book: class, region, customer and product mix, and the monthly overdue
//! dynamics (burn-in, optional shock).

use std::io::Write;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustc_hash::FxHashMap;

use super::{SynthLoan, SynthSpec};
use crate::refdata::{china_counties, industry_classes, industry_path};

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

/// Class codes with names unique in GB/T 4754 (so [`NameMatchLabeler`](super::NameMatchLabeler)
/// is exact on them).
pub(super) fn unique_classes() -> Vec<(String, String)> {
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
