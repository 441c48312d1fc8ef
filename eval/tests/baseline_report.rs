//! The baseline learns a separable toy problem; the harness produces reports that are written
//! and parse back.

use std::io::Write;

use touxiang_datasets::Taxonomy;
use touxiang_eval::{
    eval_examples, eval_jsonl, load_labeled_jsonl, read_report, write_report, BaselineConfig,
    BaselineTrainSet, EvalError, EvalOptions, EvalRecord, LabeledText, TfidfBaseline,
};

fn tax() -> Taxonomy {
    let csv = "code,name,parent,level\n\
        A,农业,,section\nA1,种植,A,division\nA11,谷物,A1,group\nA111,稻谷种植,A11,class\n\
        A112,小麦种植,A11,class\nB,采矿,,section\nB1,煤炭,B,division\nB11,烟煤,B1,group\n\
        B111,烟煤开采,B11,class\nC,制造,,section\nC1,汽车,C,division\nC11,整车,C1,group\n\
        C111,汽车整车制造,C11,class\n";
    Taxonomy::from_csv_reader("toy", csv.as_bytes()).unwrap()
}

fn lt(text: &str, code: &str) -> LabeledText {
    LabeledText::new(text, code)
}

/// Four separable classes, each marked by its own key phrase inside varying filler.
fn toy_data(n_per: usize, offset: usize) -> Vec<LabeledText> {
    let keys = [
        ("稻谷", "A111"),
        ("小麦", "A112"),
        ("煤矿", "B111"),
        ("汽车", "C111"),
    ];
    let fillers = [
        "用于", "支付", "采购", "扩大", "购买", "建设", "补充", "项目",
    ];
    let mut out = Vec::new();
    for i in 0..n_per {
        for (k, code) in keys {
            let a = fillers[(i + offset) % fillers.len()];
            let b = fillers[(i * 3 + offset + 1) % fillers.len()];
            out.push(lt(&format!("{a}{k}{b}资金{}", i + offset), code));
        }
    }
    out
}

#[test]
fn baseline_learns_a_separable_toy_problem() {
    let t = tax();
    let train = toy_data(40, 0);
    let calib = toy_data(10, 100);
    let cfg = BaselineConfig {
        epochs: 8,
        ..BaselineConfig::default()
    };
    let model = TfidfBaseline::train(&t, &train, &calib, &cfg).unwrap();
    let st = model.stats();
    assert_eq!(st.train_examples, 160);
    assert_eq!(st.calib_examples, 40);
    assert_eq!(st.leaves, 4);
    assert!(
        st.epoch_loss.last() < st.epoch_loss.first(),
        "{:?}",
        st.epoch_loss
    );
    let test = toy_data(10, 500);
    let recs = model.predict_labeled(&test);
    let correct = recs
        .iter()
        .filter(|r| r.pred_path.last() == Some(&r.gold))
        .count();
    assert_eq!(correct, test.len(), "all held-out toy texts right");
    for r in &recs {
        assert_eq!(r.pred_path.len(), 4);
        assert_eq!(r.pred_path, r.full_path);
        assert_eq!(r.top5.len(), 4);
        assert_eq!(r.top5[0], *r.pred_path.last().unwrap());
        assert!(r.pred_conf > 0.25 && r.pred_conf <= 1.0);
        // step confidences: ancestors hold at least the leaf's mass
        assert!(r.level_probs.windows(2).all(|w| w[0] + 1e-5 >= w[1]));
        assert!((r.level_probs[3] - r.pred_conf).abs() < 1e-5);
    }
    // a threshold was fitted and some texts clear it
    assert!(st.auto_threshold.is_some());
    assert!(recs.iter().any(|r| r.auto));
}

#[test]
fn baseline_trains_towards_leaves_under_a_coarse_code() {
    let t = tax();
    // the mining texts are only labeled at the section: still learned as its only leaf
    let mut train = toy_data(30, 0);
    for x in train.iter_mut().filter(|x| x.code == "B111") {
        x.code = "B".into();
    }
    train.push(lt("资金周转", "__vague__"));
    let model = TfidfBaseline::train(&t, &train, &[], &BaselineConfig::default()).unwrap();
    assert_eq!(model.stats().skipped_vague, 1);
    assert!(model.stats().calib_examples > 0, "a share held out");
    let r = &model.predict(&["采购煤矿设备"])[0];
    assert_eq!(r.pred_path.last().map(String::as_str), Some("B111"));
}

#[test]
fn baseline_rejects_unknown_codes_and_empty_training() {
    let t = tax();
    let err =
        TfidfBaseline::train(&t, &[lt("x", "Z9")], &[], &BaselineConfig::default()).unwrap_err();
    assert!(err.to_string().contains("Z9"), "{err}");
    let err = TfidfBaseline::train(&t, &[], &[], &BaselineConfig::default()).unwrap_err();
    assert!(matches!(err, EvalError::Invalid(_)), "{err}");
}

/// A fake system: right on the first three classes, always "A112" on the mining texts.
fn fake_system(texts: &[&str]) -> Result<Vec<EvalRecord>, String> {
    Ok(texts
        .iter()
        .map(|t| {
            let leaf = if t.contains("稻谷") {
                "A111"
            } else if t.contains("汽车") {
                "C111"
            } else {
                "A112"
            };
            let path: Vec<String> = tax().path(leaf).iter().map(|n| n.code.clone()).collect();
            EvalRecord {
                pred_path: path.clone(),
                full_path: path,
                pred_conf: 0.9,
                top5: vec![leaf.to_string()],
                auto: true,
                ..EvalRecord::default()
            }
        })
        .collect())
}

