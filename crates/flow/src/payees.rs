//! Who was paid: each payee classified into GB/T 4754-2017 from its name, with the service's
//! classifier ([`Labeler`], the same model and calibration as loan purposes), cached by
//! normalised name.
//!
//! * A natural person's name ([`crate::names::is_individual`]) is kind `individual` and gets no
//!   industry; the model is not asked.
//! * Any other payee is kind `organisation` and is labeled from its name (NFKC, trimmed) in
//!   batches of [`LABEL_BATCH`]; the label is the deepest level the classifier stands behind
//!   (it may stop at a division or section, or abstain: `label` null). When the name alone
//!   leaves the classifier unsure, the name with the payee's most frequent payment memo is
//!   classified too and wins when the classifier is surer of it (source `model+memo`).
//! * Labels are cached in `payee_labels` keyed by the labeler's
//!   [`cache_scope`](Labeler::cache_scope) (model version) and the [normalised
//!   name](crate::names::normalize): a name is classified once per model, whatever the number of
//!   payments, portfolios or requests. Without a labeler (the classifier still loading) the
//!   newest cached label of the name under any scope is used. A reviewer's label
//!   ([`crate::payee_review`]) wins over every model's.

use rusqlite::{params, Connection, OptionalExtension};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use touxiang_datasets::{LabelResult, Labeler};
use unicode_normalization::UnicodeNormalization;

use crate::error::{FlowError, Result};
use crate::name_rules::refine;
use crate::names::{is_individual, normalize};
use crate::rules::{level_of, name_of, path_of};
use crate::store::FlowStore;

/// Payee names per labeler call.
pub const LABEL_BATCH: usize = 256;

/// One step of a label path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Code.
    pub code: String,
    /// Chinese name.
    pub name: String,
    /// Calibrated confidence of this level, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
}

/// The taxonomy payees are classified into (GB/T 4754-2017, as loan purposes).
pub const PAYEE_TAXONOMY: &str = touxiang_portfolio::refdata::GBT4754_VERSION;

/// An industry label: code, level, name, confidence and path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    /// Deepest code stood behind.
    pub code: String,
    /// `section` / `division` / `group` / `class`.
    pub level: String,
    /// Chinese name of `code`.
    pub name: String,
    /// Calibrated confidence of `code` (1.0 for a code given in the input).
    pub confidence: Option<f64>,
    /// `auto` or `review`, when labeled by the classifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// Section → `code`.
    pub path: Vec<Step>,
    /// `model`, `model+name` or `name` ([`crate::name_rules`]); absent for input codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl Label {
    /// A label for a known code (names and path from the taxonomy).
    pub fn from_code(
        code: &str,
        confidence: Option<f64>,
        decision: Option<String>,
    ) -> Option<Self> {
        let path = path_of(code);
        if path.is_empty() {
            return None;
        }
        Some(Label {
            code: code.to_string(),
            level: level_of(code).to_string(),
            name: name_of(code).unwrap_or_default(),
            confidence,
            decision,
            path: path
                .iter()
                .map(|c| Step {
                    code: c.clone(),
                    name: name_of(c).unwrap_or_default(),
                    confidence: None,
                })
                .collect(),
            source: None,
        })
    }

    fn from_result(r: &LabelResult) -> Option<Self> {
        let code = r.code.clone()?;
        Some(Label {
            level: r
                .level
                .clone()
                .unwrap_or_else(|| level_of(&code).to_string()),
            name: r
                .name
                .clone()
                .or_else(|| name_of(&code))
                .unwrap_or_default(),
            confidence: Some(r.confidence as f64),
            decision: Some(r.decision.as_str().to_string()),
            path: r
                .path
                .iter()
                .map(|p| Step {
                    code: p.code.clone(),
                    name: p.name.clone(),
                    confidence: Some(p.confidence as f64),
                })
                .collect(),
            code,
            source: Some("model".into()),
        })
    }

    /// Root-first codes of the path.
    pub fn codes(&self) -> Vec<String> {
        self.path.iter().map(|s| s.code.clone()).collect()
    }
}

/// Kind of payee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayeeKind {
    /// A natural person: no industry.
    Individual,
    /// Any organisation: classified by industry.
    Organisation,
}

/// What is known about one payee.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PayeeLabel {
    /// Individual or organisation.
    pub kind: PayeeKind,
    /// Industry (organisations; `None` when the classifier abstained or none was available).
    pub label: Option<Label>,
    /// Whether an organisation's label was looked for and found (`false` = not classified yet).
    pub classified: bool,
}

