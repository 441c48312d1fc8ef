//! What a bank knows of one application: the purpose text and, when it has them, the borrower's
//! name, business scope (经营范围) and the industry the customer manager declared. One function,
//! [`LoanText::model_text`], turns them into the text the classifier reads, for every path
//! (HTTP classify, jobs, uploads, `batch`, `ingest`, `eval`, calibration).
//!
//! Chinese enterprise names carry the industry ("XX餐饮管理有限公司", "XX驾驶员培训学校"), and the
//! role-labeled training phrasings (`touxiang_training::roles`) put the actor before what it buys, so the
//! name goes first: `{borrower_name}，{text}`. The business scope is long and lists many
//! activities; its first ones are the main business, so at most [`SCOPE_CHARS`] characters of it
//! follow as `；经营范围：…`. The declared industry is shown as evidence but not read by the
//! model: on the loan dev set it was wrong or coarse often enough that it did not pay (see the
//! README's loan-text figures).

use serde::{Deserialize, Serialize};

/// Characters of the business scope the model reads.
pub const SCOPE_CHARS: usize = 24;

/// One loan purpose with the optional borrower fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoanText {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub borrower_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_scope: Option<String>,
    /// A taxonomy code (or, in labeled files, the declared industry's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_industry: Option<String>,
}

fn present(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl LoanText {
    /// Text only.
    pub fn new(text: impl Into<String>) -> Self {
        LoanText {
            text: text.into(),
            ..Default::default()
        }
    }

    /// Whether any borrower field is given.
    pub fn has_borrower(&self) -> bool {
        present(&self.borrower_name).is_some() || present(&self.business_scope).is_some()
    }

    /// The same loan without the borrower fields (to measure what they add).
    pub fn text_only(&self) -> LoanText {
        LoanText::new(self.text.clone())
    }

    /// The text the classifier reads (see the module docs). Without borrower fields it is the
    /// purpose text unchanged, so existing labels and caches keep their keys.
    pub fn model_text(&self) -> String {
        let mut out = String::new();
        if let Some(name) = present(&self.borrower_name) {
            if !self.text.contains(name) {
                out.push_str(name);
                out.push('，');
            }
        }
        out.push_str(&self.text);
        if let Some(scope) = present(&self.business_scope) {
            out.push_str("；经营范围：");
            out.extend(scope.chars().take(SCOPE_CHARS));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_alone_is_unchanged_and_fields_are_composed() {
        assert_eq!(LoanText::new("采购原材料").model_text(), "采购原材料");
        let l = LoanText {
            text: "采购原材料".into(),
            borrower_name: Some(" 山东鲁丰面粉有限公司 ".into()),
            business_scope: Some("小麦粉、挂面生产销售；粮食收购；普通货物道路运输".into()),
            declared_industry: Some("1312".into()),
        };
        assert_eq!(
            l.model_text(),
            "山东鲁丰面粉有限公司，采购原材料；经营范围：小麦粉、挂面生产销售；粮食收购；普通货物道路运输"
        );
        assert!(l.has_borrower());
        assert_eq!(l.text_only().model_text(), "采购原材料");
        // a name already in the text is not repeated; blank fields count as absent
        let l = LoanText {
            text: "鲁丰面粉厂采购小麦".into(),
            borrower_name: Some("鲁丰面粉厂".into()),
            business_scope: Some("  ".into()),
            declared_industry: None,
        };
        assert_eq!(l.model_text(), "鲁丰面粉厂采购小麦");
        assert!(l.has_borrower());
    }
}
