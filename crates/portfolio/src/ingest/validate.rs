//! Row validation (part of [`super`]): column resolution, field parsers and the [`Validator`]
//! that turns one source row into a [`LoanRow`] or row problems.

use crate::error::{PortfolioError, Result};
use crate::purpose::KeywordPurposeLabeler;
use crate::refdata::{industry_path, IndustryPath};
use crate::store::PortfolioConfig;

use super::{ColumnMap, LoanStatus, RowError, CANONICAL_COLUMNS};

const C_LOAN_ID: usize = 0;
const C_PURPOSE_TEXT: usize = 1;
const C_AMOUNT: usize = 2;
const C_BALANCE: usize = 3;
const C_OVERDUE_DAYS: usize = 4;
const C_STATUS: usize = 5;
const C_REGION: usize = 6;
const C_CUSTOMER: usize = 7;
const C_PRODUCT: usize = 8;
const C_ISSUE: usize = 9;
const C_AS_OF: usize = 10;
const C_INDUSTRY: usize = 11;
const C_PURPOSE: usize = 12;

const REQUIRED: [usize; 5] = [C_LOAN_ID, C_PURPOSE_TEXT, C_BALANCE, C_REGION, C_AS_OF];

/// One validated row, ready to be labeled and written.
pub(super) struct LoanRow {
    pub(super) row: u64,
    pub(super) loan_id: String,
    pub(super) purpose_text: String,
    /// What the labeler reads: the purpose text with the borrower's name and business scope
    /// (columns `borrower_name`, `business_scope`, kept as attributes) composed in.
    pub(super) model_text: String,
    pub(super) amount: Option<f64>,
    pub(super) balance: f64,
    pub(super) overdue_days: Option<i64>,
    pub(super) status: Option<LoanStatus>,
    pub(super) region_code: String,
    pub(super) region: [Option<String>; 3],
    pub(super) customer_type: Option<String>,
    pub(super) product: Option<String>,
    pub(super) issue_date: Option<String>,
    pub(super) as_of_date: String,
    pub(super) industry: Option<IndustryPath>,
    pub(super) industry_code: Option<String>,
    pub(super) purpose_code: Option<String>,
    pub(super) purpose_conf: Option<f64>,
    pub(super) purpose_source: Option<&'static str>,
    pub(super) attributes: Option<String>,
}

/// Parse a `YYYY-MM-DD` date strictly (a real calendar date).
pub fn parse_date(s: &str) -> Option<String> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u32)
        })
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    chrono::NaiveDate::from_ymd_opt(y as i32, m, d).map(|_| s.to_string())
}

fn parse_amount(s: &str) -> std::result::Result<f64, String> {
    let t = s.trim().replace(',', "");
    match t.parse::<f64>() {
        Ok(v) if !v.is_finite() => Err(format!("{s:?} is not a finite number")),
        Ok(v) if v < 0.0 => Err(format!("{s:?} is negative (must be ≥ 0)")),
        Ok(v) => Ok(v),
        Err(_) => Err(format!("{s:?} is not a number")),
    }
}

fn parse_days(s: &str) -> std::result::Result<i64, String> {
    let t = s.trim();
    if let Ok(v) = t.parse::<i64>() {
        return if v < 0 {
            Err(format!("{s:?} is negative (must be an integer ≥ 0)"))
        } else {
            Ok(v)
        };
    }
    // Spreadsheets write integers as "30.0".
    match t.parse::<f64>() {
        Ok(f) if f.fract() == 0.0 && (0.0..1e9).contains(&f) => Ok(f as i64),
        Ok(f) if f < 0.0 => Err(format!("{s:?} is negative (must be an integer ≥ 0)")),
        _ => Err(format!("{s:?} is not an integer")),
    }
}

pub(super) struct Columns {
    /// canonical index → header index
    pub(super) idx: [Option<usize>; 13],
    /// header indices kept as attributes
    pub(super) attrs: Vec<usize>,
}

