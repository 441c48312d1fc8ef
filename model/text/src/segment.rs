//! Word segmentation (jieba-rs) with a taxonomy + finance user dictionary, and keywords.

use crate::TextError;
use jieba_rs::{Jieba, KeywordExtract, KeywordExtractConfig, TfIdf};
use std::collections::{BTreeSet, HashSet};
use std::io::BufRead;
use touxiang_datasets::Taxonomy;

/// Finance terms added to every segmenter's dictionary (`data/finance_terms.txt`).
pub const FINANCE_TERMS: &str = include_str!("../data/finance_terms.txt");
/// Product and trade terms jieba splits badly (`data/industry_terms.txt`).
pub const INDUSTRY_TERMS: &str = include_str!("../data/industry_terms.txt");
/// Loan boilerplate excluded from keywords (`data/stop_words.txt`).
pub const STOP_WORDS: &str = include_str!("../data/stop_words.txt");

/// Part-of-speech tags (jieba's ICTCLAS set) never returned as keywords: numerals, measure
/// words, pronouns, prepositions, conjunctions, particles, adverbs, auxiliaries, punctuation.
const EXCLUDED_TAGS: &[&str] = &[
    "m", "mq", "q", "r", "rr", "rz", "p", "c", "u", "uj", "ul", "ud", "ug", "uz", "uv", "d", "e",
    "y", "o", "x", "w", "f", "t", "tg",
];

/// Characters a taxonomy name is split on to get its short component names
/// (`"豆类、油料和薯类种植"` → `豆类`, `油料`, `薯类种植`).
const NAME_SEPARATORS: &[char] = &[
    '、', '，', ',', '；', ';', '（', '）', '(', ')', '和', '及', '与', '或', ' ', '/',
];

/// Longest user-dictionary word taken from a taxonomy name, in characters. Longer names are
/// descriptions ("其他未列明…") that never occur verbatim in a loan purpose.
const MAX_NAME_CHARS: usize = 8;

/// Segmenter: jieba-rs with the default dictionary plus a user dictionary built from taxonomy
/// names, the finance-term list ([`FINANCE_TERMS`]) and product terms ([`INDUSTRY_TERMS`]), and TF-IDF keyword extraction with a loan-boilerplate stop
/// list.
///
/// Building one costs about half a second (dev and release alike: the time goes into
/// decompressing and parsing jieba's embedded default dictionary and IDF table, which are loaded
/// on two threads; the ~1 600 user words add a few ms). Measure with
/// `cargo run -p touxiang-text --example text_bench`. Build it once at startup and share it
/// (`Segmenter` is `Send + Sync`; all methods take `&self` except [`Segmenter::load_user_dict`]).
pub struct Segmenter {
    jieba: Jieba,
    tfidf: TfIdf,
    stop_words: HashSet<String>,
    user_words: usize,
}

impl std::fmt::Debug for Segmenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segmenter")
            .field("user_words", &self.user_words)
            .field("stop_words", &self.stop_words.len())
            .finish()
    }
}

impl Default for Segmenter {
    /// A segmenter whose user dictionary holds the GB/T 4754-2017 names and the finance terms.
    fn default() -> Self {
        Segmenter::new(&[Taxonomy::gbt4754()])
    }
}

fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// The words a taxonomy contributes to the user dictionary: each name (when it is a plain
/// word of 2..=8 characters) and its components split on `、，和及与或()` (2..=8 characters).
pub fn taxonomy_words(taxonomy: &Taxonomy) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ok = |w: &str| {
        let n = w.chars().count();
        (2..=MAX_NAME_CHARS).contains(&n) && w.chars().all(|c| !c.is_ascii_punctuation())
    };
    for node in taxonomy.nodes() {
        // Names are stored simplified already (GB/T 4754); only NFKC + whitespace here, which
        // is cheap, while OpenCC per name would dominate the build time.
        let name = crate::clean_whitespace(&crate::nfkc(&node.name));
        if ok(&name) && !name.contains(NAME_SEPARATORS) {
            out.insert(name.clone());
        }
        for part in name.split(NAME_SEPARATORS) {
            let part = part.trim();
            if ok(part) {
                out.insert(part.to_string());
            }
        }
    }
    out
}

