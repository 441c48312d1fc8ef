//! Normalisation steps: NFKC, traditional → simplified, whitespace/control characters.

use ferrous_opencc::config::BuiltinConfig;
use ferrous_opencc::OpenCC;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;
use unicode_normalization::UnicodeNormalization;

/// Unicode NFKC normalisation: full-width ASCII → half-width (`"ＡＢＣ１２３，"` → `"ABC123,"`),
/// the ideographic space → a plain space, CJK compatibility ideographs → unified ones, circled
/// digits → digits. CJK punctuation without a compatibility mapping (`"。"`, `"、"`) is kept.
pub fn nfkc(s: &str) -> String {
    s.nfkc().collect()
}

/// OpenCC traditional → simplified converter, built once.
///
/// Crate choice: [`ferrous_opencc`] (Apache-2.0) is a pure-Rust port of OpenCC that ships the
/// OpenCC dictionaries inside the crate and compiles them in its build script — nothing is
/// downloaded at build or run time, and it follows OpenCC's phrase-then-character conversion
/// (`TSPhrases` + `TSCharacters`), so phrase-level cases convert correctly. Rejected:
/// `zhconv` (GPL-2.0-or-later, incompatible with this Apache-2.0 project), `opencc-jieba-rs`
/// (pins its own `jieba-rs =0.7.4` and `rayon =1.10`, duplicating and constraining our
/// dependencies), `fast2s` (last release 0.3.1, character-level tables, unmaintained),
/// `opencc-rs` (bindings to the C++ library). Only the `t2s-conversion` feature is enabled, so
/// the 1 MB simplified→traditional phrase table is not compiled in. The plain `t2s` config is
/// used (not `tw2sp`): it converts characters and character-level phrases without rewriting
/// Taiwan vocabulary, which keeps the text faithful to what the applicant wrote.
static T2S: LazyLock<OpenCC> = LazyLock::new(|| {
    OpenCC::from_config(BuiltinConfig::T2s)
        .expect("embedded OpenCC t2s config and dictionaries load (checked by tests)")
});

/// Traditional → simplified Chinese with the OpenCC `t2s` dictionaries
/// (`"購買設備，補充流動資金"` → `"购买设备，补充流动资金"`). Simplified text and non-Chinese text
/// pass through unchanged. The converter is built on first use (see [`warm_up`]).
pub fn to_simplified(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    T2S.convert(s)
}

/// Build the lazily initialised converter now (call at startup so the first request does not
/// pay for it).
pub fn warm_up() {
    LazyLock::force(&T2S);
}

/// Zero-width and formatting characters that are invisible but break matching.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}'
    )
}

/// Remove control and zero-width characters, collapse every whitespace run (including newlines,
/// tabs and the ideographic space) to one ASCII space, and trim both ends.
pub fn clean_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            pending_space = true;
        } else if c.is_control() || is_invisible(c) {
            // dropped
        } else {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c);
        }
    }
    out
}

/// The canonical form of a purpose text: `clean_whitespace(to_simplified(nfkc(s)))`, put in
/// NFKC once more when cleaning changed it.
///
/// This is the cache key and the encoder input (before masking). It is idempotent:
/// `normalize(&normalize(s)) == normalize(s)`. The last step is what makes it so: dropping a
/// control or invisible character can leave two combining marks side by side out of canonical
/// order (found by the `text_pipeline` fuzz target: `"\u{36d}\u{e}\u{354}"`), and the next
/// `normalize` would reorder them — the same text would get two cache keys.
pub fn normalize(s: &str) -> String {
    let cleaned = clean_whitespace(&to_simplified(&nfkc(s)));
    if unicode_normalization::is_nfkc_quick(cleaned.chars())
        == unicode_normalization::IsNormalized::Yes
    {
        cleaned
    } else {
        nfkc(&cleaned)
    }
}

/// A text at each pipeline stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepared {
    /// The input exactly as received (keep it in the record).
    pub raw: String,
    /// [`normalize`]d text.
    pub normalized: String,
    /// [`crate::mask`] applied to `normalized`: amounts, dates and ids replaced by placeholders.
    pub masked: String,
}

/// Run the whole pipeline: raw → normalized → masked.
pub fn prepare(s: &str) -> Prepared {
    let normalized = normalize(s);
    let masked = crate::mask(&normalized);
    Prepared {
        raw: s.to_string(),
        normalized,
        masked,
    }
}
