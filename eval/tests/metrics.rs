//! Every metric against small hand-computed cases.

use touxiang_datasets::Taxonomy;
use touxiang_eval::metrics::{
    calibration, correct_at_label, curve, evaluate, macro_f1, threshold_for_precision,
    MetricsOptions,
};
use touxiang_eval::{EvalError, EvalRecord};

/// A ─ A1 ─ A11 ─ {A111, A112}
///        └ A12 ─ A121
///   └ A2 ─ A21 ─ A211
/// B ─ B1 ─ B11 ─ B111
fn tax() -> Taxonomy {
    let csv = "code,name,parent,level\n\
        A,农业,,section\nA1,种植,A,division\nA11,谷物,A1,group\nA111,稻谷,A11,class\n\
        A112,小麦,A11,class\nA12,蔬菜,A1,group\nA121,蔬菜种植,A12,class\n\
        A2,林业,A,division\nA21,林木,A2,group\nA211,育苗,A21,class\n\
        B,采矿,,section\nB1,煤炭,B,division\nB11,烟煤,B1,group\nB111,烟煤开采,B11,class\n";
    Taxonomy::from_csv_reader("toy", csv.as_bytes()).unwrap()
}

fn p(codes: &[&str]) -> Vec<String> {
    codes.iter().map(|c| c.to_string()).collect()
}

fn rec(gold: &str, pred: &[&str], full: &[&str], conf: f32, auto: bool) -> EvalRecord {
    EvalRecord {
        text: format!("text of {gold}"),
        gold: gold.into(),
        pred_path: p(pred),
        full_path: p(full),
        pred_conf: conf,
        level_probs: vec![conf; full.len()],
        top5: Vec::new(),
        auto,
    }
}

fn close(a: Option<f64>, b: f64) {
    let a = a.expect("a value");
    assert!((a - b).abs() < 1e-9, "{a} != {b}");
}

#[test]
fn partial_credit_is_share_of_gold_path_matched_root_first() {
    let t = tax();
    let recs = vec![
        // abstains at the division: 2 of 4
        rec(
            "A111",
            &["A", "A1"],
            &["A", "A1", "A11", "A112"],
            0.9,
            false,
        ),
        // wrong group: 2 of 4
        rec("A111", &["A", "A1", "A12", "A121"], &[], 0.6, false),
        // wrong section: 0
        rec("A111", &["B"], &[], 0.5, false),
        // gold at division, prediction deeper and consistent: 2 of 2
        rec("A1", &["A", "A1", "A11", "A111"], &[], 0.7, false),
    ];
    let m = evaluate(&t, &recs, &MetricsOptions::default()).unwrap();
    assert_eq!(m.partial_credit.n, 4);
    close(m.partial_credit.value, (0.5 + 0.5 + 0.0 + 1.0) / 4.0);
}

#[test]
fn level_accuracy_coverage_and_answered() {
    let t = tax();
    let recs = vec![
        rec(
            "A111",
            &["A", "A1"],
            &["A", "A1", "A11", "A111"],
            0.9,
            false,
        ),
        rec("A112", &["A", "A1", "A11", "A112"], &[], 0.8, true),
        rec("B111", &["A", "A2", "A21", "A211"], &[], 0.4, false),
        rec("A1", &["A", "A1", "A12"], &[], 0.7, false), // gold at division: not in group/class
    ];
    let m = evaluate(&t, &recs, &MetricsOptions::default()).unwrap();
    let sec = &m.levels[0];
    assert_eq!((sec.level.as_str(), sec.n), ("section", 4));
    close(sec.accuracy, 3.0 / 4.0);
    close(sec.coverage, 1.0);
    let div = &m.levels[1];
    assert_eq!(div.n, 4);
    close(div.accuracy, 3.0 / 4.0);
    let class = &m.levels[3];
    assert_eq!((class.level.as_str(), class.n), ("class", 3));
    // record 0 abstained above the class: wrong; record 1 right; record 2 wrong
    close(class.accuracy, 1.0 / 3.0);
    close(class.coverage, 2.0 / 3.0);
    close(class.accuracy_answered, 1.0 / 2.0);
    // forced: record 0's full path is right at the class
    close(class.accuracy_forced, 2.0 / 3.0);
    // returned-label precision: 0 (A1 ✓), 1 ✓, 2 ✗, 3 (A12 under gold A1 ✓) = 3/4
    close(m.label_precision, 0.75);
    // own decisions: one auto, correct
    assert_eq!(m.operating_point.accepted, 1);
    close(m.operating_point.precision, 1.0);
    close(Some(m.operating_point.coverage), 0.25);
}