#[test]
fn report_is_written_and_parses() {
    let t = tax();
    let data = toy_data(5, 900);
    let train = BaselineTrainSet {
        description: "toy".into(),
        train: toy_data(30, 0),
        calib: Vec::new(),
    };
    let opts = EvalOptions {
        title: "toy eval".into(),
        ..EvalOptions::default()
    };
    let report = eval_examples(
        &t,
        &data,
        "toy data",
        Some(&fake_system),
        Some(&train),
        &opts,
    )
    .unwrap();
    assert_eq!(report.systems.len(), 2);
    let sys = &report.systems[0].metrics;
    // class level: mining (B111) wrong → 3/4
    assert_eq!(sys.levels[3].accuracy_forced, Some(0.75));
    assert_eq!(sys.operating_point.precision, Some(0.75));
    assert_eq!(
        report.systems[0].metrics.confusions[0].pairs[0].gold,
        "B111"
    );
    assert!(report.systems[1].baseline.is_some());

    let dir = tempfile::tempdir().unwrap();
    let files = write_report(&dir.path().join("out"), &report).unwrap();
    let back = read_report(&files.json).unwrap();
    // (serde_json's default float parsing may differ in the last bit: compare structure + values)
    assert_eq!(back.title, report.title);
    assert_eq!(back.examples, report.examples);
    assert_eq!(back.systems.len(), 2);
    for (a, b) in back.systems.iter().zip(&report.systems) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.metrics.curve.len(), b.metrics.curve.len());
        assert_eq!(a.metrics.confusions, b.metrics.confusions);
        assert_eq!(a.baseline.is_some(), b.baseline.is_some());
        for (x, y) in a.metrics.levels.iter().zip(&b.metrics.levels) {
            assert_eq!(x.n, y.n);
            assert!((x.accuracy.unwrap() - y.accuracy.unwrap()).abs() < 1e-12);
        }
        let (ea, eb) = (
            a.metrics.calibration.ece.unwrap(),
            b.metrics.calibration.ece.unwrap(),
        );
        assert!((ea - eb).abs() < 1e-12);
    }
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    for needle in [
        "# toy eval",
        "| metric | touxiang | baseline |",
        "Top-1 accuracy per level",
        "Macro-F1",
        "Auto-accept curve",
        "| reaching 98.0 % |",
        "B111 烟煤开采 | A112 小麦种植 | 5 |",
    ] {
        assert!(md.contains(needle), "markdown lacks {needle:?}:\n{md}");
    }
    let summary = report.summary();
    assert!(
        summary.contains("touxiang") && summary.contains("baseline"),
        "{summary}"
    );
}

#[test]
fn eval_jsonl_reads_data_and_names_bad_lines() {
    let t = tax();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.jsonl");
    let mut f = std::fs::File::create(&good).unwrap();
    for x in toy_data(3, 50) {
        writeln!(f, "{}", serde_json::json!({"text": x.text, "code": x.code})).unwrap();
    }
    writeln!(f).unwrap();
    drop(f);
    let report = eval_jsonl(&good, &t, Some(&fake_system), None, &EvalOptions::default()).unwrap();
    assert_eq!(report.examples, 12);
    assert_eq!(report.systems.len(), 1);
    assert_eq!(load_labeled_jsonl(&good, &t).unwrap().len(), 12);

    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"text\":\"采购稻谷\",\"code\":\"A111\"}\n{\"text\":\"x\",\"code\":\"Q1\"}\n",
    )
    .unwrap();
    let err = eval_jsonl(&bad, &t, Some(&fake_system), None, &EvalOptions::default()).unwrap_err();
    assert!(matches!(err, EvalError::BadLine { line: 2, .. }), "{err}");
    assert!(err.to_string().contains("Q1"));
    std::fs::write(&bad, "{\"code\":\"A111\"}\n").unwrap();
    let err = load_labeled_jsonl(&bad, &t).unwrap_err();
    assert!(err.to_string().contains(":1: field \"text\""), "{err}");
    std::fs::write(&bad, "not json\n").unwrap();
    assert!(load_labeled_jsonl(&bad, &t)
        .unwrap_err()
        .to_string()
        .contains("invalid JSON"));
}

#[test]
fn a_classifier_returning_the_wrong_count_is_an_error() {
    let t = tax();
    let short = |texts: &[&str]| fake_system(&texts[1..]);
    let err = eval_examples(
        &t,
        &toy_data(2, 0),
        "toy",
        Some(&short),
        None,
        &EvalOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, EvalError::Classifier(_)), "{err}");
    let failing =
        |_: &[&str]| -> Result<Vec<EvalRecord>, String> { Err("model not loaded".into()) };
    let err = eval_examples(
        &t,
        &toy_data(1, 0),
        "toy",
        Some(&failing),
        None,
        &EvalOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("model not loaded"));
    let err = eval_examples(
        &t,
        &toy_data(1, 0),
        "toy",
        None,
        None,
        &EvalOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, EvalError::Invalid(_)), "{err}");
}
