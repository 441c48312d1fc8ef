//! Role cues: which classes the text names as the *borrower* (its actors: "出版社", "驾校",
//! "XX印务有限公司") or as what that borrower typically buys, from the team-written actor lexicon
//! (`data/actors.tsv`, the one the role-labeled phrasings are generated from). A feature of the
//! candidate re-ranker ([`crate::rerank`]): "出版社采购印刷用纸" names the publisher as actor, so
//! 8621 gains over 2311, whose products the text buys.
//!
//! The lexicon travels with the artifact (`role_cues.tsv`), so a classifier scores the same
//! wherever it is loaded. Matching is on the normalised text (NFKC, 繁→简), all terms at once
//! (Aho–Corasick, overlapping matches).

use std::path::Path;

use aho_corasick::AhoCorasick;

use crate::error::{Result, TrainError};
use crate::roles::parse_actors;
use crate::tree::Tree;

/// File name of the lexicon inside an artifact directory.
pub const FILE: &str = "role_cues.tsv";

/// Terms shorter than this (in characters, after dropping the `XX` placeholder) are ignored.
const MIN_CHARS: usize = 2;

/// The compiled lexicon.
pub struct RoleCues {
    source: String,
    ac: AhoCorasick,
    /// Per pattern: tree node of its class, whether it is an actor (else an input), length in
    /// characters.
    pats: Vec<(usize, bool, usize)>,
}

/// Matches in one text: `(class node, longest matched term in characters)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoleHits {
    pub actors: Vec<(usize, usize)>,
    pub inputs: Vec<(usize, usize)>,
}

impl RoleHits {
    /// Longest actor term of class `node`.
    pub fn actor(&self, node: usize) -> usize {
        longest(&self.actors, |n| n == node)
    }
    /// Longest input term of class `node`.
    pub fn input(&self, node: usize) -> usize {
        longest(&self.inputs, |n| n == node)
    }
    /// Longest actor term of any class under `ancestor` at `depth`.
    pub fn actor_under(&self, tree: &Tree, ancestor: usize, depth: usize) -> usize {
        longest(&self.actors, |n| {
            tree.ancestor_at(n, depth) == Some(ancestor)
        })
    }
}

fn longest(hits: &[(usize, usize)], keep: impl Fn(usize) -> bool) -> usize {
    hits.iter()
        .filter(|(n, _)| keep(*n))
        .map(|(_, l)| *l)
        .max()
        .unwrap_or(0)
}

impl RoleCues {
    /// Compile the lexicon `source` (`CODE<TAB>actor|…<TAB>input|…`) against `tree`; lines whose
    /// code the tree does not have are skipped.
    pub fn new(source: &str, tree: &Tree) -> Result<RoleCues> {
        let mut terms = Vec::new();
        let mut pats = Vec::new();
        for e in parse_actors(source)? {
            let Some(node) = tree.find(&e.code) else {
                continue;
            };
            let actors = e.actors.iter().map(|a| (a.replace("XX", ""), true));
            for (t, is_actor) in actors.chain(e.inputs.iter().map(|i| (i.clone(), false))) {
                let t = touxiang_text::normalize(&t);
                let n = t.chars().count();
                if n >= MIN_CHARS {
                    terms.push(t);
                    pats.push((node, is_actor, n));
                }
            }
        }
        let ac = AhoCorasick::new(&terms)
            .map_err(|e| TrainError::Invalid(format!("role cue lexicon: {e}")))?;
        Ok(RoleCues {
            source: source.to_string(),
            ac,
            pats,
        })
    }

    /// The lexicon text (saved with the artifact).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Number of terms.
    pub fn len(&self) -> usize {
        self.pats.len()
    }

    /// `true` without terms.
    pub fn is_empty(&self) -> bool {
        self.pats.is_empty()
    }

    /// The classes `text` names as actor or input.
    pub fn hits(&self, text: &str) -> RoleHits {
        let t = touxiang_text::normalize(text);
        let mut out = RoleHits::default();
        for m in self.ac.find_overlapping_iter(&t) {
            let (node, is_actor, n) = self.pats[m.pattern().as_usize()];
            let list = if is_actor {
                &mut out.actors
            } else {
                &mut out.inputs
            };
            match list.iter_mut().find(|(x, _)| *x == node) {
                Some(h) => h.1 = h.1.max(n),
                None => list.push((node, n)),
            }
        }
        out
    }

    /// Load `dir/role_cues.tsv` when present.
    pub fn load(dir: &Path, tree: &Tree) -> Result<Option<RoleCues>> {
        let p = dir.join(FILE);
        if !p.exists() {
            return Ok(None);
        }
        let s = std::fs::read_to_string(&p).map_err(|e| TrainError::io(&p, e))?;
        RoleCues::new(&s, tree).map(Some)
    }

    /// Write the lexicon into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let p = dir.join(FILE);
        std::fs::write(&p, &self.source).map_err(|e| TrainError::io(&p, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Tree {
        let rows = [
            ("C", "制造业", None),
            ("23", "印刷和记录媒介复制业", Some("C")),
            ("231", "印刷", Some("23")),
            ("2311", "书、报刊印刷", Some("231")),
            ("R", "文化、体育和娱乐业", None),
            ("86", "新闻和出版业", Some("R")),
            ("862", "出版业", Some("86")),
            ("8621", "图书出版", Some("862")),
        ];
        let rows: Vec<(String, String, Option<String>)> = rows
            .iter()
            .map(|(c, n, p)| (c.to_string(), n.to_string(), p.map(str::to_string)))
            .collect();
        let names = ["section", "division", "group", "class"]
            .map(String::from)
            .to_vec();
        Tree::from_rows("t", names, &rows, false).unwrap()
    }

    #[test]
    fn the_borrower_and_its_purchases_are_found_in_normalised_text() {
        let t = tree();
        let lex = "2311\tXX印刷厂|XX印务有限公司\t胶版纸|油墨\n8621\tXX出版社\t纸张|印刷服务\n9999\tXX不存在\t无\n";
        let cues = RoleCues::new(lex, &t).unwrap();
        assert_eq!(cues.len(), 7, "the unknown code is skipped");
        let h = cues.hits("長江出版社採購膠版紙及印刷服務");
        let (pub_, print) = (t.find("8621").unwrap(), t.find("2311").unwrap());
        assert_eq!(h.actor(pub_), 3, "出版社 after 繁→简");
        assert_eq!(h.actor(print), 0);
        assert_eq!(h.input(print), 3, "胶版纸");
        assert_eq!(h.input(pub_), 4, "印刷服务, the longest input of 8621");
        assert_eq!(h.actor_under(&t, t.find("86").unwrap(), 1), 3);
        assert_eq!(h.actor_under(&t, t.find("23").unwrap(), 1), 0);
        assert!(cues.hits("补充流动资金").actors.is_empty());
    }
}
