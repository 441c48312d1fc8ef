//! Offline evaluation uses the same kNN vote as `serve`: a shipped artifact (exemplar texts
//! only, no vectors) gets its exemplar index rebuilt by embedding the texts.

use std::sync::Arc;

use crate::common::{mini, model, test_config};
use touxiang::engine::{ensure_exemplar_index, TaxonomyModel};
use touxiang_training::Artifacts;

#[test]
fn an_artifact_without_exemplar_vectors_gets_its_index_rebuilt() {
    let (tax, dir) = mini();
    let full = Artifacts::load(dir).unwrap();
    let original = full
        .exemplars
        .expect("a trained artifact keeps its exemplar vectors");

    // the shipped form: everything but exemplars.safetensors
    let shipped = tempfile::tempdir().unwrap();
    for f in ["model.safetensors", "metadata.json", "exemplars.jsonl"] {
        std::fs::copy(dir.join(f), shipped.path().join(f)).unwrap();
    }
    let a = Artifacts::load(shipped.path()).unwrap();
    assert!(a.exemplars.is_none());
    let mut m = TaxonomyModel {
        taxonomy: tax.clone(),
        classifier: Arc::new(a.classifier),
        artifact_dir: shipped.path().to_path_buf(),
        neighbors_ready: std::sync::atomic::AtomicBool::new(false),
        seeding: Default::default(),
        exemplars: None,
    };
    let cfg = test_config();
    ensure_exemplar_index(&cfg, &mut m, &model()).unwrap();
    let rebuilt = m
        .exemplars
        .as_ref()
        .expect("index rebuilt from exemplars.jsonl");
    assert!(m.neighbors_ready.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(rebuilt.len(), original.len());
    assert_eq!(rebuilt.texts, original.texts);
    assert_eq!(rebuilt.codes, original.codes);

    // same neighbours as the index training saved
    let q = touxiang::engine::E5(model());
    let x = touxiang_training::EmbedFn::embed(&q, &["烧烤店购买冷柜", "采购热轧钢卷"]).unwrap();
    let (a, b) = (
        original.search(&x, 5).unwrap(),
        rebuilt.search(&x, 5).unwrap(),
    );
    for (na, nb) in a.iter().zip(&b) {
        let codes = |v: &[touxiang_training::Neighbor]| -> Vec<String> {
            v.iter().map(|n| n.code.clone()).collect()
        };
        assert_eq!(codes(na), codes(nb));
        for (p, r) in na.iter().zip(nb) {
            assert!((p.similarity - r.similarity).abs() < 1e-4);
        }
    }
    // a second call keeps the index (nothing re-embedded)
    let before = Arc::as_ptr(rebuilt);
    ensure_exemplar_index(&cfg, &mut m, &model()).unwrap();
    assert_eq!(Arc::as_ptr(m.exemplars.as_ref().unwrap()), before);
}

#[test]
fn command_line_labelers_vote_over_neighbours_unless_heads_only() {
    use touxiang_datasets::Labeler;
    // a data dir holding the mini classifier in its shipped form (no exemplar vectors)
    let data = tempfile::tempdir().unwrap();
    let art = crate::common::train_mini(data.path());
    let full = Artifacts::load(&art).unwrap();
    std::fs::remove_file(art.join("exemplars.safetensors")).unwrap();
    let mut cfg = test_config();
    cfg.data_dir = data.path().to_path_buf();
    let on = touxiang::engine::load_embedding_labeler(&cfg, "mini", true).unwrap();
    assert!(on.index.is_some(), "default: exemplar index rebuilt");
    let off = touxiang::engine::load_embedding_labeler(&cfg, "mini", false).unwrap();
    assert!(off.index.is_none(), "--heads-only");
    // both label, with the same classifier version
    let texts = ["烧烤店购买冷柜", "采购热轧钢卷"];
    for l in [&on, &off] {
        let r = l.label(&texts).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].model_version, full.meta.model_version);
    }
}

