//! Spreadsheet formula injection: ids from the input never reach a CSV output as live formulas.

use touxiang_batch::{read_output, run, BatchHooks, BatchOptions, Format};
use touxiang_testkit::KeywordLabeler;

fn ids(path: &std::path::Path, format: Format) -> Vec<String> {
    read_output(path, format)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

#[test]
fn csv_output_neutralises_formula_ids_and_keeps_numbers() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("in.csv");
    touxiang_testkit::write_csv(
        &input,
        &[
            ("=1+1", "采购热轧钢卷", "100", ""),
            ("@SUM(A1)", "超市进货", "200", ""),
            ("-12.5", "采购热轧钢卷", "300", ""),
            ("L00004", "超市进货", "400", ""),
        ],
    );
    let labeler = KeywordLabeler::new();

    let out = d.path().join("out.csv");
    run(
        &BatchOptions::new(&input, &out),
        &labeler,
        &BatchHooks::default(),
    )
    .unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[1].starts_with("'=1+1,3120,"), "{text}");
    assert!(lines[2].starts_with("'@SUM(A1),5211,"), "{text}");
    // a numeric id is a number, not a formula: unchanged
    assert!(lines[3].starts_with("-12.5,3120,"), "{text}");
    assert!(lines[4].starts_with("L00004,5211,"), "{text}");
    let want = ["=1+1", "@SUM(A1)", "-12.5", "L00004"];
    // readers of the CSV get the original values back
    assert_eq!(ids(&out, Format::Csv), want);

    // XLSX output (assembled from the CSV part file) holds the values as typed strings, unchanged.
    let xlsx = d.path().join("out.xlsx");
    run(
        &BatchOptions::new(&input, &xlsx),
        &labeler,
        &BatchHooks::default(),
    )
    .unwrap();
    assert_eq!(ids(&xlsx, Format::Xlsx), want);
}
