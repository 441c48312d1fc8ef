//! /v1/classify end to end with the real encoder and a small classifier trained in the test on a
//! custom two-level taxonomy (so the test does not depend on shipped artifacts).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::http::StatusCode;
use common::{call, model, test_config};
use serde_json::json;
use touxiang::engine::{seed_store, E5Embed, TaxonomyModel};
use touxiang::state::Engine;
use touxiang_datasets::Taxonomy;
use touxiang_training::{train, Artifacts, CorpusSource, SplitRatios, TrainConfig, Tree};

const TAXONOMY: &str = "code,name,parent\nA,农业,\nA1,水稻种植,A\nA2,生猪养殖,A\nC,制造业,\nC1,钢铁冶炼及压延,C\nC2,服装制造,C\nH,餐饮业,\nH1,烧烤小吃,H\n";

const EXAMPLES: &[(&str, &[&str])] = &[
    (
        "A1",
        &[
            "水稻种植",
            "购买稻谷种子",
            "支付水稻化肥款",
            "早稻插秧及田间管理",
            "晚稻收割费用",
            "承包水田种植水稻",
            "购买育秧盘和稻种",
            "水稻病虫害防治农药",
            "粳稻种植基地建设",
            "糯稻种植",
        ],
    ),
    (
        "A2",
        &[
            "生猪养殖",
            "购买仔猪",
            "支付猪饲料货款",
            "猪舍建设",
            "母猪养殖场扩建",
            "购买猪用疫苗",
            "育肥猪养殖",
            "生猪存栏扩大",
            "养猪场粪污处理设备",
            "种猪引进",
        ],
    ),
    (
        "C1",
        &[
            "采购热轧钢卷",
            "炼钢原料铁矿石采购",
            "冷轧板材生产线",
            "支付废钢货款",
            "钢坯采购",
            "螺纹钢生产",
            "不锈钢管加工",
            "高炉检修",
            "购买焦炭用于炼铁",
            "镀锌钢板加工",
        ],
    ),
    (
        "C2",
        &[
            "服装加工",
            "采购棉布面料",
            "针织服装生产",
            "购买缝纫机",
            "成衣订单备料",
            "西装定制生产",
            "童装生产线",
            "支付拉链纽扣辅料款",
            "羽绒服加工",
            "服装厂工人工资",
        ],
    ),
    (
        "H1",
        &[
            "烤串店装修",
            "购买冷柜用于烧烤店",
            "小吃店开业",
            "烧烤食材采购",
            "麻辣烫店铺租金",
            "购买烤炉",
            "夜市小吃摊位",
            "煎饼果子摊设备",
            "烤肉店装修",
            "小吃店进货",
        ],
    ),
];

struct Trained {
    taxonomy: Arc<Taxonomy>,
    artifacts_dir: std::path::PathBuf,
}

fn trained() -> &'static Trained {
    static T: OnceLock<Trained> = OnceLock::new();
    T.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let tax = Arc::new(Taxonomy::from_csv_reader("mini", TAXONOMY.as_bytes()).unwrap());
        let jsonl = dir.join("examples.jsonl");
        let mut lines = String::new();
        for (code, texts) in EXAMPLES {
            for t in *texts {
                lines.push_str(&json!({"text": t, "code": code}).to_string());
                lines.push('\n');
            }
        }
        std::fs::write(&jsonl, lines).unwrap();
        let tree = Tree::from_taxonomy(&tax, false).unwrap();
        let examples =
            touxiang_training::load_examples_jsonl(&jsonl, &tree, 7, SplitRatios::default())
                .unwrap();
        let mut cfg = TrainConfig::new(
            tree,
            CorpusSource::Examples {
                examples,
                with_names: true,
            },
            dir.join("artifacts"),
        );
        cfg.seed = 7;
        cfg.targets.level_precision = 0.9;
        cfg.targets.auto_precision = 0.9;
        cfg.targets.min_support = 1;
        let report = train(&cfg, &E5Embed(model())).expect("train");
        Trained {
            taxonomy: tax,
            artifacts_dir: report.artifact_dir,
        }
    })
}

async fn app_with_classifier() -> (axum::Router, touxiang::AppState) {
    let t = trained();
    let cfg = test_config();
    let a = Artifacts::load(&t.artifacts_dir).unwrap();
    let m = TaxonomyModel {
        taxonomy: t.taxonomy.clone(),
        classifier: Arc::new(a.classifier),
        artifact_dir: t.artifacts_dir.clone(),
        exemplars: a.exemplars.map(Arc::new),
    };
    let store = touxiang::engine::open_embedded_store(&cfg, 384).unwrap();
    let version = touxiang_model::Embedder::version(model().as_ref());
    seed_store(store.as_ref(), &m, &version).await.unwrap();
    let mut models = HashMap::new();
    models.insert("mini".to_string(), m);
    let state = touxiang::AppState::new(cfg.clone(), None);
    state.install(Engine::new(
        &cfg,
        model(),
        Arc::new(touxiang_text::Segmenter::default()),
        models,
        Some(store),
    ));
    (touxiang::app(state.clone()), state)
}

