//! Inter-reviewer agreement: partial credit along the taxonomy path and Cohen's kappa per level.
//!
//! Only double-reviewed items count (the first and the second, independent label). Cohen's kappa
//! treats the two label *slots* (first, second) as the two raters — with a pool of reviewers
//! the slots are filled by different people per item, which is the usual practice for
//! crowd-style double coding; per-reviewer rates are reported separately.
//!
//! **Partial credit** of two labels with root-first paths `a`, `b`:
//! `credit = (length of the common path prefix) / max(len a, len b)`. For two GB/T 4754
//! classes (4 levels) that is: same section only 0.25, same division 0.5, same group 0.75,
//! identical 1.0; different sections 0. A division label vs a class below it scores 2/4 = 0.5.
//!
//! **Kappa at depth d** (1 = section … 4 = class) is computed over the pairs whose both labels
//! reach depth d, comparing their ancestors at depth d; `pairs` says how many that were.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::store::Pair;
use crate::{ReviewError, ReviewStore, TaxonomyLookup};

/// Share of the longer path that two root-first paths have in common (0 when either is empty).
pub fn partial_credit<S: AsRef<str>>(a: &[S], b: &[S]) -> f64 {
    let longest = a.len().max(b.len());
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let common = a
        .iter()
        .zip(b.iter())
        .take_while(|(x, y)| x.as_ref() == y.as_ref())
        .count();
    common as f64 / longest as f64
}

/// Cohen's kappa of paired categorical ratings `(rater 1, rater 2)`:
/// `κ = (p_o − p_e) / (1 − p_e)`, `p_o` the observed agreement, `p_e = Σ_k p1(k)·p2(k)` the
/// chance agreement from each rater's marginals. `None` when there are no pairs or `p_e = 1`
/// (both raters always used one and the same category: kappa is undefined).
pub fn cohen_kappa<S: AsRef<str>>(pairs: &[(S, S)]) -> Option<f64> {
    if pairs.is_empty() {
        return None;
    }
    let n = pairs.len() as f64;
    let mut m1: HashMap<&str, f64> = HashMap::new();
    let mut m2: HashMap<&str, f64> = HashMap::new();
    let mut agree = 0.0;
    for (a, b) in pairs {
        let (a, b) = (a.as_ref(), b.as_ref());
        *m1.entry(a).or_default() += 1.0;
        *m2.entry(b).or_default() += 1.0;
        if a == b {
            agree += 1.0;
        }
    }
    let po = agree / n;
    let pe: f64 = m1
        .iter()
        .map(|(k, c1)| (c1 / n) * (m2.get(k).copied().unwrap_or(0.0) / n))
        .sum();
    if (1.0 - pe).abs() < 1e-12 {
        return None;
    }
    Some((po - pe) / (1.0 - pe))
}

/// Name of a taxonomy depth (1-based) in GB/T 4754 terms; `level5`… beyond.
pub fn level_name(depth: usize) -> String {
    match depth {
        1 => "section".into(),
        2 => "division".into(),
        3 => "group".into(),
        4 => "class".into(),
        d => format!("level{d}"),
    }
}

/// Kappa at one depth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelKappa {
    /// 1 = section, 2 = division, 3 = group, 4 = class.
    pub depth: usize,
    /// Level name.
    pub level: String,
    /// Pairs where both labels reach this depth.
    pub pairs: u64,
    /// Observed agreement at this depth.
    pub observed_agreement: f64,
    /// Cohen's kappa (`None` when undefined).
    pub kappa: Option<f64>,
}

/// Agreement of one reviewer with their double-review partners and with final labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewerAgreement {
    /// Reviewer id.
    pub reviewer: String,
    /// Double-reviewed items they labeled (first or second).
    pub pairs: u64,
    /// Share where the partner gave the same code.
    pub exact_agreement: f64,
    /// Mean partial credit against the partner.
    pub mean_partial_credit: f64,
    /// Of `pairs`, items that have a final label.
    pub final_compared: u64,
    /// Share of those where their code is the final code (adjudication decides disagreements).
    pub agreement_with_final: Option<f64>,
}

