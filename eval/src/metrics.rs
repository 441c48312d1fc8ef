//! Metrics of a set of [`EvalRecord`]s against gold codes of a [`Taxonomy`].
//!
//! Conventions (the same as `touxiang-training`'s split metrics):
//! - a gold code may sit at any level; level `d` metrics count the records whose gold is at
//!   least `d` deep;
//! - "correct at the returned level" for a label at depth `ld` and a gold code at depth `gd`:
//!   the label is the gold's ancestor at `ld` when `ld <= gd`, and the label lies under the gold
//!   code when `ld > gd` (the gold does not say more);
//! - a record whose gold is [`VAGUE_CODE`] is left out of the per-level metrics and the partial
//!   credit, is reported in [`VagueStats`], and any label returned for it counts as wrong in the
//!   calibration error and the auto-accept curve.
//!
//! Ratios without a denominator are `None` (JSON `null`).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use touxiang_datasets::Taxonomy;
use touxiang_training::VAGUE_CODE;

use crate::error::{EvalError, Result};
use crate::record::EvalRecord;

/// Options of [`evaluate`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricsOptions {
    /// Precision the auto-accept threshold has to reach in [`Metrics::at_target`].
    pub target_precision: f64,
    /// Equal-width bins of the expected calibration error.
    pub ece_bins: usize,
    /// Thresholds of the coverage/precision curve: `0, step, 2·step, …, 1`.
    pub curve_step: f64,
    /// Confused pairs kept per level.
    pub top_confusions: usize,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        MetricsOptions {
            target_precision: 0.98,
            ece_bins: 15,
            curve_step: 0.01,
            top_confusions: 20,
        }
    }
}

/// Metrics of one level of the taxonomy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelMetrics {
    /// Depth (0 = top level).
    pub depth: usize,
    /// Level name (`section`, `division`, `group`, `class`, or a custom name).
    pub level: String,
    /// Records whose gold code is at least this deep.
    pub n: usize,
    /// Returned path correct at this level, over `n` (abstaining above this level is wrong).
    pub accuracy: Option<f64>,
    /// Share of the `n` records whose returned path reaches this level.
    pub coverage: Option<f64>,
    /// Correct among the records answered at this level.
    pub accuracy_answered: Option<f64>,
    /// Top-1 accuracy of the full greedy path (no abstention).
    pub accuracy_forced: Option<f64>,
    /// Macro-F1 of the returned path over the codes in gold ∪ predictions at this level (an
    /// abstention is a miss of the gold code, not a prediction of another).
    pub macro_f1: Option<f64>,
    /// Macro-F1 of the full greedy path.
    pub macro_f1_forced: Option<f64>,
    /// Codes averaged in `macro_f1`.
    pub f1_codes: usize,
}

/// A rate with its support.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Records counted.
    pub n: usize,
    pub value: Option<f64>,
}

/// One bin of the reliability diagram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    /// Lower and upper confidence bound of the bin.
    pub lo: f64,
    pub hi: f64,
    pub n: usize,
    /// Mean confidence and accuracy of the bin (`None` when empty).
    pub confidence: Option<f64>,
    pub accuracy: Option<f64>,
}

/// Expected calibration error of the returned label's confidence vs its correctness at the
/// returned level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Records with a returned label.
    pub n: usize,
    /// Σ_b (n_b / n) · |accuracy_b − confidence_b|.
    pub ece: Option<f64>,
    pub bins: Vec<CalibrationBin>,
}

/// One point of the auto-accept curve: everything with a label and confidence ≥ `threshold` is
/// auto-accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub threshold: f64,
    /// Records auto-accepted.
    pub accepted: usize,
    /// `accepted` over all records.
    pub coverage: f64,
    /// Correct at the returned level among the accepted.
    pub precision: Option<f64>,
}

/// The system's own auto-accept decisions (the `decision` field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    pub accepted: usize,
    pub coverage: f64,
    pub precision: Option<f64>,
}

