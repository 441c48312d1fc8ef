//! Inputs of the metrics: labeled texts and one [`EvalRecord`] per prediction.

use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::{Deserialize, Serialize};
use touxiang_datasets::{Decision, Taxonomy};
use touxiang_training::{Classification, Corpus, Example, LoanText, Prediction, Split, VAGUE_CODE};

use crate::error::{EvalError, Result};

/// A labeled text: the unit of evaluation data and of the baseline's training data. Loan dev
/// files also carry the borrower fields a bank has (read by the model through
/// [`LoanText::model_text`]), the kind of case and the half of the set it belongs to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabeledText {
    pub text: String,
    /// Gold code at any level of the taxonomy, or [`VAGUE_CODE`] for text too vague to classify.
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub borrower_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_industry: Option<String>,
    /// Kind of case (`buyer_vs_maker`, `owner_vs_builder`, `vague`, …), when the file says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `calib` or `test` in the loan dev set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
}

impl LabeledText {
    /// Text and code only.
    pub fn new(text: impl Into<String>, code: impl Into<String>) -> Self {
        LabeledText {
            text: text.into(),
            code: code.into(),
            ..Default::default()
        }
    }

    /// The loan as the classifier receives it.
    pub fn loan(&self) -> LoanText {
        LoanText {
            text: self.text.clone(),
            borrower_name: self.borrower_name.clone(),
            business_scope: self.business_scope.clone(),
            declared_industry: self.declared_industry.clone(),
        }
    }
}

impl From<&Example> for LabeledText {
    fn from(e: &Example) -> Self {
        LabeledText::new(e.text.clone(), e.code.clone())
    }
}

/// The labeled texts of one split of a training corpus (e.g. the held-out test split).
pub fn corpus_split(corpus: &Corpus, split: Split) -> Vec<LabeledText> {
    corpus
        .split(split)
        .into_iter()
        .map(LabeledText::from)
        .collect()
}

/// One prediction of a system on a labeled text, in a form independent of any classifier.
///
/// Paths are root first. The classifier under evaluation may leave `gold` empty: the harness
/// fills it from the evaluation data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// The input text (kept for the confusion examples; may be empty).
    #[serde(default)]
    pub text: String,
    /// Gold code (any level) or [`VAGUE_CODE`].
    pub gold: String,
    /// The returned path, root first, down to the returned label (after abstention). Empty when
    /// the system returns no label at all.
    pub pred_path: Vec<String>,
    /// The full greedy path before abstention (root first, usually down to a leaf), used for the
    /// "forced" top-1 accuracy and the confusion pairs. Empty = same as `pred_path`.
    #[serde(default)]
    pub full_path: Vec<String>,
    /// Confidence of the returned label (the last step of `pred_path`).
    pub pred_conf: f32,
    /// Confidence of each step of `full_path` (or of `pred_path` when `full_path` is empty).
    #[serde(default)]
    pub level_probs: Vec<f32>,
    /// Most probable codes at the deepest level, best first (up to five are used). Empty = not
    /// available (the record is left out of the top-5 metric).
    #[serde(default)]
    pub top5: Vec<String>,
    /// Whether the system auto-accepted the label (`decision: "auto"`).
    pub auto: bool,
}

impl EvalRecord {
    /// The path used for forced (no-abstention) predictions: `full_path`, or `pred_path` when
    /// `full_path` is empty.
    pub fn forced_path(&self) -> &[String] {
        if self.full_path.is_empty() {
            &self.pred_path
        } else {
            &self.full_path
        }
    }

