//! Building a corpus: taxonomy names, note items, templates, vague and role phrasings, and the
//! duplicate resolution that keeps one split per text.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;

use rand::seq::IndexedRandom;
use rand::SeedableRng;
use serde::Deserialize;

use super::terms::{clean_definition, clean_term, parse_include, parse_templates};
use super::{split_of, Corpus, CorpusOptions, Example, Source, Split, SplitRatios};
use crate::error::{Result, TrainError};
use crate::tree::{Tree, VAGUE_CODE};

#[derive(Deserialize)]
struct NoteLine {
    code: String,
    #[serde(default)]
    definition: Vec<String>,
    #[serde(default)]
    includes: Vec<String>,
    #[serde(default)]
    excludes: Vec<NoteExclude>,
}

#[derive(Deserialize)]
struct NoteExclude {
    text: String,
    code: Option<String>,
}

/// Collects raw examples and resolves duplicates.
struct Builder<'t> {
    tree: &'t Tree,
    examples: Vec<Example>,
    skipped: BTreeMap<String, usize>,
}

impl Builder<'_> {
    fn skip(&mut self, reason: &str) {
        self.skip_n(reason, 1);
    }

    fn skip_n(&mut self, reason: &str, n: usize) {
        *self.skipped.entry(reason.to_string()).or_default() += n;
    }

    fn push(
        &mut self,
        text: String,
        code: &str,
        source: Source,
        split: Split,
        weight: f32,
        item: &str,
    ) {
        self.examples.push(Example {
            text,
            code: code.to_string(),
            source,
            split,
            weight,
            item: item.to_string(),
        });
    }

    /// Deduplicate (text, code); when one text carries several codes on one root-to-leaf path keep
    /// the deepest; texts with conflicting codes stay (training only) — ambiguity is real.
    fn finish(mut self) -> (Vec<Example>, BTreeMap<String, usize>) {
        let tree = self.tree;
        let mut by_text: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, e) in self.examples.iter().enumerate() {
            by_text.entry(e.text.clone()).or_default().push(i);
        }
        let mut keep = vec![true; self.examples.len()];
        let mut demote = vec![false; self.examples.len()];
        let mut dup = 0usize;
        for idxs in by_text.values() {
            if idxs.len() < 2 {
                continue;
            }
            let mut seen_codes = HashSet::new();
            for &i in idxs {
                if !seen_codes.insert(self.examples[i].code.clone()) {
                    keep[i] = false;
                    dup += 1;
                }
            }
            let live: Vec<usize> = idxs.iter().copied().filter(|&i| keep[i]).collect();
            // drop codes that are ancestors of another code of the same text
            for &i in &live {
                let ni = tree.find(&self.examples[i].code);
                let shadowed = live.iter().any(|&j| {
                    j != i
                        && match (ni, tree.find(&self.examples[j].code)) {
                            (Some(a), Some(b)) => {
                                tree.nodes[b].depth > tree.nodes[a].depth
                                    && tree.ancestor_at(b, tree.nodes[a].depth) == Some(a)
                            }
                            _ => false,
                        }
                });
                if shadowed {
                    keep[i] = false;
                    dup += 1;
                }
            }
            let live: Vec<usize> = idxs.iter().copied().filter(|&i| keep[i]).collect();
            if live.len() > 1 {
                for &i in &live {
                    demote[i] = true;
                }
            }
            // one text, one split: the first occurrence decides
            if let Some(&first) = live.first() {
                let s = self.examples[first].split;
                for &i in &live {
                    self.examples[i].split = s;
                }
            }
        }
        if dup > 0 {
            *self
                .skipped
                .entry("duplicate text (same or ancestor code)".into())
                .or_default() += dup;
        }
        let mut out = Vec::new();
        let mut conflicts = 0usize;
        for (i, mut e) in self.examples.into_iter().enumerate() {
            if !keep[i] {
                continue;
            }
            if demote[i] && e.split != Split::Train {
                e.split = Split::Train;
                conflicts += 1;
            }
            out.push(e);
        }
        if conflicts > 0 {
            *self
                .skipped
                .entry("ambiguous text moved from held-out to train".into())
                .or_default() += conflicts;
        }
        (out, self.skipped)
    }
}

