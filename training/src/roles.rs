//! Loan text labeled by role (GENERATED data, source `role`).
//!
//! In 贷款投向 the industry is the borrower's activity (or the project's), not the industry that
//! makes what the loan buys: "驾校购置教练车" is driver training, not car making. The notes map
//! product terms to their *producers*, so a corpus of note items alone teaches the opposite. This
//! module generates phrasings in which an *actor* of a class — the business types and name
//! patterns in `data/actors.tsv`, written by the touxiang team — buys its typical inputs or
//! equipment, pays suppliers, builds facilities or pays wages, or buys products of *other*
//! classes, and labels each phrasing with the actor's class.
//!
//! `data/actors.tsv`: `CODE<TAB>actor|actor|…<TAB>input|input|…`; `XX` in an actor stands for a
//! place or brand name and is filled from a fixed list (or dropped).

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use crate::corpus::{split_of, Split, SplitRatios};
use crate::error::{Result, TrainError};
use crate::tree::Tree;

/// The team-written actor lexicon (see the module docs).
pub const DEFAULT_ACTORS: &str = include_str!("../data/actors.tsv");

/// One class's actors and typical inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct ActorEntry {
    pub code: String,
    pub actors: Vec<String>,
    pub inputs: Vec<String>,
}

/// Parse the actor lexicon; `#` lines and blank lines are skipped. Every line needs three fields
/// with at least one actor and one input.
pub fn parse_actors(text: &str) -> Result<Vec<ActorEntry>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim_end_matches('\r');
        if l.trim().is_empty() || l.starts_with('#') {
            continue;
        }
        let bad = |message: String| TrainError::BadLine {
            path: "actors".into(),
            line: i + 1,
            message,
        };
        let f: Vec<&str> = l.split('\t').collect();
        if f.len() != 3 {
            return Err(bad(format!(
                "expected 3 tab-separated fields, got {}",
                f.len()
            )));
        }
        let list = |s: &str| -> Vec<String> {
            s.split('|')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        };
        let (actors, inputs) = (list(f[1]), list(f[2]));
        if actors.is_empty() || inputs.is_empty() {
            return Err(bad("needs at least one actor and one input".into()));
        }
        out.push(ActorEntry {
            code: f[0].trim().to_string(),
            actors,
            inputs,
        });
    }
    Ok(out)
}

/// Options of [`role_examples`].
#[derive(Debug, Clone)]
pub struct RoleOptions {
    /// Phrasings generated per class.
    pub per_class: usize,
    /// Share of phrasings whose object is another class's product term (the "buyer, not maker"
    /// lesson) rather than one of the actor's own inputs.
    pub foreign_share: f64,
    /// Loss weight of a role example.
    pub weight: f32,
}

impl Default for RoleOptions {
    fn default() -> Self {
        RoleOptions {
            per_class: 30,
            foreign_share: 0.3,
            weight: 1.0,
        }
    }
}

/// Phrasings with an object: `{a}` actor, `{x}` object.
const WITH_OBJECT: &[&str] = &[
    "{a}采购{x}",
    "{a}购置{x}",
    "{a}购买{x}一批",
    "{a}支付{x}采购款",
    "{a}支付{x}货款",
    "用于{a}采购{x}",
    "补充{a}流动资金，用于采购{x}",
    "{a}，补充流动资金，购买{x}",
    "{a}更新{x}",
    "{a}{x}采购及安装",
    "借款人{a}拟用于支付{x}款项",
    "{a}申请贷款用于购置{x}",
    "{a}，用于{x}采购",
    "{a}新增{x}，扩大经营",
    // a group funding its subsidiary: the subsidiary's activity decides
    "集团公司向全资子公司{a}增资，用于采购{x}",
    "母公司委托贷款给下属{a}，用于购置{x}",
    // the owner's own project: the owner's activity decides, not construction
    "{a}新建{x}项目，支付工程款",
    "{a}{x}改扩建项目建设资金",
    // contract-style noise
    "借款人{a}本笔贷款用于支付{x}采购合同款，金额人民币{n}万元，合同编号{id}",
    "{a}申请流动资金贷款{n}万元，用于{x}采购，期限12个月",
];

/// Phrasings that name only the actor and a generic use of money.
const ACTOR_ONLY: &[&str] = &[
    "{a}日常经营周转",
    "{a}装修经营场所",
    "{a}支付员工工资",
    "{a}支付租金及水电费",
    "{a}扩大经营规模",
    "{a}补充流动资金",
    "{a}，采购原材料",
    "{a}，购置设备一批",
    "{a}，支付货款",
    "{a}新建经营用房",
];

/// Place and brand fragments that replace `XX` in an actor pattern.
const PLACES: &[&str] = &[
    "江苏", "杭州", "成都", "临沂", "佛山", "温州", "郑州", "长沙", "合肥", "南宁", "昆明", "泉州",
    "潍坊", "保定", "赣州", "襄阳", "遵义", "包头",
];
const BRANDS: &[&str] = &[
    "华瑞",
    "鑫达",
    "恒通",
    "宏远",
    "金泰",
    "永盛",
    "瑞丰",
    "嘉禾",
    "天成",
    "博远",
    "海川",
    "润达",
    "同创",
    "新纪元",
];