/// Legal forms: the classifier reads the name up to the first of these (a branch suffix after
/// it, `…有限公司杭州分公司`, is dropped with it).
const LEGAL_FORMS: &[&str] = &[
    "有限责任公司",
    "股份有限公司",
    "有限公司",
    "有限合伙",
    "总公司",
];

/// Province short names (a leading one is dropped with its 省 / 市 / 自治区).
const PROVINCES: &[&str] = &[
    "北京",
    "天津",
    "河北",
    "山西",
    "内蒙古",
    "辽宁",
    "吉林",
    "黑龙江",
    "上海",
    "江苏",
    "浙江",
    "安徽",
    "福建",
    "江西",
    "山东",
    "河南",
    "湖北",
    "湖南",
    "广东",
    "广西",
    "海南",
    "重庆",
    "四川",
    "贵州",
    "云南",
    "西藏",
    "陕西",
    "甘肃",
    "青海",
    "宁夏",
    "新疆",
    "香港",
    "澳门",
];

/// Text the classifier reads for a payee name: NFKC; the legal form and anything after it
/// dropped (`有限公司`, `股份有限公司` …, with a branch suffix); a leading `中国`, province, and
/// one city / county / district (`…市`, `…县`, `…区`, `…州`, `…旗` within the first five
/// characters) dropped; a trailing `集团` dropped — what is left is the trade name and the
/// industry words, which is what the name says about the activity. Falls back to the whole
/// name when fewer than two characters would be left.
pub fn model_text(name: &str) -> String {
    let full: String = name.nfkc().collect::<String>().trim().to_string();
    let mut t = full.as_str();
    if let Some(i) = LEGAL_FORMS.iter().filter_map(|f| t.find(f)).min() {
        t = &t[..i];
    }
    t = t.strip_prefix("中国").unwrap_or(t);
    for p in PROVINCES {
        if let Some(rest) = t.strip_prefix(p) {
            let rest = [
                "省",
                "市",
                "自治区",
                "壮族自治区",
                "回族自治区",
                "维吾尔自治区",
            ]
            .iter()
            .find_map(|s| rest.strip_prefix(s))
            .unwrap_or(rest);
            if rest.chars().count() >= 2 {
                t = rest;
            }
            break;
        }
    }
    for _ in 0..2 {
        let head: Vec<(usize, char)> = t.char_indices().take(5).collect();
        if let Some(&(i, c)) = head
            .iter()
            .skip(1)
            .rev()
            .find(|(_, c)| matches!(c, '市' | '县' | '区' | '州' | '旗'))
        {
            let rest = &t[i + c.len_utf8()..];
            if rest.chars().count() >= 2 {
                t = rest;
                continue;
            }
        }
        break;
    }
    for s in ["(集团)", "集团"] {
        if let Some(rest) = t.strip_suffix(s) {
            if rest.chars().count() >= 2 {
                t = rest;
            }
        }
    }
    let t = t.trim();
    if t.chars().count() >= 2 {
        t.to_string()
    } else {
        full
    }
}

/// Is the classifier sure of `label` (an `auto` decision)?
fn sure(label: Option<&Label>) -> bool {
    label.is_some_and(|l| l.decision.as_deref() == Some("auto"))
}

/// Second look at the payees the name alone left unsure (no label, or `review`): the name with
/// its most frequent payment memo ("XX科技，土地出让金") is classified, and that label replaces the
/// name's when the classifier is sure of it or more confident than of the name's (source
/// `model+memo`).
fn with_memo(
    labeler: &dyn Labeler,
    chunk: &[(String, String, Option<String>)],
    texts: &[String],
    labels: &mut [Option<Label>],
) -> Result<()> {
    let idx: Vec<usize> = (0..chunk.len())
        .filter(|&i| !sure(labels[i].as_ref()) && chunk[i].2.is_some())
        .collect();
    if idx.is_empty() {
        return Ok(());
    }
    let with: Vec<String> = idx
        .iter()
        .map(|&i| {
            format!(
                "{}，{}",
                texts[i],
                chunk[i].2.as_deref().unwrap_or_default().trim()
            )
        })
        .collect();
    let refs: Vec<&str> = with.iter().map(String::as_str).collect();
    for (&i, r) in idx.iter().zip(label_checked(labeler, &refs)?) {
        let Some(mut l) = refine(&chunk[i].1, Label::from_result(&r)) else {
            continue;
        };
        let before = labels[i].as_ref().and_then(|b| b.confidence).unwrap_or(0.0);
        if sure(Some(&l)) || l.confidence.unwrap_or(0.0) > before {
            l.source = Some(match l.source.as_deref() {
                Some("model+name") => "model+name+memo".into(),
                _ => "model+memo".into(),
            });
            labels[i] = Some(l);
        }
    }
    Ok(())
}

