//! A deterministic keyword labeler for tests, examples and measuring engine overhead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use touxiang_datasets::{Decision, LabelError, LabelResult, Labeler, PathStep};

/// (keyword, path root→leaf as (code, name)) — real GB/T 4754-2017 codes.
const RULES: &[(&str, &[(&str, &str)])] = &[
    (
        "钢",
        &[
            ("C", "制造业"),
            ("31", "黑色金属冶炼和压延加工业"),
            ("312", "炼钢"),
            ("3120", "炼钢"),
        ],
    ),
    (
        "大米",
        &[
            ("C", "制造业"),
            ("13", "农副食品加工业"),
            ("131", "谷物磨制"),
            ("1311", "稻谷加工"),
        ],
    ),
    (
        "种植",
        &[
            ("A", "农、林、牧、渔业"),
            ("01", "农业"),
            ("011", "谷物种植"),
            ("0111", "稻谷种植"),
        ],
    ),
    (
        "种子",
        &[
            ("A", "农、林、牧、渔业"),
            ("05", "农、林、牧、渔专业及辅助性活动"),
            ("051", "农业专业及辅助性活动"),
            ("0511", "种子种苗培育活动"),
        ],
    ),
    (
        "烤串",
        &[
            ("H", "住宿和餐饮业"),
            ("62", "餐饮业"),
            ("629", "其他餐饮业"),
            ("6291", "小吃服务"),
        ],
    ),
    (
        "小吃",
        &[
            ("H", "住宿和餐饮业"),
            ("62", "餐饮业"),
            ("629", "其他餐饮业"),
            ("6291", "小吃服务"),
        ],
    ),
    (
        "餐厅",
        &[
            ("H", "住宿和餐饮业"),
            ("62", "餐饮业"),
            ("621", "正餐服务"),
            ("6210", "正餐服务"),
        ],
    ),
    (
        "超市",
        &[
            ("F", "批发和零售业"),
            ("52", "零售业"),
            ("521", "综合零售"),
            ("5211", "百货零售"),
        ],
    ),
    (
        "客运",
        &[
            ("G", "交通运输、仓储和邮政业"),
            ("54", "道路运输业"),
            ("541", "城市公共交通运输"),
            ("5411", "公共电汽车客运"),
        ],
    ),
    (
        "楼盘",
        &[
            ("K", "房地产业"),
            ("70", "房地产业"),
            ("701", "房地产开发经营"),
            ("7010", "房地产开发经营"),
        ],
    ),
    // Stops at the group level (a coarser label).
    (
        "软件",
        &[
            ("I", "信息传输、软件和信息技术服务业"),
            ("65", "软件和信息技术服务业"),
            ("651", "软件开发"),
        ],
    ),
    // Stops at the division level.
    ("批发", &[("F", "批发和零售业"), ("51", "批发业")]),
];

const LEVELS: [&str; 4] = ["section", "division", "group", "class"];

/// Labels by the first keyword found in the text (see the rule table in the source); texts with
/// no keyword get no code (decision `review`). Confidence is a deterministic function of the
/// text in [0.55, 0.99]; below 0.7 the decision is `review`. Counts calls and texts so tests can
/// prove deduplication; an optional delay per call simulates a slow model.
#[derive(Debug)]
pub struct KeywordLabeler {
    calls: AtomicU64,
    texts: AtomicU64,
    delay: Duration,
    model_version: String,
}

impl Default for KeywordLabeler {
    fn default() -> Self {
        KeywordLabeler::new()
    }
}

impl KeywordLabeler {
    /// A labeler with model version `fake-keywords-1` and no delay.
    pub fn new() -> KeywordLabeler {
        KeywordLabeler {
            calls: AtomicU64::new(0),
            texts: AtomicU64::new(0),
            delay: Duration::ZERO,
            model_version: "fake-keywords-1".into(),
        }
    }

    /// Sleep this long in every `label` call.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Use another model version string (changes cache keys).
    pub fn with_model_version(mut self, v: &str) -> Self {
        self.model_version = v.into();
        self
    }

    /// Number of `label` calls so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Number of texts labeled so far.
    pub fn texts(&self) -> u64 {
        self.texts.load(Ordering::Relaxed)
    }

    /// The label of one text (what `label` returns for it).
    pub fn label_one(&self, text: &str) -> LabelResult {
        // FNV-1a, stable across platforms and runs.
        let mut h: u64 = 0xcbf29ce484222325;
        for b in text.as_bytes() {
            h ^= *b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        let conf = 0.55 + (h % 45) as f32 / 100.0;
        let rule = RULES.iter().find(|(k, _)| text.contains(k));
        let (path, code, level, name) = match rule {
            Some((_, steps)) => {
                let n = steps.len();
                let path: Vec<PathStep> = steps
                    .iter()
                    .enumerate()
                    .map(|(i, (c, nm))| PathStep {
                        code: c.to_string(),
                        name: nm.to_string(),
                        confidence: (conf + 0.01 * (n - 1 - i) as f32).min(0.99),
                    })
                    .collect();
                let (c, nm) = steps[n - 1];
                (
                    path,
                    Some(c.to_string()),
                    Some(LEVELS[n - 1].to_string()),
                    Some(nm.to_string()),
                )
            }
            None => (Vec::new(), None, None, None),
        };
        let confidence = if code.is_some() { conf } else { 0.0 };
        LabelResult {
            code,
            level,
            name,
            path,
            confidence,
            decision: if confidence >= 0.7 {
                Decision::Auto
            } else {
                Decision::Review
            },
            model_version: self.model_version.clone(),
            taxonomy_version: "gbt4754-2017".into(),
            evidence: Default::default(),
        }
    }
}

impl Labeler for KeywordLabeler {
    fn label(&self, texts: &[&str]) -> Result<Vec<LabelResult>, LabelError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.texts.fetch_add(texts.len() as u64, Ordering::Relaxed);
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        Ok(texts.iter().map(|t| self.label_one(t)).collect())
    }

    fn model_version(&self) -> String {
        self.model_version.clone()
    }

    fn taxonomy_version(&self) -> String {
        "gbt4754-2017".into()
    }
}