impl Segmenter {
    /// A segmenter whose user dictionary holds the names of `taxonomies` (see
    /// [`taxonomy_words`]) and [`FINANCE_TERMS`].
    pub fn new(taxonomies: &[&Taxonomy]) -> Segmenter {
        // Loading jieba's default dictionary and its IDF table are the two big costs (each
        // decompresses and parses an embedded table); they are independent, so run them on two
        // threads.
        let (mut jieba, mut tfidf) = std::thread::scope(|s| {
            let idf = s.spawn(TfIdf::default);
            let jieba = Jieba::new();
            let tfidf = idf.join().unwrap_or_else(|_| TfIdf::default());
            (jieba, tfidf)
        });
        let mut user_words = 0;
        let mut words = BTreeSet::new();
        for t in taxonomies {
            words.extend(taxonomy_words(t));
        }
        for w in words {
            if !jieba.has_word(&w) {
                jieba.add_word(&w, None, Some("nz"));
                user_words += 1;
            }
        }
        for line in lines(FINANCE_TERMS).chain(lines(INDUSTRY_TERMS)) {
            user_words += add_dict_line(&mut jieba, line);
        }
        let stop_words: HashSet<String> = lines(STOP_WORDS)
            .map(str::to_lowercase)
            .chain(jieba_rs::DEFAULT_STOP_WORDS.iter().cloned())
            .collect();
        *tfidf.config_mut() = KeywordExtractConfig::builder()
            .set_stop_words(stop_words.iter().cloned().collect())
            .use_hmm(true)
            .min_keyword_length(2)
            .build();
        Segmenter {
            jieba,
            tfidf,
            stop_words,
            user_words,
        }
    }

    /// Add entries in jieba's dictionary format (`word [freq] [tag]` per line, `#` comments) —
    /// e.g. a bank's own product names. Returns the number of words added.
    pub fn load_user_dict<R: BufRead>(&mut self, reader: R) -> Result<usize, TextError> {
        let mut added = 0;
        for (i, line) in reader.lines().enumerate() {
            let line = line?;
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let mut parts = t.split_whitespace();
            let _word = parts.next();
            if let Some(freq) = parts.next() {
                if freq.parse::<usize>().is_err() {
                    return Err(TextError::UserDict {
                        line: i + 1,
                        message: format!("frequency {freq:?} is not a non-negative integer"),
                    });
                }
            }
            added += add_dict_line(&mut self.jieba, t);
        }
        self.user_words += added;
        Ok(added)
    }

    /// Number of words the user dictionary added to jieba's default dictionary.
    pub fn user_words(&self) -> usize {
        self.user_words
    }

    /// Whether `word` is in the segmentation dictionary.
    pub fn has_word(&self, word: &str) -> bool {
        self.jieba.has_word(word)
    }

    /// Whether `word` is on the keyword stop list (case-insensitive).
    pub fn is_stop_word(&self, word: &str) -> bool {
        self.stop_words.contains(&word.to_lowercase())
    }

    /// Segment `text` as given (no normalisation — pass [`crate::normalize`]d text for stable
    /// results) into words, with HMM for out-of-vocabulary words. Whitespace tokens are dropped;
    /// punctuation tokens are kept so the words can be re-joined.
    pub fn cut(&self, text: &str) -> Vec<String> {
        self.jieba
            .cut(text, true)
            .into_iter()
            .map(|t| t.word)
            .filter(|w| !w.trim().is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Up to `k` keywords of `text`, best first: the text is [`crate::prepare`]d (normalised and
    /// masked), then ranked by jieba-rs TF-IDF (IDF from jieba's table; words it lacks — e.g.
    /// taxonomy names — get the median IDF). Stop words (loan boilerplate), single characters,
    /// numerals, measure words and function words are left out; ties keep text order.
    ///
    /// TextRank is not blended in: tried with jieba-rs' `TextRank::default()` on short purposes,
    /// its ranks follow a word's position in the (chain-shaped) co-occurrence graph rather than
    /// its content — `用于烤串店装修及购买冷柜` gave 装修 > 购买 > 烤串 > 冷柜 > 用于, and
    /// `补充流动资金,采购热轧钢卷` ranked 采购 and 流动资金 first.
    pub fn keywords(&self, text: &str, k: usize) -> Vec<String> {
        if k == 0 {
            return Vec::new();
        }
        let masked = crate::prepare(text).masked;
        // Over-fetch, then drop excluded tags and pure-ASCII-digit tokens.
        let mut kws = self
            .tfidf
            .extract_keywords(&self.jieba, &masked, k + 16, Vec::new());
        kws.retain(|kw| {
            !EXCLUDED_TAGS.contains(&kw.tag.as_str())
                && !self.is_stop_word(&kw.keyword)
                && kw
                    .keyword
                    .chars()
                    .any(|c| !c.is_ascii_digit() && !c.is_ascii_punctuation())
        });
        // Stable order: weight desc, then first position in the text.
        let pos = |w: &str| masked.find(w).unwrap_or(usize::MAX);
        kws.sort_by(|a, b| {
            b.weight
                .partial_cmp(&a.weight)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| pos(&a.keyword).cmp(&pos(&b.keyword)))
        });
        kws.into_iter().take(k).map(|kw| kw.keyword).collect()
    }
}

/// Add one `word [freq] [tag]` line; returns 1 when the word was new.
fn add_dict_line(jieba: &mut Jieba, line: &str) -> usize {
    let mut parts = line.split_whitespace();
    let Some(word) = parts.next() else {
        return 0;
    };
    let freq = parts.next().and_then(|f| f.parse::<usize>().ok());
    let tag = parts.next().unwrap_or("nz");
    let new = !jieba.has_word(word);
    jieba.add_word(word, freq, Some(tag));
    usize::from(new)
}
