//! Normalisation of texts for dedup and the cache key.
//!
//! Placeholder until `touxiang_text::normalize` (NFKC + 繁→简 + whitespace) lands: NFKC and
//! whitespace folding only. Switching changes cache keys of traditional-script texts only
//! (they are re-labeled once).

use unicode_normalization::UnicodeNormalization;

/// Normalised form of `text`: NFKC, whitespace runs folded to one space, trimmed.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.nfkc() {
        if c.is_whitespace() || c.is_control() {
            space = true;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn folds_width_and_space() {
        assert_eq!(super::normalize("  补充　流动资金\t\n"), "补充 流动资金");
        assert_eq!(super::normalize("ＡＢＣ１２３"), "ABC123");
        assert_eq!(super::normalize(" \u{3000} "), "");
    }
}
