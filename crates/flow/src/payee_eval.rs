//! Payee classification against the team-written list `eval/data/payees/payees.tsv`
//! (tab-separated `name, kind, code, note`; kinds enterprise / government / individual; see its README).
//!
//! Each name goes through exactly what a payment's payee goes through ([`crate::payees`]): the
//! individual rule, then the classifier on the name. Reported:
//! * individuals: precision and recall of the rule (gold `individual` vs everything else);
//! * per gold section (organisations with a code): section accuracy (the predicted section is
//!   the gold one; a person-or-abstain prediction counts wrong) and accuracy at the gold depth
//!   (the predicted path contains the gold code, i.e. right and at least as deep);
//! * restricted uses (gold code under the default restricted list): recall and precision of
//!   "restricted" as the flow would flag it;
//! * undecidable names (organisations with an empty code): how often the classifier still gives
//!   a class.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use touxiang_datasets::Labeler;

use crate::error::{FlowError, Result};
use crate::names::is_individual;
use crate::payees::{model_text, Label, LABEL_BATCH};
use crate::rules::{path_of, Restricted};

/// One line of the list.
#[derive(Debug, Clone)]
pub struct PayeeLine {
    pub name: String,
    /// `enterprise`, `government` or `individual`.
    pub kind: String,
    /// Gold GB/T code (empty for individuals and undecidable names).
    pub code: Option<String>,
}

/// Read the TSV.
pub fn read_tsv(path: &Path) -> Result<Vec<PayeeLine>> {
    let text = std::fs::read_to_string(path)?;
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate().skip(1) {
        let c: Vec<&str> = l.split('\t').collect();
        if c.len() < 3 {
            return Err(FlowError::Invalid {
                field: "file".into(),
                message: format!("line {}: expected name, kind, code, note", i + 1),
            });
        }
        out.push(PayeeLine {
            name: c[0].to_string(),
            kind: c[1].to_string(),
            code: Some(c[2].trim().to_string()).filter(|s| !s.is_empty()),
        });
    }
    Ok(out)
}

/// Counts of one gold section.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SectionScore {
    pub n: u64,
    pub section_correct: u64,
    pub depth_correct: u64,
    pub section_accuracy: f64,
    pub depth_accuracy: f64,
}

/// The evaluation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PayeeEval {
    pub lines: u64,
    pub individual_precision: f64,
    pub individual_recall: f64,
    /// Organisations with a gold code.
    pub coded: u64,
    pub section_accuracy: f64,
    pub depth_accuracy: f64,
    pub per_section: BTreeMap<String, SectionScore>,
    pub restricted_gold: u64,
    pub restricted_recall: f64,
    pub restricted_precision: f64,
    pub undecidable: u64,
    /// Undecidable names the classifier still gave a class (4-digit) code.
    pub undecidable_given_class: u64,
    /// Misses, for reading: (name, gold, predicted or "individual"/"none").
    pub misses: Vec<(String, String, String)>,
    /// Restricted-use names not recognised as restricted: (name, gold, predicted).
    pub restricted_misses: Vec<(String, String, String)>,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Classify every line with `labeler` (batched) and score it.