#[test]
fn correct_at_label_follows_the_returned_level() {
    let t = tax();
    assert!(correct_at_label(&t, &p(&["A", "A1"]), "A111"));
    assert!(!correct_at_label(&t, &p(&["A", "A2"]), "A111"));
    assert!(correct_at_label(&t, &p(&["A", "A1", "A11"]), "A1"));
    assert!(!correct_at_label(&t, &p(&["A", "A2", "A21"]), "A1"));
    assert!(!correct_at_label(&t, &[], "A1"));
}

#[test]
fn macro_f1_hand_computed() {
    // a: tp 1, fp 0, fn 1 → 2/3; b: tp 1, fp 1, fn 0 → 2/3; c: tp 0 → 0
    let pairs = [
        ("a", Some("a")),
        ("a", Some("b")),
        ("b", Some("b")),
        ("c", None),
    ];
    let (f1, k) = macro_f1(&pairs);
    assert_eq!(k, 3);
    close(f1, (2.0 / 3.0 + 2.0 / 3.0 + 0.0) / 3.0);
    // a prediction of a code never gold still counts as a (zero) class
    let (f1, k) = macro_f1(&[("a", Some("a")), ("a", Some("z"))]);
    assert_eq!(k, 2);
    close(f1, (2.0 / 3.0 + 0.0) / 2.0);
    assert_eq!(macro_f1(&[]).0, None);
}

#[test]
fn macro_f1_per_level_through_evaluate() {
    let t = tax();
    let recs = vec![
        rec("A111", &["A"], &[], 0.5, false),
        rec("B111", &["B"], &[], 0.5, false),
        rec("B111", &["A"], &[], 0.5, false),
    ];
    let m = evaluate(&t, &recs, &MetricsOptions::default()).unwrap();
    // section: A tp1 fp1 fn0 → 2/3; B tp1 fp0 fn1 → 2/3
    close(m.levels[0].macro_f1, 2.0 / 3.0);
    // division: nobody answered → golds A1, B1 both 0
    close(m.levels[1].macro_f1, 0.0);
    assert_eq!(m.levels[1].f1_codes, 2);
}

#[test]
fn ece_hand_computed() {
    // 15 bins: 0.9 → bin 13, 0.2 → bin 3, 0.55 → bin 8
    let pairs = [(0.9, true), (0.9, false), (0.2, false), (0.55, true)];
    let c = calibration(&pairs, 15);
    let expect = 0.5 * (0.9f64 - 0.5).abs() + 0.25 * 0.2 + 0.25 * (1.0 - 0.55);
    assert!((c.ece.unwrap() - expect).abs() < 1e-6, "{:?}", c.ece);
    assert_eq!(c.bins.len(), 15);
    assert_eq!(c.bins[13].n, 2);
    assert_eq!(c.bins[13].accuracy, Some(0.5));
    // confidence 1.0 goes to the last bin
    assert_eq!(calibration(&[(1.0, true)], 15).bins[14].n, 1);
    // perfectly calibrated
    let perfect = [(1.0, true), (1.0, true), (0.0, false)];
    assert!(calibration(&perfect, 15).ece.unwrap() < 1e-9);

    // through evaluate: the same four labels, one abstention (not counted)
    let t = tax();
    let recs = vec![
        rec("A111", &["A", "A1", "A11", "A111"], &[], 0.9, false),
        rec("A111", &["A", "A1", "A11", "A112"], &[], 0.9, false),
        rec("B111", &["A"], &[], 0.2, false),
        rec("B111", &["B", "B1"], &[], 0.55, false),
        rec("B111", &[], &[], 0.0, false),
    ];
    let m = evaluate(&t, &recs, &MetricsOptions::default()).unwrap();
    assert_eq!(m.calibration.n, 4);
    assert!((m.calibration.ece.unwrap() - expect).abs() < 1e-6);
}

