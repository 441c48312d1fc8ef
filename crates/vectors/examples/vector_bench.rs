//! Exact vs HNSW benchmark of the embedded store: load time, build time, p50/p99 latency,
//! recall@k and memory at several sizes.
//!
//! ```text
//! cargo run --release -p touxiang-vectors --example vector_bench -- \
//!     [--embeddings /tmp/touxiang-real-embeddings.f32] [--sizes 10000,100000,1000000] \
//!     [--queries 200] [--k 10] [--ef 64,128,256] [--m 16] [--efc 128] [--noise 0.2] \
//!     [--hnsw-max N] [--dir /tmp/touxiang-vector-bench]
//! ```
//! With `--embeddings`, rows are real e5 vectors (raw little-endian f32, 384 per row): the last
//! `--queries` rows are held out as queries, the rest are tiled with gaussian perturbation
//! (`--noise`, relative norm) up to each size. Without it, synthetic clustered vectors are used
//! (the figures then say so).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use touxiang_vectors::bench::{f16_recall_at_k, read_f32_rows, synthetic_clustered, tile_perturb};
use touxiang_vectors::{
    point_id, EmbeddedConfig, EmbeddedStore, Filter, HnswParams, Payload, Point,
};

struct Args {
    embeddings: Option<PathBuf>,
    sizes: Vec<usize>,
    queries: usize,
    k: usize,
    efs: Vec<usize>,
    m: usize,
    efc: usize,
    noise: f32,
    dir: PathBuf,
    dim: usize,
    hnsw_max: usize,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        embeddings: None,
        sizes: vec![10_000, 100_000, 1_000_000],
        queries: 200,
        k: 10,
        efs: vec![64, 128, 256],
        m: 16,
        efc: 128,
        noise: 0.2,
        dir: std::env::temp_dir().join("touxiang-vector-bench"),
        dim: 384,
        hnsw_max: usize::MAX,
    };
    let mut it = std::env::args().skip(1);
    let list = |s: String| -> Result<Vec<usize>, String> {
        s.split(',')
            .map(|x| x.trim().parse::<usize>().map_err(|e| format!("{x}: {e}")))
            .collect()
    };
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--embeddings" => a.embeddings = Some(PathBuf::from(val()?)),
            "--sizes" => a.sizes = list(val()?)?,
            "--queries" => a.queries = val()?.parse().map_err(|e| format!("--queries: {e}"))?,
            "--k" => a.k = val()?.parse().map_err(|e| format!("--k: {e}"))?,
            "--ef" => a.efs = list(val()?)?,
            "--m" => a.m = val()?.parse().map_err(|e| format!("--m: {e}"))?,
            "--efc" => a.efc = val()?.parse().map_err(|e| format!("--efc: {e}"))?,
            "--noise" => a.noise = val()?.parse().map_err(|e| format!("--noise: {e}"))?,
            "--dir" => a.dir = PathBuf::from(val()?),
            "--hnsw-max" => a.hnsw_max = val()?.parse().map_err(|e| format!("--hnsw-max: {e}"))?,
            "--dim" => a.dim = val()?.parse().map_err(|e| format!("--dim: {e}"))?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn pct(mut v: Vec<Duration>, p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("vector_bench: {e}");
            std::process::exit(2);
        }
    };
    let (base, queries, kind) = match &args.embeddings {
        Some(p) => {
            let rows = read_f32_rows(p, args.dim).unwrap_or_else(|e| {
                eprintln!("vector_bench: {e}");
                std::process::exit(2)
            });
            if rows.len() <= args.queries * 2 {
                eprintln!("vector_bench: {} has only {} rows", p.display(), rows.len());
                std::process::exit(2);
            }
            let split = rows.len() - args.queries;
            let q = rows[split..].to_vec();
            let b = rows[..split].to_vec();
            let kind = format!(
                "real e5 embeddings ({} base rows from {})",
                b.len(),
                p.display()
            );
            (b, q, kind)
        }
        None => {
            let all = synthetic_clustered(50_000 + args.queries, args.dim, 2_000, 1.0, 7);
            let q = all[50_000..].to_vec();
            (
                all[..50_000].to_vec(),
                q,
                "SYNTHETIC clustered vectors (2000 centres, no real embeddings given)".to_string(),
            )
        }
    };
    println!(
        "# data: {kind}; tiled with noise {} ; {} queries; k={}",
        args.noise,
        queries.len(),
        args.k
    );
    println!(
        "# hnsw: M={} ef_construction={}; threads={}",
        args.m,
        args.efc,
        rayon::current_num_threads()
    );
    println!("| n | load s | reopen s | RSS MiB exact | exact p50 ms | exact p99 ms | 1%-filter p50 ms | f16 recall@k | hnsw build s | RSS MiB exact+hnsw | ef | hnsw p50 ms | hnsw p99 ms | recall@k |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &n in &args.sizes {
        let data = tile_perturb(&base, n, args.noise, 11 + n as u64);
        let dir = args.dir.join(format!("n{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        let mut cfg = EmbeddedConfig::new(&dir, args.dim);
        cfg.ann_threshold = usize::MAX;
        let t = Instant::now();
        {
            let store = EmbeddedStore::open(cfg.clone()).expect("open");
            for (c, chunk) in data.chunks(10_000).enumerate() {
                let pts: Vec<Point> = chunk
                    .iter()
                    .enumerate()
                    .map(|(j, v)| {
                        let i = c * 10_000 + j;
                        let source = if i % 100 == 0 { "reviewed" } else { "seed" };
                        let text = format!("row {i}");
                        Point {
                            id: point_id("gbt4754-2017", source, &text),
                            vector: v.clone(),
                            payload: Payload {
                                text,
                                code: format!("{:04}", i % 1400),
                                taxonomy: "gbt4754-2017".into(),
                                source: source.into(),
                                reviewer: None,
                                created_at: chrono::Utc::now(),
                                model_version: "bench".into(),
                            },
                        }
                    })
                    .collect();
                store.upsert_blocking(pts).expect("upsert");
            }
        }
        let load_s = t.elapsed().as_secs_f64();
        drop(data);
        let rss0 = rss_mib();
        let t = Instant::now();
        let store = EmbeddedStore::open(cfg.clone()).expect("reopen");
        let reopen_s = t.elapsed().as_secs_f64();
        assert_eq!(store.len(), n);
        let rss_exact = rss_mib() - rss0;
        let all = Filter::all();
        let mut lat = Vec::new();
        for q in &queries {
            let t = Instant::now();
            let h = store
                .search_exact_blocking(q, args.k, &all)
                .expect("search");
            lat.push(t.elapsed());
            assert_eq!(h.len(), args.k.min(n));
        }
        let (e50, e99) = (pct(lat.clone(), 0.5), pct(lat, 0.99));
        let reviewed = Filter {
            sources: Some(vec!["reviewed".into()]),
            ..Filter::default()
        };
        let mut flat = Vec::new();
        for q in queries.iter().take(50) {
            let t = Instant::now();
            store.search_blocking(q, args.k, &reviewed).expect("search");
            flat.push(t.elapsed());
        }
        let f50 = pct(flat, 0.5);
        let f16 = if n <= 100_000 {
            let data = tile_perturb(&base, n, args.noise, 11 + n as u64);
            format!(
                "{:.4}",
                f16_recall_at_k(&data, &queries[..queries.len().min(100)], args.k)
            )
        } else {
            "-".into()
        };
        drop(store);
        if n > args.hnsw_max {
            println!(
                "| {n} | {load_s:.1} | {reopen_s:.2} | {rss_exact:.0} | {e50:.2} | {e99:.2} | {f50:.2} | {f16} | skipped (--hnsw-max) | | | | | |"
            );
            let _ = std::fs::remove_dir_all(&dir);
            continue;
        }
        // HNSW: reopen with the index enabled; build time = until the graph covers everything.
        let mut acfg = cfg.clone();
        acfg.ann_threshold = 1;
        acfg.hnsw = HnswParams {
            max_connections: args.m,
            ef_construction: args.efc,
            ef_search: args.efs[0],
        };
        let rss1 = rss_mib();
        let t = Instant::now();
        let store = EmbeddedStore::open(acfg.clone()).expect("reopen");
        let open_s = t.elapsed().as_secs_f64();
        assert!(
            store.wait_for_index(Duration::from_secs(3 * 3600)),
            "index build timed out"
        );
        let build_s = t.elapsed().as_secs_f64() - open_s;
        let rss_hnsw = rss_mib() - rss1;
        for (i, &ef) in args.efs.iter().enumerate() {
            store.set_ef_search(ef);
            let mut lat = Vec::new();
            for q in &queries {
                let t = Instant::now();
                store.search_blocking(q, args.k, &all).expect("search");
                lat.push(t.elapsed());
            }
            let recall = touxiang_vectors::bench::recall_at_k(&store, &queries, args.k, &all)
                .expect("recall");
            if i == 0 {
                println!(
                    "| {n} | {load_s:.1} | {reopen_s:.2} | {rss_exact:.0} | {e50:.2} | {e99:.2} | {f50:.2} | {f16} | {build_s:.1} | {rss_hnsw:.0} | {ef} | {:.3} | {:.3} | {recall:.4} |",
                    pct(lat.clone(), 0.5),
                    pct(lat, 0.99)
                );
            } else {
                println!(
                    "| {n} | | | | | | | | | | {ef} | {:.3} | {:.3} | {recall:.4} |",
                    pct(lat.clone(), 0.5),
                    pct(lat, 0.99)
                );
            }
        }
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