pub(super) fn resolve_columns(headers: &[String], map: &ColumnMap) -> Result<Columns> {
    let find = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .or_else(|| headers.iter().position(|h| h.eq_ignore_ascii_case(name)))
    };
    let mut idx = [None; 13];
    for (ci, c) in CANONICAL_COLUMNS.iter().enumerate() {
        if let Some((_, src)) = map.0.iter().find(|(k, _)| k == c) {
            idx[ci] = Some(find(src).ok_or_else(|| PortfolioError::MissingColumn {
                column: c.to_string(),
                mapped_from: Some(src.clone()),
            })?);
        } else {
            idx[ci] = find(c);
        }
    }
    for r in REQUIRED {
        if idx[r].is_none() {
            return Err(PortfolioError::MissingColumn {
                column: CANONICAL_COLUMNS[r].to_string(),
                mapped_from: None,
            });
        }
    }
    if idx[C_OVERDUE_DAYS].is_none() && idx[C_STATUS].is_none() {
        return Err(PortfolioError::MissingColumn {
            column: "overdue_days".to_string(),
            mapped_from: None,
        });
    }
    let used: Vec<usize> = idx.iter().flatten().copied().collect();
    let attrs = (0..headers.len())
        .filter(|i| !used.contains(i) && !headers[*i].is_empty())
        .collect();
    Ok(Columns { idx, attrs })
}

/// Reference data and caches used by validation.
pub(super) struct Validator<'a> {
    pub(super) config: &'a PortfolioConfig,
    pub(super) status_map: &'a [(String, LoanStatus)],
    pub(super) region_cache: rustc_hash::FxHashMap<String, Option<[Option<String>; 3]>>,
    pub(super) industry_cache: rustc_hash::FxHashMap<String, Option<IndustryPath>>,
    pub(super) purpose_labeler: KeywordPurposeLabeler,
}

