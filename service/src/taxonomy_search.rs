//! Search over one taxonomy: codes, names and the short note terms its trained classifier
//! carries (`GET /v1/taxonomies/{id}/search`, the reviewer workbench's search box).
//!
//! ## Ranking
//! Each code appears once, at its best match: (0) the code itself, (1) codes starting with the
//! query (coarser codes first), (2) names containing the query (shorter names first), (3) note
//! terms containing the query (shorter terms first; the term is returned). Ties keep the
//! taxonomy's order. Matching is case-insensitive and reads the query as the service reads loan
//! texts ([`touxiang_text::normalize`]: full-width → half-width, traditional → simplified), so
//! `汽車` finds 汽车制造业.
//!
//! ## Note terms
//! The terms come from the classifier artifact of the taxonomy (`exemplars.jsonl`), read once
//! at serve time — never from the notes under `../shared`:
//! * artifacts that keep the corpus source of each exemplar (written by `touxiang train` with
//!   exemplar vectors) give their note items: `include` (the 包括 items of a note, head terms and
//!   sub-terms) and `exclude` (不包括 items, under the code the note points them to);
//! * artifacts whose exemplars are all `seed` (the shipped GB/T one keeps only texts and codes
//!   for its lexical voter) mix note items with generated loan phrasings ("饺子馆装修经营场所");
//!   there a term is a short exemplar ([`looks_like_note_term`]): at most
//!   [`MAX_TERM_CHARS`] characters, no sentence punctuation and none of the loan words the
//!   generated phrasings are built from ([`LOAN_WORDS`]). On the shipped GB/T artifact that keeps
//!   20 417 of the 21 856 note texts and none of the 34 926 generated loan lines;
//! * other sources (`custom` examples, `reviewed` labels, generated `template`/`role` lines)
//!   are not terms.
//!
//! A term equal to its code's name, or of a code not in the taxonomy, is left out.
//!
//! ## Cost
//! The index (folded codes, names and terms, and a character → terms posting list) is built
//! once per (taxonomy id, version, artifact) and kept for the process: GB/T 4754 has 1 972 codes
//! and about 20 000 terms. A query scans the codes and names and only the terms that contain
//! the query's rarest character.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use touxiang_datasets::Taxonomy;
use utoipa::ToSchema;

/// Longest note term kept, in characters.
pub const MAX_TERM_CHARS: usize = 24;

/// Words of the generated loan phrasings (templates and role lines: buying, paying, building,
/// working capital …) that note items do not use; an exemplar holding one is a loan line.
pub const LOAN_WORDS: &[&str] = &[
    "贷款",
    "借款",
    "资金",
    "周转",
    "采购",
    "购置",
    "购买",
    "支付",
    "装修",
    "扩大",
    "新增",
    "更新",
    "用于",
    "项目",
    "货款",
    "租金",
    "工资",
    "款",
    "申请",
    "流动",
    "改扩建",
    "原料",
    "一批",
    "经营",
    "建设",
    "投资",
    "合同",
    "期限",
    "万元",
    "公司",
    "门店",
];

/// Sentence punctuation: a text holding one is a definition or a loan line, not a term.
const SENTENCE_PUNCT: &[char] = &['，', '。', '；', '：', ',', ';', ':', '！', '!', '？', '?'];

/// Is the (folded) exemplar text a short note term rather than a loan phrasing or a
/// definition? See the module docs.
pub fn looks_like_note_term(text: &str) -> bool {
    let n = text.chars().count();
    (2..=MAX_TERM_CHARS).contains(&n)
        && !text.contains(SENTENCE_PUNCT)
        && !LOAN_WORDS.iter().any(|w| text.contains(w))
}

/// Case-insensitive form of a taxonomy code, name or term (NFKC, whitespace, lower case).
/// Taxonomy names and exemplars are simplified Chinese already; OpenCC per name would cost
/// more than the rest of the index.
fn fold(s: &str) -> String {
    touxiang_text::clean_whitespace(&touxiang_text::nfkc(s))
        .trim()
        .to_lowercase()
}

/// The query as matched: [`touxiang_text::normalize`] (with traditional → simplified), lower case.
pub fn fold_query(q: &str) -> String {
    touxiang_text::normalize(q).trim().to_lowercase()
}

/// One step of a hit's path.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PathNode {
    pub code: String,
    pub name: String,
}

/// One search hit.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchHit {
    pub code: String,
    /// Level name of the code (`section`, `division`, `group`, `class` for GB/T 4754).
    pub level: String,
    pub name: String,
    /// Root first, down to the hit.
    pub path: Vec<PathNode>,
    /// `code` (exact or prefix) | `name` | `term`.
    pub matched: String,
    /// The note term that matched (`matched` = `term`), else null.
    pub term: Option<String>,
}

