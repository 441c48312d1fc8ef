//! The only module that talks to `touxiang-datasets` reference data (industry taxonomy, region
//! tables, purpose taxonomy). Everything else in the crate goes through these helpers.

use serde::{Deserialize, Serialize};
use touxiang_datasets::{RegionTable, Taxonomy};

/// Industry codes of one loan at the four GB/T 4754 levels (section, division, group, class).
/// Levels below the deepest known code are `None`.
pub type IndustryPath = [Option<String>; 4];

/// Version id recorded for labels taken as given from an `industry_code` input column.
pub const GBT4754_VERSION: &str = "gbt4754-2017";

/// Path of an industry code (any level) in GB/T 4754-2017, or `None` when the code is unknown.
pub fn industry_path(code: &str) -> Option<IndustryPath> {
    let tax = Taxonomy::gbt4754();
    tax.get(code)?;
    let mut out: IndustryPath = Default::default();
    for (i, node) in tax.path(code).into_iter().enumerate().take(4) {
        out[i] = Some(node.code.to_string());
    }
    Some(out)
}

/// Chinese name of an industry code at any level.
pub fn industry_name(code: &str) -> Option<String> {
    Taxonomy::gbt4754().get(code).map(|n| n.name.to_string())
}

/// Which region table a portfolio's `region_code` column is resolved against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RegionScheme {
    /// GB/T 2260 administrative divisions (province "11", city "1101", county "110101"; the
    /// six-digit forms "110000"/"110100" are accepted too).
    #[default]
    China,
    /// US states by USPS code ("CA"); only the province level is populated.
    UsStates,
}

impl RegionScheme {
    /// Stable id stored with the portfolio.
    pub fn as_str(self) -> &'static str {
        match self {
            RegionScheme::China => "china",
            RegionScheme::UsStates => "us_states",
        }
    }

    /// Parse the stored id.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "china" | "cn" | "gbt2260" => Some(RegionScheme::China),
            "us_states" | "us" => Some(RegionScheme::UsStates),
            _ => None,
        }
    }

    fn table(self) -> &'static RegionTable {
        match self {
            RegionScheme::China => RegionTable::china(),
            RegionScheme::UsStates => RegionTable::us_states(),
        }
    }

    /// Resolve a code at any level to (province, city, county) codes; `None` when unknown.
    pub fn resolve(self, code: &str) -> Option<[Option<String>; 3]> {
        let r = self.table().resolve(code.trim())?;
        Some([Some(r.province), r.city, r.county])
    }

    /// Name of a region code (any level).
    pub fn name(self, code: &str) -> Option<String> {
        self.table().get(code).map(|r| r.name.to_string())
    }
}

/// A flat purpose taxonomy (code → name) attached to a portfolio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurposeScheme {
    /// Version id, recorded as the purpose label's taxonomy version.
    pub id: String,
    /// `(code, name)` pairs.
    pub entries: Vec<(String, String)>,
}

impl PurposeScheme {
    /// The built-in purpose taxonomy of `touxiang-datasets` (working_capital, fixed_assets, ...).
    pub fn builtin() -> Self {
        let tax = Taxonomy::purpose();
        let entries = BUILTIN_PURPOSE_CODES
            .iter()
            .filter_map(|c| tax.get(c).map(|n| (c.to_string(), n.name.to_string())))
            .collect();
        PurposeScheme {
            id: "purpose-v1".to_string(),
            entries,
        }
    }

    /// Lending Club's 14 `purpose` values as a flat custom taxonomy.
    pub fn lending_club() -> Self {
        let e = [
            ("car", "购车 car"),
            ("credit_card", "信用卡还款 credit card"),
            ("debt_consolidation", "债务整合 debt consolidation"),
            ("educational", "教育 educational"),
            ("home_improvement", "房屋装修 home improvement"),
            ("house", "购房 house"),
            ("major_purchase", "大额消费 major purchase"),
            ("medical", "医疗 medical"),
            ("moving", "搬家 moving"),
            ("other", "其他 other"),
            ("renewable_energy", "可再生能源 renewable energy"),
            ("small_business", "小微经营 small business"),
            ("vacation", "度假 vacation"),
            ("wedding", "婚礼 wedding"),
        ];
        PurposeScheme {
            id: "lendingclub-purpose-14".to_string(),
            entries: e
                .iter()
                .map(|(c, n)| (c.to_string(), n.to_string()))
                .collect(),
        }
    }

    /// Whether `code` is in the scheme.
    pub fn contains(&self, code: &str) -> bool {
        self.entries.iter().any(|(c, _)| c == code)
    }

    /// Name of `code`.
    pub fn name(&self, code: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(c, _)| c == code)
            .map(|(_, n)| n.as_str())
    }

    /// Whether this is the built-in scheme (so the keyword purpose labeler applies).
    pub fn is_builtin(&self) -> bool {
        self.id == "purpose-v1"
    }
}

/// Codes of the built-in purpose taxonomy, in display order.
pub const BUILTIN_PURPOSE_CODES: [&str; 10] = [
    "working_capital",
    "fixed_assets",
    "project",
    "consumer",
    "personal_business",
    "housing",
    "auto",
    "education",
    "medical",
    "other",
];

/// County codes (6-digit) of the GB/T 2260 table, with their names, in table order.
pub fn china_counties() -> Vec<(String, String)> {
    RegionTable::china()
        .regions()
        .iter()
        .filter(|r| r.level == touxiang_datasets::RegionLevel::County)
        .map(|r| (r.code.clone(), r.name.clone()))
        .collect()
}

/// GB/T 4754-2017 class codes (4 digits) with names, in table order.
pub fn industry_classes() -> Vec<(String, String)> {
    Taxonomy::gbt4754()
        .at_depth(3)
        .into_iter()
        .map(|n| (n.code.clone(), n.name.clone()))
        .collect()
}

/// US state codes.
pub fn us_states() -> Vec<String> {
    RegionTable::us_states()
        .regions()
        .iter()
        .map(|r| r.code.clone())
        .collect()
}
