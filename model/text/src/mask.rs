//! Masking of amounts, dates and identifiers — tokens that carry no industry meaning.
//!
//! Expects [`crate::normalize`]d input (half-width digits and punctuation, simplified Chinese);
//! [`crate::prepare`] chains the two. Each rule runs as one regex pass, in a fixed order
//! (structured ids → amounts → dates → remaining ids), and replaces its match with a placeholder
//! that no later rule can match. Short numbers inside product names and specifications
//! (`304不锈钢`, `5G基站`, `Q235B`, `12英寸`, `100吨`) are left alone: a bare number is only masked
//! when it carries a currency, sits in a date shape, follows an amount keyword (`贷款300万`), or is
//! long enough to be an identifier (7+ digits; 6+ digits inside a letter/digit code).

use regex::{Captures, Regex};
use std::sync::LazyLock;

/// Placeholder for money amounts.
pub const AMOUNT: &str = "[金额]";
/// Placeholder for dates.
pub const DATE: &str = "[日期]";
/// Placeholder for identifiers (contract, account, phone, credit-code numbers).
pub const ID: &str = "[编号]";

struct Rule {
    name: &'static str,
    re: Regex,
    placeholder: &'static str,
    /// Optional extra check on the whole match (the regex crate has no look-around).
    accept: Option<fn(&str) -> bool>,
}

/// Numbers: `5,000,000.00`, `300`, `1.5`.
const NUM: &str = r"(?:[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?|[0-9]+(?:\.[0-9]+)?)";
/// Multipliers between a number and its currency: `300万元`, `1.2亿元`, `50k`, `300余万元`.
const MULT: &str = r"(?:余|多)?(?:百万|千万|万亿|万|亿|千|百|[kKwWmM])?(?:余|多)?";
/// Currencies after the number.
const CUR_AFTER: &str =
    r"(?:元|圆|块钱|块|人民币|美元|美金|港元|港币|欧元|日元|英镑|RMB|CNY|USD|HKD|EUR|dollars?)";
/// Currencies before the number.
const CUR_BEFORE: &str = r"(?:人民币|RMB|CNY|USD|HKD|EUR|US\$|[¥$€£])";
/// Financial (upper-case) numerals.
const CN_UPPER: &str = "零壹贰叁参肆伍陆柒捌玖拾佰仟万亿";
/// Ordinary numerals.
const CN_LOWER: &str = "零〇一二两三四五六七八九十百千万亿";
/// ASCII word boundary: CJK characters count as non-word, so `编号12345678` has a boundary
/// before the digits, while `A12345678` does not.
const B: &str = r"(?-u:\b)";