/// How a code matched: (class: 0 exact code, 1 code prefix, 2 name, 3 term; length of the
/// matched code, name or term; the term's index).
type MatchKey = (u8, usize, Option<usize>);

struct Term {
    text: String,
    folded: String,
    node: usize,
}

/// The search index of one taxonomy (see the module docs).
pub struct SearchIndex {
    taxonomy: Arc<Taxonomy>,
    codes: Vec<String>,
    names: Vec<String>,
    terms: Vec<Term>,
    /// character → indices of the terms holding it.
    by_char: HashMap<char, Vec<u32>>,
}

#[derive(Deserialize)]
struct ArtifactTaxonomy {
    taxonomy_id: String,
    taxonomy_version: String,
}

/// Note terms of the artifact in `dir` for `tax` (none when the artifact was trained on
/// another taxonomy or version, or has no readable `exemplars.jsonl`); `names` are the folded
/// names of `tax`'s nodes.
fn note_terms(dir: &Path, tax: &Taxonomy, names: &[String]) -> Vec<Term> {
    let meta = std::fs::read_to_string(dir.join("metadata.json"))
        .ok()
        .and_then(|m| serde_json::from_str::<ArtifactTaxonomy>(&m).ok());
    if !meta.is_some_and(|m| m.taxonomy_id == tax.id() && m.taxonomy_version == tax.version()) {
        return Vec::new();
    }
    // the reader the classifier loads its exemplars with
    let Ok(Some((texts, codes, sources))) = touxiang_training::read_exemplar_lines(dir) else {
        return Vec::new();
    };
    let sourced = sources
        .iter()
        .any(|s| matches!(s.as_str(), "include" | "exclude"));
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for ((text, code), source) in texts.iter().zip(&codes).zip(&sources) {
        let Some(node) = tax.index_of(code) else {
            continue;
        };
        // Cheap tests on the text as stored (its punctuation is full-width or ASCII), then
        // fold only what is kept.
        let text = text.trim();
        let keep = match source.as_str() {
            "include" | "exclude" => (2..=MAX_TERM_CHARS).contains(&text.chars().count()),
            "seed" if !sourced => looks_like_note_term(text),
            _ => false,
        };
        if !keep {
            continue;
        }
        let folded = fold(text);
        if folded != names[node] && seen.insert((folded.clone(), node)) {
            out.push(Term {
                text: text.to_string(),
                folded,
                node,
            });
        }
    }
    out
}

impl SearchIndex {
    /// Build the index of `taxonomy` with the note terms of the artifact in `artifact_dir`.
    pub fn build(taxonomy: Arc<Taxonomy>, artifact_dir: Option<&Path>) -> SearchIndex {
        let codes = taxonomy.nodes().iter().map(|n| fold(&n.code)).collect();
        let names: Vec<String> = taxonomy.nodes().iter().map(|n| fold(&n.name)).collect();
        let terms: Vec<Term> = artifact_dir
            .map(|d| note_terms(d, &taxonomy, &names))
            .unwrap_or_default();
        let mut by_char: HashMap<char, Vec<u32>> = HashMap::new();
        for (i, t) in terms.iter().enumerate() {
            let mut chars: Vec<char> = t.folded.chars().collect();
            chars.sort_unstable();
            chars.dedup();
            for c in chars {
                by_char.entry(c).or_default().push(i as u32);
            }
        }
        SearchIndex {
            taxonomy,
            codes,
            names,
            terms,
            by_char,
        }
    }

    /// How many note terms the index holds.
    pub fn terms(&self) -> usize {
        self.terms.len()
    }

    /// The best `limit` hits for `query` (see the module docs); empty for an empty query.
    pub fn search(&self, query: &str, limit: usize) -> Vec<SearchHit> {
        let q = fold_query(query);
        if q.is_empty() || limit == 0 {
            return Vec::new();
        }
        let mut best: HashMap<usize, MatchKey> = HashMap::new();
        let mut offer = |node: usize, key: MatchKey| {
            let e = best.entry(node).or_insert(key);
            if (key.0, key.1) < (e.0, e.1) {
                *e = key;
            }
        };
        for (i, code) in self.codes.iter().enumerate() {
            if *code == q {
                offer(i, (0, 0, None));
            } else if code.starts_with(&q) {
                offer(i, (1, code.len(), None));
            }
        }
        for (i, name) in self.names.iter().enumerate() {
            if name.contains(&q) {
                offer(i, (2, name.chars().count(), None));
            }
        }
        let postings = q
            .chars()
            .map(|c| self.by_char.get(&c).map_or(&[][..], Vec::as_slice))
            .min_by_key(|p| p.len())
            .unwrap_or(&[]);
        for &ti in postings {
            let t = &self.terms[ti as usize];
            if t.folded.contains(&q) {
                offer(t.node, (3, t.folded.chars().count(), Some(ti as usize)));
            }
        }
        let mut hits: Vec<(usize, MatchKey)> = best.into_iter().collect();
        hits.sort_by_key(|(node, (class, len, _))| (*class, *len, *node));
        hits.truncate(limit);
        hits.into_iter()
            .map(|(i, (class, _, term))| self.hit(i, class, term))
            .collect()
    }