/// A gold → predicted confusion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfusedPair {
    pub gold: String,
    pub gold_name: String,
    pub pred: String,
    pub pred_name: String,
    pub count: usize,
    /// One text of the pair (the first met).
    pub example: String,
}

/// The most confused pairs at one level (full greedy path).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confusions {
    pub depth: usize,
    pub level: String,
    /// Wrong forced predictions at this level in total.
    pub errors: usize,
    pub pairs: Vec<ConfusedPair>,
}

/// Records whose gold code is [`VAGUE_CODE`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VagueStats {
    pub n: usize,
    /// Share returned without any label.
    pub abstained: Option<f64>,
    /// Share auto-accepted (always wrong).
    pub auto: Option<f64>,
}

/// Every metric of one system on one evaluation set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Records evaluated.
    pub n: usize,
    /// Per level, root first.
    pub levels: Vec<LevelMetrics>,
    /// Gold leaf is the first of `top5` (records whose gold is a leaf and with a `top5`).
    pub top1_leaf: Rate,
    /// Gold leaf among the first five of `top5`.
    pub top5_leaf: Rate,
    /// Mean share of the gold path (root first) matched by the returned path.
    pub partial_credit: Rate,
    /// Share of records returned with a label.
    pub labeled: f64,
    /// Correct at the returned level among labeled records.
    pub label_precision: Option<f64>,
    pub calibration: Calibration,
    /// Auto-accept curve over a threshold grid.
    pub curve: Vec<CurvePoint>,
    /// The largest-coverage threshold whose precision reaches the target, if any.
    pub at_target: Option<CurvePoint>,
    /// Calibration of the top-1 prediction (deepest step of the full path), abstention ignored:
    /// defined even for a system that withholds every label.
    pub calibration_top1: Calibration,
    /// Auto-accept curve over the top-1 prediction's confidence (abstention ignored): what a
    /// threshold on the best guess would accept, and how precise that would be.
    pub curve_top1: Vec<CurvePoint>,
    /// The largest-coverage top-1 threshold reaching the target precision, if any.
    pub at_target_top1: Option<CurvePoint>,
    pub target_precision: f64,
    /// The system's own decisions.
    pub operating_point: OperatingPoint,
    /// Confused pairs at the deepest level and at depth 1 (GB/T: class and division).
    pub confusions: Vec<Confusions>,
    pub vague: VagueStats,
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Check a path: known codes, step `i` at depth `i`, each step the parent of the next.
fn check_path(tax: &Taxonomy, path: &[String], what: &str, index: usize) -> Result<()> {
    for (i, code) in path.iter().enumerate() {
        let node = tax.get(code).ok_or_else(|| EvalError::BadRecord {
            index,
            message: format!(
                "{what}: unknown code {code:?} (not in taxonomy {})",
                tax.id()
            ),
        })?;
        if node.depth != i {
            return Err(EvalError::BadRecord {
                index,
                message: format!(
                    "{what}: code {code:?} is at depth {} but at step {i} of the path",
                    node.depth
                ),
            });
        }
        if i > 0 && node.parent.as_deref() != Some(path[i - 1].as_str()) {
            return Err(EvalError::BadRecord {
                index,
                message: format!("{what}: {code:?} is not a child of {:?}", path[i - 1]),
            });
        }
    }
    Ok(())
}

fn validate(tax: &Taxonomy, records: &[EvalRecord]) -> Result<()> {
    for (i, r) in records.iter().enumerate() {
        if r.gold != VAGUE_CODE && !tax.contains(&r.gold) {
            return Err(EvalError::BadRecord {
                index: i,
                message: format!(
                    "gold: unknown code {:?} (not in taxonomy {})",
                    r.gold,
                    tax.id()
                ),
            });
        }
        check_path(tax, &r.pred_path, "pred_path", i)?;
        check_path(tax, &r.full_path, "full_path", i)?;
        if !r.pred_conf.is_finite() || !(0.0..=1.0 + 1e-4).contains(&r.pred_conf) {
            return Err(EvalError::BadRecord {
                index: i,
                message: format!("pred_conf {} is not a probability", r.pred_conf),
            });
        }
        if let Some(c) = r.top5.iter().find(|c| !tax.contains(c)) {
            return Err(EvalError::BadRecord {
                index: i,
                message: format!("top5: unknown code {c:?} (not in taxonomy {})", tax.id()),
            });
        }
    }
    Ok(())
}