/// Agreement on one code.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CodeAgreement {
    /// Taxonomy id.
    pub taxonomy: String,
    /// The code.
    pub code: String,
    /// How often the code was given, counting both slots.
    pub assigned: u64,
    /// Pairs where both reviewers gave it.
    pub both: u64,
    /// Specific (positive) agreement `2·both / assigned`.
    pub specific_agreement: f64,
    /// Mean partial credit over the pairs where at least one reviewer gave it.
    pub mean_partial_credit: f64,
}

/// The agreement report (for an analyst endpoint such as `GET /v1/review/agreement`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgreementReport {
    /// Taxonomy filter applied, if any.
    pub taxonomy: Option<String>,
    /// Double-reviewed items with both independent labels.
    pub pairs: u64,
    /// Share of pairs with identical codes (`None` without pairs).
    pub exact_agreement: Option<f64>,
    /// Mean partial credit (`None` without pairs).
    pub mean_partial_credit: Option<f64>,
    /// Kappa per depth, depth 1 first.
    pub kappa: Vec<LevelKappa>,
    /// Per reviewer, by id.
    pub reviewers: Vec<ReviewerAgreement>,
    /// Per code, by taxonomy and code.
    pub codes: Vec<CodeAgreement>,
}

#[derive(Default)]
struct Acc {
    n: u64,
    agree: u64,
    credit: f64,
    final_n: u64,
    final_agree: u64,
}

/// Build the report from label pairs (pure; `ReviewStore::agreement_report` feeds it).
pub(crate) fn report(
    pairs: &[Pair],
    taxonomy_filter: Option<&str>,
    lookup: &dyn TaxonomyLookup,
) -> AgreementReport {
    let path = |tax: &str, code: &str| -> Vec<String> {
        lookup
            .path(tax, code)
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| vec![code.to_string()])
    };
    let mut total_agree = 0u64;
    let mut total_credit = 0.0;
    let mut reviewers: BTreeMap<String, Acc> = BTreeMap::new();
    // (taxonomy, code) → (assigned, both, credit sum, pairs involved)
    let mut codes: BTreeMap<(String, String), (u64, u64, f64, u64)> = BTreeMap::new();
    // depth → pairs of ancestors (taxonomy-qualified so taxonomies never mix)
    let mut levels: BTreeMap<usize, Vec<(String, String)>> = BTreeMap::new();

    for p in pairs {
        let pa = path(&p.taxonomy, &p.code_a);
        let pb = path(&p.taxonomy, &p.code_b);
        let credit = partial_credit(&pa, &pb);
        let agree = p.code_a == p.code_b;
        total_agree += u64::from(agree);
        total_credit += credit;
        for (rev, code) in [(&p.reviewer_a, &p.code_a), (&p.reviewer_b, &p.code_b)] {
            let acc = reviewers.entry(rev.clone()).or_default();
            acc.n += 1;
            acc.agree += u64::from(agree);
            acc.credit += credit;
            if let Some(f) = &p.final_code {
                acc.final_n += 1;
                acc.final_agree += u64::from(f == code);
            }
        }
        for code in [&p.code_a, &p.code_b] {
            codes
                .entry((p.taxonomy.clone(), code.clone()))
                .or_default()
                .0 += 1;
        }
        let mut involved = vec![&p.code_a];
        if !agree {
            involved.push(&p.code_b);
        }
        for code in involved {
            let e = codes.entry((p.taxonomy.clone(), code.clone())).or_default();
            e.1 += u64::from(agree);
            e.2 += credit;
            e.3 += 1;
        }
        for depth in 1..=pa.len().min(pb.len()) {
            levels.entry(depth).or_default().push((
                format!("{}\u{1f}{}", p.taxonomy, pa[depth - 1]),
                format!("{}\u{1f}{}", p.taxonomy, pb[depth - 1]),
            ));
        }
    }
    let n = pairs.len() as u64;
    AgreementReport {
        taxonomy: taxonomy_filter.map(str::to_string),
        pairs: n,
        exact_agreement: (n > 0).then(|| total_agree as f64 / n as f64),
        mean_partial_credit: (n > 0).then(|| total_credit / n as f64),
        kappa: levels
            .into_iter()
            .map(|(depth, v)| LevelKappa {
                depth,
                level: level_name(depth),
                pairs: v.len() as u64,
                observed_agreement: v.iter().filter(|(a, b)| a == b).count() as f64
                    / v.len() as f64,
                kappa: cohen_kappa(&v),
            })
            .collect(),
        reviewers: reviewers
            .into_iter()
            .map(|(reviewer, a)| ReviewerAgreement {
                reviewer,
                pairs: a.n,
                exact_agreement: a.agree as f64 / a.n as f64,
                mean_partial_credit: a.credit / a.n as f64,
                final_compared: a.final_n,
                agreement_with_final: (a.final_n > 0)
                    .then(|| a.final_agree as f64 / a.final_n as f64),
            })
            .collect(),
        codes: codes
            .into_iter()
            .map(
                |((taxonomy, code), (assigned, both, credit, involved))| CodeAgreement {
                    taxonomy,
                    code,
                    assigned,
                    both,
                    specific_agreement: 2.0 * both as f64 / assigned as f64,
                    mean_partial_credit: if involved > 0 {
                        credit / involved as f64
                    } else {
                        0.0
                    },
                },
            )
            .collect(),
    }
}

