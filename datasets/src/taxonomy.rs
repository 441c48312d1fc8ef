//! Code taxonomies: GB/T 4754-2017, the 资金用途 purpose taxonomy, and banks' own taxonomies.
//!
//! A taxonomy is a forest of codes loaded from CSV (`code,name,parent` plus optional `level` and
//! `version` columns) and validated on load: every code unique and non-empty, every parent present,
//! no cycles, and — when a `level` column is given — one level name per depth.

use crate::csvutil::{self, Table};
use crate::DatasetError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, LazyLock};

/// One code of a taxonomy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub code: String,
    pub name: String,
    /// Parent code; `None` for a top-level code.
    pub parent: Option<String>,
    /// 0 for a top-level code, parent's depth + 1 otherwise.
    pub depth: usize,
}

/// A validated code tree (a forest: several roots are allowed).
///
/// Nodes keep the order of the input file, so [`Taxonomy::index_of`] / [`Taxonomy::node`] give a
/// stable dense index (e.g. for classifier heads).
#[derive(Debug, Clone)]
pub struct Taxonomy {
    id: String,
    version: String,
    level_names: Vec<String>,
    nodes: Vec<Node>,
    index: HashMap<String, usize>,
    children: Vec<Vec<usize>>,
    roots: Vec<usize>,
}

const GBT4754_CSV: &str = include_str!("../data/gbt4754-2017.csv");
const PURPOSE_CSV: &str = include_str!("../data/purpose.csv");

/// Id of the built-in GB/T 4754-2017 taxonomy.
pub const GBT4754_ID: &str = "gbt4754-2017";
/// Id of the built-in 资金用途 purpose taxonomy.
pub const PURPOSE_ID: &str = "purpose";

static GBT4754: LazyLock<Arc<Taxonomy>> = LazyLock::new(|| {
    Arc::new(
        Taxonomy::from_csv_reader(GBT4754_ID, GBT4754_CSV.as_bytes())
            .map(|t| t.with_version(GBT4754_ID))
            .expect("embedded data/gbt4754-2017.csv is valid (checked by tests)"),
    )
});

static PURPOSE: LazyLock<Arc<Taxonomy>> = LazyLock::new(|| {
    Arc::new(
        Taxonomy::from_csv_reader(PURPOSE_ID, PURPOSE_CSV.as_bytes())
            .map(|t| t.with_version(PURPOSE_ID))
            .expect("embedded data/purpose.csv is valid (checked by tests)"),
    )
});

