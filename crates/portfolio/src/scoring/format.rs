//! Alert wording: segment labels, amounts in words and p-values.

use crate::agg::KeyValue;

/// Segment label "C 制造业/11 北京市".
pub fn segment_label(keys: &[KeyValue]) -> String {
    keys.iter()
        .map(|k| match (&k.code, &k.name) {
            (Some(c), Some(n)) => format!("{c} {n}"),
            (Some(c), None) => c.clone(),
            (None, _) => "未分类".to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Amount in words: CNY as 亿元/万元/元, other currencies as "1,234,567 USD".
pub fn format_amount(v: f64, currency: &str) -> String {
    if currency.eq_ignore_ascii_case("CNY") || currency == "元" {
        if v.abs() >= 1e8 {
            format!("{:.1}亿元", v / 1e8)
        } else if v.abs() >= 1e4 {
            format!("{:.1}万元", v / 1e4)
        } else {
            format!("{v:.0}元")
        }
    } else {
        let s = format!("{:.0}", v.abs());
        let mut out = String::new();
        for (i, ch) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        format!("{}{out} {currency}", if v < 0.0 { "-" } else { "" })
    }
}

pub(super) fn format_p(p: f64) -> String {
    if p < 0.001 {
        "p<0.001".to_string()
    } else {
        format!("p={p:.3}")
    }
}
