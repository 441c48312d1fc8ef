//! Versioned model artifacts: `model.safetensors` (head weights and calibration parameters),
//! `metadata.json` (versions, taxonomy tree, corpus statistics, seed, thresholds, metrics) and
//! optionally the training exemplars (`exemplars.safetensors` + `exemplars.jsonl`) for the kNN vote.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::calibrate::DecisionTargets;
use crate::classifier::{mix_from_slice, Calibration, Classifier};
use crate::confidence::{StepModel, FEATURES};
use crate::error::{Result, TrainError};
use crate::heads::{HeadConfig, Linear};
use crate::knn::ExemplarIndex;
use crate::role_cues::RoleCues;
use crate::tfidf::{LexicalConfig, LexicalIndex};
use crate::train::{TrainConfig, TrainReport};
use crate::tree::Tree;

/// Artifact format version.
pub const FORMAT: u32 = 1;

/// Contents of `metadata.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArtifactMeta {
    pub format: u32,
    pub model_version: String,
    pub encoder_version: String,
    pub dim: usize,
    pub taxonomy_id: String,
    pub taxonomy_version: String,
    pub tree: Tree,
    pub corpus_version: String,
    pub seed: u64,
    pub knn_k: usize,
    pub auto_min_depth: usize,
    pub targets: DecisionTargets,
    pub head_config: HeadConfig,
    pub flat_head: bool,
    pub level_heads: bool,
    /// Lexical voter settings; its index is rebuilt from `exemplars.jsonl` on load. `None` in
    /// artifacts without one.
    #[serde(default)]
    pub lexical: Option<LexicalConfig>,
    /// Human-readable copies (the values used are in `model.safetensors`).
    pub calibration_with_neighbors: Calibration,
    pub calibration_heads_only: Calibration,
    /// The full training report (corpus statistics by source, head logs, mixture comparison,
    /// calib/test metrics). Free-form JSON; NaN metrics appear as null.
    pub report: serde_json::Value,
}

impl ArtifactMeta {
    /// `metadata.json` of the artifact in `dir` (format checked, tree rebuilt), without the
    /// heads and exemplars [`Artifacts::load`] also loads.
    pub fn load(dir: &Path) -> Result<ArtifactMeta> {
        let bad = |m: String| TrainError::Artifacts {
            dir: dir.to_path_buf(),
            message: m,
        };
        let mp = dir.join("metadata.json");
        let meta_text = std::fs::read_to_string(&mp).map_err(|e| TrainError::io(&mp, e))?;
        let mut meta: ArtifactMeta =
            serde_json::from_str(&meta_text).map_err(|e| bad(format!("metadata.json: {e}")))?;
        if meta.format != FORMAT {
            return Err(bad(format!(
                "format {} is not supported (expected {FORMAT})",
                meta.format
            )));
        }
        meta.tree.rebuild();
        Ok(meta)
    }

