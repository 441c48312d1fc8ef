//! End-to-end tests of training, decision, artifacts and determinism on synthetic data with the
//! hashed embedder (fast), plus corpus checks on the shared GB/T 4754 notes when present.
mod common;

use std::io::Write;

use rand::SeedableRng;
use touxiang_datasets::Decision;
use touxiang_training::calibrate::threshold_for_precision;
use touxiang_training::*;

fn classify_texts(arts: &Artifacts, texts: &[String], with_neighbors: bool) -> Vec<Classification> {
    let emb = HashEmbedder::default();
    let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
    let x = emb.embed(&refs).unwrap();
    let nbs = if with_neighbors {
        arts.exemplars.as_ref().unwrap().search(&x, 10).unwrap()
    } else {
        vec![Vec::new(); x.len()]
    };
    arts.classifier
        .classify_batch(&refs, &x, &nbs, &ClassifyOptions::default())
        .unwrap()
}

fn check_consistent(tree: &Tree, c: &Classification) {
    let steps = &c.full_path;
    for (d, s) in steps.iter().enumerate() {
        let i = tree.find(&s.code).expect("path codes are in the taxonomy");
        assert_eq!(
            tree.nodes[i].depth, d,
            "step {d} of {steps:?} at the wrong depth"
        );
        if d > 0 {
            let p = tree.nodes[i].parent.expect("non-root has a parent");
            assert_eq!(
                tree.nodes[p].code,
                steps[d - 1].code,
                "child not under parent in {steps:?}"
            );
            assert!(
                s.confidence <= steps[d - 1].confidence + 1e-6,
                "confidence grows with depth: {steps:?}"
            );
        }
        assert!((0.0..=1.0 + 1e-6).contains(&s.confidence));
    }
    match &c.label {
        Some(l) => {
            assert_eq!(l.path.last().unwrap().code, l.code);
            assert_eq!(
                &steps[..l.path.len()],
                &l.path[..],
                "label path is a prefix of the full path"
            );
            assert_eq!(l.level, tree.level_name(l.path.len() - 1));
            assert!((c.confidence - l.path.last().unwrap().confidence).abs() < 1e-6);
            // alternatives are leaves with their paths, whatever level the label stops at
            let leaf_level = tree.level_name(tree.depth_count() - 1);
            let guess = c.guess.as_ref().expect("a label implies a guess");
            assert_eq!(guess.path, c.full_path, "the guess is the full path");
            for a in &c.alternatives {
                assert_ne!(a.code, guess.code);
                assert_eq!(a.level, leaf_level);
                assert_eq!(
                    a.path.last().map(|p| p.code.as_str()),
                    Some(a.code.as_str())
                );
            }
        }
        None => {
            assert_eq!(c.decision, Decision::Review);
            assert_eq!(c.confidence, 0.0);
        }
    }
}

#[test]
fn path_is_consistent_for_every_result_and_thresholds_hold_on_test() {
    let dir = tempfile::tempdir().unwrap();
    let report = common::train_synthetic(dir.path(), 7);
    println!("corpus:\n{}", report.corpus);
    println!("calib: {}", serde_json::to_string(&report.calib).unwrap());
    println!("test: {}", serde_json::to_string(&report.test).unwrap());
    println!(
        "test (heads only): {}",
        serde_json::to_string(&report.test_heads_only).unwrap()
    );
    for c in &report.mix_choices_knn {
        println!("mix {c:?}");
    }
    let arts = Artifacts::load(&report.artifact_dir).unwrap();
    let tree = arts.classifier.tree().clone();
    // a few hundred texts: in-distribution, mixed and random
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let mut texts = Vec::new();
    for i in 0..300 {
        let leaf = i % 24;
        let t = match i % 3 {
            0 => common::leaf_text(&mut rng, leaf),
            1 => format!(
                "{}{}",
                common::leaf_text(&mut rng, leaf),
                common::leaf_text(&mut rng, (leaf + 5) % 24)
            ),
            _ => format!("随机文本{i}号"),
        };
        texts.push(t);
    }
    for with_nb in [true, false] {
        let cs = classify_texts(&arts, &texts, with_nb);
        assert_eq!(cs.len(), texts.len());
        for c in &cs {
            check_consistent(&tree, c);
        }
        // in-distribution texts are labeled, mostly auto
        let auto = cs
            .iter()
            .step_by(3)
            .filter(|c| c.decision == Decision::Auto)
            .count();
        assert!(
            auto > 50,
            "only {auto}/100 in-distribution texts auto-accepted"
        );
    }
    // thresholds were fitted on calib for 95 %: precision of auto labels on the unseen test split
    assert!(report.test.examples > 50);
    assert!(
        report.test.auto_coverage > 0.5,
        "auto coverage {}",
        report.test.auto_coverage
    );
    assert!(
        report.test.auto_precision >= 0.93,
        "auto precision {}",
        report.test.auto_precision
    );
    assert!(
        report.calib.auto_precision >= 0.95,
        "calib auto precision {}",
        report.calib.auto_precision
    );
    assert!(
        report.test.label_precision >= 0.93,
        "label precision {}",
        report.test.label_precision
    );
}

