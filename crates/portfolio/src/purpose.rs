//! A documented keyword-rule purpose labeler over the built-in flat purpose taxonomy.
//!
//! Rules (first matching rule group wins, in this order; one Aho–Corasick pass over the text):
//!
//! | code | keywords (any substring) |
//! |---|---|
//! | housing | 购房, 买房, 房贷, 首付, 住房, 商品房, 二手房 |
//! | auto | 购车, 买车, 汽车, 车贷, 新能源车 |
//! | education | 学费, 教育, 留学, 培训, 学历, 就学 |
//! | medical | 医疗, 治疗, 住院, 手术, 看病, 医药费 |
//! | project | 项目, 工程, 建设, 基建, 施工, 开发 |
//! | fixed_assets | 设备, 厂房, 固定资产, 生产线, 机器, 购置, 技改 |
//! | personal_business | 个体, 门店, 店铺, 摊位, 网店, 经营贷, 小店 |
//! | working_capital | 流动资金, 周转, 采购, 进货, 货款, 原材料, 备货, 工资, 经营 |
//! | consumer | 消费, 装修, 旅游, 家电, 婚, 家具, 日常 |
//! | other | (no rule matched) |
//!
//! Confidence: 0.9 when exactly one rule group has hits, 0.6 when several do (the first wins), and
//! 0.2 for `other`. Decision: `auto` at confidence ≥ 0.6, otherwise `review`.

use touxiang_datasets::{Decision, LabelError, LabelResult, Labeler, PathStep};

use crate::refdata::PurposeScheme;

const RULES: &[(&str, &[&str])] = &[
    (
        "housing",
        &["购房", "买房", "房贷", "首付", "住房", "商品房", "二手房"],
    ),
    ("auto", &["购车", "买车", "汽车", "车贷", "新能源车"]),
    (
        "education",
        &["学费", "教育", "留学", "培训", "学历", "就学"],
    ),
    (
        "medical",
        &["医疗", "治疗", "住院", "手术", "看病", "医药费"],
    ),
    ("project", &["项目", "工程", "建设", "基建", "施工", "开发"]),
    (
        "fixed_assets",
        &["设备", "厂房", "固定资产", "生产线", "机器", "购置", "技改"],
    ),
    (
        "personal_business",
        &["个体", "门店", "店铺", "摊位", "网店", "经营贷", "小店"],
    ),
    (
        "working_capital",
        &[
            "流动资金",
            "周转",
            "采购",
            "进货",
            "货款",
            "原材料",
            "备货",
            "工资",
            "经营",
        ],
    ),
    (
        "consumer",
        &["消费", "装修", "旅游", "家电", "婚", "家具", "日常"],
    ),
];

/// Keyword-rule purpose labeler (see the module docs for the rules).
#[derive(Debug, Clone)]
pub struct KeywordPurposeLabeler {
    scheme: PurposeScheme,
    /// One automaton over all keywords; pattern id → rule index.
    ac: aho_corasick::AhoCorasick,
    rule_of: Vec<usize>,
}

impl Default for KeywordPurposeLabeler {
    fn default() -> Self {
        Self::new()
    }
}

impl KeywordPurposeLabeler {
    /// Labeler over [`PurposeScheme::builtin`].
    pub fn new() -> Self {
        let mut pats = Vec::new();
        let mut rule_of = Vec::new();
        for (ri, (_, kws)) in RULES.iter().enumerate() {
            for k in kws.iter() {
                pats.push(*k);
                rule_of.push(ri);
            }
        }
        KeywordPurposeLabeler {
            scheme: PurposeScheme::builtin(),
            ac: aho_corasick::AhoCorasick::new(&pats).expect("static keyword set"),
            rule_of,
        }
    }

    /// Label one text: `(code, confidence)`.
    pub fn label_one(&self, text: &str) -> (&'static str, f32) {
        // Keywords are all Chinese, so no case folding is needed.
        let mut hit = [false; 16];
        for m in self.ac.find_overlapping_iter(text) {
            hit[self.rule_of[m.pattern().as_usize()]] = true;
        }
        let groups = hit.iter().filter(|h| **h).count();
        match hit.iter().position(|h| *h) {
            Some(i) if groups == 1 => (RULES[i].0, 0.9),
            Some(i) => (RULES[i].0, 0.6),
            None => ("other", 0.2),
        }
    }
}

impl Labeler for KeywordPurposeLabeler {
    fn label(&self, texts: &[&str]) -> Result<Vec<LabelResult>, LabelError> {
        Ok(texts
            .iter()
            .map(|t| {
                let (code, conf) = self.label_one(t);
                let name = self.scheme.name(code).unwrap_or(code).to_string();
                LabelResult {
                    code: Some(code.to_string()),
                    level: Some("purpose".to_string()),
                    name: Some(name.clone()),
                    path: vec![PathStep {
                        code: code.to_string(),
                        name,
                        confidence: conf,
                    }],
                    confidence: conf,
                    decision: if conf >= 0.6 {
                        Decision::Auto
                    } else {
                        Decision::Review
                    },
                    model_version: self.model_version(),
                    taxonomy_version: self.taxonomy_version(),
                    evidence: Default::default(),
                }
            })
            .collect())
    }

    fn model_version(&self) -> String {
        "purpose-keywords-v1".to_string()
    }

    fn taxonomy_version(&self) -> String {
        self.scheme.id.clone()
    }
}