fn fill_actor(actor: &str, rng: &mut impl Rng) -> String {
    if !actor.contains("XX") {
        return actor.to_string();
    }
    let name = match rng.random_range(0..4) {
        0 => String::new(),
        1 => PLACES.choose(rng).copied().unwrap_or_default().to_string(),
        2 => BRANDS.choose(rng).copied().unwrap_or_default().to_string(),
        _ => format!(
            "{}{}",
            PLACES.choose(rng).copied().unwrap_or_default(),
            BRANDS.choose(rng).copied().unwrap_or_default()
        ),
    };
    actor.replace("XX", &name)
}

/// One generated role example: (text, code, split, item the split was decided on).
#[derive(Debug, Clone, PartialEq)]
pub struct RoleExample {
    pub text: String,
    pub code: String,
    pub split: Split,
    /// The actor pattern the phrasing was made from (all phrasings of one actor share a split).
    pub item: String,
}

/// Generate role-labeled phrasings for every entry whose code is in `tree`. `foreign` are product
/// terms of other classes (e.g. training items of the notes) used as objects; entries with codes
/// outside the tree are counted in the second return value and skipped.
pub fn role_examples(
    entries: &[ActorEntry],
    tree: &Tree,
    foreign: &[(String, String)],
    opts: &RoleOptions,
    seed: u64,
) -> (Vec<RoleExample>, usize) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x51de_0ac7);
    let ratios = SplitRatios {
        train: 0.85,
        calib: 0.15,
    };
    let mut out = Vec::new();
    let mut unknown = 0usize;
    for e in entries {
        if tree.find(&e.code).is_none() {
            unknown += 1;
            continue;
        }
        for _ in 0..opts.per_class {
            let Some(pattern) = e.actors.choose(&mut rng) else {
                continue;
            };
            let actor = fill_actor(pattern, &mut rng);
            let text = if rng.random_bool(0.2) {
                ACTOR_ONLY
                    .choose(&mut rng)
                    .map(|t| t.replace("{a}", &actor))
            } else {
                let object = if rng.random_bool(opts.foreign_share) {
                    foreign
                        .choose(&mut rng)
                        .filter(|(_, c)| *c != e.code)
                        .map(|(t, _)| t.clone())
                } else {
                    None
                };
                let object = object.or_else(|| e.inputs.choose(&mut rng).cloned());
                object.and_then(|x| {
                    WITH_OBJECT
                        .choose(&mut rng)
                        .map(|t| t.replace("{a}", &actor).replace("{x}", &x))
                })
            };
            let Some(text) = text else { continue };
            let text = text
                .replace("{n}", &(rng.random_range(1..200) * 10).to_string())
                .replace(
                    "{id}",
                    &format!(
                        "HT-{}-{:04}",
                        rng.random_range(2019..2027),
                        rng.random_range(1..9999)
                    ),
                );
            let item = format!("{}:{}", e.code, pattern);
            out.push(RoleExample {
                split: match split_of(&item, seed, ratios) {
                    Split::Train => Split::Train,
                    _ => Split::Calib,
                },
                text,
                code: e.code.clone(),
                item,
            });
        }
    }
    (out, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_refuses_broken_ones() {
        let ok = "# comment\n8391\tXX驾校|驾培机构\t教练车|模拟驾驶器\n";
        let e = parse_actors(ok).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].actors, ["XX驾校", "驾培机构"]);
        assert_eq!(e[0].inputs, ["教练车", "模拟驾驶器"]);
        assert!(parse_actors("8391\tXX驾校\n").is_err());
        assert!(parse_actors("8391\t\t教练车\n").is_err());
    }

    #[test]
    fn shipped_lexicon_parses_and_names_real_classes() {
        let e = parse_actors(DEFAULT_ACTORS).unwrap();
        assert!(
            e.len() > 1000,
            "only {} classes in data/actors.tsv",
            e.len()
        );
        for x in &e {
            assert_eq!(x.code.len(), 4, "{x:?}");
            assert!(x.code.chars().all(|c| c.is_ascii_digit()), "{x:?}");
        }
    }

    #[test]
    fn role_phrasings_carry_the_actors_class_whatever_they_buy() {
        let tree = Tree::from_taxonomy(touxiang_datasets::Taxonomy::gbt4754(), true).unwrap();
        let entries =
            parse_actors("8391\tXX驾校|驾培机构\t教练车|模拟驾驶器\n9999\tXX厂\t钢板\n").unwrap();
        // products of car making, bought by a driving school
        let foreign = vec![("轿车".to_string(), "3610".to_string())];
        let opts = RoleOptions {
            per_class: 60,
            foreign_share: 0.5,
            weight: 1.0,
        };
        let (ex, unknown) = role_examples(&entries, &tree, &foreign, &opts, 42);
        assert_eq!(unknown, 1, "9999 is not a GB/T 4754 code");
        assert_eq!(ex.len(), 60);
        for e in &ex {
            assert_eq!(e.code, "8391", "{e:?}");
            assert!(
                e.text.contains("驾校") || e.text.contains("驾培机构"),
                "{e:?}"
            );
            assert!(!e.text.contains("XX") && !e.text.contains('{'), "{e:?}");
            assert!(matches!(e.split, Split::Train | Split::Calib));
        }
        assert!(
            ex.iter().any(|e| e.text.contains("轿车")),
            "no foreign object used"
        );
        assert!(ex
            .iter()
            .any(|e| e.text.contains("教练车") || e.text.contains("模拟驾驶器")));
        assert_eq!(role_examples(&entries, &tree, &foreign, &opts, 42).0, ex);
    }
}
