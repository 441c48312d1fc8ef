//! `touxiang bench classify`: where the time of one single-text classification goes (encoder,
//! neighbour search, lexical search, heads + decision) and the process's memory, with the
//! shipped artifact and its exemplars in memory. The served latency adds the HTTP layer, the
//! batching queue and the vector store (`eval/bench/http_latency.py` measures that end to end).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use touxiang_model::{E5Model, Embedder, Kind, Precision};
use touxiang_training::ClassifyOptions;

use crate::cli::Common;
use crate::config::FlagOverrides;
use crate::engine::{encoder_text, ensure_exemplar_index, load_models};

#[derive(Args, Debug)]
pub struct BenchClassifyArgs {
    #[command(flatten)]
    pub common: Common,
    /// One text per line.
    #[arg(long)]
    pub texts: PathBuf,
    /// How many texts to classify (one at a time, after 20 warm-up calls).
    #[arg(long, default_value_t = 300)]
    pub n: usize,
    #[arg(long, default_value = touxiang_datasets::GBT4754_ID)]
    pub taxonomy: String,
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

pub fn bench_classify(a: BenchClassifyArgs) -> anyhow::Result<()> {
    let cfg = a.common.load(FlagOverrides::default())?;
    let content = std::fs::read_to_string(&a.texts)
        .with_context(|| format!("reading {}", a.texts.display()))?;
    let lines: Vec<&str> = content
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    anyhow::ensure!(!lines.is_empty(), "{} has no texts", a.texts.display());
    let model = Arc::new(E5Model::ensure_and_load(&cfg.model_dir(), Precision::Q4)?);
    let rss_model = touxiang_model::bench::rss_mib();
    let mut models = load_models(&cfg, &Embedder::version(model.as_ref()))?;
    let mut m = models
        .remove(&a.taxonomy)
        .with_context(|| format!("no trained classifier for '{}'", a.taxonomy))?;
    let rss_classifier = touxiang_model::bench::rss_mib();
    ensure_exemplar_index(&cfg, &mut m, &model)?;
    let rss_all = touxiang_model::bench::rss_mib();
    let ix = m
        .exemplars
        .clone()
        .context("the artifact has no exemplars: nothing to search")?;
    let clf = &m.classifier;
    let opts = ClassifyOptions::default();
    let k = clf.knn_k();
    let (mut enc, mut knn, mut lex, mut rest, mut total) = (vec![], vec![], vec![], vec![], vec![]);
    for (i, t) in lines.iter().cycle().take(a.n + 20).enumerate() {
        let t0 = Instant::now();
        let e = model
            .embed(&[encoder_text(t).as_str()], Kind::Query)?
            .remove(0);
        let t1 = Instant::now();
        let nb = ix.search(std::slice::from_ref(&e), k)?.remove(0);
        let t2 = Instant::now();
        let lx = clf.lexical().map(|l| l.search(t, k));
        let t3 = Instant::now();
        let c = clf.classify(t, &e, &nb, &opts)?;
        let t4 = Instant::now();
        std::hint::black_box((c, lx));
        if i >= 20 {
            let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
            enc.push(ms(t0, t1));
            knn.push(ms(t1, t2));
            lex.push(ms(t2, t3));
            // `classify` runs the lexical search itself: the rest is heads + decision
            rest.push((ms(t3, t4) - ms(t2, t3)).max(0.0));
            total.push(ms(t0, t1) + ms(t1, t2) + ms(t3, t4));
        }
    }
    println!(
        "{} single-text classifications ({} exemplars, lexical index over {} texts)",
        total.len(),
        ix.len(),
        clf.lexical().map_or(0, |l| l.len())
    );
    for (name, v) in [
        ("encoder", &mut enc),
        ("neighbour search (exact, in memory)", &mut knn),
        ("lexical search", &mut lex),
        ("heads + decision", &mut rest),
        ("total", &mut total),
    ] {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        println!(
            "  {name:<38} mean {mean:6.2} ms  p50 {:6.2}  p99 {:6.2}",
            pct(v, 0.5),
            pct(v, 0.99)
        );
    }
    println!(
        "RSS: encoder {rss_model:.0} MiB, + classifier and lexical index {rss_classifier:.0} MiB, + exemplar vectors {rss_all:.0} MiB (peak {:.0} MiB)",
        touxiang_model::bench::peak_rss_mib()
    );
    Ok(())
}
