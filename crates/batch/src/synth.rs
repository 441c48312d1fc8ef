//! Synthetic loan books for benchmarks: realistic Chinese purpose texts with a chosen share of
//! unique texts, and a benchmark runner that works with any [`Labeler`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use touxiang_datasets::Labeler;

use crate::engine::{run, BatchHooks, BatchSummary};
use crate::error::BatchError;
use crate::options::BatchOptions;

/// Texts that dominate real books; they come first so the skewed draw repeats them most.
const COMMON: &[&str] = &[
    "补充流动资金",
    "日常经营周转",
    "购买原材料",
    "支付货款",
    "经营周转",
    "补充营运资金",
];

const TEMPLATES: &[&str] = &[
    "用于{i}，金额约{m}万元",
    "补充流动资金，{i}{m}万元",
    "{i}（{m}万元）",
    "借款用于{i}，预计{m}万元",
    "个人经营贷款：{i}，约{m}万",
    "{i}及日常周转{m}万元",
    "流动资金贷款，用途：{i}，{m}万元",
    "企业{i}资金需求{m}万元",
    "本次贷款{m}万元用于{i}",
    "{i}，分期投入{m}万元",
    "支付{i}相关款项{m}万元",
    "经营性贷款{m}万元，{i}",
    "{i}扩大经营规模，需资金{m}万元",
    "购销合同项下{i}{m}万元",
    "{i}（第{m}批）",
    "项目资金：{i}，总额{m}万元",
    "{i}周转，期限一年，{m}万元",
    "农户贷款{m}万元用于{i}",
    "小微企业{i}，借款{m}万元",
    "按合同约定{i}，金额{m}万元",
];

const ITEMS: &[&str] = &[
    "采购热轧钢卷",
    "采购螺纹钢",
    "钢材贸易",
    "烤串店装修",
    "购买冷柜经营小吃",
    "开小吃店",
    "餐厅装修",
    "餐厅采购食材",
    "种植水稻",
    "种植蔬菜大棚",
    "购买种子化肥",
    "购进种子",
    "超市进货",
    "社区超市装修",
    "客运车辆购置",
    "城市客运线路运营",
    "楼盘开发",
    "楼盘配套工程",
    "软件开发人员工资",
    "购买软件许可",
    "批发日用百货",
    "批发农副产品",
    "大米加工设备更新",
    "收购大米",
    "支付员工工资",
    "购买原材料",
    "设备维修",
    "厂房租金",
    "缴纳税费",
    "购买办公用品",
    "建材采购",
    "服装批发进货",
    "水产养殖饲料",
    "生猪养殖",
    "茶叶收购",
    "家具生产原料",
    "物流车辆油费",
    "仓储租赁",
    "电子元器件采购",
    "医疗器械采购",
    "民宿装修",
    "农机购置",
    "果园管理",
    "门店租金",
    "广告投放",
    "化工原料采购",
    "纺织面料采购",
    "汽车配件进货",
    "装修工程款",
    "冷链运输",
    "快递网点运营",
    "印刷设备购置",
    "教育培训场地租赁",
    "美容院装修",
    "药店进货",
    "五金批发",
    "粮食收购",
    "饲料加工",
    "木材加工",
    "光伏组件采购",
];

/// Amount modifiers per (template, item): enough for 20 × 60 × 400 = 480 000 unique texts.
const AMOUNTS: u64 = 400;

fn text_of(i: u64) -> String {
    let t = TEMPLATES.len() as u64;
    let n = ITEMS.len() as u64;
    let space = t * n * AMOUNTS;
    // A fixed permutation of the (template, item, amount) space (stride coprime with space).
    let k = (i.wrapping_mul(7_919) + 13) % space;
    let tpl = TEMPLATES[(k % t) as usize];
    let item = ITEMS[((k / t) % n) as usize];
    let amount = (k / (t * n)) + 1;
    tpl.replace("{i}", item).replace("{m}", &amount.to_string())
}

struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What [`generate_loans_csv`] wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SynthStats {
    pub rows: u64,
    pub unique_texts: u64,
}

