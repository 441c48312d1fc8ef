//! [`NameMatchLabeler`], the fake industry labeler of tests and benchmarks.

use touxiang_datasets::{Decision, LabelError, LabelResult, Labeler, PathStep};

use super::book::unique_classes;
use crate::refdata::industry_path;

/// A fake industry labeler for tests and benchmarks: finds a GB/T 4754 class name (unique names
/// only) inside the text (leftmost-longest match), and returns that class with confidence 0.9; otherwise
/// abstains (`code = None`).
pub struct NameMatchLabeler {
    names: Vec<(String, String)>,
    ac: aho_corasick::AhoCorasick,
}

impl Default for NameMatchLabeler {
    fn default() -> Self {
        Self::new()
    }
}

impl NameMatchLabeler {
    /// Build over the unique class names.
    pub fn new() -> Self {
        let names = unique_classes();
        let ac = aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(names.iter().map(|(_, n)| n.as_str()))
            .expect("class names form an automaton");
        NameMatchLabeler { names, ac }
    }
}

impl Labeler for NameMatchLabeler {
    fn label(&self, texts: &[&str]) -> std::result::Result<Vec<LabelResult>, LabelError> {
        Ok(texts
            .iter()
            .map(|t| {
                let hit = self
                    .ac
                    .find(*t)
                    .map(|m| &self.names[m.pattern().as_usize()]);
                match hit.and_then(|(c, _)| industry_path(c).map(|p| (c, p))) {
                    Some((c, p)) => LabelResult {
                        code: Some(c.clone()),
                        level: Some("class".into()),
                        name: crate::refdata::industry_name(c),
                        path: p
                            .iter()
                            .flatten()
                            .map(|code| PathStep {
                                code: code.clone(),
                                name: crate::refdata::industry_name(code).unwrap_or_default(),
                                confidence: 0.9,
                            })
                            .collect(),
                        confidence: 0.9,
                        decision: Decision::Auto,
                        model_version: self.model_version(),
                        taxonomy_version: self.taxonomy_version(),
                        evidence: Default::default(),
                    },
                    None => LabelResult {
                        code: None,
                        level: None,
                        name: None,
                        path: vec![],
                        confidence: 0.0,
                        decision: Decision::Review,
                        model_version: self.model_version(),
                        taxonomy_version: self.taxonomy_version(),
                        evidence: Default::default(),
                    },
                }
            })
            .collect())
    }
    fn model_version(&self) -> String {
        "name-match-test-v1".into()
    }
    fn taxonomy_version(&self) -> String {
        "gbt4754-2017".into()
    }
}
