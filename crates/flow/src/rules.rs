//! What counts as a diversion: the restricted uses, and which payee industries are consistent
//! with a loan's declared industry.
//!
//! ## Restricted uses ([`Restricted`])
//! Loan money must not reach these industries unless the loan's own declared industry is one of
//! them (a developer's construction loan paying another developer is not a diversion). The
//! default, [`DEFAULT_RESTRICTED`], is what the regulator's rules on loan use (贷款资金不得流入
//! 房地产、股市、民间借贷) mean in GB/T 4754-2017 terms:
//! * `7010` 房地产开发经营 — real-estate development (not 7020 property management, 7030 agency
//!   or 7040 renting, which are ordinary business expenses: rent and fees);
//! * `67` 资本市场服务 — securities brokerage and dealing, fund management, futures, exchanges;
//! * `663` 非货币银行服务 — the non-bank credit classes: 6631 融资租赁, 6632 财务公司,
//!   6633 典当, 6634 汽车金融, 6635 小额贷款, 6636 消费金融, 6637 网络借贷, 6639 其他 (商业保理);
//! * `69` 其他金融业 — trusts (6911), holding companies (6920), and 6999 (融资担保 and other
//!   unlisted finance).
//!
//! A payee is restricted when its label's path contains a restricted code: a label that stops
//! above it (`70` for `7010`) is not enough, as the model did not stand behind the class.
//!
//! ## Consistency ([`consistent`])
//! A payee organisation with a label is **consistent** with the declared industry when it is in
//! the same section, or its path contains a code of [`COMMON_SUPPLIERS`] (goods, utilities,
//! building works, transport, IT, equipment leasing, labour, technical services, repair and
//! business rent — what any business buys), or of the declared section's own extra suppliers
//! ([`SECTION_SUPPLIERS`]). Anything else — finance (J) paid from a non-financial loan, real
//! estate development, investment management (7212), personal services, public bodies — is
//! **inconsistent**. Individuals and payees without a label are neither (counted as unknown);
//! so is every payee of a loan without a declared industry.

use serde::Serialize;
use touxiang_datasets::Taxonomy;

use crate::error::{invalid, Result};

/// Default restricted codes (see the module documentation).
pub const DEFAULT_RESTRICTED: [&str; 4] = ["7010", "67", "663", "69"];

/// Payee industries any borrower plausibly pays (codes at any level, matched against the
/// payee's label path).
pub const COMMON_SUPPLIERS: &[&str] = &[
    "C",   // manufactured goods, equipment, materials
    "D",   // electricity, gas, water
    "E",   // construction and fit-out of premises
    "F",   // wholesale and retail: goods
    "G",   // transport, storage, post
    "I",   // telecom, software, IT services
    "71",  // equipment leasing (not finance leasing, 6631)
    "726", // human resources (labour dispatch)
    "M",   // technical services, design, testing
    "81",  // repair
    "702", // property management fees
    "704", // rent of business premises
];

/// Extra suppliers per declared section.
pub const SECTION_SUPPLIERS: &[(&str, &[&str])] = &[
    ("A", &["05"]),          // farm services
    ("B", &["N"]),           // land reclamation, environment
    ("C", &["A", "B", "N"]), // farm produce, ores, waste treatment
    ("D", &["B", "N"]),      // coal, water works
    ("E", &["B", "N", "L"]), // sand and gravel, environment, business services
    ("F", &["A", "B"]),      // goods bought for resale
    ("H", &["A", "L"]),      // produce, business services
    ("K", &["L"]),           // marketing, agency
    ("L", &["L"]),
    ("N", &["A"]), // landscaping
    ("O", &["L"]),
    ("P", &["R"]), // teaching materials, sports
    ("Q", &["84"]),
    ("R", &["L"]),
];

/// Restricted codes (validated GB/T 4754-2017 codes at any level).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restricted(pub Vec<String>);

impl Default for Restricted {
    fn default() -> Self {
        Restricted(DEFAULT_RESTRICTED.iter().map(|s| s.to_string()).collect())
    }
}

