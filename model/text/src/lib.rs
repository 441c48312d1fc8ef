//! Chinese text pipeline for loan purposes, each step a small public function:
//!
//! 1. [`nfkc`] — Unicode NFKC (全角 → 半角),
//! 2. [`to_simplified`] — traditional → simplified (OpenCC `t2s` dictionaries),
//! 3. [`clean_whitespace`] — control/zero-width characters out, whitespace runs → one space,
//! 4. [`normalize`] = 3 ∘ 2 ∘ 1 — the cache key and encoder input,
//! 5. [`mask`] — amounts / dates / ids → `[金额]` / `[日期]` / `[编号]`,
//! 6. [`prepare`] — all of the above, keeping the raw text,
//! 7. [`Segmenter`] — jieba-rs segmentation with a taxonomy + finance user dictionary, and
//!    TF-IDF keywords without loan boilerplate.
mod mask;
mod normalize;
mod segment;

pub use mask::{mask, mask_rule_names, AMOUNT, DATE, ID};
pub use normalize::{clean_whitespace, nfkc, normalize, prepare, to_simplified, warm_up, Prepared};
pub use segment::{taxonomy_words, Segmenter, FINANCE_TERMS, INDUSTRY_TERMS, STOP_WORDS};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// A user dictionary line is malformed.
    #[error("user dictionary line {line}: {message}")]
    UserDict { line: usize, message: String },
    /// Reading a user dictionary failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}