impl ReviewStore {
    /// Agreement report over all double-reviewed items (of one taxonomy when given). Reads on
    /// its own connection. `lookup` supplies code paths for partial credit and per-level kappa.
    pub fn agreement_report(
        &self,
        taxonomy: Option<&str>,
        lookup: &dyn TaxonomyLookup,
    ) -> Result<AgreementReport, ReviewError> {
        let pairs = self.label_pairs(taxonomy)?;
        Ok(report(&pairs, taxonomy, lookup))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_credit_along_the_path() {
        let c = |a: &[&str], b: &[&str]| partial_credit(a, b);
        let x = ["H", "62", "629", "6291"];
        assert_eq!(c(&x, &x), 1.0);
        assert_eq!(c(&x, &["H", "62", "629", "6299"]), 0.75);
        assert_eq!(c(&x, &["H", "62", "621", "6210"]), 0.5);
        assert_eq!(c(&x, &["H", "61", "611", "6110"]), 0.25);
        assert_eq!(c(&x, &["C", "13", "131", "1311"]), 0.0);
        assert_eq!(c(&x, &["H", "62"]), 0.5);
        assert_eq!(c(&x, &[]), 0.0);
    }

    #[test]
    fn kappa_hand_computed() {
        // 50 items, two raters, categories Y/N:
        //            r2=Y  r2=N
        //   r1=Y      20     5     (25)
        //   r1=N      10    15     (25)
        //            (30)  (20)
        // p_o = 35/50 = 0.7; p_e = 0.5·0.6 + 0.5·0.4 = 0.5; κ = (0.7−0.5)/(1−0.5) = 0.4.
        let mut pairs = Vec::new();
        pairs.extend(std::iter::repeat_n(("Y", "Y"), 20));
        pairs.extend(std::iter::repeat_n(("Y", "N"), 5));
        pairs.extend(std::iter::repeat_n(("N", "Y"), 10));
        pairs.extend(std::iter::repeat_n(("N", "N"), 15));
        let k = cohen_kappa(&pairs).unwrap();
        assert!((k - 0.4).abs() < 1e-12, "{k}");

        // Three categories (Fleiss' textbook style), hand-computed:
        // pairs: AA×6 AB×2 BB×5 BC×1 CC×4 CA×2  (n = 20)
        // p_o = 15/20 = 0.75; r1: A8 B6 C6; r2: A8 B7 C5
        // p_e = (8·8 + 6·7 + 6·5)/400 = 136/400 = 0.34; κ = 0.41/0.66 = 0.621212…
        let mut p3 = Vec::new();
        for (a, b, n) in [
            ("A", "A", 6),
            ("A", "B", 2),
            ("B", "B", 5),
            ("B", "C", 1),
            ("C", "C", 4),
            ("C", "A", 2),
        ] {
            p3.extend(std::iter::repeat_n((a, b), n));
        }
        let k3 = cohen_kappa(&p3).unwrap();
        assert!((k3 - 0.41 / 0.66).abs() < 1e-12, "{k3}");

        // Perfect agreement across categories → 1; undefined cases → None.
        assert_eq!(cohen_kappa(&[("A", "A"), ("B", "B")]), Some(1.0));
        assert_eq!(cohen_kappa(&[("A", "A"), ("A", "A")]), None);
        assert_eq!(cohen_kappa::<&str>(&[]), None);
    }
}