    /// Record of a runtime [`Classification`] for gold code `gold`.
    ///
    /// `top5` is only known when the label is at the deepest level of the full path: then it is
    /// the label followed by its alternatives (classify with `top_k >= 4` to get five). Otherwise
    /// it is left empty and the record does not count in the top-5 metric. For an unbiased top-5
    /// use [`EvalRecord::from`] on a [`Prediction`] (see [`crate::classifier_fn`]).
    pub fn from_classification(c: &Classification, gold: &str, text: &str) -> Self {
        let full_path: Vec<String> = c
            .full_path
            .iter()
            .map(|s| s.code.clone())
            .take_while(|code| code != VAGUE_CODE)
            .collect();
        let pred_path: Vec<String> = c
            .label
            .as_ref()
            .map(|l| l.path.iter().map(|s| s.code.clone()).collect())
            .unwrap_or_default();
        // The guess and the alternatives are leaves whatever level the label stops at.
        let top5 = match &c.guess {
            Some(g) if !full_path.is_empty() => std::iter::once(g.code.clone())
                .chain(c.alternatives.iter().map(|a| a.code.clone()))
                .take(5)
                .collect(),
            _ => Vec::new(),
        };
        EvalRecord {
            text: text.to_string(),
            gold: gold.to_string(),
            level_probs: c
                .full_path
                .iter()
                .take(full_path.len())
                .map(|s| s.confidence)
                .collect(),
            pred_path,
            full_path,
            pred_conf: c.confidence,
            top5,
            auto: c.decision == Decision::Auto,
        }
    }
}

impl From<&Prediction> for EvalRecord {
    fn from(p: &Prediction) -> Self {
        // The vague pseudo-class is never part of a path (an empty path means "vague").
        let full_path: Vec<String> = p
            .pred_path
            .iter()
            .take_while(|c| c.as_str() != VAGUE_CODE)
            .cloned()
            .collect();
        let pred_path = match p.label_depth {
            Some(d) if d < full_path.len() => full_path[..=d].to_vec(),
            _ => Vec::new(),
        };
        EvalRecord {
            text: p.text.clone(),
            gold: p.gold_code.clone(),
            level_probs: p.level_probs[..full_path.len().min(p.level_probs.len())].to_vec(),
            pred_path,
            full_path,
            pred_conf: p.confidence,
            top5: p
                .top5
                .iter()
                .map(|(c, _)| c.clone())
                .filter(|c| c != VAGUE_CODE)
                .collect(),
            auto: p.decision == Decision::Auto,
        }
    }
}

#[derive(Deserialize)]
struct JsonLabeled {
    text: Option<String>,
    code: Option<serde_json::Value>,
    borrower_name: Option<String>,
    business_scope: Option<String>,
    declared_industry: Option<String>,
    kind: Option<String>,
    split: Option<String>,
}

/// Read `{"text", "code"}` lines, with the optional `borrower_name`, `business_scope`,
/// `declared_industry`, `kind` and `split` (other fields are ignored; blank lines are skipped).
///
/// Every code must be in `taxonomy` (or be [`VAGUE_CODE`]); a bad JSON line, an empty text, a
/// missing or unknown code is an error naming the line. A numeric code (`"code": 1311`) is read
/// as its decimal string.
pub fn load_labeled_jsonl(path: &Path, taxonomy: &Taxonomy) -> Result<Vec<LabeledText>> {
    let f = std::fs::File::open(path).map_err(|e| EvalError::io(path, e))?;
    let mut out = Vec::new();
    for (ln, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| EvalError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| EvalError::BadLine {
            path: path.to_path_buf(),
            line: ln + 1,
            message,
        };
        let j: JsonLabeled =
            serde_json::from_str(&line).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let text = j.text.map(|t| t.trim().to_string()).unwrap_or_default();
        if text.is_empty() {
            return Err(bad("field \"text\" is missing or empty".into()));
        }
        let code = match j.code {
            Some(serde_json::Value::String(s)) => s.trim().to_string(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(other) => {
                return Err(bad(format!("field \"code\" must be a string, got {other}")))
            }
            None => return Err(bad("field \"code\" is missing".into())),
        };
        if code != VAGUE_CODE && !taxonomy.contains(&code) {
            return Err(bad(format!(
                "field \"code\": unknown code {code:?} (not in taxonomy {})",
                taxonomy.id()
            )));
        }
        out.push(LabeledText {
            text,
            code,
            borrower_name: j.borrower_name,
            business_scope: j.business_scope,
            declared_industry: j.declared_industry,
            kind: j.kind,
            split: j.split,
        });
    }
    Ok(out)
}