impl Restricted {
    /// Parse a comma-separated list of codes; each must be a GB/T 4754-2017 code.
    pub fn parse(s: &str) -> Result<Self> {
        let tax = Taxonomy::gbt4754();
        let mut out = Vec::new();
        for c in s.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let c = c.to_ascii_uppercase();
            if tax.get(&c).is_none() {
                return Err(invalid(
                    "restricted",
                    format!("{c:?} is not a GB/T 4754-2017 code"),
                ));
            }
            if !out.contains(&c) {
                out.push(c);
            }
        }
        if out.is_empty() {
            return Err(invalid("restricted", "empty list of restricted codes"));
        }
        Ok(Restricted(out))
    }

    /// The restricted code a label path reaches, unless the declared path is itself in it.
    pub fn hit<'a>(&'a self, path: &[String], declared: &[String]) -> Option<&'a str> {
        self.0
            .iter()
            .find(|r| path.iter().any(|p| p == *r) && !declared.iter().any(|d| d == *r))
            .map(String::as_str)
    }
}

/// Is a payee with label `path` consistent with the declared `declared` path (both root
/// first)? See the module documentation.
pub fn consistent(path: &[String], declared: &[String]) -> bool {
    let (Some(ps), Some(ds)) = (path.first(), declared.first()) else {
        return false;
    };
    if ps == ds {
        return true;
    }
    let has = |codes: &[&str]| path.iter().any(|p| codes.contains(&p.as_str()));
    if has(COMMON_SUPPLIERS) {
        return true;
    }
    SECTION_SUPPLIERS
        .iter()
        .find(|(s, _)| s == ds)
        .is_some_and(|(_, extra)| has(extra))
}

/// Root-first path of a GB/T 4754-2017 code (empty when unknown).
pub fn path_of(code: &str) -> Vec<String> {
    Taxonomy::gbt4754()
        .path(code)
        .into_iter()
        .map(|n| n.code.to_string())
        .collect()
}

/// Level name of a GB/T 4754-2017 code by its shape.
pub fn level_of(code: &str) -> &'static str {
    match code.len() {
        1 => "section",
        2 => "division",
        3 => "group",
        _ => "class",
    }
}

/// Chinese name of a GB/T 4754-2017 code.
pub fn name_of(code: &str) -> Option<String> {
    Taxonomy::gbt4754().get(code).map(|n| n.name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(c: &str) -> Vec<String> {
        path_of(c)
    }

    #[test]
    fn restricted_defaults_are_codes_and_hit_as_intended() {
        let r = Restricted::default();
        assert_eq!(Restricted::parse(&DEFAULT_RESTRICTED.join(",")).unwrap(), r);
        assert_eq!(r.hit(&p("7010"), &p("3311")), Some("7010"));
        assert_eq!(r.hit(&p("6635"), &p("3311")), Some("663"));
        assert_eq!(r.hit(&p("6999"), &p("3311")), Some("69"));
        assert_eq!(r.hit(&p("6712"), &p("3311")), Some("67"));
        assert_eq!(r.hit(&p("7040"), &p("3311")), None, "rent is no diversion");
        assert_eq!(
            r.hit(&p("70"), &p("3311")),
            None,
            "division label is not enough"
        );
        assert_eq!(
            r.hit(&p("7010"), &p("7010")),
            None,
            "a developer's own loan"
        );
        assert!(Restricted::parse("7010,XX").is_err());
    }

    #[test]
    fn consistency_table() {
        assert!(
            consistent(&p("5164"), &p("3311")),
            "steel trading for a maker"
        );
        assert!(consistent(&p("3311"), &p("3399")), "same section");
        assert!(
            !consistent(&p("6621"), &p("3311")),
            "a bank is not a supplier"
        );
        assert!(!consistent(&p("7212"), &p("3311")), "investment management");
        assert!(consistent(&p("0111"), &p("1311")), "grain for a mill");
        assert!(
            consistent(&p("0111"), &p("6210")),
            "produce for a restaurant"
        );
        assert!(!consistent(&[], &p("3311")));
    }
}