/// Build the GB/T 4754 corpus from the taxonomy (names) and `notes.jsonl` (read at run time).
///
/// * names of all nodes → `name`, always train;
/// * 包括 items → head term and sub-terms, `include`; split by a seeded hash of the item line;
/// * 不包括 items with a target code → `exclude` for the target (weight `exclude_weight`);
/// * definitions → `definition`, always train;
/// * templates around training items and class names → `template` (weight `template_weight`),
///   train only, so no variant of a held-out item is ever trained on;
/// * vague phrases → `vague` pseudo-class, train/calib.
pub fn build_corpus(notes_path: &Path, tree: &Tree, opts: &CorpusOptions) -> Result<Corpus> {
    let f = std::fs::File::open(notes_path).map_err(|e| TrainError::io(notes_path, e))?;
    let mut b = Builder {
        tree,
        examples: Vec::new(),
        skipped: BTreeMap::new(),
    };
    for &i in tree
        .level(0)
        .iter()
        .chain((1..tree.depth_count()).flat_map(|d| tree.level(d)))
    {
        let n = &tree.nodes[i];
        if n.code == VAGUE_CODE {
            continue;
        }
        b.push(
            n.name.clone(),
            &n.code,
            Source::Name,
            Split::Train,
            1.0,
            &n.name,
        );
    }
    // training items eligible for templates: (item text, code)
    let mut template_items: Vec<(String, String)> = tree
        .leaves()
        .iter()
        .map(|&i| &tree.nodes[i])
        .filter(|n| n.code != VAGUE_CODE)
        .map(|n| (n.name.clone(), n.code.clone()))
        .collect();
    for (ln, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| TrainError::io(notes_path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let note: NoteLine = serde_json::from_str(&line).map_err(|e| TrainError::BadLine {
            path: notes_path.to_path_buf(),
            line: ln + 1,
            message: e.to_string(),
        })?;
        if tree.find(&note.code).is_none() {
            return Err(TrainError::BadLine {
                path: notes_path.to_path_buf(),
                line: ln + 1,
                message: format!("code {:?} is not in taxonomy {}", note.code, tree.id),
            });
        }
        for d in &note.definition {
            match clean_definition(d) {
                Some(t) => b.push(
                    t.clone(),
                    &note.code,
                    Source::Definition,
                    Split::Train,
                    1.0,
                    &t,
                ),
                None => b.skip("definition boilerplate"),
            }
        }
        for inc in &note.includes {
            let split = split_of(inc.trim(), opts.seed, opts.ratios);
            let (head, subs) = parse_include(inc);
            if head.is_none() && subs.is_empty() {
                b.skip("include filler (其他未列明…)");
                continue;
            }
            let mut terms: Vec<String> = head.into_iter().collect();
            for s in subs {
                if !terms.contains(&s) {
                    terms.push(s);
                }
            }
            for t in terms {
                if split == Split::Train {
                    template_items.push((t.clone(), note.code.clone()));
                }
                b.push(t, &note.code, Source::Include, split, 1.0, inc.trim());
            }
        }
        for ex in &note.excludes {
            let Some(code) = ex.code.as_deref() else {
                b.skip("exclude without target code");
                continue;
            };
            if tree.find(code).is_none() {
                return Err(TrainError::BadLine {
                    path: notes_path.to_path_buf(),
                    line: ln + 1,
                    message: format!("exclude target {code:?} is not in taxonomy {}", tree.id),
                });
            }
            let Some(t) = clean_term(&ex.text) else {
                b.skip("exclude filler");
                continue;
            };
            let split = split_of(ex.text.trim(), opts.seed, opts.ratios);
            if split == Split::Train {
                template_items.push((t.clone(), code.to_string()));
            }
            b.push(
                t,
                code,
                Source::Exclude,
                split,
                opts.exclude_weight,
                ex.text.trim(),
            );
        }
    }
    if let Some(v) = &opts.vague {
        if tree.vague().is_some() {
            add_vague(&mut b, v, opts);
        }
    }
    let (mut examples, skipped) = b.finish();
    // Templates last, after duplicate resolution: a term whose text ended up held out (it can
    // also occur under a held-out item) is never wrapped, so no variant of a held-out text trains.
    let held_out: HashSet<String> = examples
        .iter()
        .filter(|e| e.split != Split::Train)
        .map(|e| e.text.clone())
        .collect();
    let existing: HashSet<String> = examples.iter().map(|e| e.text.clone()).collect();
    template_items.retain(|(t, _)| !held_out.contains(t));
    let mut b = Builder {
        tree,
        examples: Vec::new(),
        skipped,
    };
    if let Some(tpl_text) = &opts.templates {
        let templates = parse_templates(tpl_text)?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed ^ 0x7e3a_11c5);
        for (item, code) in &template_items {
            if item.chars().count() > 24 {
                continue; // long descriptive items do not make natural loan purposes
            }
            let Some(ni) = tree.find(code) else { continue };
            let section = &tree.nodes[tree.path(ni)[0]].code;
            let fitting: Vec<&(String, String)> = templates
                .iter()
                .filter(|(secs, _)| secs == "*" || secs.contains(section.as_str()))
                .collect();
            for (_, tpl) in fitting.choose_multiple(&mut rng, opts.templates_per_item) {
                let text = tpl.replace("{item}", item);
                b.push(
                    text,
                    code,
                    Source::Template,
                    Split::Train,
                    opts.template_weight,
                    item,
                );
            }
        }
    }
    if let Some(actors) = &opts.actors {
        let entries = crate::roles::parse_actors(actors)?;
        let foreign: Vec<(String, String)> = template_items
            .iter()
            .filter(|(t, _)| (2..=10).contains(&t.chars().count()))
            .cloned()
            .collect();
        let (roles, unknown) =
            crate::roles::role_examples(&entries, tree, &foreign, &opts.roles, opts.seed);
        if unknown > 0 {
            b.skip_n(
                "actor lexicon line with a code outside the taxonomy",
                unknown,
            );
        }
        for r in roles {
            b.push(
                r.text,
                &r.code,
                Source::Role,
                r.split,
                opts.roles.weight,
                &r.item,
            );
        }
    }
    b.examples.retain(|e| !existing.contains(&e.text));
    let (generated, skipped) = b.finish();
    examples.extend(generated);
    Ok(Corpus {
        taxonomy_id: tree.id.clone(),
        examples,
        skipped,
    })
}

