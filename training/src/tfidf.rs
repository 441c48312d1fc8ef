//! Character n-gram TF-IDF: the featurizer shared with the TF-IDF baseline of `touxiang-eval`, and
//! [`LexicalIndex`], a sparse cosine kNN over exemplar texts — the lexical voter of the classifier
//! (it sees shared characters such as 稻 in 早籼稻/稻谷 that the sentence encoder may blur).
//!
//! - Text → [`touxiang_text::normalize`] → lowercase → character n-grams, hashed to 64 bits
//!   ([`ngram_counts`]).
//! - [`Vocab::fit`]: n-grams by document frequency (ties by hash), capped; smoothed idf
//!   `ln((1+N)/(1+df)) + 1`.
//! - [`Vocab::vectorize`]: sublinear tf `(1 + ln tf) × idf`, L2-normalised.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::classifier::Neighbor;

/// FNV-1a over the characters of an n-gram (stable across runs and platforms).
pub fn hash_chars(chars: &[char]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &c in chars {
        for b in (c as u32).to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h ^ chars.len() as u64
}

/// Hashed character n-grams (`lo..=hi` characters) of the normalised, lowercased text with their
/// counts, sorted by hash. All-whitespace n-grams are skipped.
pub fn ngram_counts(text: &str, lo: usize, hi: usize) -> Vec<(u64, u32)> {
    let norm = touxiang_text::normalize(text).to_lowercase();
    let chars: Vec<char> = norm.chars().collect();
    let mut keys = Vec::with_capacity(chars.len() * (hi + 1 - lo.min(hi)));
    for n in lo.max(1)..=hi {
        for w in chars.windows(n) {
            if w.iter().all(|c| c.is_whitespace()) {
                continue;
            }
            keys.push(hash_chars(w));
        }
    }
    keys.sort_unstable();
    let mut out: Vec<(u64, u32)> = Vec::with_capacity(keys.len());
    for k in keys {
        match out.last_mut() {
            Some((last, c)) if *last == k => *c += 1,
            _ => out.push((k, 1)),
        }
    }
    out
}

/// A sparse, L2-normalised TF-IDF vector (feature indices ascending by vocabulary order of
/// appearance in the text's n-grams).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseVec {
    pub idx: Vec<u32>,
    pub val: Vec<f32>,
}

/// Vocabulary (hashed n-gram → feature) with idf weights.
#[derive(Debug, Clone, Default)]
pub struct Vocab {
    map: HashMap<u64, u32>,
    idf: Vec<f32>,
    /// Distinct n-grams in the documents before `min_df` and the cap.
    pub ngrams_seen: usize,
}

impl Vocab {
    /// Fit on the n-gram counts of `docs`: n-grams in at least `min_df` documents, the `cap` most
    /// frequent by document frequency (ties by hash).
    pub fn fit(docs: &[Vec<(u64, u32)>], min_df: usize, cap: usize) -> Vocab {
        let mut df: HashMap<u64, u32> = HashMap::new();
        for g in docs {
            for (k, _) in g {
                *df.entry(*k).or_default() += 1;
            }
        }
        Self::from_df(df, docs.len(), min_df, cap)
    }

    /// [`Vocab::fit`] from document frequencies over `n_docs` documents.
    pub fn from_df(df: HashMap<u64, u32>, n_docs: usize, min_df: usize, cap: usize) -> Vocab {
        let ngrams_seen = df.len();
        let mut by_df: Vec<(u64, u32)> = df
            .into_iter()
            .filter(|(_, d)| *d as usize >= min_df.max(1))
            .collect();
        by_df.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        by_df.truncate(cap.max(1));
        let n_docs = n_docs as f32;
        let mut map = HashMap::with_capacity(by_df.len());
        let mut idf = Vec::with_capacity(by_df.len());
        for (i, (k, d)) in by_df.iter().enumerate() {
            map.insert(*k, i as u32);
            idf.push(((1.0 + n_docs) / (1.0 + *d as f32)).ln() + 1.0);
        }
        Vocab {
            map,
            idf,
            ngrams_seen,
        }
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.idf.len()
    }
    /// True when there is no feature.
    pub fn is_empty(&self) -> bool {
        self.idf.is_empty()
    }