#[test]
fn curve_and_target_threshold_hand_computed() {
    let pairs = [(0.95, true), (0.9, true), (0.8, false), (0.6, true)];
    let total = 5; // one record without a label
    let c = curve(&pairs, total, 0.05);
    assert_eq!(c.len(), 21);
    let at = |t: f64| c.iter().find(|p| (p.threshold - t).abs() < 1e-9).unwrap();
    assert_eq!(at(0.85).accepted, 2);
    assert!((at(0.85).coverage - 0.4).abs() < 1e-9);
    assert_eq!(at(0.85).precision, Some(1.0));
    assert_eq!(at(0.7).accepted, 3);
    close(at(0.7).precision, 2.0 / 3.0);
    assert_eq!(at(0.0).accepted, 4);
    assert_eq!(at(1.0).accepted, 0);
    assert_eq!(at(1.0).precision, None);
    // 98 %: only the top two
    let t98 = threshold_for_precision(&pairs, total, 0.98).unwrap();
    assert!((t98.threshold - 0.9).abs() < 1e-6);
    assert_eq!(t98.accepted, 2);
    assert!((t98.coverage - 0.4).abs() < 1e-9);
    // 70 %: everything (3/4 = 75 %) beats 3/3 at 0.9 on coverage
    let t70 = threshold_for_precision(&pairs, total, 0.7).unwrap();
    assert!((t70.threshold - 0.6).abs() < 1e-6);
    assert_eq!(t70.accepted, 4);
    // unreachable
    assert!(threshold_for_precision(&[(0.9, false)], 1, 0.98).is_none());
}

#[test]
fn top5_and_confusions() {
    let t = tax();
    let mut a = rec("A111", &["A", "A1", "A11", "A112"], &[], 0.6, false);
    a.top5 = p(&["A112", "A111", "A121"]);
    let mut b = rec("A111", &["A", "A1", "A11", "A112"], &[], 0.6, false);
    b.top5 = p(&["A112", "A121"]);
    let mut c = rec("B111", &["B", "B1", "B11", "B111"], &[], 0.6, false);
    c.top5 = p(&["B111"]);
    let d = rec("A121", &["A", "A2", "A21", "A211"], &[], 0.6, false); // no top5: not counted
    let m = evaluate(&t, &[a, b, c, d], &MetricsOptions::default()).unwrap();
    assert_eq!(m.top5_leaf.n, 3);
    close(m.top5_leaf.value, 2.0 / 3.0);
    close(m.top1_leaf.value, 1.0 / 3.0);
    let class = &m.confusions[0];
    assert_eq!(class.level, "class");
    assert_eq!(class.errors, 3);
    assert_eq!(
        (class.pairs[0].gold.as_str(), class.pairs[0].pred.as_str()),
        ("A111", "A112")
    );
    assert_eq!(class.pairs[0].count, 2);
    assert_eq!(class.pairs[0].gold_name, "稻谷");
    let div = &m.confusions[1];
    assert_eq!(div.level, "division");
    assert_eq!(div.errors, 1);
    assert_eq!(
        (div.pairs[0].gold.as_str(), div.pairs[0].pred.as_str()),
        ("A1", "A2")
    );
}

