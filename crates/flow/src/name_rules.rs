//! Name evidence for regulated financial and property businesses.
//!
//! Some businesses must say what they are in their registered name: a 小额贷款公司 must carry
//! `小额贷款`, a 融资担保公司 `融资担保`, a pawnshop `典当`, a securities or futures company
//! `证券` / `期货`, a trust company `信托`, a finance-lease or factoring company `融资租赁` /
//! `保理` (the names are reserved by their licensing rules). Real-estate developers carry
//! `房地产开发` or `置业` by custom. These are exactly the restricted uses of [`crate::rules`],
//! and the classifier, trained on loan purposes, often stops at the section (`J 金融业`) or
//! division (`70 房地产业`) for them.
//!
//! [`refine`] deepens the classifier's label to the code such a name word stands for, **only
//! when the classifier agrees or abstains**: its label is on the way to that code (`J`, `66`,
//! `663`, `70` …) or it gave none. When it says something else (another section, or a sibling
//! class), its label stands. A refined label carries `source: "model+name"` (or `"name"`
//! where the model abstained) and keeps the model's confidence of the level it stood behind.

use crate::payees::Label;

/// Name words and the GB/T 4754-2017 code they stand for, first match wins (longer, more
/// specific words first).
pub const NAME_WORDS: &[(&str, &str)] = &[
    ("网络小额贷款", "6637"),
    ("网络小贷", "6637"),
    ("小额贷款", "6635"),
    ("融资担保", "6999"),
    ("信用再担保", "6999"),
    ("投资担保", "6999"),
    ("典当", "6633"),
    ("融资租赁", "6631"),
    ("商业保理", "6639"),
    ("保理", "6639"),
    ("消费金融", "6636"),
    ("汽车金融", "6634"),
    ("证券", "67"),
    ("期货", "674"),
    ("基金管理", "67"),
    ("信托", "6911"),
    ("房地产开发", "7010"),
    ("地产开发", "7010"),
    ("置业", "7010"),
];

/// Words that void the rule (`住房置业担保` is 7030, a 基金会 is a foundation).
const EXCEPT: &[&str] = &["置业担保", "基金会", "证券监督", "证监"];

/// The code a name's words stand for, if any.
pub fn name_code(name: &str) -> Option<&'static str> {
    if EXCEPT.iter().any(|w| name.contains(w)) {
        return None;
    }
    NAME_WORDS
        .iter()
        .find(|(w, _)| name.contains(w))
        .map(|(_, c)| *c)
}

/// The label of a payee named `name`, given the classifier's `label` (see the module
/// documentation).
pub fn refine(name: &str, label: Option<Label>) -> Option<Label> {
    let Some(code) = name_code(name) else {
        return label;
    };
    let rule_path = crate::rules::path_of(code);
    match label {
        None => Label::from_code(code, None, Some("review".into())).map(|mut l| {
            l.source = Some("name".into());
            l
        }),
        Some(l) => {
            let on_the_way = l.path.len() < rule_path.len()
                && l.path.iter().zip(&rule_path).all(|(a, b)| a.code == *b);
            if !on_the_way {
                return Some(l);
            }
            let mut r = Label::from_code(code, l.confidence, l.decision.clone())?;
            for (step, model) in r.path.iter_mut().zip(&l.path) {
                step.confidence = model.confidence;
            }
            r.source = Some("model+name".into());
            Some(r)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refines_only_where_the_model_agrees_or_abstains() {
        let j = Label::from_code("J", Some(0.9), None);
        let r = refine("某某小额贷款有限公司", j).unwrap();
        assert_eq!(
            (r.code.as_str(), r.source.as_deref()),
            ("6635", Some("model+name"))
        );
        let r = refine("南京金鼎典当有限公司", None).unwrap();
        assert_eq!(
            (r.code.as_str(), r.source.as_deref()),
            ("6633", Some("name"))
        );
        // a contradicting model label stands
        let c = Label::from_code("3311", Some(0.8), None);
        assert_eq!(refine("某某置业有限公司", c).unwrap().code, "3311");
        let bank = Label::from_code("6621", Some(0.8), None);
        assert_eq!(refine("某某小额贷款有限公司", bank).unwrap().code, "6621");
        // exceptions and unrelated names
        assert_eq!(name_code("某市住房置业担保有限公司"), None);
        assert_eq!(name_code("某某慈善基金会"), None);
        assert_eq!(refine("某某钢铁有限公司", None), None);
    }
}
