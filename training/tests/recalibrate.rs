//! `recalibrate`: an artifact's calibration refitted on labeled texts, written as a new version
//! that loads and classifies; the learned step confidence round-trips through the artifact.
mod common;

use rand::SeedableRng;
use touxiang_training::*;

fn loans(n: usize, seed: u64) -> Vec<(LoanText, String)> {
    let tree = common::synthetic_tree(true);
    let leaves: Vec<String> = tree
        .leaves()
        .iter()
        .map(|&l| tree.nodes[l].code.clone())
        .filter(|c| c != VAGUE_CODE)
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let li = i % leaves.len();
            // loan-shaped: the leaf's words inside a purpose sentence, sometimes with another
            // leaf's words as the object
            let mut text = format!("借款人用于{}", common::leaf_text(&mut rng, li));
            if i % 3 == 0 {
                text.push_str(&common::leaf_text(&mut rng, (li + 7) % leaves.len()));
            }
            (
                LoanText {
                    text,
                    ..Default::default()
                },
                leaves[li].clone(),
            )
        })
        .collect()
}

#[test]
fn recalibration_writes_a_new_version_that_loads_and_classifies() {
    let d = tempfile::tempdir().unwrap();
    let r = common::train_synthetic(d.path(), 5);
    let mut arts = Artifacts::load(&r.artifact_dir).unwrap();
    let index = arts
        .exemplars
        .take()
        .expect("synthetic artifacts keep their exemplars");
    let out = tempfile::tempdir().unwrap();
    let rep = recalibrate(
        &r.artifact_dir,
        arts,
        &index,
        &loans(240, 1),
        &HashEmbedder::default(),
        &RecalibrateOptions {
            cache_dir: None,
            out_root: out.path(),
            precision_z: None,
            written_exemplars: &[],
        },
    )
    .unwrap();
    assert_eq!(rep.from_version, r.model_version);
    assert_ne!(rep.model_version, r.model_version);
    assert_eq!(rep.examples, 240);
    assert!(rep.calib.examples > 0);
    let fresh = Artifacts::load(&rep.artifact_dir).unwrap();
    assert_eq!(fresh.meta.model_version, rep.model_version);
    assert!(fresh.meta.report.get("recalibration").is_some());
    // whatever was fitted (with or without a step model) survives the round trip
    let (k, h) = fresh.classifier.calibrations();
    assert_eq!(k, &fresh.meta.calibration_with_neighbors);
    assert_eq!(h, &fresh.meta.calibration_heads_only);
    let old = Artifacts::load(&r.artifact_dir).unwrap();
    assert_ne!(
        old.classifier.calibrations().0,
        k,
        "the calibration was refitted"
    );
    // the heads are the old ones: same head outputs
    let x = HashEmbedder::default()
        .embed(&["借款人用于采购设备"])
        .unwrap();
    let a = old.classifier.head_outputs(&x).unwrap();
    let b = fresh.classifier.head_outputs(&x).unwrap();
    assert_eq!(a[0].flat, b[0].flat);
}

#[test]
fn recalibration_refuses_too_few_texts() {
    let d = tempfile::tempdir().unwrap();
    let r = common::train_synthetic(d.path(), 5);
    let mut arts = Artifacts::load(&r.artifact_dir).unwrap();
    let index = arts.exemplars.take().unwrap();
    let e = recalibrate(
        &r.artifact_dir,
        arts,
        &index,
        &loans(10, 1),
        &HashEmbedder::default(),
        &RecalibrateOptions {
            cache_dir: None,
            out_root: d.path(),
            precision_z: None,
            written_exemplars: &[],
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("at least 50"), "{e}");
}

#[test]
fn role_cues_and_the_reranker_travel_with_the_artifact() {
    let d = tempfile::tempdir().unwrap();
    let r = common::train_synthetic(d.path(), 5);
    let mut arts = Artifacts::load(&r.artifact_dir).unwrap();
    assert!(arts.classifier.role_cues().is_none(), "no lexicon given");
    let lexicon = "1000\tXX驾校|驾培机构\t教练车\n2110\tXX出版社\t纸张|印刷服务\n";
    let cues =
        touxiang_training::role_cues::RoleCues::new(lexicon, arts.classifier.tree()).unwrap();
    arts.classifier = arts.classifier.with_role_cues(cues);
    let out = tempfile::tempdir().unwrap();
    arts.save(out.path()).unwrap();
    let back = Artifacts::load(out.path()).unwrap();
    let cues = back.classifier.role_cues().expect("role_cues.tsv loaded");
    assert_eq!(cues.source(), lexicon);
    // the hits reach the head outputs the re-ranker reads
    let text = "长江出版社采购纸张";
    let x = HashEmbedder::default().embed(&[text]).unwrap();
    let h = back.classifier.head_outputs_for_texts(&[text], &x).unwrap();
    let publisher = back.classifier.tree().find("2110").unwrap();
    assert_eq!(h[0].roles.actor(publisher), 3);
    assert_eq!(h[0].roles.input(publisher), 2);
    // a damaged lexicon is refused loudly, not skipped
    std::fs::write(out.path().join("role_cues.tsv"), "1000\tonly two fields\n").unwrap();
    let e = Artifacts::load(out.path())
        .err()
        .expect("load fails")
        .to_string();
    assert!(e.contains("3 tab-separated fields"), "{e}");
}

#[test]
fn a_recalibration_keeps_the_artifacts_precision_margin_unless_told() {
    let d = tempfile::tempdir().unwrap();
    let r = common::train_synthetic(d.path(), 5);
    let recal = |dir: &std::path::Path, z: Option<f64>, seed: u64| {
        let mut arts = Artifacts::load(dir).unwrap();
        let index = arts
            .exemplars
            .take()
            .unwrap_or_else(|| Artifacts::load(&r.artifact_dir).unwrap().exemplars.unwrap());
        let out = d.path().join(format!("out{seed}"));
        let rep = recalibrate(
            dir,
            arts,
            &index,
            &loans(240, seed),
            &HashEmbedder::default(),
            &RecalibrateOptions {
                cache_dir: None,
                out_root: &out,
                precision_z: z,
                written_exemplars: &[],
            },
        )
        .unwrap();
        let a = Artifacts::load(&rep.artifact_dir).unwrap();
        (rep.artifact_dir, a.meta.targets.precision_z)
    };
    assert_eq!(
        Artifacts::load(&r.artifact_dir)
            .unwrap()
            .meta
            .targets
            .precision_z,
        0.0
    );
    let (told, z) = recal(&r.artifact_dir, Some(1.645), 1);
    assert_eq!(z, 1.645, "the margin used is recorded");
    let (_, z) = recal(&told, None, 2);
    assert_eq!(z, 1.645, "and kept by the next recalibration");
}