/// Write a CSV loan book (`loan_id,purpose_text,balance,old_code`) of `rows` rows in which about
/// `unique_ratio` of the rows bring a new text; repeats are drawn with a strong skew towards the
/// earliest texts (the common "补充流动资金"-style purposes). Deterministic for a `seed`.
pub fn generate_loans_csv(
    path: &Path,
    rows: u64,
    unique_ratio: f64,
    seed: u64,
) -> Result<SynthStats, BatchError> {
    let f = std::fs::File::create(path).map_err(|e| BatchError::io("cannot create", path, e))?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::with_capacity(1 << 20, f));
    let werr = |e: csv::Error| BatchError::Output {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    w.write_record(["loan_id", "purpose_text", "balance", "old_code"])
        .map_err(werr)?;
    let mut rng = SplitMix(seed);
    let old_codes = [
        "3120", "1311", "0111", "6291", "5211", "5411", "7010", "51", "C", "",
    ];
    let mut unique = 0u64;
    let mut texts: Vec<u64> = Vec::new(); // index into the text space of each unique (common = MAX-k)
    for r in 0..rows {
        let fresh = texts.is_empty() || rng.unit() < unique_ratio;
        let text = if fresh {
            let t = unique;
            unique += 1;
            texts.push(t);
            if (t as usize) < COMMON.len() {
                COMMON[t as usize].to_string()
            } else {
                text_of(t)
            }
        } else {
            let u = rng.unit();
            let j = ((texts.len() as f64) * u.powi(4)) as usize;
            let t = texts[j.min(texts.len() - 1)];
            if (t as usize) < COMMON.len() {
                COMMON[t as usize].to_string()
            } else {
                text_of(t)
            }
        };
        let balance = 10_000 + rng.next() % 5_000_000;
        let old = old_codes[(rng.next() % old_codes.len() as u64) as usize];
        w.write_record([
            format!("L{:09}", r + 1),
            text,
            format!("{}.{:02}", balance / 100, balance % 100),
            old.to_string(),
        ])
        .map_err(werr)?;
    }
    w.flush()
        .map_err(|e| BatchError::io("cannot write", path, e))?;
    Ok(SynthStats {
        rows,
        unique_texts: unique,
    })
}

/// Figures of one benchmark run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchReport {
    pub rows: u64,
    pub unique_texts_in_input: u64,
    pub generate_secs: f64,
    pub run_secs: f64,
    pub rows_per_sec: f64,
    /// Texts actually sent to the labeler per second of the run.
    pub labeled_texts_per_sec: f64,
    pub summary: BatchSummary,
}

/// Generate `rows` rows (≈ `unique_ratio` unique texts) under `dir`, then label them with
/// `labeler` into `dir/bench-output.csv` with a fresh cache (`dir/bench-cache.sqlite`), and
/// return the figures. With the fake labeler this measures the engine's own overhead.
pub fn run_benchmark(
    dir: &Path,
    rows: u64,
    unique_ratio: f64,
    chunk_size: usize,
    labeler: &dyn Labeler,
    hooks: &BatchHooks,
) -> Result<BenchReport, BatchError> {
    std::fs::create_dir_all(dir).map_err(|e| BatchError::io("cannot create", dir, e))?;
    let input: PathBuf = dir.join("bench-input.csv");
    let t0 = Instant::now();
    let stats = generate_loans_csv(&input, rows, unique_ratio, 42)?;
    let generate_secs = t0.elapsed().as_secs_f64();
    let cache = dir.join("bench-cache.sqlite");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(crate::options::suffixed(&cache, suffix));
    }
    let mut opts = BatchOptions::new(&input, dir.join("bench-output.csv"));
    opts.cache_path = Some(cache);
    opts.chunk_size = chunk_size;
    let t1 = Instant::now();
    let summary = run(&opts, labeler, hooks)?;
    let run_secs = t1.elapsed().as_secs_f64();
    let _ = std::io::stderr().flush();
    Ok(BenchReport {
        rows,
        unique_texts_in_input: stats.unique_texts,
        generate_secs,
        run_secs,
        rows_per_sec: rows as f64 / run_secs,
        labeled_texts_per_sec: summary.counters.labeled_texts as f64 / run_secs,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_distinct_over_the_space() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..20_000 {
            assert!(seen.insert(text_of(i)), "duplicate at {i}");
        }
    }
}
