//! Measures the cost of building the pipeline pieces and of running them.
//!
//! `cargo run -p touxiang-text --example text_bench [--release] [-- FILE]` — FILE: one purpose
//! text per line (defaults to a few built-in samples). Prints timings; prints the pipeline
//! output of each sample with `-v`.
use std::time::Instant;
use touxiang_text::{prepare, warm_up, Segmenter};

const SAMPLES: &[&str] = &[
    "用于烤串店装修及购买冷柜",
    "补充流动资金，采购热轧钢卷",
    "購買設備，補充流動資金",
    "支付ＡＢＣ公司货款３００万元，合同编号HT2024001",
    "用于5G基站建设及304不锈钢采购",
    "Purchase of inventory for my small bakery business",
    "2024年3月起用于支付员工工资及房租，金额人民币伍拾万元整",
    "用于养殖场扩建，购买饲料和仔猪",
    "承接市政道路工程，支付工程款及购买沥青",
    "奶茶店加盟费及装修",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verbose = args.iter().any(|a| a == "-v");
    let texts: Vec<String> = match args.iter().find(|a| !a.starts_with('-')) {
        Some(path) => std::fs::read_to_string(path)
            .expect("read FILE")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect(),
        None => SAMPLES.iter().map(|s| s.to_string()).collect(),
    };

    let t = Instant::now();
    warm_up();
    println!("opencc t2s init: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);

    let t = Instant::now();
    drop(std::hint::black_box(jieba_rs::Jieba::new()));
    println!(
        "component alone: jieba default dictionary {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    drop(std::hint::black_box(jieba_rs::TfIdf::default()));
    println!(
        "component alone: jieba IDF table {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );

    let t = Instant::now();
    let seg = Segmenter::default();
    println!(
        "Segmenter::default() build: {:.1} ms ({} user words)",
        t.elapsed().as_secs_f64() * 1e3,
        seg.user_words()
    );

    let rounds = (2000 / texts.len()).max(1);
    let t = Instant::now();
    for _ in 0..rounds {
        for s in &texts {
            std::hint::black_box(prepare(s));
        }
    }
    let n = rounds * texts.len();
    println!(
        "prepare: {:.1} µs/text over {n} texts",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t = Instant::now();
    for _ in 0..rounds {
        for s in &texts {
            std::hint::black_box(seg.keywords(s, 5));
        }
    }
    println!(
        "keywords(k=5): {:.1} µs/text over {n} texts",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    if verbose {
        for s in &texts {
            let p = prepare(s);
            println!(
                "---\nraw:        {s}\nnormalized: {}\nmasked:     {}",
                p.normalized, p.masked
            );
            println!("cut:        {:?}", seg.cut(&p.normalized));
            println!("keywords:   {:?}", seg.keywords(s, 5));
        }
    }
}