#[test]
fn vague_text_abstains() {
    let dir = tempfile::tempdir().unwrap();
    let report = common::train_synthetic(dir.path(), 11);
    let arts = Artifacts::load(&report.artifact_dir).unwrap();
    // the issue's phrases plus phrasings that are not in the vague list
    let vague: Vec<String> = [
        "周转",
        "资金周转",
        "日常经营",
        "补充流动资金",
        "经营资金周转需求",
        "用于公司日常资金周转",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for with_nb in [true, false] {
        for (t, c) in vague.iter().zip(classify_texts(&arts, &vague, with_nb)) {
            assert_eq!(
                c.decision,
                Decision::Review,
                "{t:?} must go to review, got {c:?}"
            );
            if let Some(l) = &c.label {
                assert!(
                    l.path.len() <= 1,
                    "{t:?}: a vague text may at most get a section, got {:?}",
                    l.code
                );
            }
        }
    }
}

#[test]
fn threshold_reaches_target_precision_on_calibrated_synthetic_scores() {
    // confidence p, correct with probability p: precision ≥ 0.9 is reachable at high p
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let pairs: Vec<(f32, bool)> = (0..5000)
        .map(|_| {
            let p: f32 = rand::Rng::random(&mut rng);
            (p, rand::Rng::random::<f32>(&mut rng) < p)
        })
        .collect();
    let t = threshold_for_precision(&pairs, 0.9, 20);
    let sel: Vec<_> = pairs.iter().filter(|(c, _)| *c >= t).collect();
    let prec = sel.iter().filter(|(_, ok)| *ok).count() as f64 / sel.len() as f64;
    assert!(prec >= 0.9, "precision {prec} at threshold {t}");
    assert!(sel.len() > 500, "coverage too small: {}", sel.len());
    assert!(t > 0.7 && t < 0.9, "threshold {t}");
    // unreachable target → never
    let bad: Vec<(f32, bool)> = (0..100).map(|i| (i as f32 / 100.0, i % 2 == 0)).collect();
    assert!(threshold_for_precision(&bad, 0.99, 20) > 1.0);
}

#[test]
fn artifacts_round_trip_and_training_is_deterministic() {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let r1 = common::train_synthetic(d1.path(), 5);
    let r2 = common::train_synthetic(d2.path(), 5);
    assert_eq!(r1.model_version, r2.model_version);
    assert_eq!(r1.corpus_version, r2.corpus_version);
    let a1 = Artifacts::load(&r1.artifact_dir).unwrap();
    let a2 = Artifacts::load(&r2.artifact_dir).unwrap();
    assert_eq!(a1.classifier.calibrations(), a2.classifier.calibrations());
    let b1 = std::fs::read(r1.artifact_dir.join("model.safetensors")).unwrap();
    let b2 = std::fs::read(r2.artifact_dir.join("model.safetensors")).unwrap();
    assert_eq!(b1, b2, "same seed, same weights");
    // round trip: save the loaded artifacts again and reload; identical classifications
    let d3 = tempfile::tempdir().unwrap();
    a1.save(d3.path()).unwrap();
    let a3 = Artifacts::load(d3.path()).unwrap();
    assert_eq!(
        std::fs::read(d3.path().join("model.safetensors")).unwrap(),
        b1
    );
    assert_eq!(a3.meta.model_version, r1.model_version);
    assert_eq!(
        a3.exemplars.as_ref().unwrap().len(),
        a1.exemplars.as_ref().unwrap().len()
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let texts: Vec<String> = (0..40)
        .map(|i| common::leaf_text(&mut rng, i % 24))
        .collect();
    assert_eq!(
        classify_texts(&a1, &texts, true),
        classify_texts(&a3, &texts, true)
    );
    // a different seed gives a different split and model
    let d4 = tempfile::tempdir().unwrap();
    let r4 = common::train_synthetic(d4.path(), 6);
    assert_ne!(r4.model_version, r1.model_version);
}

#[test]
fn lexical_voter_is_rebuilt_from_the_exemplar_texts() {
    let d = tempfile::tempdir().unwrap();
    let r = common::train_synthetic(d.path(), 9);
    let a1 = Artifacts::load(&r.artifact_dir).unwrap();
    let lx = a1.classifier.lexical().expect("lexical voter");
    assert_eq!(lx.len(), a1.exemplars.as_ref().unwrap().len());
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let texts: Vec<String> = (0..24).map(|i| common::leaf_text(&mut rng, i)).collect();
    let with_vectors = classify_texts(&a1, &texts, false);
    // shipped artifacts carry the exemplar texts without their vectors: same heads-only results
    std::fs::remove_file(r.artifact_dir.join("exemplars.safetensors")).unwrap();
    let a2 = Artifacts::load(&r.artifact_dir).unwrap();
    assert!(a2.exemplars.is_none());
    assert!(a2.classifier.lexical().is_some());
    assert_eq!(classify_texts(&a2, &texts, false), with_vectors);
    // a text built from training characters has lexical neighbours
    let nb = a2.classifier.lexical().unwrap().search(&texts[5], 3);
    assert!(!nb.is_empty());
    assert!(nb.iter().all(|n| n.source == "lexical"));
    // without the texts the lexical voter cannot be rebuilt: a clear error
    std::fs::remove_file(r.artifact_dir.join("exemplars.jsonl")).unwrap();
    let e = Artifacts::load(&r.artifact_dir).err().expect("load fails");
    assert!(e.to_string().contains("exemplars.jsonl"), "{e}");
}

#[test]
fn missing_artifact_piece_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let r = common::train_synthetic(d.path(), 8);
    std::fs::remove_file(r.artifact_dir.join("model.safetensors")).unwrap();
    let e = Artifacts::load(&r.artifact_dir).err().expect("load fails");
    assert!(e.to_string().contains("model.safetensors"), "{e}");
}

#[test]
fn unknown_code_in_custom_examples_names_the_line() {
    let tree = common::synthetic_tree(false);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ex.jsonl");
    let mut f = std::fs::File::create(&p).unwrap();
    writeln!(f, r#"{{"text": "甲乙丙", "code": "1000"}}"#).unwrap();
    writeln!(
        f,
        r#"{{"text": "丁戊", "code": "A", "source": "reviewed"}}"#
    )
    .unwrap();
    writeln!(f, r#"{{"text": "己庚", "code": "9999"}}"#).unwrap();
    let e = load_examples_jsonl(&p, &tree, 1, SplitRatios::default()).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(":3:") && msg.contains("9999") && msg.contains("code"),
        "{msg}"
    );
    // empty text and bad JSON are errors too
    std::fs::write(&p, "{\"text\": \"\", \"code\": \"A\"}\n").unwrap();
    assert!(load_examples_jsonl(&p, &tree, 1, SplitRatios::default())
        .unwrap_err()
        .to_string()
        .contains(":1:"));
    std::fs::write(&p, "{\"text\": \"x\", \"code\": \"A\"}\nnot json\n").unwrap();
    assert!(load_examples_jsonl(&p, &tree, 1, SplitRatios::default())
        .unwrap_err()
        .to_string()
        .contains(":2:"));
    // valid lines load, reviewed ones are train
    std::fs::write(&p, "{\"text\": \"x\", \"code\": \"A\", \"source\": \"reviewed\"}\n{\"text\": \"y\", \"code\": \"1000\"}\n").unwrap();
    let ex = load_examples_jsonl(&p, &tree, 1, SplitRatios::default()).unwrap();
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[0].source, Source::Reviewed);
    assert_eq!(ex[0].split, Split::Train);
}

#[test]
fn embedding_cache_avoids_re_embedding() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    struct Counting(HashEmbedder, AtomicUsize);
    impl EmbedFn for Counting {
        fn embed(&self, t: &[&str]) -> Result<Vec<Vec<f32>>, TrainError> {
            self.1.fetch_add(t.len(), Ordering::SeqCst);
            self.0.embed(t)
        }
        fn dim(&self) -> usize {
            self.0.dim()
        }
        fn version(&self) -> String {
            self.0.version()
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let e = Counting(HashEmbedder::default(), AtomicUsize::new(0));
    let a = embed_all(&e, &["甲", "乙", "甲"], Some(dir.path()), 2).unwrap();
    assert_eq!(e.1.load(Ordering::SeqCst), 2, "duplicates embedded once");
    let b = embed_all(&e, &["乙", "丙", "甲"], Some(dir.path()), 2).unwrap();
    assert_eq!(
        e.1.load(Ordering::SeqCst),
        3,
        "only the new text is embedded"
    );
    assert_eq!(a[0], b[2]);
    assert_eq!(a[1], b[0]);
}

#[test]
fn include_items_split_into_head_and_sub_terms() {
    use touxiang_training::corpus::{clean_definition, parse_include};
    let (h, s) = parse_include("早籼稻：种用早籼稻、其他早籼稻");
    assert_eq!(h.as_deref(), Some("早籼稻"));
    assert_eq!(s, vec!["种用早籼稻", "早籼稻"]);
    let (h, s) = parse_include(
        "高粱：红粒高粱（种用红粒高粱、其他红粒高粱）、其他高粱（其他种用高粱、其他未列明高粱）",
    );
    assert_eq!(h.as_deref(), Some("高粱"));
    assert!(
        s.contains(&"红粒高粱".to_string()) && s.contains(&"种用红粒高粱".to_string()),
        "{s:?}"
    );
    assert!(!s.iter().any(|x| x.contains("未列明")), "{s:?}");
    assert_eq!(parse_include("其他未列明稻谷"), (None, vec![]));
    assert_eq!(
        parse_include("物镜（部分）：摄影机用物镜").0.as_deref(),
        Some("物镜")
    );
    // Brackets: another name → both names; a qualifier → one text with it (the bare term is
    // another class's product, the bare qualifier names nothing).
    assert_eq!(
        parse_include("裸燕麦（莜麦）"),
        (Some("裸燕麦".to_string()), vec!["莜麦".to_string()])
    );
    let (h, s) = parse_include("水下管汇：压缩机（石油钻采专用）、分离器（石油钻采专用）");
    assert_eq!(h.as_deref(), Some("水下管汇"));
    assert_eq!(s, vec!["压缩机（石油钻采专用）", "分离器（石油钻采专用）"]);
    assert_eq!(
        parse_include("硫铝酸盐水泥（膨胀、自应力）").0.as_deref(),
        Some("硫铝酸盐水泥（膨胀、自应力）")
    );
    assert_eq!(
        parse_include("一般自行车（不含跑车、山地车）"),
        (Some("一般自行车".to_string()), vec![])
    );
    let (h, s) = parse_include("高性能不锈钢制品（高性能是指用于核电、航空航天及军工装备、海洋工程、生物医学工程用（二类以上");
    assert_eq!(h.as_deref(), Some("高性能不锈钢制品"));
    assert!(
        s.is_empty(),
        "a long description is no term of its own: {s:?}"
    );
    // Goods listed under a trade heading are traded, not made.
    let (h, s) = parse_include("面粉批发和进出口：精面粉、专用面、普通面及其他面粉批发和进出口");
    assert_eq!(h.as_deref(), Some("面粉批发和进出口"));
    assert_eq!(
        s,
        vec![
            "精面粉批发和进出口",
            "专用面批发和进出口",
            "普通面及其他面粉批发和进出口"
        ]
    );
    assert_eq!(
        clean_definition("指对各种农作物的种植。").as_deref(),
        Some("各种农作物的种植")
    );
    assert_eq!(clean_definition("本门类包括01～05大类。"), None);
}

#[test]
fn tree_rejects_bad_taxonomies() {
    let r = |c: &str, p: Option<&str>| (c.to_string(), c.to_string(), p.map(str::to_string));
    assert!(
        Tree::from_rows("t", vec![], &[r("A", None), r("A", None)], false)
            .unwrap_err()
            .to_string()
            .contains("duplicate")
    );
    assert!(Tree::from_rows("t", vec![], &[r("A", Some("Z"))], false)
        .unwrap_err()
        .to_string()
        .contains("\"Z\""));
    assert!(
        Tree::from_rows("t", vec![], &[r("A", Some("B")), r("B", Some("A"))], false)
            .unwrap_err()
            .to_string()
            .contains("cycle")
    );
}

/// `../shared/datasets`; a test that reads it fails when it is absent (it is `#[ignore]`d and
/// run by `.ci/shared-data-tests` where the data is present).
fn shared() -> std::path::PathBuf {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets");
    assert!(
        p.exists(),
        "{} absent: this test needs the shared datasets",
        p.display()
    );
    p
}

#[test]
#[ignore = "needs ../shared/datasets (NBS notes); .ci/shared-data-tests runs it"]
fn gbt_corpus_covers_every_class_and_never_leaks_held_out_items() {
    let root = shared();
    let tree = Tree::from_taxonomy(touxiang_datasets::Taxonomy::gbt4754(), true).unwrap();
    let corpus = build_corpus(
        &root.join("gbt4754-2017/notes.jsonl"),
        &tree,
        &CorpusOptions::default(),
    )
    .unwrap();
    let st = corpus.stats();
    println!("{st}");
    let train_codes: std::collections::HashSet<&str> = corpus
        .split(Split::Train)
        .iter()
        .map(|e| e.code.as_str())
        .collect();
    for &l in tree.leaves() {
        assert!(
            train_codes.contains(tree.nodes[l].code.as_str()),
            "class {} has no training example",
            tree.nodes[l].code
        );
    }
    let held: std::collections::HashSet<&str> = corpus
        .examples
        .iter()
        .filter(|e| e.split == Split::Test)
        .map(|e| e.text.as_str())
        .collect();
    assert!(held.len() > 1000);
    for e in corpus
        .examples
        .iter()
        .filter(|e| e.source == Source::Template)
    {
        assert_eq!(e.split, Split::Train);
        assert!(
            !held.contains(e.item.as_str()),
            "template {:?} built on held-out item",
            e.text
        );
    }
    for e in corpus.examples.iter().filter(|e| e.split == Split::Test) {
        assert!(
            matches!(e.source, Source::Include | Source::Exclude),
            "{e:?}"
        );
    }
    let total_gen = st
        .by_source
        .get("template")
        .map(|m| m.values().sum::<usize>())
        .unwrap_or(0);
    let total_role = st
        .by_source
        .get("role")
        .map(|m| m.values().sum::<usize>())
        .unwrap_or(0);
    // Generated phrasings (templates, role-labeled loan lines, vague phrases) are counted as
    // such; the role lines are the larger share by design (loan text is what is classified).
    assert!(total_gen > 0 && total_role > 20_000, "{st}");
    assert!(st.generated_share < 0.75, "{st}");
    // same seed → same corpus; other seed → other split
    let again = build_corpus(
        &root.join("gbt4754-2017/notes.jsonl"),
        &tree,
        &CorpusOptions::default(),
    )
    .unwrap();
    assert_eq!(corpus.version(), again.version());
}

#[test]
fn lendingclub_flat_taxonomy_from_csv() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("loans.csv");
    std::fs::write(
        &p,
        "loan_id,purpose,title,desc\nL1,car,New car,Buying a used car\nL2,wedding,,Our wedding\nL3,car,,\nL4,debt_consolidation,Consolidate,\n",
    )
    .unwrap();
    let (tax, ex, skipped) = lendingclub_examples(&p, 1, SplitRatios::default()).unwrap();
    assert_eq!(tax.len(), 3);
    assert_eq!(skipped, 1);
    assert_eq!(ex.len(), 3);
    assert_eq!(ex[0].text, "New car. Buying a used car");
    assert_eq!(ex[1].text, "Our wedding");
    assert!(tax.contains("debt_consolidation"));
    std::fs::write(&p, "loan_id,title,desc\nL1,a,b\n").unwrap();
    assert!(lendingclub_examples(&p, 1, SplitRatios::default())
        .unwrap_err()
        .to_string()
        .contains("purpose"));
}

#[test]
fn a_flat_taxonomy_can_decide_auto_and_an_impossible_auto_level_is_refused() {
    // 8 well-separated classes on one level (a bank's own flat taxonomy).
    let rows: Vec<(String, String, Option<String>)> = (0..8)
        .map(|i| (format!("P{i}"), format!("用途{i}"), None))
        .collect();
    let tree = Tree::from_rows("flat", vec!["purpose".into()], &rows, false).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::synthetic_config_for(tree, dir.path(), 3, 60);
    assert_eq!(
        cfg.targets.auto_min_depth, 0,
        "a one-level taxonomy decides auto at its only level"
    );
    let report = train(&cfg, &HashEmbedder::default()).unwrap();
    assert!(
        report.test.auto_coverage > 0.5 && report.test.auto_precision >= 0.9,
        "separable classes are decided auto: {:?}",
        report.test
    );
    // Auto from a level the taxonomy does not have: refused, naming the levels.
    cfg.targets.auto_min_depth = 1;
    let e = train(&cfg, &HashEmbedder::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("depth 1") && e.contains("1 level"), "{e}");
}
