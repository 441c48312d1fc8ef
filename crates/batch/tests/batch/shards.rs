//! Shards: run separately and merged, they equal the whole run.

use touxiang_batch::{merge_shards, read_output, run, BatchHooks, BatchOptions, Format, Shard};
use touxiang_testkit::KeywordLabeler;

use super::{dir, sample_csv};

#[test]
fn shards_together_equal_the_whole() {
    let d = dir();
    let input = d.path().join("in.csv");
    sample_csv(&input, 1001);
    let cache = d.path().join("cache.sqlite");
    let labeler = KeywordLabeler::new();
    for fmt in [Format::Csv, Format::Jsonl, Format::Parquet] {
        let whole = d.path().join(format!("whole.{}", fmt.as_str()));
        let mut opts = BatchOptions::new(&input, &whole);
        opts.cache_path = Some(cache.clone());
        opts.chunk_size = 64;
        run(&opts, &labeler, &BatchHooks::default()).unwrap();
        let n = 4;
        let mut parts = Vec::new();
        let mut bytes = Vec::new();
        let mut firsts = Vec::new();
        for i in 0..n {
            let p = d.path().join(format!("shard{i}.{}", fmt.as_str()));
            let mut o = opts.clone();
            o.output = p.clone();
            o.shard = Some(Shard { index: i, count: n });
            let s = run(&o, &labeler, &BatchHooks::default()).unwrap();
            firsts.push(s.first_row);
            let b = std::fs::read(&p).unwrap();
            // The documented byte rule: CSV drops the header of shards after the first.
            if fmt == Format::Csv && i > 0 {
                let nl = b.iter().position(|&c| c == b'\n').unwrap();
                bytes.extend_from_slice(&b[nl + 1..]);
            } else {
                bytes.extend_from_slice(&b);
            }
            parts.push(p);
        }
        assert_eq!(firsts, [Some(1), Some(251), Some(501), Some(751)]);
        let merged = d.path().join(format!("merged.{}", fmt.as_str()));
        let m = merge_shards(&parts, &merged, fmt).unwrap();
        assert_eq!(m, 1001);
        assert_eq!(
            read_output(&merged, fmt).unwrap(),
            read_output(&whole, fmt).unwrap()
        );
        if fmt != Format::Parquet {
            assert_eq!(
                bytes,
                std::fs::read(&whole).unwrap(),
                "{fmt:?} concatenation"
            );
            assert_eq!(
                std::fs::read(&merged).unwrap(),
                std::fs::read(&whole).unwrap()
            );
        }
    }
}