/// Whether a label at the end of `path` is correct at its level for `gold` (see module docs).
pub fn correct_at_label(tax: &Taxonomy, path: &[String], gold: &str) -> bool {
    let (Some(label), Some(g)) = (path.last(), tax.get(gold)) else {
        return false;
    };
    let ld = path.len() - 1;
    if ld <= g.depth {
        tax.ancestor_at(gold, ld).is_some_and(|a| &a.code == label)
    } else {
        path[g.depth] == gold
    }
}

/// Macro-F1 over (gold, predicted) pairs; `None` predictions are misses.
pub fn macro_f1(pairs: &[(&str, Option<&str>)]) -> (Option<f64>, usize) {
    let mut tp: HashMap<&str, usize> = HashMap::new();
    let mut fp: HashMap<&str, usize> = HashMap::new();
    let mut fn_: HashMap<&str, usize> = HashMap::new();
    let mut codes: HashSet<&str> = HashSet::new();
    for &(g, p) in pairs {
        codes.insert(g);
        match p {
            Some(p) if p == g => *tp.entry(g).or_default() += 1,
            Some(p) => {
                codes.insert(p);
                *fp.entry(p).or_default() += 1;
                *fn_.entry(g).or_default() += 1;
            }
            None => *fn_.entry(g).or_default() += 1,
        }
    }
    if codes.is_empty() {
        return (None, 0);
    }
    let sum: f64 = codes
        .iter()
        .map(|c| {
            let t = tp.get(c).copied().unwrap_or(0) as f64;
            let f = (fp.get(c).copied().unwrap_or(0) + fn_.get(c).copied().unwrap_or(0)) as f64;
            if t == 0.0 {
                0.0
            } else {
                2.0 * t / (2.0 * t + f)
            }
        })
        .sum();
    (Some(sum / codes.len() as f64), codes.len())
}

/// Expected calibration error over `(confidence, correct)` with `bins` equal-width bins.
pub fn calibration(pairs: &[(f32, bool)], bins: usize) -> Calibration {
    let bins = bins.max(1);
    let acc = touxiang_training::calibrate::confidence_bins(pairs, bins);
    Calibration {
        n: pairs.len(),
        ece: touxiang_training::calibrate::ece(&acc),
        bins: acc
            .iter()
            .enumerate()
            .map(|(i, &(c, k, m))| CalibrationBin {
                lo: i as f64 / bins as f64,
                hi: (i + 1) as f64 / bins as f64,
                n: m,
                confidence: (m > 0).then(|| c / m as f64),
                accuracy: ratio(k, m),
            })
            .collect(),
    }
}

/// Auto-accept curve over `(confidence, correct)` of labeled records at thresholds
/// `0, step, …, 1`; coverage is over `total` records.
pub fn curve(pairs: &[(f32, bool)], total: usize, step: f64) -> Vec<CurvePoint> {
    let steps = (1.0 / step.clamp(1e-4, 1.0)).round() as usize;
    (0..=steps)
        .map(|i| {
            let t = (i as f64 / steps as f64).min(1.0);
            let (mut a, mut k) = (0usize, 0usize);
            for &(c, ok) in pairs {
                if f64::from(c) >= t - 1e-9 {
                    a += 1;
                    k += usize::from(ok);
                }
            }
            CurvePoint {
                threshold: t,
                accepted: a,
                coverage: ratio(a, total).unwrap_or(0.0),
                precision: ratio(k, a),
            }
        })
        .collect()
}