impl Taxonomy {
    /// Parse and validate a taxonomy from CSV.
    ///
    /// The header must contain `code`, `name` and `parent` (any order, case-insensitive; other
    /// columns are ignored). An empty `parent` marks a top-level code. Optional columns:
    /// - `level`: the name of each node's level; all nodes at one depth must share it, and it becomes
    ///   [`Taxonomy::level_name`]. Without it, see [`Taxonomy::level_name`] for the defaults.
    /// - `version`: the taxonomy version (the first non-empty value is used; all non-empty values
    ///   must agree). Without it the version is `"{id}@{first 12 hex digits of sha256(content)}"`,
    ///   so editing a custom taxonomy changes its version (and every cache key built on it).
    ///
    /// Errors name the line and field: [`DatasetError::MissingColumn`],
    /// [`DatasetError::EmptyField`], [`DatasetError::DuplicateCode`],
    /// [`DatasetError::MissingParent`], [`DatasetError::Cycle`], [`DatasetError::InvalidValue`]
    /// (inconsistent level names or versions), [`DatasetError::Csv`], [`DatasetError::Empty`].
    pub fn from_csv_reader<R: Read>(id: &str, r: R) -> Result<Taxonomy, DatasetError> {
        let table = Table::read(r)?;
        let c_code = table.require("code")?;
        let c_name = table.require("name")?;
        let c_parent = table.require("parent")?;
        let c_level = table.optional("level");
        let c_version = table.optional("version");
        if table.rows.is_empty() {
            return Err(DatasetError::Empty);
        }

        let mut nodes = Vec::with_capacity(table.rows.len());
        let mut lines = Vec::with_capacity(table.rows.len());
        let mut levels: Vec<Option<String>> = Vec::with_capacity(table.rows.len());
        let mut index = HashMap::with_capacity(table.rows.len());
        let mut version: Option<String> = None;
        let mut hasher = Sha256::new();
        for (line, rec) in &table.rows {
            let line = *line;
            let code = csvutil::required(rec, c_code, line, "code")?.to_string();
            let name = csvutil::required(rec, c_name, line, "name")?.to_string();
            let parent = csvutil::field(rec, c_parent).to_string();
            let parent = (!parent.is_empty()).then_some(parent);
            let level = c_level
                .map(|c| csvutil::field(rec, c).to_string())
                .filter(|l| !l.is_empty());
            if let Some(c) = c_version {
                let v = csvutil::field(rec, c);
                if !v.is_empty() {
                    match &version {
                        None => version = Some(v.to_string()),
                        Some(prev) if prev != v => {
                            return Err(DatasetError::InvalidValue {
                                line,
                                field: "version".into(),
                                value: v.into(),
                                reason: format!("earlier rows give version {prev:?}"),
                            })
                        }
                        Some(_) => {}
                    }
                }
            }
            if index.insert(code.clone(), nodes.len()).is_some() {
                return Err(DatasetError::DuplicateCode { code, line });
            }
            for part in [
                code.as_str(),
                name.as_str(),
                parent.as_deref().unwrap_or(""),
                level.as_deref().unwrap_or(""),
            ] {
                hasher.update(part.as_bytes());
                hasher.update([0x1f]);
            }
            hasher.update([0x1e]);
            nodes.push(Node {
                code,
                name,
                parent,
                depth: 0,
            });
            lines.push(line);
            levels.push(level);
        }

        // Parents must exist.
        let mut parents = Vec::with_capacity(nodes.len());
        for (i, n) in nodes.iter().enumerate() {
            match &n.parent {
                None => parents.push(None),
                Some(p) => match index.get(p) {
                    Some(&pi) => parents.push(Some(pi)),
                    None => {
                        return Err(DatasetError::MissingParent {
                            code: n.code.clone(),
                            parent: p.clone(),
                            line: lines[i],
                        })
                    }
                },
            }
        }
        let codes: Vec<String> = nodes.iter().map(|n| n.code.clone()).collect();
        let depths = csvutil::depths(&parents, &codes)?;
        let max_depth = depths.iter().copied().max().unwrap_or(0);

        let mut children = vec![Vec::new(); nodes.len()];
        let mut roots = Vec::new();
        for (i, n) in nodes.iter_mut().enumerate() {
            n.depth = depths[i];
            match parents[i] {
                Some(p) => children[p].push(i),
                None => roots.push(i),
            }
        }

        // Level names: one per depth.
        let level_names = if c_level.is_some() {
            let mut by_depth: Vec<Option<(String, u64)>> = vec![None; max_depth + 1];
            for (i, n) in nodes.iter().enumerate() {
                let Some(level) = &levels[i] else {
                    return Err(DatasetError::EmptyField {
                        line: lines[i],
                        field: "level".into(),
                    });
                };
                match &by_depth[n.depth] {
                    None => by_depth[n.depth] = Some((level.clone(), lines[i])),
                    Some((expected, first_line)) if expected != level => {
                        return Err(DatasetError::InvalidValue {
                            line: lines[i],
                            field: "level".into(),
                            value: level.clone(),
                            reason: format!(
                                "code {:?} is at depth {} where line {first_line} has level {expected:?}",
                                n.code, n.depth
                            ),
                        });
                    }
                    Some(_) => {}
                }
            }
            // Every depth 0..=max_depth has at least one node, so every entry is set.
            by_depth
                .into_iter()
                .map(|e| e.map(|(l, _)| l).unwrap_or_default())
                .collect()
        } else {
            default_level_names(max_depth)
        };

        let version = version.unwrap_or_else(|| {
            let digest = hasher.finalize();
            format!("{id}@{}", &hex::encode(digest)[..12])
        });

        Ok(Taxonomy {
            id: id.to_string(),
            version,
            level_names,
            nodes,
            index,
            children,
            roots,
        })
    }

    /// [`Taxonomy::from_csv_reader`] on a file; errors are wrapped in [`DatasetError::File`]
    /// naming the path (use [`DatasetError::root_cause`] to match on the cause).
    pub fn from_csv_path(id: &str, path: &Path) -> Result<Taxonomy, DatasetError> {
        let file = std::fs::File::open(path).map_err(|e| DatasetError::Io(e).in_file(path))?;
        Taxonomy::from_csv_reader(id, std::io::BufReader::new(file)).map_err(|e| e.in_file(path))
    }

