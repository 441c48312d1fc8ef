//! Shared test helpers: a small GB/T 4754-shaped taxonomy.
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};

/// Classes of the fake taxonomy; sections, divisions and groups are derived.
const CLASSES: &[&str] = &["6110", "6210", "6291", "6299", "1311", "1320"];

fn section_of(division: &str) -> Option<&'static str> {
    match division {
        "61" | "62" => Some("H"),
        "13" => Some("C"),
        _ => None,
    }
}

/// Root-first path of `code` in taxonomy "gbt" (None for anything else).
pub fn gbt(tax: &str, code: &str) -> Option<Vec<String>> {
    if tax != "gbt" {
        return None;
    }
    if code == "H" || code == "C" {
        return Some(vec![code.to_string()]);
    }
    if !code.chars().all(|c| c.is_ascii_digit()) || !(2..=4).contains(&code.len()) {
        return None;
    }
    if !CLASSES.iter().any(|c| c.starts_with(code)) {
        return None;
    }
    let section = section_of(&code[..2])?;
    let mut path = vec![section.to_string()];
    for n in 2..=code.len() {
        path.push(code[..n].to_string());
    }
    Some(path)
}

pub fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + secs, 0).unwrap()
}