/// The threshold (one of the observed confidences) with the largest coverage whose precision
/// reaches `target`; `None` when no threshold does.
pub fn threshold_for_precision(
    pairs: &[(f32, bool)],
    total: usize,
    target: f64,
) -> Option<CurvePoint> {
    let mut v = pairs.to_vec();
    v.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut a, mut k) = (0usize, 0usize);
    let mut best: Option<CurvePoint> = None;
    let mut i = 0;
    while i < v.len() {
        let t = v[i].0;
        while i < v.len() && v[i].0 == t {
            a += 1;
            k += usize::from(v[i].1);
            i += 1;
        }
        let p = k as f64 / a as f64;
        if p >= target - 1e-12 {
            best = Some(CurvePoint {
                threshold: f64::from(t),
                accepted: a,
                coverage: ratio(a, total).unwrap_or(0.0),
                precision: Some(p),
            });
        }
    }
    best
}

/// Most confused gold → predicted pairs at `depth` over the forced paths.
fn confusions(tax: &Taxonomy, records: &[EvalRecord], depth: usize, top: usize) -> Confusions {
    let mut counts: BTreeMap<(String, String), (usize, String)> = BTreeMap::new();
    let mut errors = 0;
    for r in records {
        let Some(g) = tax.ancestor_at(&r.gold, depth) else {
            continue;
        };
        if let Some(p) = r.forced_path().get(depth) {
            if *p != g.code {
                errors += 1;
                let e = counts
                    .entry((g.code.clone(), p.clone()))
                    .or_insert_with(|| (0, r.text.clone()));
                e.0 += 1;
            }
        }
    }
    let mut pairs: Vec<ConfusedPair> = counts
        .into_iter()
        .map(|((g, p), (count, example))| ConfusedPair {
            gold_name: tax.get(&g).map(|n| n.name.clone()).unwrap_or_default(),
            pred_name: tax.get(&p).map(|n| n.name.clone()).unwrap_or_default(),
            gold: g,
            pred: p,
            count,
            example,
        })
        .collect();
    // stable sort: ties stay in (gold, pred) order
    pairs.sort_by_key(|p| std::cmp::Reverse(p.count));
    pairs.truncate(top);
    Confusions {
        depth,
        level: tax.level_name(depth).to_string(),
        errors,
        pairs,
    }
}

