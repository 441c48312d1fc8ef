//! The XLM-R sentencepiece (Unigram) tokenizer of multilingual-e5-small, on the `tokenizers`
//! crate's pipeline with a compact vocabulary model.
//!
//! `tokenizers`' own `Unigram` keeps its 250 002 pieces in a byte trie with one hash map per
//! node: loading this `tokenizer.json` costs ~280 MiB of resident memory, more than the whole
//! 4-bit encoder. [`CompactUnigram`] holds the same pieces in one string blob with a hash index
//! (~20 MiB) and runs the same Viterbi search as `tokenizers`' optimized Unigram encoder
//! (sentencepiece's `EncodeOptimized`): every vocabulary piece starting at each character is a
//! candidate, unknown characters get `min_score − 10`, consecutive unknowns fuse into one `<unk>`.
//! Normalizer (precompiled NFKC charsmap), Metaspace pre-tokenizer, the `<s> … </s>` template,
//! special tokens, truncation and decoding are `tokenizers`' own, read from the same file. A test
//! checks the ids against `tokenizers`' `Unigram` on thousands of texts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokenizers::models::unigram::UnigramTrainer;
use tokenizers::{
    AddedToken, DecoderWrapper, Model, NormalizerWrapper, PostProcessorWrapper,
    PreTokenizerWrapper, Token, TokenizerImpl,
};

use crate::ModelError;

/// The tokenizer type of [`crate::E5Model`].
pub type E5Tokenizer = TokenizerImpl<
    CompactUnigram,
    NormalizerWrapper,
    PreTokenizerWrapper,
    PostProcessorWrapper,
    DecoderWrapper,
>;

/// Penalty below the lowest piece score given to a character no piece covers (as sentencepiece).
const UNK_PENALTY: f64 = 10.0;

/// Unigram vocabulary: pieces, scores, a piece → id index.
pub struct CompactUnigram {
    blob: String,
    /// `offs[i]..offs[i+1]` is piece `i` in `blob`.
    offs: Vec<u32>,
    scores: Vec<f64>,
    index: HashMap<Box<str>, u32>,
    /// Longest piece in bytes.
    max_piece: usize,
    min_score: f64,
    unk_id: u32,
}

impl CompactUnigram {
    /// Build from `(piece, score)` pairs in id order.
    pub fn new(vocab: Vec<(String, f64)>, unk_id: u32) -> Result<Self, ModelError> {
        if (unk_id as usize) >= vocab.len() {
            return Err(ModelError::Tokenizer(format!(
                "unk_id {unk_id} outside the vocabulary of {}",
                vocab.len()
            )));
        }
        let mut blob = String::with_capacity(vocab.iter().map(|p| p.0.len()).sum());
        let mut offs = Vec::with_capacity(vocab.len() + 1);
        let mut scores = Vec::with_capacity(vocab.len());
        let mut index = HashMap::with_capacity(vocab.len());
        offs.push(0u32);
        let (mut max_piece, mut min_score) = (0, f64::INFINITY);
        for (id, (piece, score)) in vocab.into_iter().enumerate() {
            blob.push_str(&piece);
            offs.push(blob.len() as u32);
            max_piece = max_piece.max(piece.len());
            min_score = min_score.min(score);
            scores.push(score);
            // First id wins for a duplicated piece, as a trie + map built in order would keep
            // the last; pieces are unique in sentencepiece vocabularies, so this never matters.
            index.entry(piece.into_boxed_str()).or_insert(id as u32);
        }
        Ok(Self {
            blob,
            offs,
            scores,
            index,
            max_piece,
            min_score,
            unk_id,
        })
    }

    fn piece(&self, id: usize) -> &str {
        &self.blob[self.offs[id] as usize..self.offs[id + 1] as usize]
    }

    /// Best segmentation of `s` as `(start, end, id)` byte spans.
    fn viterbi(&self, s: &str) -> Vec<(usize, usize, u32)> {
        #[derive(Clone, Copy)]
        struct Best {
            score: f64,
            start: usize,
            id: u32,
            set: bool,
        }
        let n = s.len();
        let mut best = vec![
            Best {
                score: 0.0,
                start: 0,
                id: 0,
                set: false
            };
            n + 1
        ];
        let unk_score = self.min_score - UNK_PENALTY;
        let mut start = 0;
        while start < n {
            let here = best[start].score;
            let first_len = s[start..].chars().next().map_or(1, char::len_utf8);
            let mut single = false;
            let mut end = start;
            for c in s[start..].chars() {
                end += c.len_utf8();
                if end - start > self.max_piece {
                    break;
                }
                if let Some(&id) = self.index.get(&s[start..end]) {
                    let cand = self.scores[id as usize] + here;
                    let t = &mut best[end];
                    if !t.set || cand > t.score {
                        *t = Best {
                            score: cand,
                            start,
                            id,
                            set: true,
                        };
                    }
                    single |= end - start == first_len;
                }
            }
            if !single {
                let t = &mut best[start + first_len];
                let cand = unk_score + here;
                if !t.set || cand > t.score {
                    *t = Best {
                        score: cand,
                        start,
                        id: self.unk_id,
                        set: true,
                    };
                }
            }
            start += first_len;
        }
        let mut out = Vec::new();
        let mut end = n;
        while end > 0 {
            let b = best[end];
            match out.last_mut() {
                // Consecutive unknowns become one `<unk>` token.
                Some((s0, _, id)) if b.id == self.unk_id && *id == self.unk_id => *s0 = b.start,
                _ => out.push((b.start, end, b.id)),
            }
            end = b.start;
        }
        out.reverse();
        out
    }
}