/// The cached label of a payee: a reviewer's ([`crate::payee_review::REVIEWED_SCOPE`]) first,
/// then the one of `scope` (or, without, the newest of any scope). `None` = not classified.
pub(crate) fn read_cached(
    conn: &Connection,
    scope: Option<&str>,
    norm: &str,
) -> Result<Option<Option<Label>>> {
    let reviewed: Option<Option<String>> = conn
        .prepare_cached("SELECT path FROM payee_labels WHERE scope=?1 AND norm=?2")?
        .query_row(params![crate::payee_review::REVIEWED_SCOPE, norm], |r| {
            r.get(0)
        })
        .optional()?;
    if let Some(p) = reviewed {
        return Ok(Some(p.and_then(|j| serde_json::from_str::<Label>(&j).ok())));
    }
    let row: Option<Option<String>> = match scope {
        Some(s) => conn
            .prepare_cached("SELECT path FROM payee_labels WHERE scope=?1 AND norm=?2")?
            .query_row(params![s, norm], |r| r.get(0))
            .optional()?,
        None => conn
            .prepare_cached(
                "SELECT path FROM payee_labels WHERE norm=?1 ORDER BY labeled_at DESC LIMIT 1",
            )?
            .query_row(params![norm], |r| r.get(0))
            .optional()?,
    };
    Ok(row.map(|p| p.and_then(|j| serde_json::from_str::<Label>(&j).ok())))
}

pub(crate) fn write_cached(
    conn: &Connection,
    scope: &str,
    norm: &str,
    label: Option<&Label>,
    model: &str,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO payee_labels (scope, norm, kind, code, level, name, confidence, decision, path, model_version) \
         VALUES (?1,?2,'organisation',?3,?4,?5,?6,?7,?8,?9)",
    )?
    .execute(params![
        scope,
        norm,
        label.map(|l| &l.code),
        label.map(|l| &l.level),
        label.map(|l| &l.name),
        label.and_then(|l| l.confidence),
        label.and_then(|l| l.decision.as_deref()),
        label.map(|l| serde_json::to_string(l).expect("serialisable")),
        model
    ])?;
    Ok(())
}

/// Labels of payee names (`(name as written)`, deduplicated by normalised name): cached ones
/// read, missing organisations labeled with `labeler` (when given) and cached.
pub(crate) fn labels_for(
    conn: &Connection,
    names: &[&str],
    labeler: Option<&dyn Labeler>,
) -> Result<FxHashMap<String, PayeeLabel>> {
    let scope = labeler.map(|l| l.cache_scope());
    let mut out: FxHashMap<String, PayeeLabel> = FxHashMap::default();
    let mut todo: Vec<(String, String)> = Vec::new();
    let mut queued: rustc_hash::FxHashSet<String> = Default::default();
    for name in names {
        let norm = normalize(name);
        if out.contains_key(&norm) || queued.contains(&norm) {
            continue;
        }
        if is_individual(name) {
            out.insert(
                norm,
                PayeeLabel {
                    kind: PayeeKind::Individual,
                    label: None,
                    classified: true,
                },
            );
            continue;
        }
        match read_cached(conn, scope.as_deref(), &norm)? {
            Some(label) => {
                out.insert(
                    norm,
                    PayeeLabel {
                        kind: PayeeKind::Organisation,
                        label,
                        classified: true,
                    },
                );
            }
            None if labeler.is_some() => {
                queued.insert(norm.clone());
                todo.push((norm, model_text(name)));
            }
            None => {
                out.insert(
                    norm,
                    PayeeLabel {
                        kind: PayeeKind::Organisation,
                        label: None,
                        classified: false,
                    },
                );
            }
        }
    }
    if let (Some(lab), Some(scope)) = (labeler, scope.as_deref()) {
        for chunk in todo.chunks(LABEL_BATCH) {
            let texts: Vec<&str> = chunk.iter().map(|(_, t)| t.as_str()).collect();
            let labels = label_checked(lab, &texts)?;
            let model = lab.model_version();
            for ((norm, text), r) in chunk.iter().zip(labels) {
                let label = refine(text, Label::from_result(&r));
                write_cached(conn, scope, norm, label.as_ref(), &model)?;
                out.insert(
                    norm.clone(),
                    PayeeLabel {
                        kind: PayeeKind::Organisation,
                        label,
                        classified: true,
                    },
                );
            }
        }
    }
    Ok(out)
}

