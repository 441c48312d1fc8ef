//! Refit an artifact's calibration (mixture, temperatures, step confidence, thresholds) on new
//! labeled loan texts — e.g. reviewed labels as they accumulate — without retraining the heads:
//! a minute instead of a full `train`. The result is a new artifact version beside the old one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use touxiang_datasets::LoanText;

use crate::artifacts::Artifacts;
use crate::calibrate::{fit_calibration, DecisionTargets, SplitMetrics};
use crate::embed::{embed_all, EmbedFn};
use crate::error::{Result, TrainError};
use crate::knn::ExemplarIndex;
use crate::train::{fitted_hash, metrics_for, KNN_TAUS, LEXICAL_TAUS};

/// Where [`recalibrate`] reads and writes, and how strict its thresholds are.
#[derive(Debug, Clone, Copy)]
pub struct RecalibrateOptions<'a> {
    /// Embedding cache directory (`None` = no cache).
    pub cache_dir: Option<&'a Path>,
    /// The result goes to `out_root/<taxonomy>/<new version>/`.
    pub out_root: &'a Path,
    /// [`DecisionTargets::precision_z`]; `None` = the artifact's own.
    pub precision_z: Option<f64>,
    /// Written loan lines the caller added to the artifact's exemplars before this call
    /// (file, lines added), recorded in the report.
    pub written_exemplars: &'a [(String, usize)],
}

/// What [`recalibrate`] did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecalibrationReport {
    /// The artifact recalibrated.
    pub from_version: String,
    pub model_version: String,
    pub artifact_dir: PathBuf,
    /// Labeled texts the calibration was fitted on.
    pub examples: usize,
    /// Written loan lines added to the exemplars with this recalibration (file, lines).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub written_exemplars: Vec<(String, usize)>,
    /// Metrics on those texts with the new calibration (in-sample for the mixture and the
    /// temperatures; thresholds were chosen on out-of-fold step confidences).
    pub calib: SplitMetrics,
}

/// Refit the calibrations of `arts` (loaded from `from_dir`) on `loans` with the neighbours of `index` (the artifact's
/// exemplars); write the result as `opts` says.
pub fn recalibrate(
    from_dir: &Path,
    mut arts: Artifacts,
    index: &ExemplarIndex,
    loans: &[(LoanText, String)],
    embedder: &dyn EmbedFn,
    opts: &RecalibrateOptions<'_>,
) -> Result<RecalibrationReport> {
    let RecalibrateOptions {
        cache_dir,
        out_root,
        precision_z,
        written_exemplars,
    } = *opts;
    if loans.len() < 50 {
        return Err(TrainError::Invalid(format!(
            "recalibration needs at least 50 labeled texts, got {}",
            loans.len()
        )));
    }
    // artifacts from before the role cues: the GB/T classifier gets the shipped actor lexicon
    // (the one its role phrasings were generated from)
    if arts.classifier.role_cues.is_none()
        && arts.classifier.tree.id == touxiang_datasets::GBT4754_ID
    {
        let cues =
            crate::role_cues::RoleCues::new(crate::roles::DEFAULT_ACTORS, &arts.classifier.tree)?;
        arts.classifier.role_cues = Some(cues);
    }
    let clf = &mut arts.classifier;
    if embedder.version() != clf.encoder_version {
        return Err(TrainError::Invalid(format!(
            "the artifact was trained with encoder {}, not {}",
            clf.encoder_version,
            embedder.version()
        )));
    }
    let tree = clf.tree.clone();
    let gold = crate::train::loan_gold(&tree, loans)?;
    let texts: Vec<String> = loans.iter().map(|(l, _)| l.model_text()).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let x = embed_all(embedder, &refs, cache_dir, 64)?;
    let heads = clf.head_outputs_for_texts(&refs, &x)?;
    let neighbors = index.search(&x, clf.knn_k)?;
    // the temperature grids of `train`; the artifact's targets, including how surely the
    // thresholds must reach them, unless told (recorded in the new artifact)
    let targets = DecisionTargets {
        auto_min_depth: clf.auto_min_depth,
        precision_z: precision_z.unwrap_or(arts.meta.targets.precision_z),
        ..arts.meta.targets
    };
    let fit = |nb: Option<&[Vec<crate::classifier::Neighbor>]>| {
        fit_calibration(
            &tree,
            &heads,
            nb,
            &gold,
            clf.knn_k,
            KNN_TAUS,
            LEXICAL_TAUS,
            &targets,
            None,
        )
        .0
    };
    clf.cal_knn = fit(Some(&neighbors));
    clf.cal_heads = fit(None);
    let from_version = clf.model_version.clone();
    let fit_tag = fitted_hash(clf.flat.as_ref(), &clf.levels, &clf.cal_knn, &clf.cal_heads)?;
    // tx1-<corpus>-<encoder>-s<seed>-<fitted>: only the fitted part changes
    let stem = from_version
        .rsplit_once('-')
        .map(|(s, _)| s.to_string())
        .unwrap_or_else(|| from_version.clone());
    let model_version = format!("{stem}-{fit_tag}");
    if model_version == from_version {
        return Err(TrainError::Invalid(
            "the new calibration is identical to the artifact's".into(),
        ));
    }
    clf.model_version = model_version.clone();
    let calib = metrics_for(clf, &heads, Some(&neighbors), &gold);
    let artifact_dir = out_root.join(&tree.id).join(&model_version);
    let report = RecalibrationReport {
        from_version,
        model_version: model_version.clone(),
        artifact_dir: artifact_dir.clone(),
        examples: loans.len(),
        written_exemplars: written_exemplars.to_vec(),
        calib,
    };
    let meta = &mut arts.meta;
    meta.targets = targets;
    meta.model_version = model_version;
    meta.calibration_with_neighbors = clf.cal_knn.clone();
    meta.calibration_heads_only = clf.cal_heads.clone();
    if let serde_json::Value::Object(m) = &mut meta.report {
        m.insert("recalibration".into(), serde_json::to_value(&report)?);
    }
    // the exemplar texts go with the lexical voter; their vectors are re-derived from the texts
    arts.exemplars = None;
    arts.save(&artifact_dir)?;
    // the lines as they were, with their sources (`save` writes the lexical voter's texts, the
    // same lines in the same order, all as `seed`)
    let lines = "exemplars.jsonl";
    if from_dir.join(lines).exists() {
        std::fs::copy(from_dir.join(lines), artifact_dir.join(lines))
            .map_err(|e| TrainError::io(artifact_dir.join(lines), e))?;
    }
    Ok(report)
}