/// Seeding the store from a shipped artifact (texts only) completes once: a text labeled with
/// two codes keeps both points, the progress reaches the total, and a restart does no encoder
/// work (it re-embedded everything on every start while duplicate texts collapsed into one
/// point).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_completes_once_and_a_restart_embeds_nothing() {
    use touxiang_vectors::Filter;
    let (tax, dir) = mini();
    let shipped = tempfile::tempdir().unwrap();
    for f in ["model.safetensors", "metadata.json"] {
        std::fs::copy(dir.join(f), shipped.path().join(f)).unwrap();
    }
    // the artifact's exemplar texts plus one text under a second code
    let mut lines = std::fs::read_to_string(dir.join("exemplars.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    let other = if first["code"] == "C1" { "C2" } else { "C1" };
    let mut dup = first.clone();
    dup["code"] = other.into();
    lines.push_str(&format!("{dup}\n{first}\n"));
    let n_lines = lines.lines().count();
    std::fs::write(shipped.path().join("exemplars.jsonl"), &lines).unwrap();
    let a = Artifacts::load(shipped.path()).unwrap();
    let m = TaxonomyModel {
        taxonomy: tax.clone(),
        classifier: Arc::new(a.classifier),
        artifact_dir: shipped.path().to_path_buf(),
        neighbors_ready: std::sync::atomic::AtomicBool::new(false),
        seeding: Default::default(),
        exemplars: None,
    };
    let data = tempfile::tempdir().unwrap();
    let mut cfg = test_config();
    cfg.data_dir = data.path().to_path_buf();
    let store = touxiang::engine::open_embedded_store(&cfg, 384).unwrap();
    let model = model();
    let queue = touxiang::queue::EmbedQueue::start(
        model.clone(),
        touxiang::queue::QueueLimits::of(&cfg.limits),
    );
    let added = touxiang::engine::seed_store_from_texts(store.as_ref(), &m, &model, &queue)
        .await
        .unwrap();
    // the exact repeat of the first line adds nothing; the second code of its text does
    assert_eq!(added, n_lines - 1);
    assert_eq!(m.seeding.get(), (added, added));
    assert!(m.neighbors_ready.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(store.count(&Filter::all()).await.unwrap() as usize, added);
    // restart: same store, fresh model state
    let m2 = TaxonomyModel {
        neighbors_ready: std::sync::atomic::AtomicBool::new(false),
        seeding: Default::default(),
        ..m
    };
    let again = touxiang::engine::seed_store_from_texts(store.as_ref(), &m2, &model, &queue)
        .await
        .unwrap();
    assert_eq!(again, 0, "a restart after seeding embeds nothing");
    assert_eq!(m2.seeding.get(), (added, added));
    // a first start cut short (two points never written) and a new artifact that adds a line:
    // only those three are embedded
    let gone: Vec<String> = lines
        .lines()
        .skip(1)
        .take(2)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            touxiang_vectors::point_id(
                tax.id(),
                v["source"].as_str().unwrap(),
                v["text"].as_str().unwrap(),
            )
        })
        .collect();
    store.delete(gone).await.unwrap();
    lines.push_str(&format!(
        "{}\n",
        serde_json::json!({"text": "新增的一行：烤肉店购置排烟设备", "code": first["code"], "source": "seed"})
    ));
    std::fs::write(shipped.path().join("exemplars.jsonl"), &lines).unwrap();
    let m3 = TaxonomyModel {
        neighbors_ready: std::sync::atomic::AtomicBool::new(false),
        seeding: Default::default(),
        ..m2
    };
    let resumed = touxiang::engine::seed_store_from_texts(store.as_ref(), &m3, &model, &queue)
        .await
        .unwrap();
    assert_eq!(resumed, 3, "only the missing points are embedded");
    assert_eq!(m3.seeding.get(), (added + 1, added + 1));
    assert_eq!(
        store.count(&Filter::all()).await.unwrap() as usize,
        added + 1
    );
}