fn label_checked(lab: &dyn Labeler, texts: &[&str]) -> Result<Vec<LabelResult>> {
    let labels = lab.label(texts)?;
    if labels.len() != texts.len() {
        return Err(FlowError::Label(touxiang_datasets::LabelError(format!(
            "labeler returned {} results for {} texts",
            labels.len(),
            texts.len()
        ))));
    }
    Ok(labels)
}

impl FlowStore {
    /// Classify every payee of `portfolio` not yet in the cache for `labeler`'s scope (batched;
    /// each batch committed as it is labeled). Returns the number of names labeled.
    pub fn label_payees(&self, portfolio: &str, labeler: &dyn Labeler) -> Result<u64> {
        let conn = self.connect(portfolio)?;
        let scope = labeler.cache_scope();
        // each payee once, with the memo its payments carry most often (evidence when the
        // name alone leaves the classifier unsure)
        let todo: Vec<(String, String, Option<String>)> = conn
            .prepare(
                "SELECT p.payee_norm, min(p.payee_name), \
                 (SELECT q.memo FROM payments q WHERE q.portfolio=p.portfolio AND q.payee_norm=p.payee_norm \
                  AND q.memo IS NOT NULL AND trim(q.memo)<>'' GROUP BY q.memo ORDER BY count(*) DESC, q.memo LIMIT 1) \
                 FROM payments p \
                 LEFT JOIN payee_labels l ON l.scope=?2 AND l.norm=p.payee_norm \
                 WHERE p.portfolio=?1 AND l.norm IS NULL GROUP BY p.payee_norm",
            )?
            .query_map(params![portfolio, scope], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let todo: Vec<_> = todo
            .into_iter()
            .filter(|(_, name, _)| !is_individual(name))
            .collect();
        let model = labeler.model_version();
        let mut n = 0u64;
        for chunk in todo.chunks(LABEL_BATCH) {
            let texts: Vec<String> = chunk.iter().map(|(_, name, _)| model_text(name)).collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let mut labels: Vec<Option<Label>> = label_checked(labeler, &refs)?
                .iter()
                .zip(chunk)
                .map(|(r, (_, name, _))| refine(name, Label::from_result(r)))
                .collect();
            with_memo(labeler, chunk, &texts, &mut labels)?;
            let tx = conn.unchecked_transaction()?;
            for ((norm, _, _), label) in chunk.iter().zip(&labels) {
                write_cached(&tx, &scope, norm, label.as_ref(), &model)?;
            }
            tx.commit()?;
            n += chunk.len() as u64;
        }
        Ok(n)
    }

    /// Put known labels into the cache under `scope` (the generated book's benchmark fills the
    /// cache from its ground truth; tests). `labels`: (payee name, GB/T code or `None`).
    pub fn seed_payee_labels(
        &self,
        scope: &str,
        labels: &[(String, Option<String>)],
    ) -> Result<()> {
        let conn = self.connect_plain()?;
        let tx = conn.unchecked_transaction()?;
        for (name, code) in labels {
            let label = code
                .as_deref()
                .and_then(|c| Label::from_code(c, Some(1.0), None));
            write_cached(&tx, scope, &normalize(name), label.as_ref(), scope)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Labels of payee names, classifying (and caching) those not cached yet when a labeler is
    /// given.
    pub fn payee_labels(
        &self,
        names: &[&str],
        labeler: Option<&dyn Labeler>,
    ) -> Result<FxHashMap<String, PayeeLabel>> {
        let conn = self.connect_plain()?;
        labels_for(&conn, names, labeler)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn model_text_keeps_the_activity_words() {
        for (name, text) in [
            ("杭州华鑫泰小额贷款有限公司", "华鑫泰小额贷款"),
            ("宜兴市自来水有限公司", "自来水"),
            ("中国建筑第八工程局有限公司西南分公司", "建筑第八工程局"),
            ("浙江省温州市鹿城区某某房地产开发有限公司", "某某房地产开发"),
            ("红塔烟草（集团）有限责任公司", "红塔烟草"),
            ("温州市财政局", "财政局"),
            ("建行成都高新支行", "建行成都高新支行"),
            ("某市", "某市"),
        ] {
            assert_eq!(super::model_text(name), text, "{name}");
        }
    }
}