impl Validator<'_> {
    pub(super) fn validate(
        &mut self,
        row: u64,
        cols: &Columns,
        headers: &[String],
        f: &[String],
        extra: &[(String, serde_json::Value)],
        errs: &mut Vec<RowError>,
    ) -> Option<LoanRow> {
        let n0 = errs.len();
        let get = |c: usize| cols.idx[c].map(|i| f[i].trim()).filter(|s| !s.is_empty());
        let mut err = |field: &str, reason: String| {
            errs.push(RowError {
                row,
                field: field.to_string(),
                reason,
            })
        };
        let loan_id = get(C_LOAN_ID);
        if loan_id.is_none() {
            err("loan_id", "empty loan_id".into());
        }
        let purpose_text = get(C_PURPOSE_TEXT);
        if purpose_text.is_none() {
            err("purpose_text", "empty purpose_text".into());
        }
        let amount = match get(C_AMOUNT).map(parse_amount) {
            Some(Err(e)) => {
                err("amount", e);
                None
            }
            Some(Ok(v)) => Some(v),
            None => None,
        };
        let balance = match get(C_BALANCE).map(parse_amount) {
            Some(Err(e)) => {
                err("balance", e);
                None
            }
            Some(Ok(v)) => Some(v),
            None => {
                err("balance", "empty balance".into());
                None
            }
        };
        let overdue_days = match get(C_OVERDUE_DAYS).map(parse_days) {
            Some(Err(e)) => {
                err("overdue_days", e);
                None
            }
            Some(Ok(v)) => Some(v),
            None => None,
        };
        let status = match get(C_STATUS) {
            Some(s) => {
                let mapped = self
                    .status_map
                    .iter()
                    .find(|(k, _)| k == s)
                    .map(|(_, v)| *v)
                    .or_else(|| LoanStatus::parse(s));
                if mapped.is_none() {
                    err(
                        "status",
                        format!("unknown status {s:?} (current, overdue, default, charged_off, paid_off)"),
                    );
                }
                mapped
            }
            None => None,
        };
        if overdue_days.is_none()
            && status.is_none()
            && get(C_OVERDUE_DAYS).is_none()
            && get(C_STATUS).is_none()
        {
            err(
                if cols.idx[C_OVERDUE_DAYS].is_some() {
                    "overdue_days"
                } else {
                    "status"
                },
                "neither overdue_days nor status given".into(),
            );
        }
        let region_code = get(C_REGION);
        let region = match region_code {
            None => {
                err("region_code", "empty region_code".into());
                None
            }
            Some(code) => {
                let scheme = self.config.region_scheme;
                let r = match self.region_cache.get(code) {
                    Some(r) => r.clone(),
                    None => {
                        let r = scheme.resolve(code);
                        self.region_cache.insert(code.to_string(), r.clone());
                        r
                    }
                };
                if r.is_none() {
                    err(
                        "region_code",
                        format!(
                            "unknown region code {code:?} in the {} table",
                            scheme.as_str()
                        ),
                    );
                }
                r
            }
        };
        let issue_date = match get(C_ISSUE) {
            Some(s) => {
                let d = parse_date(s);
                if d.is_none() {
                    err("issue_date", format!("{s:?} is not a date YYYY-MM-DD"));
                }
                d
            }
            None => None,
        };
        let as_of_date = match get(C_AS_OF) {
            Some(s) => {
                let d = parse_date(s);
                if d.is_none() {
                    err("as_of_date", format!("{s:?} is not a date YYYY-MM-DD"));
                }
                d
            }
            None => {
                err("as_of_date", "empty as_of_date".into());
                None
            }
        };
        let (industry, industry_code) = match get(C_INDUSTRY) {
            Some(code) => {
                let p = match self.industry_cache.get(code) {
                    Some(p) => p.clone(),
                    None => {
                        let p = industry_path(code);
                        self.industry_cache.insert(code.to_string(), p.clone());
                        p
                    }
                };
                if p.is_none() {
                    err(
                        "industry_code",
                        format!("{code:?} is not a GB/T 4754-2017 code"),
                    );
                }
                (p, Some(code.to_string()))
            }
            None => (None, None),
        };
        let (purpose_code, purpose_conf, purpose_source) = match get(C_PURPOSE) {
            Some(p) => {
                if !self.config.purpose_scheme.contains(p) {
                    err(
                        "purpose",
                        format!(
                            "{p:?} is not a code of purpose taxonomy {}",
                            self.config.purpose_scheme.id
                        ),
                    );
                }
                (Some(p.to_string()), Some(1.0), Some("input"))
            }
            None => match purpose_text {
                Some(t) if self.config.purpose_scheme.is_builtin() => {
                    let (c, conf) = self.purpose_labeler.label_one(t);
                    (Some(c.to_string()), Some(conf as f64), Some("keywords"))
                }
                _ => (None, None, None),
            },
        };
        if errs.len() > n0 {
            return None;
        }
        let attributes = if cols.attrs.is_empty() && extra.is_empty() {
            None
        } else {
            let mut m = serde_json::Map::new();
            for &i in &cols.attrs {
                m.insert(headers[i].clone(), serde_json::Value::String(f[i].clone()));
            }
            for (k, v) in extra {
                m.insert(k.clone(), v.clone());
            }
            Some(serde_json::Value::Object(m).to_string())
        };
        let attr = |name: &str| {
            cols.attrs
                .iter()
                .find(|&&i| headers[i] == name)
                .map(|&i| f[i].trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let model_text = touxiang_datasets::LoanText {
            text: purpose_text?.to_string(),
            borrower_name: attr("borrower_name"),
            business_scope: attr("business_scope"),
            declared_industry: None,
        }
        .model_text();
        Some(LoanRow {
            row,
            loan_id: loan_id?.to_string(),
            purpose_text: purpose_text?.to_string(),
            model_text,
            amount,
            balance: balance?,
            overdue_days,
            status,
            region_code: region_code?.to_string(),
            region: region?,
            customer_type: get(C_CUSTOMER).map(str::to_string),
            product: get(C_PRODUCT).map(str::to_string),
            issue_date,
            as_of_date: as_of_date?,
            industry,
            industry_code,
            purpose_code,
            purpose_conf,
            purpose_source,
            attributes,
        })
    }
}