    fn hit(&self, i: usize, class: u8, term: Option<usize>) -> SearchHit {
        let tax = &self.taxonomy;
        let n = tax.node(i);
        SearchHit {
            code: n.code.clone(),
            level: tax.level_name(n.depth).to_string(),
            name: n.name.clone(),
            path: tax
                .path(&n.code)
                .into_iter()
                .map(|p| PathNode {
                    code: p.code.clone(),
                    name: p.name.clone(),
                })
                .collect(),
            matched: match class {
                0 | 1 => "code",
                2 => "name",
                _ => "term",
            }
            .to_string(),
            term: term.map(|t| self.terms[t].text.clone()),
        }
    }
}

/// The index of `taxonomy` with the note terms of `artifact_dir`, built on first use and kept
/// for the process (keyed by taxonomy id, version and artifact). Blocking on first use.
pub fn index(taxonomy: Arc<Taxonomy>, artifact_dir: Option<PathBuf>) -> Arc<SearchIndex> {
    type Key = (String, String, Option<PathBuf>);
    static CACHE: OnceLock<Mutex<HashMap<Key, Arc<SearchIndex>>>> = OnceLock::new();
    let key = (
        taxonomy.id().to_string(),
        taxonomy.version().to_string(),
        artifact_dir.clone(),
    );
    // Held while building: concurrent first searches wait for one build instead of each
    // reading the artifact.
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    cache
        .entry(key)
        .or_insert_with(|| {
            let t = std::time::Instant::now();
            let ix = SearchIndex::build(taxonomy.clone(), artifact_dir.as_deref());
            tracing::info!(taxonomy = %taxonomy.id(), codes = taxonomy.len(), terms = ix.terms(),
                ms = t.elapsed().as_millis() as u64, "taxonomy search index built");
            Arc::new(ix)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn note_terms_are_told_from_loan_lines() {
        for t in [
            "饺子店餐饮服务",
            "茶点式小吃服务",
            "早籼稻",
            "烤肉串餐饮服务",
        ] {
            assert!(looks_like_note_term(t), "{t}");
        }
        for t in [
            "饺子馆装修经营场所",
            "用于早餐店采购门店装修",
            "小吃店日常经营周转",
            "面馆新增雷达，扩大经营",
            "以收获籽实为主的农作物的种植，包括稻谷、小麦、玉米等农作物的种植",
            "稻",
        ] {
            assert!(!looks_like_note_term(t), "{t}");
        }
    }

    #[test]
    fn ranking_codes_then_names_then_terms() {
        let tax = Taxonomy::gbt4754_arc();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("metadata.json"),
            r#"{"taxonomy_id":"gbt4754-2017","taxonomy_version":"gbt4754-2017"}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("exemplars.jsonl"),
            [
                r#"{"text":"烤肉串餐饮服务","code":"6291","source":"seed"}"#,
                r#"{"text":"烤肉串店采购冷柜","code":"6291","source":"seed"}"#,
                r#"{"text":"小吃服务","code":"6291","source":"seed"}"#,
                r#"{"text":"周转","code":"__vague__","source":"seed"}"#,
                r#"{"text":"汽车经销商进车","code":"5261","source":"written"}"#,
            ]
            .join("\n"),
        )
        .unwrap();
        let ix = SearchIndex::build(tax, Some(dir.path()));
        assert_eq!(
            ix.terms(),
            1,
            "the loan lines (recognised or written), the name and the vague line are no terms"
        );
        let hits = ix.search("36", 5);
        assert_eq!(hits[0].code, "36");
        assert_eq!(hits[0].matched, "code");
        assert!(hits[1..].iter().all(|h| h.code.starts_with("36")));
        assert_eq!(hits[1].code.len(), 3, "coarser codes first");
        let hits = ix.search("肉串", 5);
        assert_eq!(hits.len(), 1);
        assert_eq!(
            (hits[0].code.as_str(), hits[0].matched.as_str()),
            ("6291", "term")
        );
        assert_eq!(hits[0].term.as_deref(), Some("烤肉串餐饮服务"));
        assert_eq!(hits[0].path.len(), 4);
        assert_eq!(ix.search("h", 1)[0].code, "H", "case-insensitive");
        assert!(ix.search("  ", 5).is_empty());
    }
}