    fn with_version(mut self, version: &str) -> Taxonomy {
        self.version = version.to_string();
        self
    }

    /// GB/T 4754-2017 国民经济行业分类: 20 sections, 97 divisions, 473 groups, 1 382 classes.
    /// Id and version `"gbt4754-2017"`; levels `section`, `division`, `group`, `class`.
    pub fn gbt4754() -> &'static Taxonomy {
        &GBT4754
    }

    /// The 资金用途 purpose taxonomy (flat, 10 codes such as `working_capital` 流动资金); id and
    /// version `"purpose"`, level name `purpose`.
    pub fn purpose() -> &'static Taxonomy {
        &PURPOSE
    }

    /// Shared handle to the built-in GB/T 4754-2017 taxonomy.
    pub fn gbt4754_arc() -> Arc<Taxonomy> {
        Arc::clone(&GBT4754)
    }

    /// Shared handle to the built-in purpose taxonomy.
    pub fn purpose_arc() -> Arc<Taxonomy> {
        Arc::clone(&PURPOSE)
    }

    /// The id the taxonomy is selected by (the `taxonomy` field of the API).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Version string (see [`Taxonomy::from_csv_reader`]); reported as `taxonomy_version`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Number of codes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false for a loaded taxonomy (loading rejects empty files); kept for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The node of `code`.
    pub fn get(&self, code: &str) -> Option<&Node> {
        self.index.get(code).map(|&i| &self.nodes[i])
    }

    /// Whether `code` is in the taxonomy.
    pub fn contains(&self, code: &str) -> bool {
        self.index.contains_key(code)
    }

    /// Dense index of `code` (its position in the input file).
    pub fn index_of(&self, code: &str) -> Option<usize> {
        self.index.get(code).copied()
    }

    /// Node at dense index `idx`. Panics if `idx >= len()` (like slice indexing).
    pub fn node(&self, idx: usize) -> &Node {
        &self.nodes[idx]
    }

    /// All nodes in input order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Deepest depth (number of levels − 1): 3 for GB/T 4754, 0 for a flat taxonomy.
    pub fn max_depth(&self) -> usize {
        self.level_names.len().saturating_sub(1)
    }

    /// All level names, root level first.
    pub fn level_names(&self) -> &[String] {
        &self.level_names
    }

    /// Name of the level at `depth`.
    ///
    /// From the `level` column when the CSV has one (GB/T 4754: `section`, `division`, `group`,
    /// `class`). Without a `level` column: a flat taxonomy's single level is `"class"` (so a flat
    /// custom taxonomy's labels read like GB/T leaf labels), and a deeper one's levels are
    /// `"level1"`, `"level2"`, … root first. Returns `""` when `depth > max_depth()`.
    pub fn level_name(&self, depth: usize) -> &str {
        self.level_names
            .get(depth)
            .map(String::as_str)
            .unwrap_or("")
    }

    /// Level name of `code`'s depth.
    pub fn level_of(&self, code: &str) -> Option<&str> {
        self.get(code).map(|n| self.level_name(n.depth))
    }

    /// Root-first path to `code`, including `code`; empty if `code` is unknown.
    pub fn path(&self, code: &str) -> Vec<&Node> {
        let mut out = Vec::new();
        let mut cur = self.get(code);
        while let Some(n) = cur {
            out.push(n);
            cur = n.parent.as_deref().and_then(|p| self.get(p));
        }
        out.reverse();
        out
    }

    /// The ancestor of `code` at `depth` (`code` itself when `depth` is its own depth); `None`
    /// when `code` is unknown or shallower than `depth`.
    pub fn ancestor_at(&self, code: &str, depth: usize) -> Option<&Node> {
        let mut n = self.get(code)?;
        if n.depth < depth {
            return None;
        }
        while n.depth > depth {
            n = self.get(n.parent.as_deref()?)?;
        }
        Some(n)
    }

    /// Direct children of `code`, in input order; empty for a leaf or unknown code.
    pub fn children(&self, code: &str) -> Vec<&Node> {
        self.index_of(code)
            .map(|i| self.children[i].iter().map(|&c| &self.nodes[c]).collect())
            .unwrap_or_default()
    }

    /// Dense indices of `code`'s direct children.
    pub fn child_indices(&self, code: &str) -> &[usize] {
        self.index_of(code)
            .map(|i| self.children[i].as_slice())
            .unwrap_or(&[])
    }

    /// Top-level codes, in input order.
    pub fn roots(&self) -> Vec<&Node> {
        self.roots.iter().map(|&i| &self.nodes[i]).collect()
    }

    /// Codes without children (GB/T 4754: the 1 382 classes), in input order.
    pub fn leaves(&self) -> Vec<&Node> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| self.children[*i].is_empty())
            .map(|(_, n)| n)
            .collect()
    }

    /// All codes at `depth`, in input order.
    pub fn at_depth(&self, depth: usize) -> Vec<&Node> {
        self.nodes.iter().filter(|n| n.depth == depth).collect()
    }

    /// Whether `ancestor` is a proper ancestor of `code` (false when they are equal or either is
    /// unknown). See [`Taxonomy::is_ancestor_or_self`] for the inclusive test.
    pub fn is_ancestor(&self, ancestor: &str, code: &str) -> bool {
        let (Some(a), Some(n)) = (self.get(ancestor), self.get(code)) else {
            return false;
        };
        a.depth < n.depth
            && self
                .ancestor_at(code, a.depth)
                .is_some_and(|x| x.code == a.code)
    }

    /// Whether `ancestor == code` (a known code) or `ancestor` is a proper ancestor of `code`.
    pub fn is_ancestor_or_self(&self, ancestor: &str, code: &str) -> bool {
        (ancestor == code && self.contains(code)) || self.is_ancestor(ancestor, code)
    }
}