    /// TF-IDF vector of n-gram counts (unknown n-grams are ignored).
    pub fn vectorize(&self, grams: &[(u64, u32)]) -> SparseVec {
        let mut v = SparseVec::default();
        for (k, tf) in grams {
            if let Some(&f) = self.map.get(k) {
                v.idx.push(f);
                v.val.push((1.0 + (*tf as f32).ln()) * self.idf[f as usize]);
            }
        }
        let norm = v.val.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.val.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }
}

/// Settings of the lexical voter (kept in the artifact metadata; the index itself is rebuilt from
/// the exemplar texts when the artifact is loaded).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LexicalConfig {
    pub ngram_min: usize,
    pub ngram_max: usize,
    pub min_df: usize,
    pub max_features: usize,
}

impl Default for LexicalConfig {
    fn default() -> Self {
        LexicalConfig {
            ngram_min: 1,
            ngram_max: 3,
            min_df: 1,
            max_features: 200_000,
        }
    }
}

/// Sparse cosine kNN over exemplar texts (inverted index over TF-IDF features).
pub struct LexicalIndex {
    cfg: LexicalConfig,
    vocab: Vocab,
    /// Postings in compressed sparse rows: feature `f`'s (document, value) pairs are
    /// `post_docs[off[f]..off[f + 1]]` / `post_vals[…]`. One exact-size allocation each (a
    /// `Vec` per feature, built from n-grams held for all texts, left ~60 MiB more resident).
    off: Vec<u32>,
    post_docs: Vec<u32>,
    post_vals: Vec<f32>,
    texts: Vec<String>,
    codes: Vec<String>,
}

impl LexicalIndex {
    /// Index `texts` (labeled with `codes`, same length).
    pub fn new(cfg: LexicalConfig, texts: Vec<String>, codes: Vec<String>) -> LexicalIndex {
        assert_eq!(texts.len(), codes.len(), "texts and codes differ in length");
        // Streamed in chunks (n-grams are recomputed per pass rather than held for all texts:
        // holding them peaked at ~140 MiB for the GB/T exemplars and the allocator kept it).
        let grams_of = |t: &String| ngram_counts(t, cfg.ngram_min, cfg.ngram_max);
        let mut df: HashMap<u64, u32> = HashMap::new();
        for chunk in texts.chunks(4096) {
            let g: Vec<Vec<(u64, u32)>> = chunk.par_iter().map(grams_of).collect();
            for (k, _) in g.iter().flatten() {
                *df.entry(*k).or_default() += 1;
            }
        }
        let vocab = Vocab::from_df(df, texts.len(), cfg.min_df, cfg.max_features);
        let vectorize = |chunk: &[String]| -> Vec<SparseVec> {
            chunk
                .par_iter()
                .map(|t| vocab.vectorize(&grams_of(t)))
                .collect()
        };
        let mut off = vec![0u32; vocab.len() + 1];
        for chunk in texts.chunks(4096) {
            for v in vectorize(chunk) {
                for &f in &v.idx {
                    off[f as usize + 1] += 1;
                }
            }
        }
        for f in 0..vocab.len() {
            off[f + 1] += off[f];
        }
        let total = off[vocab.len()] as usize;
        let (mut post_docs, mut post_vals) = (vec![0u32; total], vec![0f32; total]);
        let mut next: Vec<u32> = off[..vocab.len()].to_vec();
        for (c, chunk) in texts.chunks(4096).enumerate() {
            for (i, v) in vectorize(chunk).into_iter().enumerate() {
                let d = (c * 4096 + i) as u32;
                for (&f, &x) in v.idx.iter().zip(&v.val) {
                    let at = &mut next[f as usize];
                    post_docs[*at as usize] = d;
                    post_vals[*at as usize] = x;
                    *at += 1;
                }
            }
        }
        LexicalIndex {
            cfg,
            vocab,
            off,
            post_docs,
            post_vals,
            texts,
            codes,
        }
    }