/// `touxiang train --recalibrate ART --exemplar-examples FILE`: written lines join the
/// artifact's exemplars (each line once; vague ones skipped, the mini classifier has no vague class) and are recorded in the report; a
/// file given both as exemplars and as calibration is refused, naming it.
#[test]
fn recalibration_adds_written_exemplars() {
    let data = tempfile::tempdir().unwrap();
    let art = crate::common::train_mini(data.path());
    let before = std::fs::read_to_string(art.join("exemplars.jsonl")).unwrap();
    let calib = data.path().join("calib.jsonl");
    let mut lines = String::new();
    for (code, texts) in crate::common::MINI_EXAMPLES {
        for t in texts.iter() {
            for prefix in ["", "借款人", "用于"] {
                lines.push_str(&format!(
                    "{}\n",
                    serde_json::json!({"text": format!("{prefix}{t}"), "code": code})
                ));
            }
        }
    }
    std::fs::write(&calib, lines).unwrap();
    let written = data.path().join("written.jsonl");
    std::fs::write(
        &written,
        [
            r#"{"text": "烤肉店购置排烟设备", "code": "H1", "borrower_name": "老王烤肉"}"#,
            r#"{"text": "烤肉店购置排烟设备", "code": "H1", "borrower_name": "老王烤肉"}"#,
            r#"{"text": "资金周转", "code": "__vague__"}"#,
            r#"{"text": "制衣厂采购面料", "code": "C2"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let out = data.path().join("out");
    let run = |exemplars: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_touxiang"))
            .args(["train", "--data-dir"])
            .arg(data.path())
            .arg("--model-dir")
            .arg(touxiang_model::test_model_dir())
            .arg("--recalibrate")
            .arg(&art)
            .arg("--exemplar-examples")
            .arg(exemplars)
            .arg("--calib-examples")
            .arg(&calib)
            .arg("--out")
            .arg(&out)
            .env_remove("TOUXIANG_DATA_DIR")
            .output()
            .unwrap()
    };
    let o = run(&written);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("2 written exemplars added"), "{err}");
    let dir = std::fs::read_dir(out.join("mini"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("metadata.json").exists())
        .unwrap();
    let after = std::fs::read_to_string(dir.join("exemplars.jsonl")).unwrap();
    assert!(after.starts_with(before.trim_end()));
    let added: Vec<serde_json::Value> = after[before.len()..]
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        added,
        [
            serde_json::json!({"text": "老王烤肉，烤肉店购置排烟设备", "code": "H1", "source": "written"}),
            serde_json::json!({"text": "制衣厂采购面料", "code": "C2", "source": "written"}),
        ]
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("metadata.json")).unwrap()).unwrap();
    let rec = &meta["report"]["recalibration"]["written_exemplars"];
    assert_eq!(rec[0][1], 2, "{rec}");
    // the new exemplars take part: the recalibrated artifact loads with them in its lexical voter
    let loaded = Artifacts::load(&dir).unwrap();
    assert_eq!(
        loaded.meta.model_version,
        dir.file_name().unwrap().to_str().unwrap()
    );
    // the calibration file as its own exemplars: refused
    let o = run(&calib);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("both as --exemplar-examples and --calib-examples"),
        "{err}"
    );
}

/// `touxiang eval --predictions FILE` writes one prediction per line, in input order, with the
/// gold code, the returned and the full path.
#[test]
fn eval_writes_predictions_in_input_order() {
    let data = tempfile::tempdir().unwrap();
    crate::common::train_mini(data.path());
    let lines = data.path().join("lines.jsonl");
    std::fs::write(
        &lines,
        "{\"text\": \"烧烤店购买冷柜\", \"code\": \"H1\"}\n{\"text\": \"采购热轧钢卷\", \"code\": \"C1\"}\n{\"text\": \"水稻插秧\", \"code\": \"A1\"}\n",
    )
    .unwrap();
    let preds = data.path().join("preds.jsonl");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_touxiang"))
        .args(["eval", "--taxonomy", "mini", "--data-dir"])
        .arg(data.path())
        .arg("--model-dir")
        .arg(touxiang_model::test_model_dir())
        .arg("--data")
        .arg(&lines)
        .arg("--out")
        .arg(data.path().join("report"))
        .arg("--predictions")
        .arg(&preds)
        .env_remove("TOUXIANG_DATA_DIR")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got: Vec<serde_json::Value> = std::fs::read_to_string(&preds)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let gold: Vec<&str> = got.iter().map(|p| p["gold"].as_str().unwrap()).collect();
    assert_eq!(gold, ["H1", "C1", "A1"]);
    assert_eq!(got[1]["text"], "采购热轧钢卷");
    assert!(got
        .iter()
        .all(|p| p["full_path"].as_array().is_some_and(|v| !v.is_empty())));
}