pub fn evaluate(lines: &[PayeeLine], labeler: &dyn Labeler) -> Result<PayeeEval> {
    let person: Vec<bool> = lines.iter().map(|l| is_individual(&l.name)).collect();
    let todo: Vec<usize> = (0..lines.len()).filter(|&i| !person[i]).collect();
    let mut pred: Vec<Option<Label>> = vec![None; lines.len()];
    for chunk in todo.chunks(LABEL_BATCH) {
        let texts: Vec<String> = chunk.iter().map(|&i| model_text(&lines[i].name)).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let labels = labeler.label(&refs)?;
        for (&i, r) in chunk.iter().zip(labels) {
            let model = r
                .code
                .as_deref()
                .and_then(|c| Label::from_code(c, Some(r.confidence as f64), None));
            pred[i] = crate::name_rules::refine(&lines[i].name, model);
        }
    }
    let restricted = Restricted::default();
    let mut e = PayeeEval {
        lines: lines.len() as u64,
        ..Default::default()
    };
    let (mut tp_ind, mut fp_ind, mut fn_ind) = (0u64, 0u64, 0u64);
    let (mut r_tp, mut r_fp, mut r_gold) = (0u64, 0u64, 0u64);
    let (mut sec_ok, mut depth_ok) = (0u64, 0u64);
    for (i, l) in lines.iter().enumerate() {
        let gold_person = l.kind == "individual";
        match (gold_person, person[i]) {
            (true, true) => tp_ind += 1,
            (false, true) => fp_ind += 1,
            (true, false) => fn_ind += 1,
            _ => {}
        }
        let pcodes = pred[i].as_ref().map(Label::codes).unwrap_or_default();
        let p_restricted = restricted.hit(&pcodes, &[]).is_some();
        if gold_person {
            r_fp += p_restricted as u64;
            continue;
        }
        let Some(gold) = &l.code else {
            e.undecidable += 1;
            e.undecidable_given_class += (pcodes.len() == 4) as u64;
            r_fp += p_restricted as u64;
            continue;
        };
        let gpath = path_of(gold);
        let g_restricted = restricted.hit(&gpath, &[]).is_some();
        r_gold += g_restricted as u64;
        let got = || {
            if person[i] {
                "individual".to_string()
            } else {
                pred[i]
                    .as_ref()
                    .map_or("none".into(), |p| format!("{} {}", p.code, p.name))
            }
        };
        match (g_restricted, p_restricted) {
            (true, true) => r_tp += 1,
            (false, true) => r_fp += 1,
            (true, false) => e
                .restricted_misses
                .push((l.name.clone(), gold.clone(), got())),
            _ => {}
        }
        e.coded += 1;
        let s = e.per_section.entry(gpath[0].clone()).or_default();
        s.n += 1;
        let sec = pcodes.first() == gpath.first();
        let depth = pcodes.iter().any(|c| c == gold);
        s.section_correct += sec as u64;
        s.depth_correct += depth as u64;
        sec_ok += sec as u64;
        depth_ok += depth as u64;
        if !sec {
            let got = if person[i] {
                "individual".to_string()
            } else {
                pred[i]
                    .as_ref()
                    .map_or("none".into(), |p| format!("{} {}", p.code, p.name))
            };
            e.misses.push((l.name.clone(), gold.clone(), got));
        }
    }
    for s in e.per_section.values_mut() {
        s.section_accuracy = ratio(s.section_correct, s.n);
        s.depth_accuracy = ratio(s.depth_correct, s.n);
    }
    e.individual_precision = ratio(tp_ind, tp_ind + fp_ind);
    e.individual_recall = ratio(tp_ind, tp_ind + fn_ind);
    e.section_accuracy = ratio(sec_ok, e.coded);
    e.depth_accuracy = ratio(depth_ok, e.coded);
    e.restricted_gold = r_gold;
    e.restricted_recall = ratio(r_tp, r_gold);
    e.restricted_precision = ratio(r_tp, r_tp + r_fp);
    Ok(e)
}

impl PayeeEval {
    /// The figures as printed lines.
    pub fn report(&self) -> String {
        let mut s = format!(
            "payees: {} lines; individuals: precision {:.3}, recall {:.3}\n\
             organisations with a code: {}; section accuracy {:.3}, accuracy at the gold depth {:.3}\n\
             restricted uses (default list): {} gold, recall {:.3}, precision {:.3}\n\
             undecidable names: {}, given a class anyway: {}\n\
             per section (n, section acc, depth acc):\n",
            self.lines,
            self.individual_precision,
            self.individual_recall,
            self.coded,
            self.section_accuracy,
            self.depth_accuracy,
            self.restricted_gold,
            self.restricted_recall,
            self.restricted_precision,
            self.undecidable,
            self.undecidable_given_class,
        );
        for (k, v) in &self.per_section {
            s.push_str(&format!(
                "  {k}: {:3}  {:.3}  {:.3}\n",
                v.n, v.section_accuracy, v.depth_accuracy
            ));
        }
        s
    }
}
