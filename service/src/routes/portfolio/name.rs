//! Portfolio names (part of [`super`]): the one rule every `{name}` path segment must follow
//! before a portfolio is created or written.

use crate::error::ApiError;

/// The rule, as documented on the `name` path parameter in the OpenAPI document: letters
/// `A-Z a-z`, digits `0-9`, CJK ideographs (Unicode script Han), `.`, `_` and `-`; 1 to 64
/// characters; the first one a letter, digit or ideograph (so never `.`/`..` or a hidden name,
/// never a leading `-`). No `/`, `\`, spaces or control characters.
pub const PATTERN: &str = r"^[A-Za-z0-9\p{Han}][A-Za-z0-9\p{Han}._-]{0,63}$";

/// Longest portfolio name, in characters.
pub const MAX_CHARS: usize = 64;

/// A CJK ideograph: the code blocks of the Han script (radicals, the unified ideographs and
/// their extensions A–I, the compatibility ideographs, 々 〇 and the Suzhou numerals).
fn is_han(c: char) -> bool {
    matches!(c as u32,
        0x2E80..=0x2FDF
        | 0x3005
        | 0x3007
        | 0x3021..=0x3029
        | 0x3038..=0x303B
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xF900..=0xFAFF
        | 0x20000..=0x2FA1F
        | 0x30000..=0x323AF)
}

fn is_lead(c: char) -> bool {
    c.is_ascii_alphanumeric() || is_han(c)
}

/// Check a portfolio name against [`PATTERN`]; 422 `invalid_field` naming `name` otherwise.
pub fn validate(name: &str) -> Result<(), ApiError> {
    let bad = |why: String| ApiError::invalid("name", format!("invalid portfolio name: {why}"));
    let n = name.chars().count();
    let Some(first) = name.chars().next() else {
        return Err(bad("it is empty".into()));
    };
    if n > MAX_CHARS {
        return Err(bad(format!("{n} characters; at most {MAX_CHARS}")));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(is_lead(c) || matches!(c, '.' | '_' | '-')))
    {
        return Err(bad(format!(
            "{c:?} is not allowed (letters A-Z a-z, digits, CJK characters, '.', '_', '-')"
        )));
    }
    if !is_lead(first) {
        return Err(bad(format!(
            "it starts with {first:?}; the first character must be a letter, digit or CJK character"
        )));
    }
    Ok(())
}