#[tokio::test]
async fn classify_returns_consistent_paths_with_evidence() {
    let (app, _) = app_with_classifier().await;
    let items: Vec<_> = [
        "补充流动资金，采购热轧钢卷",
        "用于烤串店装修及购买冷柜",
        "購買仔豬及飼料",
        "支付水稻种子款人民币50万元",
        "采购棉布用于衬衫生产",
        "资金周转",
        "Purchase of steel coils",
    ]
    .iter()
    .enumerate()
    .map(|(i, t)| json!({"id": format!("app-{i}"), "text": t, "amount": 100000}))
    .collect();
    let (st, body) = call(
        &app,
        "POST",
        "/v1/classify",
        Some(json!({"items": items, "taxonomy": "mini", "top_k": 2, "neighbors": 3})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(
        body["taxonomy_version"]
            .as_str()
            .map(|s| s.starts_with("mini")),
        Some(true),
        "{body}"
    );
    let tax = &trained().taxonomy;
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 7);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["id"], format!("app-{i}"));
        let d = r["decision"].as_str().unwrap();
        assert!(d == "auto" || d == "review");
        let c = r["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&c));
        if let Some(label) = r["label"].as_object() {
            let path = label["path"].as_array().unwrap();
            assert_eq!(
                path.last().unwrap()["code"],
                label["code"],
                "path ends at the label"
            );
            for w in path.windows(2) {
                let child = tax.get(w[1]["code"].as_str().unwrap()).unwrap();
                assert_eq!(
                    child.parent.as_deref(),
                    w[0]["code"].as_str(),
                    "path not consistent: {r}"
                );
            }
            assert!(
                tax.get(path[0]["code"].as_str().unwrap())
                    .unwrap()
                    .parent
                    .is_none(),
                "path starts at a root"
            );
        } else {
            assert_eq!(d, "review", "no label must mean review: {r}");
        }
        let nb = r["neighbors"].as_array().unwrap();
        assert!(nb.len() <= 3 && !nb.is_empty(), "neighbours shown: {r}");
        for n in nb {
            assert!(n["source"] == "seed" || n["source"] == "reviewed");
        }
        assert!(r["alternatives"].as_array().unwrap().len() <= 2);
    }
    let code = |i: usize| {
        results[i]["label"]["path"][0]["code"]
            .as_str()
            .unwrap_or("-")
            .to_string()
    };
    assert_eq!(code(0), "C", "{}", results[0]);
    assert_eq!(code(1), "H", "{}", results[1]);
    assert_eq!(code(2), "A", "traditional script: {}", results[2]);
    assert_eq!(code(4), "C", "{}", results[4]);
    let kw: Vec<&str> = results[1]["keywords"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k.as_str())
        .collect();
    assert!(kw.contains(&"冷柜") || kw.contains(&"烤串"), "{kw:?}");
}

#[tokio::test]
async fn classify_rejects_bad_input_naming_the_field() {
    let (app, _) = app_with_classifier().await;
    let cases = [
        (json!({"items": [], "taxonomy": "mini"}), "items"),
        (
            json!({"items": [{"text": " "}], "taxonomy": "mini"}),
            "items[0].text",
        ),
        (
            json!({"items": [{"text": "钢材", "amount": -5}], "taxonomy": "mini"}),
            "items[0].amount",
        ),
        (
            json!({"items": [{"text": "钢材", "amount": "lots"}], "taxonomy": "mini"}),
            "items[0].amount",
        ),
        (
            json!({"items": [{"text": "钢材"}], "taxonomy": "no-such-taxonomy"}),
            "taxonomy",
        ),
        (
            json!({"items": [{"text": "钢材"}], "taxonomy": "mini", "top_k": 1000}),
            "top_k",
        ),
        (
            json!({"items": [{"text": "钢材"}], "taxonomy": "mini", "neighbors": -1}),
            "neighbors",
        ),
        (
            json!({"items": [{"texts": "钢材"}], "taxonomy": "mini"}),
            "items[0]",
        ),
    ];
    for (body, field) in cases {
        let (st, b) = call(&app, "POST", "/v1/classify", Some(body.clone())).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body} -> {b}");
        assert_eq!(b["error"]["field"], field, "{body} -> {b}");
    }
}