    pub(crate) fn from_report(r: &TrainReport, clf: &Classifier, cfg: &TrainConfig) -> Self {
        ArtifactMeta {
            format: FORMAT,
            model_version: r.model_version.clone(),
            encoder_version: r.encoder_version.clone(),
            dim: clf.dim(),
            taxonomy_id: r.taxonomy_id.clone(),
            taxonomy_version: r.taxonomy_version.clone(),
            tree: clf.tree().clone(),
            corpus_version: r.corpus_version.clone(),
            seed: r.seed,
            knn_k: cfg.knn_k,
            auto_min_depth: cfg.targets.auto_min_depth,
            targets: cfg.targets,
            head_config: cfg.head,
            flat_head: clf.flat.is_some(),
            level_heads: !clf.levels.is_empty(),
            lexical: clf.lexical().map(|l| l.config()),
            calibration_with_neighbors: clf.cal_knn.clone(),
            calibration_heads_only: clf.cal_heads.clone(),
            report: serde_json::to_value(r).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// A loaded (or freshly trained) model.
pub struct Artifacts {
    pub classifier: Classifier,
    pub meta: ArtifactMeta,
    /// Training exemplars, when saved.
    pub exemplars: Option<ExemplarIndex>,
}

fn cal_tensors(prefix: &str, c: &Calibration, out: &mut HashMap<String, Tensor>) -> Result<()> {
    let dev = Device::Cpu;
    out.insert(format!("{prefix}.mix"), Tensor::new(&c.mix[..], &dev)?);
    out.insert(
        format!("{prefix}.knn_tau"),
        Tensor::new(&[c.knn_tau][..], &dev)?,
    );
    out.insert(
        format!("{prefix}.lexical_tau"),
        Tensor::new(&[c.lexical_tau][..], &dev)?,
    );
    out.insert(
        format!("{prefix}.temperature"),
        Tensor::new(c.temperature.as_slice(), &dev)?,
    );
    out.insert(
        format!("{prefix}.level_thresholds"),
        Tensor::new(c.level_thresholds.as_slice(), &dev)?,
    );
    out.insert(
        format!("{prefix}.auto_threshold"),
        Tensor::new(&[c.auto_threshold][..], &dev)?,
    );
    out.insert(
        format!("{prefix}.joint_path"),
        Tensor::new(&[f32::from(u8::from(c.joint_path))][..], &dev)?,
    );
    out.insert(
        format!("{prefix}.leaf_path"),
        Tensor::new(&[f32::from(u8::from(c.leaf_path))][..], &dev)?,
    );
    // [near_sim (−1 = no gate), near_mix…]
    let gate_sim = c.near_sim.unwrap_or(-1.0);
    let gate = [
        gate_sim,
        c.near_mix[0],
        c.near_mix[1],
        c.near_mix[2],
        c.near_mix[3],
    ];
    out.insert(format!("{prefix}.near_gate"), Tensor::new(&gate[..], &dev)?);
    if let Some(m) = &c.step_model {
        let rows = m.weights.len();
        let flat: Vec<f32> = m.weights.iter().flatten().copied().collect();
        out.insert(
            format!("{prefix}.step_model"),
            Tensor::from_vec(flat, (rows, FEATURES + 1), &dev)?,
        );
    }
    if let Some(r) = &c.rerank {
        out.insert(
            format!("{prefix}.rerank"),
            Tensor::new(r.weights.as_slice(), &dev)?,
        );
    }
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct ExemplarLine {
    text: String,
    code: String,
    source: String,
}

impl Artifacts {
    /// Write the artifacts into `dir` (created if needed).
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        let c = &self.classifier;
        let mut t: HashMap<String, Tensor> = HashMap::new();
        if let Some(f) = &c.flat {
            t.insert("flat.weight".into(), f.w.clone());
            t.insert("flat.bias".into(), f.b.clone());
        }
        for (d, l) in c.levels.iter().enumerate() {
            t.insert(format!("level{d}.weight"), l.w.clone());
            t.insert(format!("level{d}.bias"), l.b.clone());
        }
        cal_tensors("calib.knn", &c.cal_knn, &mut t)?;
        cal_tensors("calib.heads", &c.cal_heads, &mut t)?;
        let p = dir.join("model.safetensors");
        candle_core::safetensors::save(&t, &p)?;
        let meta = serde_json::to_string_pretty(&self.meta)?;
        let mp = dir.join("metadata.json");
        std::fs::write(&mp, meta).map_err(|e| TrainError::io(&mp, e))?;
        if let Some(ix) = &self.exemplars {
            let mut et = HashMap::new();
            et.insert("embeddings".to_string(), ix.matrix().clone());
            candle_core::safetensors::save(&et, dir.join("exemplars.safetensors"))?;
            write_exemplar_lines(dir, &ix.texts, &ix.codes, &ix.sources)?;
        } else if let Some(lx) = c.lexical() {
            // the lexical voter is rebuilt from the exemplar texts on load
            let sources = vec!["seed".to_string(); lx.len()];
            write_exemplar_lines(dir, lx.texts(), lx.codes(), &sources)?;
        }
        if let Some(cues) = c.role_cues() {
            cues.save(dir)?;
        }
        Ok(())
    }

    /// Load artifacts from `dir` (exemplars too when present).
    pub fn load(dir: &Path) -> Result<Artifacts> {
        let bad = |m: String| TrainError::Artifacts {
            dir: dir.to_path_buf(),
            message: m,
        };
        let meta = ArtifactMeta::load(dir)?;
        let tree = meta.tree.clone();
        let tp = dir.join("model.safetensors");
        if !tp.exists() {
            return Err(bad("model.safetensors is missing".into()));
        }
        let tensors = candle_core::safetensors::load(&tp, &Device::Cpu)
            .map_err(|e| bad(format!("model.safetensors: {e}")))?;
        let get = |k: &str| {
            tensors
                .get(k)
                .cloned()
                .ok_or_else(|| bad(format!("model.safetensors has no tensor {k}")))
        };
        let vec1 = |k: &str| -> Result<Vec<f32>> { Ok(get(k)?.to_vec1::<f32>()?) };
        let cal = |p: &str| -> Result<Calibration> {
            let mix = vec1(&format!("{p}.mix"))?;
            let mix = mix_from_slice(&mix)
                .ok_or_else(|| bad(format!("{p}.mix must have 3 or 4 values")))?;
            // optional scalars (absent in artifacts from before the lexical voter / path rule)
            let opt1 = |k: String, default: f32| -> Result<f32> {
                Ok(match tensors.get(&k) {
                    Some(t) => t.to_vec1::<f32>()?.first().copied().unwrap_or(default),
                    None => default,
                })
            };
            let lexical_tau = opt1(format!("{p}.lexical_tau"), 0.05)?;
            let joint_path = opt1(format!("{p}.joint_path"), 0.0)? > 0.5;
            let leaf_path = opt1(format!("{p}.leaf_path"), 0.0)? > 0.5;
            let mut c = Calibration {
                mix,
                knn_tau: vec1(&format!("{p}.knn_tau"))?[0],
                lexical_tau,
                temperature: vec1(&format!("{p}.temperature"))?,
                level_thresholds: vec1(&format!("{p}.level_thresholds"))?,
                auto_threshold: vec1(&format!("{p}.auto_threshold"))?[0],
                joint_path,
                leaf_path,
                near_sim: None,
                near_mix: [0.0; 4],
                step_model: None,
                rerank: None,
            };
            // optional: artifacts from before the learned step confidence have none
            if let Some(t) = tensors.get(&format!("{p}.step_model")) {
                let w = t.to_vec2::<f32>()?;
                if w.len() > tree.depth_count() || w.iter().any(|r| r.len() != FEATURES + 1) {
                    return Err(bad(format!(
                        "{p}.step_model must be at most {} rows of {} values",
                        tree.depth_count(),
                        FEATURES + 1
                    )));
                }
                c.step_model = Some(StepModel { weights: w });
            }
            // optional: artifacts from before the candidate re-ranker have none
            if let Some(t) = tensors.get(&format!("{p}.rerank")) {
                let w = t.to_vec1::<f32>()?;
                let n = crate::rerank::feature_count(tree.depth_count());
                if w.len() != n {
                    return Err(bad(format!(
                        "{p}.rerank must have {n} values, not {}",
                        w.len()
                    )));
                }
                c.rerank = Some(crate::rerank::Reranker { weights: w });
            }
            // optional: artifacts from before the similarity gate have none
            if let Some(t) = tensors.get(&format!("{p}.near_gate")) {
                let g = t.to_vec1::<f32>()?;
                let [s, a, b, c3, d] = g[..] else {
                    return Err(bad(format!("{p}.near_gate must have 5 values")));
                };
                if s >= 0.0 {
                    c.near_sim = Some(s);
                    c.near_mix = [a, b, c3, d];
                }
            }
            if c.temperature.len() != tree.depth_count()
                || c.level_thresholds.len() != tree.depth_count()
            {
                return Err(bad(format!(
                    "{p}: calibration does not match the {} levels of the tree",
                    tree.depth_count()
                )));
            }
            Ok(c)
        };
        let lin = |name: &str, k: usize| -> Result<Linear> {
            let w = get(&format!("{name}.weight"))?;
            let b = get(&format!("{name}.bias"))?;
            if w.dims() != [k, meta.dim] || b.dims() != [k] {
                return Err(bad(format!(
                    "{name}: shape {:?} does not match [{k}, {}]",
                    w.dims(),
                    meta.dim
                )));
            }
            Ok(Linear { w, b })
        };
        let flat = if meta.flat_head {
            Some(lin("flat", tree.leaves().len())?)
        } else {
            None
        };
        let mut levels = Vec::new();
        if meta.level_heads {
            for d in 0..tree.depth_count() {
                if !tensors.contains_key(&format!("level{d}.weight")) {
                    break;
                }
                levels.push(lin(&format!("level{d}"), tree.level(d).len())?);
            }
            if levels.is_empty()
                || levels.len() + 1 < tree.depth_count()
                || levels.len() < tree.depth_count() && flat.is_none()
            {
                return Err(bad(format!(
                    "model.safetensors has {} level heads for {} levels",
                    levels.len(),
                    tree.depth_count()
                )));
            }
        }
        let (cal_knn, cal_heads) = (cal("calib.knn")?, cal("calib.heads")?);
        let classifier = Classifier::new(
            tree,
            flat,
            levels,
            cal_knn,
            cal_heads,
            meta.knn_k,
            meta.auto_min_depth,
            meta.model_version.clone(),
            meta.encoder_version.clone(),
            meta.dim,
        );
        let lines = read_exemplar_lines(dir)?;
        let classifier = match (meta.lexical, &lines) {
            (Some(lc), Some((texts, codes, _))) => {
                classifier.with_lexical(LexicalIndex::new(lc, texts.clone(), codes.clone()))
            }
            (Some(_), None) => {
                return Err(bad(
                    "the classifier has a lexical voter but exemplars.jsonl is missing".into(),
                ))
            }
            (None, _) => classifier,
        };
        let classifier = match RoleCues::load(dir, classifier.tree())? {
            Some(cues) => classifier.with_role_cues(cues),
            None => classifier,
        };
        let exemplars = Self::load_exemplars(dir, meta.dim, lines)?;
        Ok(Artifacts {
            classifier,
            meta,
            exemplars,
        })
    }

    fn load_exemplars(
        dir: &Path,
        dim: usize,
        lines: Option<ExemplarLines>,
    ) -> Result<Option<ExemplarIndex>> {
        let sp = dir.join("exemplars.safetensors");
        let Some((texts, codes, sources)) = lines.filter(|_| sp.exists()) else {
            return Ok(None);
        };
        let t = candle_core::safetensors::load(&sp, &Device::Cpu)?;
        let m = t.get("embeddings").ok_or_else(|| TrainError::Artifacts {
            dir: dir.to_path_buf(),
            message: "exemplars.safetensors has no tensor embeddings".into(),
        })?;
        let rows = m.to_vec2::<f32>()?;
        if texts.len() != rows.len() {
            return Err(TrainError::Artifacts {
                dir: dir.to_path_buf(),
                message: format!("{} exemplar lines but {} vectors", texts.len(), rows.len()),
            });
        }
        Ok(Some(ExemplarIndex::new(dim, &rows, texts, codes, sources)?))
    }

    /// Fail unless these artifacts were trained on `tax` (same id and version).
    pub fn check_taxonomy(&self, tax: &touxiang_datasets::Taxonomy) -> Result<()> {
        if tax.id() != self.meta.taxonomy_id || tax.version() != self.meta.taxonomy_version {
            return Err(TrainError::Invalid(format!(
                "artifacts were trained on taxonomy {} ({}), not {} ({})",
                self.meta.taxonomy_id,
                self.meta.taxonomy_version,
                tax.id(),
                tax.version()
            )));
        }
        Ok(())
    }
}

/// Texts, codes and sources of `exemplars.jsonl`.
pub type ExemplarLines = (Vec<String>, Vec<String>, Vec<String>);

/// Write `exemplars.jsonl` in `dir` (one `{"text","code","source"}` per line).
pub fn write_exemplar_lines(
    dir: &Path,
    texts: &[String],
    codes: &[String],
    sources: &[String],
) -> Result<()> {
    let jp = dir.join("exemplars.jsonl");
    let f = std::fs::File::create(&jp).map_err(|e| TrainError::io(&jp, e))?;
    let mut w = BufWriter::new(f);
    for ((text, code), source) in texts.iter().zip(codes).zip(sources) {
        let line = serde_json::to_string(&ExemplarLine {
            text: text.clone(),
            code: code.clone(),
            source: source.clone(),
        })?;
        writeln!(w, "{line}").map_err(|e| TrainError::io(&jp, e))?;
    }
    w.flush().map_err(|e| TrainError::io(&jp, e))
}

/// `exemplars.jsonl` of an artifact directory, `None` when absent.
pub fn read_exemplar_lines(dir: &Path) -> Result<Option<ExemplarLines>> {
    let jp = dir.join("exemplars.jsonl");
    if !jp.exists() {
        return Ok(None);
    }
    let f = std::fs::File::open(&jp).map_err(|e| TrainError::io(&jp, e))?;
    let (mut texts, mut codes, mut sources) = (Vec::new(), Vec::new(), Vec::new());
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| TrainError::io(&jp, e))?;
        let l: ExemplarLine = serde_json::from_str(&line).map_err(|e| TrainError::BadLine {
            path: jp.clone(),
            line: i + 1,
            message: e.to_string(),
        })?;
        texts.push(l.text);
        codes.push(l.code);
        sources.push(l.source);
    }
    Ok(Some((texts, codes, sources)))
}

/// The newest artifact directory under `root/<taxonomy_id>/` (by modification time), if any.
pub fn latest_artifact_dir(root: &Path, taxonomy_id: &str) -> Option<PathBuf> {
    let dir = root.join(taxonomy_id);
    std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("metadata.json").exists())
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}
