//! A compact, index-based view of a taxonomy that the heads, the kNN vote and the decision rule
//! work on, plus the optional "vague" pseudo-class used to abstain on generic finance phrases.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Code of the pseudo-class that collects generic, industry-free phrasings ("资金周转", "日常经营").
/// It sits at the top level beside the real sections; predicting it means "no label".
pub const VAGUE_CODE: &str = "__vague__";

/// One node of the tree.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TreeNode {
    pub code: String,
    pub name: String,
    /// Index of the parent node, `None` at the top level.
    pub parent: Option<usize>,
    /// 0 = top level.
    pub depth: usize,
}

/// Index-based taxonomy tree.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tree {
    /// Taxonomy id (e.g. `gbt4754-2017`).
    pub id: String,
    /// Taxonomy version (content-derived for custom taxonomies).
    pub version: String,
    /// Level names by depth ("section", "division", ...).
    pub level_names: Vec<String>,
    pub nodes: Vec<TreeNode>,
    #[serde(skip)]
    index: HashMap<String, usize>,
    #[serde(skip)]
    children: Vec<Vec<usize>>,
    /// Node indices per depth, in node order.
    #[serde(skip)]
    levels: Vec<Vec<usize>>,
    /// Position of each node inside its level.
    #[serde(skip)]
    pos_in_level: Vec<usize>,
    /// Leaf node indices (nodes without children), in node order.
    #[serde(skip)]
    leaves: Vec<usize>,
    #[serde(skip)]
    leaf_pos: Vec<Option<usize>>,
    /// Leaf positions under each node (for marginalising leaf probabilities).
    #[serde(skip)]
    leaves_under: Vec<Vec<usize>>,
}

impl Tree {
    /// Build from `(code, name, parent_code)` rows (parents may come after children). Rejects
    /// duplicate codes, unknown parents and cycles. When `with_vague` is true the [`VAGUE_CODE`]
    /// pseudo-class is added at the top level.
    pub fn from_rows(
        id: &str,
        level_names: Vec<String>,
        rows: &[(String, String, Option<String>)],
        with_vague: bool,
    ) -> Result<Tree> {
        let mut index = HashMap::new();
        for (i, (code, _, _)) in rows.iter().enumerate() {
            if code.is_empty() {
                return Err(TrainError::Invalid(format!(
                    "taxonomy row {}: empty code",
                    i + 1
                )));
            }
            if index.insert(code.clone(), i).is_some() {
                return Err(TrainError::Invalid(format!(
                    "taxonomy: duplicate code {code:?}"
                )));
            }
        }
        let mut parents = Vec::with_capacity(rows.len());
        for (code, _, parent) in rows {
            let p = match parent.as_deref().filter(|p| !p.is_empty()) {
                None => None,
                Some(p) => Some(*index.get(p).ok_or_else(|| {
                    TrainError::Invalid(format!("taxonomy: parent {p:?} of {code:?} not found"))
                })?),
            };
            parents.push(p);
        }
        let mut depth = vec![usize::MAX; rows.len()];
        for i in 0..rows.len() {
            let mut chain = vec![i];
            let mut cur = i;
            while depth[cur] == usize::MAX {
                match parents[cur] {
                    None => {
                        depth[cur] = 0;
                        break;
                    }
                    Some(p) => {
                        if chain.len() > rows.len() {
                            return Err(TrainError::Invalid(format!(
                                "taxonomy: cycle through {:?}",
                                rows[i].0
                            )));
                        }
                        chain.push(p);
                        cur = p;
                    }
                }
            }
            for &n in chain.iter().rev() {
                if depth[n] == usize::MAX {
                    depth[n] = depth[parents[n].expect("non-root")] + 1;
                }
            }
        }
        let mut nodes: Vec<TreeNode> = rows
            .iter()
            .zip(parents.iter().zip(depth.iter()))
            .map(|((code, name, _), (p, d))| TreeNode {
                code: code.clone(),
                name: name.clone(),
                parent: *p,
                depth: *d,
            })
            .collect();
        if with_vague {
            if index.contains_key(VAGUE_CODE) {
                return Err(TrainError::Invalid(format!(
                    "taxonomy uses reserved code {VAGUE_CODE}"
                )));
            }
            nodes.push(TreeNode {
                code: VAGUE_CODE.to_string(),
                name: "(vague: no industry stated)".to_string(),
                parent: None,
                depth: 0,
            });
        }
        let mut t = Tree {
            id: id.to_string(),
            version: id.to_string(),
            level_names,
            nodes,
            index: HashMap::new(),
            children: vec![],
            levels: vec![],
            pos_in_level: vec![],
            leaves: vec![],
            leaf_pos: vec![],
            leaves_under: vec![],
        };
        t.rebuild();
        Ok(t)
    }

