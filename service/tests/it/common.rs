//! Helpers shared by the HTTP tests: a state with the real model loaded once per test binary.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use touxiang::config::Config;
use touxiang::AppState;
use touxiang_model::{test_model_dir, E5Model, Precision};
use tower::ServiceExt;

pub fn model() -> Arc<E5Model> {
    static M: OnceLock<Arc<E5Model>> = OnceLock::new();
    M.get_or_init(|| {
        Arc::new(E5Model::ensure_and_load(&test_model_dir(), Precision::Q4).expect("model"))
    })
    .clone()
}

pub fn test_config() -> Config {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    Config {
        data_dir: dir,
        model_dir: Some(test_model_dir()),
        insecure_no_auth: true,
        ..Config::default()
    }
}

pub fn cold_state() -> AppState {
    AppState::open(test_config(), None).unwrap()
}

pub fn ready_state() -> AppState {
    let s = AppState::open(test_config(), None).unwrap();
    s.set_model(model());
    s
}

pub async fn call_raw(
    app: &Router,
    method: &str,
    uri: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap();
    send(app, req).await
}

pub async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    body: Option<serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    let b = Request::builder().method(method).uri(uri);
    let req = match body {
        Some(v) => b
            .header("content-type", "application/json")
            .body(Body::from(v.to_string()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    };
    send(app, req).await
}

pub async fn send(app: &Router, req: Request<Body>) -> (StatusCode, serde_json::Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let st = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
    (st, v)
}

// ---------------------------------------------------------------------------------------------
// A small classifier trained in the tests on a custom two-level taxonomy (`mini`), so classify,
// review routing and load runs do not depend on shipped artifacts.

pub const MINI: &str = "code,name,parent\nA,农业,\nA1,水稻种植,A\nA2,生猪养殖,A\nC,制造业,\nC1,钢铁冶炼及压延,C\nC2,服装制造,C\nH,餐饮业,\nH1,烧烤小吃,H\n";

pub const MINI_EXAMPLES: &[(&str, &[&str])] = &[
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

/// Train the `mini` classifier into `data_dir/artifacts` (and register the taxonomy under
/// `data_dir/taxonomies`, so a `touxiang serve` on that data dir loads it). Returns the
/// artifact directory.
pub fn train_mini(data_dir: &std::path::Path) -> std::path::PathBuf {
    use touxiang_training::{train, CorpusSource, SplitRatios, TrainConfig, Tree};
    let tax = touxiang_datasets::Taxonomy::from_csv_reader("mini", MINI.as_bytes()).unwrap();
    std::fs::create_dir_all(data_dir.join("taxonomies")).unwrap();
    std::fs::write(data_dir.join("taxonomies/mini.csv"), MINI).unwrap();
    let jsonl = data_dir.join("examples.jsonl");
    let lines: String = MINI_EXAMPLES
        .iter()
        .flat_map(|(c, ts)| {
            ts.iter()
                .map(move |t| format!("{}\n", serde_json::json!({"text": t, "code": c})))
        })
        .collect();
    std::fs::write(&jsonl, lines).unwrap();
    let tree = Tree::from_taxonomy(&tax, false).unwrap();
    let examples =
        touxiang_training::load_examples_jsonl(&jsonl, &tree, 7, SplitRatios::default()).unwrap();
    let mut cfg = TrainConfig::new(
        tree,
        CorpusSource::Examples {
            examples,
            with_names: true,
        },
        data_dir.join("artifacts"),
    );
    cfg.seed = 7;
    cfg.targets.level_precision = 0.9;
    cfg.targets.auto_precision = 0.9;
    cfg.targets.min_support = 1;
    train(&cfg, &touxiang::engine::E5(model()))
        .expect("train")
        .artifact_dir
}

/// The `mini` taxonomy and its artifact directory, trained once per test binary.
pub fn mini() -> &'static (Arc<touxiang_datasets::Taxonomy>, std::path::PathBuf) {
    static T: OnceLock<(Arc<touxiang_datasets::Taxonomy>, std::path::PathBuf)> = OnceLock::new();
    T.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let artifacts = train_mini(&dir);
        (
            Arc::new(
                touxiang_datasets::Taxonomy::from_csv_reader("mini", MINI.as_bytes()).unwrap(),
            ),
            artifacts,
        )
    })
}

/// A ready state with the `mini` classifier and a seeded embedded exemplar store.
pub async fn state_with_mini(cfg: Config) -> AppState {
    use touxiang::engine::{open_embedded_store, seed_store, TaxonomyModel};
    let (tax, dir) = mini();
    let a = touxiang_training::Artifacts::load(dir).unwrap();
    let m = TaxonomyModel {
        taxonomy: tax.clone(),
        classifier: Arc::new(a.classifier),
        artifact_dir: dir.clone(),
        neighbors_ready: std::sync::atomic::AtomicBool::new(a.exemplars.is_some()),
        seeding: Default::default(),
        exemplars: a.exemplars.map(Arc::new),
    };
    let store = open_embedded_store(&cfg, 384).unwrap();
    let version = touxiang_model::Embedder::version(model().as_ref());
    seed_store(store.as_ref(), &m, &version).await.unwrap();
    let mut models = std::collections::HashMap::new();
    models.insert("mini".to_string(), m);
    let state = AppState::open(cfg.clone(), None).unwrap();
    state.install(touxiang::state::Engine::new(
        &cfg,
        model(),
        Arc::new(touxiang_text::Segmenter::default()),
        models,
        Some(store),
    ));
    state
}
