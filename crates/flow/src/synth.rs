//! A GENERATED Chinese loan book with payments and relations, diversions and guarantee circles
//! planted at known places (seeded ChaCha8: the same spec writes the same files). Every file it
//! writes says so: each row carries `source=generated`, and `truth.json` has `"generated": true`.
//!
//! * Borrowers are companies of ten industries ([`crate::synth_data::INDUSTRIES`]), one to three
//!   loans each, with `borrower_id` and `borrower_name`; loans carry their declared
//!   `industry_code` (no model is needed to ingest them), one snapshot.
//! * Each loan pays 1..=2·`payments_per_loan`−1 payees drawn from its industry's supplier pools
//!   (about one in eight payments to a person: wages, 个体户), for up to its amount.
//! * A share `diversion_share` of loans also pays a restricted-use payee
//!   ([`crate::synth_data::RESTRICTED_PAYEES`]: developers, 小贷, 典当, 担保, 保理, securities,
//!   trusts) 20–60 % of the amount; a share `round_trip_share` pays 20–50 % back to the borrower
//!   itself or (when it has one) to a related borrower. Real-estate developers' payments to other
//!   developers are *not* diversions (their declared industry is 7010).
//! * `circles` guarantee circles of 2–6 borrowers (a chain plus one closing edge when ≥ 3);
//!   every third circle has a member with an overdue loan; plus control and supply-chain
//!   relations between random borrowers.
//!
//! [`Truth`] lists every planted diversion, every circle's members, and the code each generated
//! payee name stands for.

use std::io::Write;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::error::Result;
use crate::synth_data::{
    Industry, GIVEN, INDUSTRIES, PLACES, REGIONS, RESTRICTED_PAYEES, SURNAMES, TRADE_CHARS,
};

/// Parameters of a generated book.
#[derive(Debug, Clone, Serialize)]
pub struct FlowSynthSpec {
    pub loans: usize,
    /// Mean payments per loan.
    pub payments_per_loan: usize,
    pub seed: u64,
    pub diversion_share: f64,
    pub round_trip_share: f64,
    pub circles: usize,
    /// Names per supplier pool (default: loans / 20, at least 8).
    pub pool: Option<usize>,
    /// Keep the planted diversions and payee codes in [`Truth`] (off for the benchmark's
    /// millions of rows: only counts).
    pub keep_truth: bool,
}

impl Default for FlowSynthSpec {
    fn default() -> Self {
        FlowSynthSpec {
            loans: 2000,
            payments_per_loan: 3,
            seed: 7,
            diversion_share: 0.06,
            round_trip_share: 0.04,
            circles: 20,
            pool: None,
            keep_truth: true,
        }
    }
}

/// One planted diversion.
#[derive(Debug, Clone, Serialize)]
pub struct Planted {
    pub loan_id: String,
    /// `restricted_use` or `round_trip`.
    pub kind: &'static str,
    pub payee: String,
    /// The restricted code the payee stands for (restricted_use).
    pub code: Option<String>,
}

/// What was planted where.
#[derive(Debug, Clone, Serialize)]
pub struct Truth {
    /// Always true: this book is generated.
    pub generated: bool,
    pub spec: FlowSynthSpec,
    pub loans: u64,
    pub payments: u64,
    pub relations: u64,
    pub diversions: Vec<Planted>,
    pub diversions_planted: u64,
    /// Members (borrower ids) of each planted circle.
    pub circles: Vec<Vec<String>>,
    /// Generated payee names and the GB/T code each stands for (`None`: a person).
    pub payee_codes: Vec<(String, Option<String>)>,
}

struct Borrower {
    id: String,
    name: String,
    industry: usize,
    region: &'static str,
}

fn trade_name(rng: &mut ChaCha8Rng) -> String {
    (0..3)
        .map(|_| TRADE_CHARS[rng.random_range(0..TRADE_CHARS.len())])
        .collect()
}

fn org_name(rng: &mut ChaCha8Rng, words: &str) -> String {
    let place = PLACES[rng.random_range(0..PLACES.len())];
    format!("{place}{}{words}", trade_name(rng))
}

fn person(rng: &mut ChaCha8Rng) -> String {
    format!(
        "{}{}",
        SURNAMES[rng.random_range(0..SURNAMES.len())],
        GIVEN[rng.random_range(0..GIVEN.len())]
    )
}

/// Supplier pools: for each template, `n` distinct names.
struct Pools {
    names: FxHashMap<(&'static str, &'static str), Vec<String>>,
}

impl Pools {
    fn pick(&mut self, rng: &mut ChaCha8Rng, n: usize, t: (&'static str, &'static str)) -> String {
        let pool = self.names.entry(t).or_insert_with(|| {
            let mut seen = std::collections::HashSet::new();
            let mut v = Vec::with_capacity(n);
            while v.len() < n {
                let name = org_name(rng, t.0);
                if seen.insert(name.clone()) {
                    v.push(name);
                }
            }
            v
        });
        pool[rng.random_range(0..pool.len())].clone()
    }
}

