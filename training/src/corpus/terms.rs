//! Reading note text into training terms: 包括 items (head and sub-terms, brackets), definition
//! sentences and template lines.

use crate::error::{Result, TrainError};

fn strip_markers(s: &str) -> String {
    let mut t = s.trim().to_string();
    for m in ["（部分）", "(部分)", "（不含", "(不含"] {
        if let Some(i) = t.find(m) {
            if m.ends_with("部分）") || m.ends_with("部分)") {
                t = t.replacen(m, "", 1);
            } else {
                t.truncate(i);
            }
        }
    }
    t.trim_matches(|c: char| c.is_whitespace() || "。；;，,、：:".contains(c))
        .to_string()
}

/// Clean one term: strip markers, drop fillers. `None` when nothing useful remains.
pub(super) fn clean_term(s: &str) -> Option<String> {
    let t = strip_markers(s);
    if t.starts_with("其他未列明") || t.starts_with("未列明") {
        return None;
    }
    let t = t.strip_prefix("其他").map(str::to_string).unwrap_or(t);
    let t = t.trim().to_string();
    if t.chars().count() < 2 {
        return None;
    }
    Some(t)
}

/// Split `s` at top-level separators (not inside brackets).
fn split_top(s: &str, seps: &[char]) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '（' | '(' => {
                depth += 1;
                cur.push(c);
            }
            '）' | ')' => {
                depth -= 1;
                cur.push(c);
            }
            c if depth <= 0 && seps.contains(&c) => {
                out.push(std::mem::take(&mut cur));
            }
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().filter(|x| !x.trim().is_empty()).collect()
}

/// `s` split at its first bracket: the text before it and the bracket's content
/// ("红粒高粱（种用红粒高粱、其他红粒高粱）" → ("红粒高粱", "种用红粒高粱、其他红粒高粱")).
fn outer_inner(s: &str) -> (String, Option<String>) {
    match s.find(['（', '(']) {
        Some(i) => {
            let inner: String = s[i..]
                .chars()
                .skip(1)
                .take_while(|c| *c != '）' && *c != ')')
                .collect();
            (s[..i].to_string(), Some(inner))
        }
        None => (s.to_string(), None),
    }
}

/// Words that make a bracket a qualifier of the term before it (use, scope, grade, size), not
/// a list of sub-items or another name for it.
const QUALIFIER_MARKS: &[&str] = &[
    "用", "除外", "以外", "含", "以上", "以下", "主要", "是指", "基于", "包括", "如", "级", "型",
    "等", "部分",
];

/// Longest training text built from a term and its qualifier; beyond it the bare term is kept.
const MAX_QUALIFIED_CHARS: usize = 40;

/// Training terms of one listed item: the main term and further terms.
/// - sub-items, "红粒高粱（种用红粒高粱、其他红粒高粱）": the term, then each sub-item;
/// - another name, "裸燕麦（莜麦）", "聚己内酯（PCL）": both names;
/// - a qualifier, "压缩机（石油钻采专用）", "硫铝酸盐水泥（膨胀、自应力）": the term *with* its
///   qualifier as one text — the bare term names another class's product ("压缩机" is 3442's)
///   and the bare qualifier names nothing ("石油钻采专用", "部分").
fn item_terms(s: &str) -> (Option<String>, Vec<String>) {
    let (outer, inner) = outer_inner(s);
    let Some(inner) = inner else {
        return (clean_term(&outer), vec![]);
    };
    let parts = split_top(&inner, &['、', '，', ',']);
    let outer_t = outer.trim();
    let tail: String = {
        let cs: Vec<char> = outer_t.chars().collect();
        cs[cs.len().saturating_sub(2)..].iter().collect()
    };
    let sub_items = outer_t.chars().count() < 2
        || parts
            .iter()
            .any(|p| p.contains(tail.as_str()) || p.starts_with("其他"));
    let alias = parts.len() == 1
        && parts[0].chars().count() <= 8
        && !QUALIFIER_MARKS.iter().any(|m| parts[0].contains(m));
    if sub_items || alias {
        return (
            clean_term(&outer),
            parts.iter().filter_map(|p| clean_term(p)).collect(),
        );
    }
    let qualified = format!("{outer_t}（{}）", inner.trim());
    if qualified.chars().count() <= MAX_QUALIFIED_CHARS {
        (clean_term(&qualified), vec![])
    } else {
        (clean_term(&outer), vec![])
    }
}

/// Head term and sub-terms of one 包括 item: "早籼稻：种用早籼稻、其他早籼稻" → head "早籼稻",
/// sub-terms ["种用早籼稻", "早籼稻" (deduplicated later)]. Fillers ("其他未列明…") are dropped;
/// brackets are read by [`item_terms`].
pub fn parse_include(item: &str) -> (Option<String>, Vec<String>) {
    let item = item.trim();
    let (head, rest) = match item.split_once(['：', ':']) {
        Some((h, r)) => (h, Some(r)),
        None => (item, None),
    };
    let (head, mut subs) = item_terms(head);
    if let Some(rest) = rest {
        for part in split_top(rest, &['、', '，', ',', '；', ';']) {
            let (main, more) = item_terms(&part);
            subs.extend(main);
            subs.extend(more);
        }
    }
    // Under a trade heading the listed goods are what is traded: "面粉批发和进出口：精面粉、
    // 专用面" lists 精面粉批发和进出口, not the milling of 精面粉 (that is 1311's).
    if let Some(trade) = head
        .as_deref()
        .and_then(|h| TRADE_SUFFIXES.iter().find(|s| h.ends_with(*s)))
    {
        for t in &mut subs {
            if !TRADE_SUFFIXES.iter().any(|s| t.contains(s)) {
                t.push_str(trade);
            }
        }
    }
    (head, subs)
}

/// Endings of a 包括 heading that names trade in goods (wholesale, retail, import and export).
const TRADE_SUFFIXES: &[&str] = &["批发和进出口", "批发", "零售", "进出口"];

/// Definition sentence → training text: strip "指", boilerplate and the trailing period; `None`
/// for pure boilerplate ("本门类包括01～05大类。").
pub fn clean_definition(s: &str) -> Option<String> {
    let s = s.trim();
    if s.starts_with("本门类包括") || s.starts_with("本大类包括") || s.is_empty() {
        return None;
    }
    let s = s.trim_start_matches(['—', '-', '－']);
    let s = s.strip_prefix("指").unwrap_or(s);
    let s = s.strip_prefix("对").unwrap_or(s);
    let t = s.trim_end_matches(['。', '；', ';', '.']).trim();
    if t.chars().count() < 2 {
        None
    } else {
        Some(t.to_string())
    }
}

/// Parse template lines: `SECTIONS<TAB>template`, `#` comments.
pub fn parse_templates(text: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let (secs, tpl) = l.split_once('\t').ok_or_else(|| TrainError::BadLine {
            path: "templates".into(),
            line: i + 1,
            message: "expected SECTIONS<TAB>template".into(),
        })?;
        if !tpl.contains("{item}") {
            return Err(TrainError::BadLine {
                path: "templates".into(),
                line: i + 1,
                message: "template has no {item}".into(),
            });
        }
        out.push((secs.trim().to_string(), tpl.trim().to_string()));
    }
    Ok(out)
}