    /// The settings it was built with.
    pub fn config(&self) -> LexicalConfig {
        self.cfg
    }
    /// The indexed texts.
    pub fn texts(&self) -> &[String] {
        &self.texts
    }
    /// Their codes.
    pub fn codes(&self) -> &[String] {
        &self.codes
    }
    /// Number of indexed texts.
    pub fn len(&self) -> usize {
        self.texts.len()
    }
    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// The `k` indexed texts most similar to `text` (cosine of TF-IDF vectors > 0), best first
    /// (ties: lower index first), as neighbours with source `"lexical"`.
    pub fn search(&self, text: &str, k: usize) -> Vec<Neighbor> {
        if k == 0 || self.is_empty() {
            return Vec::new();
        }
        let q = self
            .vocab
            .vectorize(&ngram_counts(text, self.cfg.ngram_min, self.cfg.ngram_max));
        // Dense per-thread accumulator (a hash map here cost more than the search itself);
        // only the touched documents are read back and reset.
        thread_local! {
            static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<u32>)> = Default::default();
        }
        let mut hits: Vec<(u32, f32)> = SCRATCH.with(|s| {
            let (scores, touched) = &mut *s.borrow_mut();
            scores.resize(scores.len().max(self.texts.len()), 0.0);
            for (&f, &x) in q.idx.iter().zip(&q.val) {
                let r = self.off[f as usize] as usize..self.off[f as usize + 1] as usize;
                for (&d, &y) in self.post_docs[r.clone()].iter().zip(&self.post_vals[r]) {
                    let e = &mut scores[d as usize];
                    if *e == 0.0 && x * y > 0.0 {
                        touched.push(d);
                    }
                    *e += x * y;
                }
            }
            let hits = touched
                .iter()
                .map(|&d| (d, scores[d as usize]))
                .filter(|(_, s)| *s > 0.0)
                .collect();
            for &d in touched.iter() {
                scores[d as usize] = 0.0;
            }
            touched.clear();
            hits
        });
        let by_score = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if hits.len() > k {
            hits.select_nth_unstable_by(k - 1, by_score);
            hits.truncate(k);
        }
        hits.sort_by(by_score);
        hits.into_iter()
            .map(|(d, s)| Neighbor {
                text: self.texts[d as usize].clone(),
                code: self.codes[d as usize].clone(),
                similarity: s,
                source: "lexical".into(),
            })
            .collect()
    }

    /// [`LexicalIndex::search`] for many texts, in parallel.
    pub fn search_all(&self, texts: &[&str], k: usize) -> Vec<Vec<Neighbor>> {
        texts.par_iter().map(|t| self.search(t, k)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ngrams_count_repeats_and_normalise() {
        // 1-grams of "稻稻": one distinct key with count 2, plus one 2-gram
        let g = ngram_counts("稻稻", 1, 2);
        assert_eq!(g.len(), 2);
        assert_eq!(g.iter().map(|(_, c)| c).sum::<u32>(), 3);
        // full-width and upper case normalise to the same n-grams
        assert_eq!(ngram_counts("ＡＢ", 1, 2), ngram_counts("ab", 1, 2));
    }

    #[test]
    fn vocab_caps_by_document_frequency_and_normalises() {
        let docs: Vec<Vec<(u64, u32)>> = ["稻谷", "稻米", "小麦"]
            .iter()
            .map(|t| ngram_counts(t, 1, 1))
            .collect();
        let v = Vocab::fit(&docs, 1, 1);
        assert_eq!(v.ngrams_seen, 5);
        assert_eq!(v.len(), 1); // only 稻 (df 2) survives the cap
        let x = v.vectorize(&ngram_counts("稻田", 1, 1));
        assert_eq!(x.idx, vec![0]);
        assert!((x.val[0] - 1.0).abs() < 1e-6);
        assert!(v.vectorize(&ngram_counts("玉米", 1, 1)).idx.is_empty());
    }

    #[test]
    fn lexical_search_ranks_shared_ngrams_first() {
        let ix = LexicalIndex::new(
            LexicalConfig::default(),
            vec!["早籼稻种植".into(), "小麦种植".into(), "钢材批发".into()],
            vec!["0111".into(), "0112".into(), "5164".into()],
        );
        let nb = ix.search("晚籼稻", 5);
        assert_eq!(nb[0].code, "0111");
        assert!(nb.iter().all(|n| n.code != "5164"), "{nb:?}");
        assert!(nb.windows(2).all(|w| w[0].similarity >= w[1].similarity));
        assert_eq!(ix.search("钢材", 1)[0].code, "5164");
        assert!(ix.search("", 3).is_empty());
        assert!(ix.search("稻", 0).is_empty());
    }
}