fn csv_writer(path: &Path) -> Result<csv::Writer<std::io::BufWriter<std::fs::File>>> {
    Ok(csv::Writer::from_writer(std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(path)?,
    )))
}

fn csv_err(e: csv::Error) -> crate::error::FlowError {
    crate::error::FlowError::Io(std::io::Error::other(e))
}

/// Write `loans.csv`, `payments.csv`, `relations.csv` and `truth.json` into `dir`.
pub fn write_book(spec: &FlowSynthSpec, dir: &Path) -> Result<Truth> {
    std::fs::create_dir_all(dir)?;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let pool_n = spec.pool.unwrap_or((spec.loans / 20).max(8));
    // borrowers: 1–3 loans each
    let mut borrowers: Vec<Borrower> = Vec::new();
    let mut loan_owner: Vec<usize> = Vec::with_capacity(spec.loans);
    let mut used = std::collections::HashSet::new();
    while loan_owner.len() < spec.loans {
        let industry = rng.random_range(0..INDUSTRIES.len());
        let name = loop {
            let n = org_name(&mut rng, INDUSTRIES[industry].borrower_words);
            if used.insert(n.clone()) {
                break n;
            }
        };
        let b = borrowers.len();
        borrowers.push(Borrower {
            id: format!("B{:07}", b + 1),
            name,
            industry,
            region: REGIONS[rng.random_range(0..REGIONS.len())],
        });
        for _ in 0..rng.random_range(1..=3usize) {
            if loan_owner.len() < spec.loans {
                loan_owner.push(b);
            }
        }
    }
    // relations: circles, then control / supply-chain pairs
    let mut relations: Vec<(usize, usize, &'static str)> = Vec::new();
    let mut circles: Vec<Vec<usize>> = Vec::new();
    let mut in_circle = vec![false; borrowers.len()];
    let mut related: FxHashMap<usize, usize> = FxHashMap::default();
    for _ in 0..spec.circles {
        let size = rng.random_range(2..=6usize);
        let mut members = Vec::new();
        let mut tries = 0;
        while members.len() < size && tries < 1000 {
            tries += 1;
            let b = rng.random_range(0..borrowers.len());
            if !in_circle[b] && !related.contains_key(&b) {
                in_circle[b] = true;
                members.push(b);
            }
        }
        if members.len() < 2 {
            break;
        }
        for w in members.windows(2) {
            relations.push((w[0], w[1], "guarantee"));
            related.insert(w[1], w[0]);
            related.entry(w[0]).or_insert(w[1]);
        }
        if members.len() >= 3 {
            relations.push((members[members.len() - 1], members[0], "guarantee"));
        }
        circles.push(members);
    }
    for i in 0..(borrowers.len() / 50) {
        let (a, b) = (
            rng.random_range(0..borrowers.len()),
            rng.random_range(0..borrowers.len()),
        );
        if a == b
            || in_circle[a]
            || in_circle[b]
            || related.contains_key(&a)
            || related.contains_key(&b)
        {
            continue;
        }
        relations.push((
            a,
            b,
            if i % 2 == 0 {
                "control"
            } else {
                "supply-chain"
            },
        ));
        related.insert(a, b);
        related.insert(b, a);
    }
    // overdue: every third circle has a member with an overdue loan, and 3 % of other loans
    let mut overdue_borrower = vec![false; borrowers.len()];
    for (i, c) in circles.iter().enumerate() {
        if i % 3 == 0 {
            overdue_borrower[c[rng.random_range(0..c.len())]] = true;
        }
    }
    let mut truth = Truth {
        generated: true,
        spec: spec.clone(),
        loans: 0,
        payments: 0,
        relations: relations.len() as u64,
        diversions: Vec::new(),
        diversions_planted: 0,
        circles: circles
            .iter()
            .map(|c| c.iter().map(|&b| borrowers[b].id.clone()).collect())
            .collect(),
        payee_codes: Vec::new(),
    };
    let mut codes: FxHashMap<String, Option<String>> = FxHashMap::default();
    let mut loans_w = csv_writer(&dir.join("loans.csv"))?;
    loans_w
        .write_record([
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
            "borrower_id",
            "borrower_name",
            "source",
        ])
        .map_err(csv_err)?;
    let mut pay_w = csv_writer(&dir.join("payments.csv"))?;
    pay_w
        .write_record([
            "payment_id",
            "loan_id",
            "payee_name",
            "payee_account",
            "amount",
            "paid_at",
            "memo",
            "channel",
            "source",
        ])
        .map_err(csv_err)?;
    let mut pools = Pools {
        names: FxHashMap::default(),
    };
    let mut payment_no = 0u64;
    for (i, &b) in loan_owner.iter().enumerate() {
        let bw = &borrowers[b];
        let ind: &Industry = &INDUSTRIES[bw.industry];
        let loan_id = format!("L{:08}", i + 1);
        let amount = (rng.random_range(10..=1000u32) as f64) * 10_000.0;
        let balance = (amount * rng.random_range(0.3..1.0f64)).round();
        let overdue = if overdue_borrower[b] || (!in_circle[b] && rng.random_bool(0.03)) {
            rng.random_range(1..=180u32)
        } else {
            0
        };
        let (month, day) = (rng.random_range(1..=12u32), rng.random_range(1..=28u32));
        let issue = format!("2024-{month:02}-{day:02}");
        let purpose = ind.purposes[rng.random_range(0..ind.purposes.len())];
        loans_w
            .write_record([
                loan_id.as_str(),
                purpose,
                &format!("{amount:.0}"),
                &format!("{balance:.0}"),
                &overdue.to_string(),
                bw.region,
                "小型企业",
                if purpose.contains("购置") {
                    "固定资产贷款"
                } else {
                    "流动资金贷款"
                },
                &issue,
                "2025-06-30",
                ind.code,
                &bw.id,
                &bw.name,
                "generated",
            ])
            .map_err(csv_err)?;
        truth.loans += 1;
        // payments
        let n = rng.random_range(1..=(2 * spec.payments_per_loan.max(1) - 1));
        let mut pays: Vec<(String, Option<String>, f64, &'static str)> = Vec::new();
        let mut left = amount;
        for _ in 0..n {
            let a = (left * rng.random_range(0.2..0.6f64)).round().max(1.0);
            left -= a;
            if rng.random_bool(0.12) {
                pays.push((person(&mut rng), None, a, "工资及劳务费"));
            } else {
                let t = ind.suppliers[rng.random_range(0..ind.suppliers.len())];
                let name = pools.pick(&mut rng, pool_n, t);
                pays.push((name, Some(t.1.to_string()), a, "货款"));
            }
        }
        if rng.random_bool(spec.diversion_share) {
            // a developer paying a developer is no diversion: plant another restricted use
            let choices: Vec<&(&str, &str)> = RESTRICTED_PAYEES
                .iter()
                .filter(|t| !(ind.code == "7010" && t.1 == "7010"))
                .collect();
            let t = *choices[rng.random_range(0..choices.len())];
            let name = pools.pick(&mut rng, (pool_n / 4).max(4), t);
            let a = (amount * rng.random_range(0.2..0.6f64)).round();
            truth.diversions_planted += 1;
            if spec.keep_truth {
                truth.diversions.push(Planted {
                    loan_id: loan_id.clone(),
                    kind: "restricted_use",
                    payee: name.clone(),
                    code: Some(t.1.to_string()),
                });
            }
            pays.push((name, Some(t.1.to_string()), a, "往来款"));
        } else if rng.random_bool(spec.round_trip_share) {
            let to = match related.get(&b) {
                Some(&r) if rng.random_bool(0.5) => r,
                _ => b,
            };
            let name = borrowers[to].name.clone();
            let a = (amount * rng.random_range(0.2..0.5f64)).round();
            truth.diversions_planted += 1;
            if spec.keep_truth {
                truth.diversions.push(Planted {
                    loan_id: loan_id.clone(),
                    kind: "round_trip",
                    payee: name.clone(),
                    code: None,
                });
            }
            pays.push((
                name,
                Some(INDUSTRIES[borrowers[to].industry].code.to_string()),
                a,
                "往来款",
            ));
        }
        for (k, (name, code, a, memo)) in pays.into_iter().enumerate() {
            payment_no += 1;
            let paid = format!("2024-{month:02}-{:02}", (day + k as u32).min(28));
            let account = format!("62{:014}", rng.random_range(0..100_000_000_000_000u64));
            let channel = if a >= 500_000.0 {
                "受托支付"
            } else {
                "自主支付"
            };
            pay_w
                .write_record([
                    format!("P{payment_no:09}").as_str(),
                    &loan_id,
                    &name,
                    &account,
                    &format!("{a:.0}"),
                    &paid,
                    memo,
                    channel,
                    "generated",
                ])
                .map_err(csv_err)?;
            if spec.keep_truth || codes.len() < 2_000_000 {
                codes.entry(name).or_insert(code);
            }
        }
        truth.payments = payment_no;
    }
    loans_w.flush()?;
    pay_w.flush()?;
    let mut rel_w = csv_writer(&dir.join("relations.csv"))?;
    rel_w
        .write_record(["from", "to", "kind", "source"])
        .map_err(csv_err)?;
    for (a, b, k) in &relations {
        rel_w
            .write_record([borrowers[*a].id.as_str(), &borrowers[*b].id, k, "generated"])
            .map_err(csv_err)?;
    }
    rel_w.flush()?;
    let mut payee_codes: Vec<(String, Option<String>)> = codes.into_iter().collect();
    payee_codes.sort();
    truth.payee_codes = payee_codes;
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("truth.json"))?);
    serde_json::to_writer(&mut f, &truth).map_err(std::io::Error::other)?;
    f.flush()?;
    Ok(truth)
}