#[test]
fn vague_gold_is_reported_apart_and_labels_on_it_are_wrong() {
    let t = tax();
    let recs = vec![
        rec("__vague__", &[], &["A", "A1", "A11", "A111"], 0.0, false),
        rec("__vague__", &["A"], &[], 0.99, true),
        rec("A111", &["A"], &[], 0.99, true),
    ];
    let m = evaluate(&t, &recs, &MetricsOptions::default()).unwrap();
    assert_eq!(m.vague.n, 2);
    close(m.vague.abstained, 0.5);
    close(m.vague.auto, 0.5);
    assert_eq!(m.levels[0].n, 1);
    close(m.operating_point.precision, 0.5);
    assert_eq!(m.calibration.n, 2);
    close(m.label_precision, 0.5);
}

#[test]
fn bad_records_are_errors_naming_the_record() {
    let t = tax();
    let opts = MetricsOptions::default();
    let cases = [
        (rec("X9", &["A"], &[], 0.5, false), "unknown code \"X9\""),
        (rec("A111", &["A", "B1"], &[], 0.5, false), "not a child"),
        (rec("A111", &["A1"], &[], 0.5, false), "depth 1"),
        (rec("A111", &["A"], &["A", "Q"], 0.5, false), "full_path"),
        (
            rec("A111", &["A"], &[], f32::NAN, false),
            "not a probability",
        ),
    ];
    for (r, needle) in cases {
        let ok = rec("A111", &["A"], &[], 0.5, false);
        let err = evaluate(&t, &[ok, r], &opts).unwrap_err();
        assert!(
            matches!(err, EvalError::BadRecord { index: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains(needle), "{err} lacks {needle}");
    }
}

#[test]
fn record_from_prediction_truncates_at_the_label() {
    use touxiang_datasets::Decision;
    use touxiang_training::Prediction;
    let pred = Prediction {
        text: "采购稻谷".into(),
        gold_code: "A111".into(),
        pred_path: p(&["A", "A1", "A11", "A112"]),
        label_code: Some("A1".into()),
        label_depth: Some(1),
        level_probs: vec![0.99, 0.95, 0.6, 0.4],
        top5: vec![("A112".into(), 0.4), ("A111".into(), 0.35)],
        confidence: 0.95,
        decision: Decision::Auto,
    };
    let r = EvalRecord::from(&pred);
    assert_eq!(r.pred_path, p(&["A", "A1"]));
    assert_eq!(r.full_path.len(), 4);
    assert_eq!(r.top5, p(&["A112", "A111"]));
    assert!(r.auto);
    assert_eq!(r.pred_conf, 0.95);
    let vague = Prediction {
        pred_path: vec![],
        label_code: None,
        label_depth: None,
        level_probs: vec![],
        decision: Decision::Review,
        ..pred
    };
    let r = EvalRecord::from(&vague);
    assert!(r.pred_path.is_empty() && r.full_path.is_empty() && !r.auto);
    let m = evaluate(&tax(), &[r], &MetricsOptions::default()).unwrap();
    close(m.levels[0].coverage, 0.0);
}

#[test]
fn flat_taxonomy_has_one_level_and_one_confusion_table() {
    let csv = "code,name,parent\ncar,car,\nhouse,house,\nother,other,\n";
    let t = Taxonomy::from_csv_reader("flat", csv.as_bytes()).unwrap();
    let recs = vec![
        rec("car", &["car"], &[], 0.9, true),
        rec("house", &["car"], &[], 0.6, false),
        rec("other", &["other"], &[], 0.7, false),
    ];
    let m = evaluate(&t, &recs, &MetricsOptions::default()).unwrap();
    assert_eq!(m.levels.len(), 1);
    close(m.levels[0].accuracy, 2.0 / 3.0);
    assert_eq!(m.confusions.len(), 1);
    assert_eq!(m.confusions[0].pairs[0].gold, "house");
}

#[test]
fn record_from_classification_keeps_label_path_and_leaf_top5() {
    use touxiang_datasets::{Decision, PathStep};
    use touxiang_training::{Alternative, Classification, Label};
    let step = |c: &str, conf: f32| PathStep {
        code: c.into(),
        name: String::new(),
        confidence: conf,
    };
    let full = vec![
        step("A", 0.99),
        step("A1", 0.9),
        step("A11", 0.8),
        step("A112", 0.7),
    ];
    let alt = |c: &str| Alternative {
        code: c.into(),
        level: "class".into(),
        name: String::new(),
        confidence: 0.1,
        path: Vec::new(),
    };
    let leaf = Classification {
        label: Some(Label {
            code: "A112".into(),
            level: "class".into(),
            name: String::new(),
            path: full.clone(),
        }),
        confidence: 0.7,
        decision: Decision::Review,
        alternatives: vec![alt("A111"), alt("A121")],
        guess: Some(Label {
            code: "A112".into(),
            level: "class".into(),
            name: String::new(),
            path: full.clone(),
        }),
        vote_path: vec![],
        neighbors: vec![],
        keywords: vec![],
        full_path: full.clone(),
    };
    let r = EvalRecord::from_classification(&leaf, "A111", "采购稻谷");
    assert_eq!(r.pred_path.len(), 4);
    assert_eq!(r.top5, p(&["A112", "A111", "A121"]));
    assert_eq!(r.level_probs, vec![0.99, 0.9, 0.8, 0.7]);
    assert!(!r.auto);
    // a label above the leaf: the top-5 still lists leaves (the guess, then the alternatives)
    let coarse = Classification {
        label: Some(Label {
            code: "A1".into(),
            level: "division".into(),
            name: String::new(),
            path: full[..2].to_vec(),
        }),
        confidence: 0.9,
        decision: Decision::Auto,
        ..leaf
    };
    let r = EvalRecord::from_classification(&coarse, "A111", "采购稻谷");
    assert_eq!(r.pred_path, p(&["A", "A1"]));
    assert_eq!(r.top5, p(&["A112", "A111", "A121"]));
    assert!(r.auto);
    let m = evaluate(&tax(), &[r], &MetricsOptions::default()).unwrap();
    assert_eq!(m.top5_leaf.n, 1);
    close(m.levels[1].accuracy, 1.0);
    close(m.levels[3].accuracy_forced, 0.0);
}

#[test]
fn top1_curve_and_calibration_exist_when_every_label_is_withheld() {
    let t = tax();
    // nothing returned (pred_path empty); the best guesses are right at 0.9 and 0.8, wrong at 0.3
    let mut recs = vec![
        rec("A111", &[], &["A", "A1", "A11", "A111"], 0.9, false),
        rec("A112", &[], &["A", "A1", "A11", "A112"], 0.8, false),
        rec("B111", &[], &["A", "A2", "A21", "A211"], 0.3, false),
    ];
    recs.iter_mut().for_each(|r| r.pred_conf = 0.0);
    let opts = MetricsOptions {
        target_precision: 0.98,
        ..MetricsOptions::default()
    };
    let m = evaluate(&t, &recs, &opts).unwrap();
    assert_eq!(m.labeled, 0.0);
    assert!(m.calibration.ece.is_none());
    assert!(m.at_target.is_none());
    // the top-1 view: accepting ≥ 0.8 takes 2 of 3, both right
    let at = m.at_target_top1.expect("top-1 target reached");
    assert_eq!(at.accepted, 2);
    close(Some(at.coverage), 2.0 / 3.0);
    close(at.precision, 1.0);
    assert!(!m.curve_top1.is_empty());
    // ECE over the three guesses, one bin each: (|1-0.9| + |1-0.8| + |0-0.3|) / 3
    let ece = m.calibration_top1.ece.expect("top-1 ECE");
    assert!((ece - (0.1 + 0.2 + 0.3) / 3.0).abs() < 1e-6, "{ece}");
}