fn rules() -> Vec<Rule> {
    let r = |name, pattern: String, placeholder, accept| Rule {
        name,
        re: Regex::new(&pattern).unwrap_or_else(|e| panic!("mask rule {name}: {e}")),
        placeholder,
        accept,
    };
    vec![
        // 统一社会信用代码: 2 chars, 6-digit region code, 9-char org code + check char.
        r(
            "credit_code",
            format!(r"(?i){B}[0-9A-HJ-NP-RT-UW-Y]{{2}}[0-9]{{6}}[0-9A-HJ-NP-RT-UW-Y]{{10}}{B}"),
            ID,
            Some(has_letter_or_many_digits),
        ),
        // Document-style numbers: (2024)京银贷字第0012号, 〔2024〕12号, 第HT-2024-001号.
        r(
            "doc_number",
            r"[(\[〔【][0-9]{4}[)\]〕】][^\s,;:。，；：()]{0,12}?第?[A-Za-z0-9-]+号|第[A-Za-z0-9-]*[0-9]{3,}[A-Za-z0-9-]*号"
                .to_string(),
            ID,
            None,
        ),
        // Amounts: number + multiplier + currency, optionally with a currency prefix.
        r(
            "amount",
            format!(r"(?:{CUR_BEFORE}\s*)?{NUM}\s*{MULT}\s*{CUR_AFTER}整?"),
            AMOUNT,
            None,
        ),
        // Amounts: currency prefix + number (+ multiplier): ¥1200, 人民币500万, USD 1.2M.
        r(
            "amount_prefixed",
            format!(r"{CUR_BEFORE}\s*{NUM}(?:\s*(?:余|多)?(?:百万|千万|万亿|万|亿|[kKmM])(?:余|多)?)?"),
            AMOUNT,
            None,
        ),
        // Amounts in financial numerals: (人民币)伍拾万元整, 壹佰万圆.
        r(
            "amount_cn_upper",
            format!(
                r"(?:人民币\s*)?[零壹贰叁参肆伍陆柒捌玖拾][{CN_UPPER}]*[元圆](?:[{CN_UPPER}]+[角分])*整?"
            ),
            AMOUNT,
            None,
        ),
        // Amounts in ordinary numerals with a magnitude: 五十万元, 三百万元 (but not 三元锂电池).
        r(
            "amount_cn_lower",
            format!(r"(?:人民币\s*)?[{CN_LOWER}]*[十百千万亿][{CN_LOWER}]*(?:余|多)?[元圆]整?"),
            AMOUNT,
            None,
        ),
        // Bare amounts after an amount keyword: 贷款300万, 金额:500000, 额度为1,000万.
        r(
            "amount_keyword",
            format!(
                r"(?P<pre>(?:贷款|借款|金额|额度|融资|授信|总额|总计|合计|共计|本金|余额)\s*(?:为|是|:|约|共)?\s*){NUM}\s*{MULT}"
            ),
            AMOUNT,
            None,
        ),
        // Bare 万/亿 amounts at the end of a clause: 申请300万, / 需要1.5亿。
        r(
            "amount_wan",
            format!(r"{B}{NUM}(?:余|多)?(?:万|亿)(?P<post>[,.;:!?，。；：！？、)]|\s|$)"),
            AMOUNT,
            None,
        ),
        // Dates: 2024年3月1日, 2024年3月, 2024年, 2024-2025年.
        r(
            "date_cn",
            format!(
                r"{B}(?:19|20)[0-9]{{2}}\s*(?:[-~至到]\s*(?:19|20)[0-9]{{2}}\s*)?年(?:\s*[0-9]{{1,2}}\s*月(?:\s*[0-9]{{1,2}}\s*[日号])?)?"
            ),
            DATE,
            None,
        ),
        // Dates: 2024-03-01, 2024/3/1, 2024.03.01, 2024-03.
        r(
            "date_iso",
            format!(r"{B}(?:19|20)[0-9]{{2}}([-/.])(?:0?[1-9]|1[0-2])(?:[-/.](?:0?[1-9]|[12][0-9]|3[01]))?{B}"),
            DATE,
            None,
        ),
        // Dates: 03/01/2024 (US order), 1.3.2024.
        r(
            "date_dmy",
            format!(r"{B}[0-9]{{1,2}}[/.][0-9]{{1,2}}[/.](?:19|20)[0-9]{{2}}{B}"),
            DATE,
            None,
        ),
        // Dates: 20240301.
        r(
            "date_compact",
            format!(r"{B}(?:19|20)[0-9]{{2}}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01]){B}"),
            DATE,
            None,
        ),
        // Dates: 3月1日, 12月31号.
        r(
            "date_md",
            format!(r"{B}[0-9]{{1,2}}\s*月\s*[0-9]{{1,2}}\s*[日号]"),
            DATE,
            None,
        ),
        // Grouped digits: bank card 6222 0210 0112 3456 789, phone 138-0013-8000, 0571-8888 6666.
        r(
            "digit_groups",
            format!(r"{B}[0-9]{{3,4}}(?:[ -][0-9]{{3,4}}){{2,}}(?:[ -][0-9]{{1,4}})?{B}"),
            ID,
            None,
        ),
        // Letter/digit codes: HT2024001, XJ-2024-0312, 0571-88886666, GB/T4754-2017.
        r(
            "code",
            format!(r"{B}[A-Za-z0-9][A-Za-z0-9_/-]*[A-Za-z0-9]{B}"),
            ID,
            Some(is_identifier),
        ),
    ]
}

/// A credit-code candidate must contain a letter or be mostly digits (a plain 18-digit run is an
/// id either way).
fn has_letter_or_many_digits(s: &str) -> bool {
    s.chars().any(|c| c.is_ascii_alphabetic())
        || s.chars().filter(char::is_ascii_digit).count() >= 7
}

/// A letter/digit token is an identifier when it has 7+ digits, or 6+ digits mixed with letters
/// or separators. `5G`, `Q235B`, `SUS304`, `RTX4090`, `DDR5-6400` are not.
fn is_identifier(s: &str) -> bool {
    let digits = s.chars().filter(char::is_ascii_digit).count();
    let only_digits = digits == s.len();
    if only_digits {
        digits >= 7
    } else {
        digits >= 6
    }
}

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(rules);

/// Replace amounts with [`AMOUNT`], dates with [`DATE`] and identifiers with [`ID`].
///
/// Amounts: `300万元`, `5,000,000.00元`, `人民币伍拾万元`, `五十万元`, `¥1200`, `$5,000`, `USD 1.2M`,
/// `贷款300万`. Dates: `2024年3月`, `2024年3月1日`, `2024-03-01`, `2024/3/1`, `03/01/2024`,
/// `20240301`, `3月1日`. Ids: 统一社会信用代码 (18 chars), `(2024)京银贷字第0012号`, letter/digit
/// codes with 6+ digits, digit runs of 7+ (accounts, phones), grouped digits
/// (`6222 0210 0112 3456`). Everything else, including short numbers in product names, is kept.
pub fn mask(s: &str) -> String {
    let mut text = s.to_string();
    for rule in RULES.iter() {
        if !rule.re.is_match(&text) {
            continue;
        }
        let replaced = rule.re.replace_all(&text, |caps: &Captures| {
            let whole = caps.get(0).map_or("", |m| m.as_str());
            if let Some(accept) = rule.accept {
                if !accept(whole) {
                    return whole.to_string();
                }
            }
            let pre = caps.name("pre").map_or("", |m| m.as_str());
            let post = caps.name("post").map_or("", |m| m.as_str());
            format!("{pre}{}{post}", rule.placeholder)
        });
        text = replaced.into_owned();
    }
    text
}

/// Names of the mask rules, in the order they run (for logs and documentation).
pub fn mask_rule_names() -> Vec<&'static str> {
    RULES.iter().map(|r| r.name).collect()
}