impl Model for CompactUnigram {
    type Trainer = UnigramTrainer;

    fn tokenize(&self, sequence: &str) -> tokenizers::Result<Vec<Token>> {
        Ok(self
            .viterbi(sequence)
            .into_iter()
            .map(|(a, b, id)| Token::new(id, sequence[a..b].to_string(), (a, b)))
            .collect())
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.index.get(token).copied()
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        ((id as usize) < self.scores.len()).then(|| self.piece(id as usize).to_string())
    }

    fn get_vocab(&self) -> std::collections::HashMap<String, u32> {
        (0..self.scores.len())
            .map(|i| (self.piece(i).to_string(), i as u32))
            .collect()
    }

    fn get_vocab_size(&self) -> usize {
        self.scores.len()
    }

    fn save(&self, _folder: &Path, _prefix: Option<&str>) -> tokenizers::Result<Vec<PathBuf>> {
        Err("CompactUnigram is read-only: keep the original tokenizer.json".into())
    }

    fn get_trainer(&self) -> UnigramTrainer {
        UnigramTrainer::default()
    }
}

#[derive(Deserialize)]
struct FileModel {
    #[serde(rename = "type")]
    kind: String,
    unk_id: Option<u32>,
    vocab: Vec<(String, f64)>,
    #[serde(default)]
    byte_fallback: bool,
}

#[derive(Deserialize)]
struct FileAdded {
    content: String,
    #[serde(default)]
    single_word: bool,
    #[serde(default)]
    lstrip: bool,
    #[serde(default)]
    rstrip: bool,
    #[serde(default)]
    normalized: bool,
    #[serde(default)]
    special: bool,
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    added_tokens: Vec<FileAdded>,
    normalizer: Option<NormalizerWrapper>,
    pre_tokenizer: Option<PreTokenizerWrapper>,
    post_processor: Option<PostProcessorWrapper>,
    decoder: Option<DecoderWrapper>,
    model: FileModel,
}

/// Load a `tokenizer.json` whose model is a Unigram (sentencepiece) without byte fallback.
pub fn load(path: &Path) -> Result<E5Tokenizer, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
    let f: File = serde_json::from_slice(&bytes)
        .map_err(|e| ModelError::Tokenizer(format!("{}: {e}", path.display())))?;
    drop(bytes);
    if f.model.kind != "Unigram" || f.model.byte_fallback {
        return Err(ModelError::Tokenizer(format!(
            "{}: expected a Unigram model without byte fallback, found {}",
            path.display(),
            f.model.kind
        )));
    }
    let unk = f
        .model
        .unk_id
        .ok_or_else(|| ModelError::Tokenizer("Unigram model without unk_id".into()))?;
    let mut tok = TokenizerImpl::new(CompactUnigram::new(f.model.vocab, unk)?);
    tok.with_normalizer(f.normalizer);
    tok.with_pre_tokenizer(f.pre_tokenizer);
    tok.with_post_processor(f.post_processor);
    tok.with_decoder(f.decoder);
    let (special, plain): (Vec<_>, Vec<_>) = f
        .added_tokens
        .into_iter()
        .map(|a| {
            AddedToken::from(a.content, a.special)
                .single_word(a.single_word)
                .lstrip(a.lstrip)
                .rstrip(a.rstrip)
                .normalized(a.normalized)
        })
        .partition(|a| a.special);
    tok.add_special_tokens(&special);
    tok.add_tokens(&plain);
    Ok(tok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> CompactUnigram {
        let v = [
            ("<unk>", 0.0),
            ("a", -1.0),
            ("b", -2.0),
            ("ab", -1.5),
            ("abc", -10.0),
            ("c", -3.0),
            ("中", -2.0),
            ("中国", -2.5),
        ];
        CompactUnigram::new(v.iter().map(|(p, s)| (p.to_string(), *s)).collect(), 0).unwrap()
    }

    fn ids(m: &CompactUnigram, s: &str) -> Vec<u32> {
        m.viterbi(s).into_iter().map(|t| t.2).collect()
    }

    #[test]
    fn viterbi_prefers_the_best_scoring_path() {
        let m = toy();
        assert_eq!(ids(&m, "ab"), vec![3]); // "ab" (-1.5) beats "a"+"b" (-3)
        assert_eq!(ids(&m, "abc"), vec![3, 5]); // "ab"+"c" (-4.5) beats "abc" (-10)
        assert_eq!(ids(&m, "中国"), vec![7]);
    }

    #[test]
    fn unknown_characters_fuse_into_one_unk_with_byte_spans() {
        let m = toy();
        let t = m.viterbi("aßøb");
        assert_eq!(t, vec![(0, 1, 1), (1, 5, 0), (5, 6, 2)]);
        assert_eq!(m.id_to_token(7).as_deref(), Some("中国"));
        assert_eq!(m.token_to_id("ab"), Some(3));
    }

    #[test]
    fn rejects_an_unk_id_outside_the_vocabulary() {
        assert!(CompactUnigram::new(vec![("a".into(), 0.0)], 5).is_err());
    }
}