/// Compute every metric of `records` (validated first: unknown codes, inconsistent paths and
/// non-probability confidences are errors naming the record).
pub fn evaluate(tax: &Taxonomy, records: &[EvalRecord], opts: &MetricsOptions) -> Result<Metrics> {
    validate(tax, records)?;
    let n = records.len();
    let max_depth = tax.max_depth();
    let is_leaf = |c: &str| tax.child_indices(c).is_empty() && tax.contains(c);

    let mut levels = Vec::with_capacity(max_depth + 1);
    for d in 0..=max_depth {
        let (mut m, mut ok, mut answered, mut ok_forced) = (0usize, 0usize, 0usize, 0usize);
        let mut pairs = Vec::new();
        let mut pairs_forced = Vec::new();
        for r in records {
            let Some(g) = tax.ancestor_at(&r.gold, d) else {
                continue;
            };
            m += 1;
            let p = r.pred_path.get(d).map(String::as_str);
            let pf = r.forced_path().get(d).map(String::as_str);
            answered += usize::from(p.is_some());
            ok += usize::from(p == Some(g.code.as_str()));
            ok_forced += usize::from(pf == Some(g.code.as_str()));
            pairs.push((g.code.as_str(), p));
            pairs_forced.push((g.code.as_str(), pf));
        }
        let (f1, f1_codes) = macro_f1(&pairs);
        levels.push(LevelMetrics {
            depth: d,
            level: tax.level_name(d).to_string(),
            n: m,
            accuracy: ratio(ok, m),
            coverage: ratio(answered, m),
            accuracy_answered: ratio(ok, answered),
            accuracy_forced: ratio(ok_forced, m),
            macro_f1: f1,
            macro_f1_forced: macro_f1(&pairs_forced).0,
            f1_codes,
        });
    }

    let (mut t1, mut t5, mut tn) = (0usize, 0usize, 0usize);
    let (mut credit, mut credit_n) = (0f64, 0usize);
    let mut conf_pairs: Vec<(f32, bool)> = Vec::new();
    let mut top1_pairs: Vec<(f32, bool)> = Vec::new();
    let (mut auto_n, mut auto_ok) = (0usize, 0usize);
    let (mut vague_n, mut vague_abst, mut vague_auto) = (0usize, 0usize, 0usize);
    for r in records {
        let vague = r.gold == VAGUE_CODE;
        let correct = !vague && correct_at_label(tax, &r.pred_path, &r.gold);
        if vague {
            vague_n += 1;
            vague_abst += usize::from(r.pred_path.is_empty());
            vague_auto += usize::from(r.auto);
        } else {
            let gold_path = tax.path(&r.gold);
            let matched = gold_path
                .iter()
                .zip(&r.pred_path)
                .take_while(|(g, p)| &g.code == *p)
                .count();
            credit += matched as f64 / gold_path.len() as f64;
            credit_n += 1;
            if is_leaf(&r.gold) && !r.top5.is_empty() {
                tn += 1;
                t1 += usize::from(r.top5[0] == r.gold);
                t5 += usize::from(r.top5.iter().take(5).any(|c| *c == r.gold));
            }
        }
        if !r.pred_path.is_empty() {
            conf_pairs.push((r.pred_conf, correct));
        }
        let forced = r.forced_path();
        if let Some(&c) = forced
            .len()
            .checked_sub(1)
            .and_then(|i| r.level_probs.get(i))
        {
            top1_pairs.push((c, !vague && correct_at_label(tax, forced, &r.gold)));
        }
        if r.auto {
            auto_n += 1;
            auto_ok += usize::from(if r.pred_path.is_empty() {
                vague
            } else {
                correct
            });
        }
    }

    let mut conf_depths = vec![max_depth];
    if max_depth > 1 {
        conf_depths.push(1);
    }
    let labeled = conf_pairs.len();
    let label_ok = conf_pairs.iter().filter(|p| p.1).count();
    Ok(Metrics {
        n,
        levels,
        top1_leaf: Rate {
            n: tn,
            value: ratio(t1, tn),
        },
        top5_leaf: Rate {
            n: tn,
            value: ratio(t5, tn),
        },
        partial_credit: Rate {
            n: credit_n,
            value: (credit_n > 0).then(|| credit / credit_n as f64),
        },
        labeled: ratio(labeled, n).unwrap_or(0.0),
        label_precision: ratio(label_ok, labeled),
        calibration: calibration(&conf_pairs, opts.ece_bins),
        curve: curve(&conf_pairs, n, opts.curve_step),
        at_target: threshold_for_precision(&conf_pairs, n, opts.target_precision),
        calibration_top1: calibration(&top1_pairs, opts.ece_bins),
        curve_top1: curve(&top1_pairs, n, opts.curve_step),
        at_target_top1: threshold_for_precision(&top1_pairs, n, opts.target_precision),
        target_precision: opts.target_precision,
        operating_point: OperatingPoint {
            accepted: auto_n,
            coverage: ratio(auto_n, n).unwrap_or(0.0),
            precision: ratio(auto_ok, auto_n),
        },
        confusions: conf_depths
            .into_iter()
            .map(|d| confusions(tax, records, d, opts.top_confusions))
            .collect(),
        vague: VagueStats {
            n: vague_n,
            abstained: ratio(vague_abst, vague_n),
            auto: ratio(vague_auto, vague_n),
        },
    })
}