    /// Recompute the derived indexes (after deserialising).
    pub(crate) fn rebuild(&mut self) {
        let n = self.nodes.len();
        self.index = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, nd)| (nd.code.clone(), i))
            .collect();
        self.children = vec![Vec::new(); n];
        for (i, nd) in self.nodes.iter().enumerate() {
            if let Some(p) = nd.parent {
                self.children[p].push(i);
            }
        }
        let max_depth = self.nodes.iter().map(|n| n.depth).max().unwrap_or(0);
        self.levels = vec![Vec::new(); max_depth + 1];
        self.pos_in_level = vec![0; n];
        for (i, nd) in self.nodes.iter().enumerate() {
            self.pos_in_level[i] = self.levels[nd.depth].len();
            self.levels[nd.depth].push(i);
        }
        while self.level_names.len() < self.levels.len() {
            let d = self.level_names.len();
            self.level_names.push(format!("level{d}"));
        }
        self.leaves = (0..n).filter(|&i| self.children[i].is_empty()).collect();
        self.leaf_pos = vec![None; n];
        for (p, &i) in self.leaves.iter().enumerate() {
            self.leaf_pos[i] = Some(p);
        }
        self.leaves_under = vec![Vec::new(); n];
        for (lp, &leaf) in self.leaves.iter().enumerate() {
            let mut cur = Some(leaf);
            while let Some(c) = cur {
                self.leaves_under[c].push(lp);
                cur = self.nodes[c].parent;
            }
        }
    }

    /// Node index of `code`.
    pub fn find(&self, code: &str) -> Option<usize> {
        self.index.get(code).copied()
    }
    /// Number of nodes (including the vague pseudo-class when present).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }
    /// True for an empty tree.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
    /// Number of levels.
    pub fn depth_count(&self) -> usize {
        self.levels.len()
    }
    /// Node indices at `depth`.
    pub fn level(&self, depth: usize) -> &[usize] {
        &self.levels[depth]
    }
    /// Position of node `i` inside its level.
    pub fn pos_in_level(&self, i: usize) -> usize {
        self.pos_in_level[i]
    }
    /// Children of node `i`.
    pub fn children(&self, i: usize) -> &[usize] {
        &self.children[i]
    }
    /// Leaf node indices.
    pub fn leaves(&self) -> &[usize] {
        &self.leaves
    }
    /// Leaf positions (indexes into [`Tree::leaves`]) under node `i` (itself when a leaf).
    pub fn leaves_under(&self, i: usize) -> &[usize] {
        &self.leaves_under[i]
    }
    /// Position of node `i` among the leaves.
    pub fn leaf_pos(&self, i: usize) -> Option<usize> {
        self.leaf_pos[i]
    }
    /// Ancestor of `i` at `depth` (itself when `depth` is its own depth), `None` when deeper.
    pub fn ancestor_at(&self, i: usize, depth: usize) -> Option<usize> {
        let mut cur = i;
        if self.nodes[cur].depth < depth {
            return None;
        }
        while self.nodes[cur].depth > depth {
            cur = self.nodes[cur].parent?;
        }
        Some(cur)
    }
    /// Root-first path of node indices ending at `i`.
    pub fn path(&self, i: usize) -> Vec<usize> {
        let mut p = vec![i];
        let mut cur = i;
        while let Some(q) = self.nodes[cur].parent {
            p.push(q);
            cur = q;
        }
        p.reverse();
        p
    }
    /// Index of the vague pseudo-class, if the tree has one.
    pub fn vague(&self) -> Option<usize> {
        self.find(VAGUE_CODE)
    }
    /// Level name of `depth`.
    pub fn level_name(&self, depth: usize) -> &str {
        &self.level_names[depth]
    }

    /// Build from a `touxiang-datasets` taxonomy.
    pub fn from_taxonomy(tax: &touxiang_datasets::Taxonomy, with_vague: bool) -> Result<Tree> {
        let rows: Vec<(String, String, Option<String>)> = tax
            .nodes()
            .iter()
            .map(|n| (n.code.clone(), n.name.clone(), n.parent.clone()))
            .collect();
        let levels = (0..=tax.max_depth())
            .map(|d| tax.level_name(d).to_string())
            .collect();
        let mut t = Tree::from_rows(tax.id(), levels, &rows, with_vague)?;
        t.version = tax.version().to_string();
        Ok(t)
    }
}

/// A → {A1 → {a, b}}, B → {B1 → {c}} plus vague, two levels below the top (unit tests).
#[cfg(test)]
pub(crate) fn small_tree() -> Tree {
    let r = |c: &str, p: Option<&str>| (c.to_string(), c.to_string(), p.map(str::to_string));
    let rows = vec![
        r("A", None),
        r("A1", Some("A")),
        r("a", Some("A1")),
        r("b", Some("A1")),
        r("B", None),
        r("B1", Some("B")),
        r("c", Some("B1")),
    ];
    let names = ["section", "division", "class"].map(String::from).to_vec();
    Tree::from_rows("t", names, &rows, true).unwrap()
}
