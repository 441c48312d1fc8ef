//! Dedup within chunks and the label cache across chunks, runs and cache scopes.

use touxiang_batch::{run, BatchHooks, BatchOptions};
use touxiang_datasets::Labeler;
use touxiang_testkit::KeywordLabeler;

use super::dir;

#[test]
fn dedup_within_chunks_and_cache_across_chunks_and_runs() {
    let d = dir();
    let input = d.path().join("in.csv");
    let variants = [
        "采购热轧钢卷",
        " 采购热轧钢卷 ",
        "采购　热轧钢卷",
        "超市进货",
        "ＡＢＣ超市",
        "ABC超市",
        "採購熱軋鋼卷",
        "采购热轧\u{200b}钢卷",
    ];
    let rows: Vec<(String, String)> = (0..600)
        .map(|i| (format!("D{i}"), variants[i % variants.len()].to_string()))
        .collect();
    let v: Vec<(&str, &str, &str, &str)> = rows
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str(), "", ""))
        .collect();
    touxiang_testkit::write_csv(&input, &v);
    // Distinct after normalisation (NFKC, 繁→简, whitespace, invisible characters — the one
    // normaliser of classify and training): 采购热轧钢卷, 采购 热轧钢卷, 超市进货, ABC超市.
    let cache = d.path().join("cache.sqlite");
    let mut opts = BatchOptions::new(&input, d.path().join("out.csv"));
    opts.cache_path = Some(cache.clone());
    opts.chunk_size = 50;
    let labeler = KeywordLabeler::new();
    let s = run(&opts, &labeler, &BatchHooks::default()).unwrap();
    assert_eq!(
        labeler.texts(),
        4,
        "each distinct normalised text labeled once"
    );
    assert_eq!(s.counters.labeled_texts, 4);
    assert_eq!(
        s.counters.unique_texts,
        12 * 4,
        "4 distinct texts in each of 12 chunks"
    );
    assert_eq!(s.counters.cache_hits, 12 * 4 - 4);

    // A second run with the same cache labels nothing.
    let labeler2 = KeywordLabeler::new();
    opts.output = d.path().join("out2.csv");
    run(&opts, &labeler2, &BatchHooks::default()).unwrap();
    assert_eq!(labeler2.calls(), 0);
    assert_eq!(
        std::fs::read(d.path().join("out.csv")).unwrap(),
        std::fs::read(d.path().join("out2.csv")).unwrap()
    );

    // Another model version does not reuse those labels.
    let labeler3 = KeywordLabeler::new().with_model_version("fake-keywords-2");
    opts.output = d.path().join("out3.csv");
    run(&opts, &labeler3, &BatchHooks::default()).unwrap();
    assert_eq!(labeler3.texts(), 4);

    // Nor does the same model labeling another way (neighbours voting): its cache scope
    // differs, while its rows still carry the model version.
    let labeler4 = Scoped(KeywordLabeler::new());
    opts.output = d.path().join("out4.csv");
    run(&opts, &labeler4, &BatchHooks::default()).unwrap();
    assert_eq!(labeler4.0.texts(), 4);
    let out4 = std::fs::read_to_string(d.path().join("out4.csv")).unwrap();
    assert!(out4.contains(&labeler4.model_version()) && !out4.contains("+knn"));
}

/// The keyword labeler with another cache scope than its model version.
struct Scoped(KeywordLabeler);

impl Labeler for Scoped {
    fn label(
        &self,
        t: &[&str],
    ) -> Result<Vec<touxiang_datasets::LabelResult>, touxiang_datasets::LabelError> {
        self.0.label(t)
    }
    fn model_version(&self) -> String {
        self.0.model_version()
    }
    fn taxonomy_version(&self) -> String {
        self.0.taxonomy_version()
    }
    fn cache_scope(&self) -> String {
        format!("{}+knn", self.0.model_version())
    }
}