fn add_vague(b: &mut Builder<'_>, text: &str, opts: &CorpusOptions) {
    const WRAP: [&str; 4] = ["{x}", "用于{x}", "公司{x}需要", "申请贷款用于{x}"];
    for l in text.lines() {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let split = match split_of(
            l,
            opts.seed,
            SplitRatios {
                train: 0.8,
                calib: 0.2,
            },
        ) {
            Split::Train => Split::Train,
            _ => Split::Calib,
        };
        for w in WRAP {
            b.push(
                w.replace("{x}", l),
                VAGUE_CODE,
                Source::Vague,
                split,
                1.0,
                l,
            );
        }
    }
}

/// Corpus from custom examples (plus the taxonomy names as training examples when `with_names`).
pub fn corpus_from_examples(tree: &Tree, examples: Vec<Example>, with_names: bool) -> Corpus {
    let mut b = Builder {
        tree,
        examples: Vec::new(),
        skipped: BTreeMap::new(),
    };
    if with_names {
        for n in &tree.nodes {
            if n.code != VAGUE_CODE {
                b.push(
                    n.name.clone(),
                    &n.code,
                    Source::Name,
                    Split::Train,
                    1.0,
                    &n.name,
                );
            }
        }
    }
    b.examples.extend(examples);
    let (examples, skipped) = b.finish();
    Corpus {
        taxonomy_id: tree.id.clone(),
        examples,
        skipped,
    }
}
