//! The runtime methods of [`Classifier`]: construction and accessors, head outputs, the
//! calibrated scoring and decision, results with alternatives and evidence.

use candle_core::{Device, Tensor};
use touxiang_datasets::{neighbour_vote_path, Evidence as LabelEvidence, LabelResult, PathStep};

use super::{
    combine, decide, exact_match, knn_vote, with_text_evidence, Alternative, Calibration,
    Classification, Classifier, ClassifyOptions, Decided, HeadOutputs, KeywordFn, Label,
    LevelDists, Neighbor, TextEvidence,
};
use crate::confidence::Evidence;
use crate::error::{Result, TrainError};
use crate::heads::Linear;
use crate::tfidf::LexicalIndex;
use crate::tree::Tree;

fn leaf_ancestors(tree: &Tree) -> Vec<Vec<Option<usize>>> {
    tree.leaves()
        .iter()
        .map(|&l| {
            (0..tree.depth_count())
                .map(|d| tree.ancestor_at(l, d).map(|a| tree.pos_in_level(a)))
                .collect()
        })
        .collect()
}

impl Classifier {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        tree: Tree,
        flat: Option<Linear>,
        levels: Vec<Linear>,
        cal_knn: Calibration,
        cal_heads: Calibration,
        knn_k: usize,
        auto_min_depth: usize,
        model_version: String,
        encoder_version: String,
        dim: usize,
    ) -> Classifier {
        let leaf_anc = leaf_ancestors(&tree);
        Classifier {
            tree,
            flat,
            levels,
            cal_knn,
            cal_heads,
            knn_k,
            auto_min_depth,
            model_version,
            encoder_version,
            dim,
            leaf_anc,
            keywords: None,
            lexical: None,
            role_cues: None,
        }
    }

    /// Attach the lexical voter (its weight comes from the calibration).
    pub fn with_lexical(mut self, ix: LexicalIndex) -> Self {
        self.lexical = Some(ix);
        self
    }

    /// Attach the role cue lexicon (features of the candidate re-ranker).
    pub fn with_role_cues(mut self, cues: crate::role_cues::RoleCues) -> Self {
        self.role_cues = Some(cues);
        self
    }

    /// The role cue lexicon, when the classifier has one.
    pub fn role_cues(&self) -> Option<&crate::role_cues::RoleCues> {
        self.role_cues.as_ref()
    }

    /// The lexical voter, when the classifier has one.
    pub fn lexical(&self) -> Option<&LexicalIndex> {
        self.lexical.as_ref()
    }

    /// Attach a keyword extractor (e.g. the segmenter's TF-IDF keywords).
    pub fn with_keywords(mut self, f: KeywordFn) -> Self {
        self.keywords = Some(f);
        self
    }

    /// The taxonomy tree (with the vague pseudo-class when trained with one).
    pub fn tree(&self) -> &Tree {
        &self.tree
    }
    /// Model version (artifact version).
    pub fn model_version(&self) -> &str {
        &self.model_version
    }
    /// Version of the encoder the heads were trained on; the service must use the same one.
    pub fn encoder_version(&self) -> &str {
        &self.encoder_version
    }
    /// Taxonomy id.
    pub fn taxonomy_id(&self) -> &str {
        &self.tree.id
    }
    /// Taxonomy version.
    pub fn taxonomy_version(&self) -> &str {
        &self.tree.version
    }
    /// Embedding dimension expected by the heads.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Number of neighbours the kNN vote uses (ask the vector store for at least this many).
    pub fn knn_k(&self) -> usize {
        self.knn_k
    }
    /// Calibration used when neighbours are given / when not.
    pub fn calibrations(&self) -> (&Calibration, &Calibration) {
        (&self.cal_knn, &self.cal_heads)
    }

    /// Head outputs for a batch of embeddings.
    pub fn head_outputs(&self, embeddings: &[Vec<f32>]) -> Result<Vec<HeadOutputs>> {
        for (i, e) in embeddings.iter().enumerate() {
            if e.len() != self.dim {
                return Err(TrainError::BadEmbedding(format!(
                    "embedding {i} has length {}, the model expects {}",
                    e.len(),
                    self.dim
                )));
            }
            if e.iter().any(|v| !v.is_finite()) {
                return Err(TrainError::BadEmbedding(format!(
                    "embedding {i} has a non-finite value"
                )));
            }
        }
        let mut out: Vec<HeadOutputs> = embeddings
            .iter()
            .map(|_| HeadOutputs {
                flat: None,
                level: None,
                lexical: Vec::new(),
                roles: Default::default(),
            })
            .collect();
        let depth = self.tree.depth_count();
        for (ci, chunk) in embeddings.chunks(1024).enumerate() {
            let flat_data: Vec<f32> = chunk.iter().flatten().copied().collect();
            let x = Tensor::from_vec(flat_data, (chunk.len(), self.dim), &Device::Cpu)?;
            if let Some(f) = &self.flat {
                let p = f.probs(&x)?;
                for (r, leaf_p) in p.into_iter().enumerate() {
                    let mut dists: LevelDists = (0..depth)
                        .map(|d| vec![0f32; self.tree.level(d).len()])
                        .collect();
                    for (l, &pl) in leaf_p.iter().enumerate() {
                        for (d, a) in self.leaf_anc[l].iter().enumerate() {
                            if let Some(a) = a {
                                dists[d][*a] += pl;
                            }
                        }
                    }
                    out[ci * 1024 + r].flat = Some(dists);
                }
            }
            if !self.levels.is_empty() {
                let per: Vec<Vec<Vec<f32>>> = self
                    .levels
                    .iter()
                    .map(|h| h.probs(&x))
                    .collect::<Result<_>>()?;
                for r in 0..chunk.len() {
                    let o = &mut out[ci * 1024 + r];
                    let mut lv: LevelDists = per.iter().map(|lv| lv[r].clone()).collect();
                    // levels without their own head (the deepest, when a flat head exists) take
                    // the flat head's marginal
                    for d in lv.len()..depth {
                        lv.push(
                            o.flat
                                .as_ref()
                                .map(|f| f[d].clone())
                                .unwrap_or_else(|| vec![0.0; self.tree.level(d).len()]),
                        );
                    }
                    o.level = Some(lv);
                }
            }
        }
        Ok(out)
    }

    /// [`Classifier::head_outputs`] plus the lexical neighbours of each text.
    pub fn head_outputs_for_texts(
        &self,
        texts: &[&str],
        embeddings: &[Vec<f32>],
    ) -> Result<Vec<HeadOutputs>> {
        if texts.len() != embeddings.len() {
            return Err(TrainError::Invalid(format!(
                "{} texts but {} embeddings",
                texts.len(),
                embeddings.len()
            )));
        }
        let heads = self.head_outputs(embeddings)?;
        Ok(with_text_evidence(heads, self.text_evidence(texts)))
    }

    /// What the texts alone give (the lexical neighbours and the role cues), without the
    /// embeddings: the service computes it beside the neighbour search.
    pub fn text_evidence(&self, texts: &[&str]) -> Vec<TextEvidence> {
        let mut out: Vec<TextEvidence> = texts.iter().map(|_| TextEvidence::default()).collect();
        if let Some(ix) = &self.lexical {
            for (o, nb) in out.iter_mut().zip(ix.search_all(texts, self.knn_k)) {
                o.lexical = nb;
            }
        }
        if let Some(cues) = &self.role_cues {
            for (o, t) in out.iter_mut().zip(texts) {
                o.roles = cues.hits(t);
            }
        }
        out
    }

    /// kNN vote per level over the first `knn_k` neighbours (by similarity); `None` at a level
    /// where no neighbour votes. Neighbours with codes outside the taxonomy are ignored.
    pub fn knn_vote(&self, neighbors: &[Neighbor], tau: f32) -> Vec<Option<Vec<f32>>> {
        knn_vote(&self.tree, neighbors, self.knn_k, tau)
    }

    /// Calibrated per-level distributions for one text.
    pub fn calibrated(&self, heads: &HeadOutputs, neighbors: &[Neighbor]) -> LevelDists {
        self.scored(heads, neighbors).0
    }

    /// Calibrated per-level distributions and the decision for one text.
    pub fn scored(&self, heads: &HeadOutputs, neighbors: &[Neighbor]) -> (LevelDists, Decided) {
        let cal = if neighbors.is_empty() {
            &self.cal_heads
        } else {
            &self.cal_knn
        };
        let knn = self.knn_vote(neighbors, cal.knn_tau);
        let lex = self.knn_vote(&heads.lexical, cal.lexical_tau);
        let top_sim = crate::gate::top_sim(neighbors);
        let mut dists = combine(&self.tree, heads, &knn, &lex, cal, top_sim);
        if let Some(r) = &cal.rerank {
            let x = crate::rerank::RerankInput {
                heads,
                knn: &knn,
                lexical: &lex,
                mixed: &dists,
                neighbors,
            };
            dists = r.apply(&self.tree, &x);
        }
        let exact = exact_match(&self.tree, neighbors);
        if let Some(m) = exact {
            crate::decide::apply_exact(&self.tree, &mut dists, &m.code);
        }
        // an exact match keeps the confidence the rule gives it: the step model is fitted on
        // texts that repeat no labeled one
        let ev = Evidence {
            heads,
            knn: &knn,
            lexical: &lex,
            top_sim,
        };
        let ev = exact.is_none().then_some(&ev);
        let dec = decide(&self.tree, &dists, cal, self.auto_min_depth, ev);
        (dists, dec)
    }

    /// Classify one text from its embedding and the labeled neighbours the service found
    /// (may be empty: a heads-only calibration is used then).
    pub fn classify(
        &self,
        text: &str,
        embedding: &[f32],
        neighbors: &[Neighbor],
        opts: &ClassifyOptions,
    ) -> Result<Classification> {
        let heads = self
            .head_outputs_for_texts(&[text], &[embedding.to_vec()])?
            .pop()
            .expect("one output");
        Ok(self.classify_with_heads(text, &heads, neighbors, opts))
    }

    /// Batch variant of [`Classifier::classify`] (one head pass for all texts).
    pub fn classify_batch(
        &self,
        texts: &[&str],
        embeddings: &[Vec<f32>],
        neighbors: &[Vec<Neighbor>],
        opts: &ClassifyOptions,
    ) -> Result<Vec<Classification>> {
        if texts.len() != embeddings.len() || texts.len() != neighbors.len() {
            return Err(TrainError::Invalid(format!(
                "classify_batch: {} texts, {} embeddings, {} neighbour lists",
                texts.len(),
                embeddings.len(),
                neighbors.len()
            )));
        }
        let heads = self.head_outputs_for_texts(texts, embeddings)?;
        self.classify_prepared(texts, &heads, neighbors, opts)
    }

    /// [`Classifier::classify_batch`] from head outputs already computed (with their text
    /// evidence, see [`with_text_evidence`]).
    pub fn classify_prepared(
        &self,
        texts: &[&str],
        heads: &[HeadOutputs],
        neighbors: &[Vec<Neighbor>],
        opts: &ClassifyOptions,
    ) -> Result<Vec<Classification>> {
        if texts.len() != heads.len() || texts.len() != neighbors.len() {
            return Err(TrainError::Invalid(format!(
                "classify_prepared: {} texts, {} head outputs, {} neighbour lists",
                texts.len(),
                heads.len(),
                neighbors.len()
            )));
        }
        Ok(heads
            .iter()
            .zip(texts.iter().zip(neighbors))
            .map(|(h, (t, n))| self.classify_with_heads(t, h, n, opts))
            .collect())
    }

    pub(crate) fn classify_with_heads(
        &self,
        text: &str,
        heads: &HeadOutputs,
        neighbors: &[Neighbor],
        opts: &ClassifyOptions,
    ) -> Classification {
        let mut nb: Vec<Neighbor> = neighbors.to_vec();
        nb.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        let (dists, dec) = self.scored(heads, &nb);
        let tree = &self.tree;
        let full_path: Vec<PathStep> = dec.path.iter().map(|&s| self.path_step(s)).collect();
        let (label, confidence) = match dec.label_depth {
            Some(d) => {
                let (node, conf) = dec.path[d];
                let n = &tree.nodes[node];
                (
                    Some(Label {
                        code: n.code.clone(),
                        level: tree.level_name(d).to_string(),
                        name: n.name.clone(),
                        path: full_path[..=d].to_vec(),
                    }),
                    conf,
                )
            }
            None => (None, 0.0),
        };
        let guess = dec.path.last().map(|&(leaf, _)| Label {
            code: tree.nodes[leaf].code.clone(),
            level: tree.level_name(tree.nodes[leaf].depth).to_string(),
            name: tree.nodes[leaf].name.clone(),
            path: full_path.clone(),
        });
        let alternatives = self.leaf_alternatives(&dists, dec.path.last().map(|p| p.0), opts.top_k);
        nb.truncate(opts.show_neighbors);
        let keywords = match &self.keywords {
            Some(f) if opts.keywords > 0 => f(text, opts.keywords),
            _ => Vec::new(),
        };
        let vote_path = neighbour_vote_path(
            &nb.iter()
                .take(self.knn_k)
                .map(|n| (n.code.as_str(), n.similarity))
                .collect::<Vec<_>>(),
            |c| {
                tree.find(c)
                    .map(|i| {
                        tree.path(i)
                            .iter()
                            .map(|&j| tree.nodes[j].code.clone())
                            .collect()
                    })
                    .unwrap_or_default()
            },
        );
        Classification {
            label,
            confidence,
            decision: dec.decision,
            alternatives,
            guess,
            vote_path,
            neighbors: nb,
            keywords,
            full_path,
        }
    }

    /// The `k` most probable leaves (never the vague pseudo-class, never `exclude`), best first,
    /// each with its path of calibrated probabilities (capped by the parent's, as on the label's
    /// path).
    pub fn leaf_alternatives(
        &self,
        dists: &LevelDists,
        exclude: Option<usize>,
        k: usize,
    ) -> Vec<Alternative> {
        let tree = &self.tree;
        let last = tree.depth_count() - 1;
        let vague = tree.vague();
        let mut leaves: Vec<(usize, f32)> = tree
            .level(last)
            .iter()
            .enumerate()
            .filter(|(_, &i)| Some(i) != exclude && Some(i) != vague)
            .map(|(p, &i)| (i, dists[last][p]))
            .collect();
        leaves.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        leaves
            .into_iter()
            .take(k)
            .map(|(leaf, c)| Alternative {
                code: tree.nodes[leaf].code.clone(),
                level: tree.level_name(last).to_string(),
                name: tree.nodes[leaf].name.clone(),
                confidence: c,
                path: crate::decide::capped_path(tree, dists, leaf)
                    .into_iter()
                    .map(|s| self.path_step(s))
                    .collect(),
            })
            .collect()
    }

    /// A path step of node `i` with confidence `c`.
    fn path_step(&self, (i, c): (usize, f32)) -> PathStep {
        PathStep {
            code: self.tree.nodes[i].code.clone(),
            name: self.tree.nodes[i].name.clone(),
            confidence: c,
        }
    }

    /// Convert a classification into the shared label type.
    pub fn to_label_result(&self, c: &Classification) -> LabelResult {
        LabelResult {
            code: c.label.as_ref().map(|l| l.code.clone()),
            level: c.label.as_ref().map(|l| l.level.clone()),
            name: c.label.as_ref().map(|l| l.name.clone()),
            path: c.label.as_ref().map(|l| l.path.clone()).unwrap_or_default(),
            confidence: c.confidence,
            decision: c.decision,
            model_version: self.model_version.clone(),
            taxonomy_version: self.tree.version.clone(),
            evidence: LabelEvidence {
                guess: c.guess.as_ref().map(|g| Alternative {
                    code: g.code.clone(),
                    level: g.level.clone(),
                    name: g.name.clone(),
                    confidence: g.path.last().map_or(0.0, |p| p.confidence),
                    path: g.path.clone(),
                }),
                alternatives: c.alternatives.clone(),
                vote_path: c.vote_path.clone(),
            },
        }
    }
}
