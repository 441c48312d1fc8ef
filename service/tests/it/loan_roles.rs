//! The shipped GB/T 4754 classifier on loan text: the borrower's (or the project's) activity
//! decides, not what the money buys. Real encoder, the artifact in `training/artifacts`, no
//! neighbour store (the heads and the lexical vote, as `/v1/classify` answers before seeding),
//! except where a test gives neighbours itself.

use std::path::Path;
use std::sync::OnceLock;

use touxiang::engine::E5;
use touxiang_training::{
    latest_artifact_dir, Artifacts, Classification, Classifier, ClassifyOptions, EmbedFn, LoanText,
    Neighbor,
};

use crate::common::model;

fn shipped() -> &'static Classifier {
    static C: OnceLock<Classifier> = OnceLock::new();
    C.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../training/artifacts");
        let dir = latest_artifact_dir(&root, "gbt4754-2017").expect("a shipped GB/T artifact");
        Artifacts::load(&dir)
            .expect("shipped artifact loads")
            .classifier
    })
}

fn classify(loan: &LoanText, neighbors: &[Neighbor]) -> Classification {
    let text = loan.model_text();
    let x = E5(model()).embed(&[text.as_str()]).unwrap();
    shipped()
        .classify(&text, &x[0], neighbors, &ClassifyOptions::default())
        .unwrap()
}

fn guess_path(c: &Classification) -> Vec<String> {
    c.guess
        .as_ref()
        .map(|g| g.path.iter().map(|p| p.code.clone()).collect())
        .unwrap_or_default()
}

/// The named role cases: (kind, text, the division of the borrower or project, why).
const ROLE_CASES: &[(&str, &str, &str, &str)] = &[
    (
        "buyer_vs_maker",
        "驾校购置教练车20辆",
        "83",
        "driver training, not car making",
    ),
    (
        "buyer_vs_maker",
        "县人民医院采购CT设备",
        "84",
        "a hospital, not medical equipment making",
    ),
    (
        "buyer_vs_maker",
        "出版社采购印刷用纸",
        "86",
        "publishing, not paper making",
    ),
    (
        "buyer_vs_maker",
        "洗衣店购置工业烘干机",
        "80",
        "a laundry, not machinery making",
    ),
    (
        "buyer_vs_maker",
        "律师事务所装修办公室",
        "72",
        "legal services, not decoration",
    ),
    (
        "owner_vs_builder",
        "房地产开发公司支付住宅项目工程款",
        "70",
        "the developer owns the project",
    ),
    (
        "owner_vs_builder",
        "建筑公司承建厂房，采购钢筋水泥",
        "47",
        "a contractor's own loan is construction",
    ),
    (
        "group_subsidiary",
        "集团公司向全资子公司增资，用于子公司酒店客房装修",
        "61",
        "the subsidiary runs a hotel",
    ),
];

/// Every named case offers the borrower's industry to the reviewer (the guess or one of the top
/// three alternatives), and the guess itself is right for at least 7 of the 8 — on the loan dev
/// set's test half the guess is right at division level for 91 % of buyer-vs-maker lines. The
/// misses are printed: today "建筑公司承建厂房…" (guess 3022 concrete, 47 offered). The
/// candidate re-ranker's role cues fixed "出版社采购印刷用纸" (was 2311 printing, now 8621).
#[test]
fn role_cases_label_the_borrower_not_what_it_buys() {
    let (mut top1, mut missing) = (0, Vec::new());
    for (kind, text, division, why) in ROLE_CASES {
        let c = classify(&LoanText::new(*text), &[]);
        let guess = guess_path(&c);
        let offered: Vec<&str> = guess
            .get(1)
            .map(String::as_str)
            .into_iter()
            .chain(c.alternatives.iter().map(|a| a.path[1].code.as_str()))
            .collect();
        if guess.get(1).map(String::as_str) == Some(*division) {
            top1 += 1;
        } else {
            println!(
                "{kind}: {text}: guess {guess:?}, offered divisions {offered:?}, want {division}"
            );
        }
        if !offered.contains(division) {
            missing.push(format!(
                "{kind}: {text}: {offered:?} lacks {division} ({why})"
            ));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
    assert!(
        top1 >= 7,
        "only {top1} of {} role cases right at top-1",
        ROLE_CASES.len()
    );
}

#[test]
fn vague_text_abstains() {
    for t in ["资金周转", "日常经营", "补充流动资金"] {
        let c = classify(&LoanText::new(t), &[]);
        assert!(c.label.is_none(), "{t}: {:?}", c.label);
        assert_eq!(c.decision, touxiang_datasets::Decision::Review);
    }
}

#[test]
fn an_exact_match_of_a_reviewed_text_returns_its_label() {
    let text = "紧固件制造";
    let reviewed = Neighbor {
        text: text.into(),
        code: "3482".into(),
        similarity: 1.0,
        source: "reviewed".into(),
    };
    let c = classify(&LoanText::new(text), &[reviewed]);
    let label = c.label.expect("a label");
    assert_eq!(
        (label.code.as_str(), label.level.as_str()),
        ("3482", "class")
    );
    assert_eq!(c.decision, touxiang_datasets::Decision::Auto);
}

#[test]
fn the_borrower_name_decides_a_generic_purpose() {
    let bare = LoanText::new("采购原材料");
    let named = LoanText {
        borrower_name: Some("山东鲁丰面粉有限公司".into()),
        ..bare.clone()
    };
    let (b, n) = (classify(&bare, &[]), classify(&named, &[]));
    assert_eq!(
        guess_path(&n).get(1).map(String::as_str),
        Some("13"),
        "with the name: {:?}",
        guess_path(&n)
    );
    assert_ne!(guess_path(&b), guess_path(&n));
}

#[test]
fn alternatives_are_classes_with_paths_whatever_the_label_level() {
    let c = classify(&LoanText::new("购置设备一批，用于扩大经营"), &[]);
    assert_eq!(c.alternatives.len(), 3);
    for a in &c.alternatives {
        assert_eq!(a.level, "class", "{a:?}");
        assert_eq!(a.path.len(), 4, "{a:?}");
        assert_eq!(a.path[3].code, a.code);
    }
    if let Some(g) = &c.guess {
        assert_eq!(g.level, "class");
        assert_eq!(g.path.len(), 4);
    }
}