fn default_level_names(max_depth: usize) -> Vec<String> {
    if max_depth == 0 {
        vec!["class".to_string()]
    } else {
        (1..=max_depth + 1).map(|d| format!("level{d}")).collect()
    }
}

/// Taxonomies by id, as selected by the API's `taxonomy` field.
#[derive(Debug, Clone, Default)]
pub struct TaxonomyRegistry {
    map: BTreeMap<String, Arc<Taxonomy>>,
}

impl TaxonomyRegistry {
    /// An empty registry.
    pub fn new() -> TaxonomyRegistry {
        TaxonomyRegistry::default()
    }

    /// A registry holding the built-ins `gbt4754-2017` and `purpose`.
    pub fn with_builtin() -> TaxonomyRegistry {
        let mut r = TaxonomyRegistry::new();
        r.insert(Taxonomy::gbt4754_arc());
        r.insert(Taxonomy::purpose_arc());
        r
    }

    /// Add (or replace) a taxonomy under its id; returns the one it replaced.
    pub fn insert(&mut self, taxonomy: impl Into<Arc<Taxonomy>>) -> Option<Arc<Taxonomy>> {
        let t = taxonomy.into();
        self.map.insert(t.id().to_string(), t)
    }

    /// The taxonomy with this id.
    pub fn get(&self, id: &str) -> Option<Arc<Taxonomy>> {
        self.map.get(id).cloned()
    }

    /// Whether a taxonomy with this id is registered.
    pub fn contains(&self, id: &str) -> bool {
        self.map.contains_key(id)
    }

    /// Registered ids, sorted.
    pub fn ids(&self) -> Vec<String> {
        self.map.keys().cloned().collect()
    }

    /// Number of registered taxonomies.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no taxonomy is registered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Load every `<id>.csv` in `dir` (not recursive, sorted by file name) as a custom taxonomy
    /// with id `<id>`, and return the ids loaded. All files are validated before any is added, so
    /// a bad file leaves the registry unchanged. Errors: the first invalid file (wrapped in
    /// [`DatasetError::File`] naming it), or [`DatasetError::DuplicateTaxonomy`] when an id is
    /// already registered (a bank's file cannot silently shadow a built-in).
    pub fn load_dir(&mut self, dir: &Path) -> Result<Vec<String>, DatasetError> {
        let entries = std::fs::read_dir(dir).map_err(|e| DatasetError::Io(e).in_file(dir))?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| DatasetError::Io(e).in_file(dir))?.path();
            let is_csv = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
            if is_csv && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        let mut loaded: Vec<Taxonomy> = Vec::with_capacity(files.len());
        for path in &files {
            let Some(id) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if id.is_empty() {
                continue;
            }
            if self.contains(id) || loaded.iter().any(|t| t.id() == id) {
                return Err(DatasetError::DuplicateTaxonomy { id: id.to_string() }.in_file(path));
            }
            loaded.push(Taxonomy::from_csv_path(id, path)?);
        }
        let ids = loaded.iter().map(|t| t.id().to_string()).collect();
        for t in loaded {
            self.insert(t);
        }
        Ok(ids)
    }
}
