//! The diff report against old codes, on a constructed case.

use std::collections::HashMap;
use std::sync::Arc;

use touxiang_batch::{run, BatchHooks, BatchOptions};
use touxiang_datasets::Taxonomy;
use touxiang_testkit::KeywordLabeler;

use super::dir;

#[test]
fn diff_report_counts_on_a_constructed_case() {
    let d = dir();
    let input = d.path().join("in.csv");
    touxiang_testkit::write_csv(
        &input,
        &[
            ("r1", "采购钢材", "100", "3120"),     // unchanged
            ("r2", "采购钢材", "200", "3110"),     // C/31 same, group+class change
            ("r3", "烤串店", "300", "6210"),       // H/62 same, group+class change
            ("r4", "超市进货", "400", "1311"),     // changes from the section down
            ("r5", "软件开发", "500", "6513"),     // new is the group 651: class not comparable
            ("r6", "补充流动资金", "600", "3120"), // no new code
            ("r7", "采购钢材", "700", ""),         // no old code
            ("r8", "采购钢材", "800", "9999"),     // unknown old code
            ("r9", "采购钢材", "1,000", "3110"),   // same flow as r2
        ],
    );
    let mut opts = BatchOptions::new(&input, d.path().join("out.csv"));
    opts.old_code_column = Some("old_code".into());
    opts.balance_column = Some("balance".into());
    opts.diff_json = Some(d.path().join("diff.json"));
    opts.diff_xlsx = Some(d.path().join("diff.xlsx"));
    let hooks = BatchHooks {
        taxonomy: Some(Arc::new(Taxonomy::gbt4754().clone())),
        ..BatchHooks::default()
    };
    let s = run(&opts, &KeywordLabeler::new(), &hooks).unwrap();
    let r = s.diff.unwrap();
    assert_eq!(r.rows, 9);
    assert_eq!(r.rows_with_old_code, 8);
    assert_eq!(r.rows_without_old_code, 1);
    assert_eq!(r.unknown_old_codes, 1);
    assert_eq!(r.rows_without_new_code, 1);
    assert_eq!(r.unchanged, 1);
    assert_eq!(r.changed, 7);
    let lv: Vec<(&str, u64, u64, u64, u64)> = r
        .levels
        .iter()
        .map(|l| {
            (
                l.level.as_str(),
                l.compared,
                l.changed,
                l.unchanged,
                l.not_comparable,
            )
        })
        .collect();
    // compared rows: r1 r2 r3 r4 r5 r9 (r6 no new, r8 unknown old).
    assert_eq!(
        lv,
        [
            ("section", 6, 1, 5, 2),
            ("division", 6, 1, 5, 2),
            ("group", 6, 4, 2, 2),
            ("class", 5, 4, 1, 3),
        ]
    );
    assert_eq!(r.levels[2].changed_balance, 200.0 + 300.0 + 400.0 + 1000.0);
    assert_eq!(r.total_flows, 6);
    let top = &r.flows[0];
    assert_eq!(
        (top.old.as_str(), top.new.as_str(), top.count),
        ("3110", "3120", 2)
    );
    assert_eq!(top.balance, 1200.0);
    assert_eq!(top.old_name.as_deref(), Some("炼铁"));
    let ex: Vec<&str> = top.examples.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ex, ["r2", "r9"]);
    let none_flow = r.flows.iter().find(|f| f.new.is_empty()).unwrap();
    assert_eq!((none_flow.old.as_str(), none_flow.count), ("3120", 1));

    let json: touxiang_batch::DiffReport =
        serde_json::from_slice(&std::fs::read(d.path().join("diff.json")).unwrap()).unwrap();
    assert_eq!(json, r);
    use calamine::Reader;
    let mut wb: calamine::Xlsx<_> = calamine::open_workbook(d.path().join("diff.xlsx")).unwrap();
    assert_eq!(wb.sheet_names(), ["summary", "levels", "flows", "examples"]);
    let flows = wb.worksheet_range("flows").unwrap();
    assert_eq!(flows.height(), 1 + 6);

    // The same diff from a previous-codes map filled by the caller (e.g. the portfolio store).
    let mut prev = HashMap::new();
    for (id, c) in [
        ("r1", "3120"),
        ("r2", "3110"),
        ("r3", "6210"),
        ("r4", "1311"),
        ("r5", "6513"),
        ("r6", "3120"),
        ("r8", "9999"),
        ("r9", "3110"),
    ] {
        prev.insert(id.to_string(), c.to_string());
    }
    opts.old_code_column = None;
    opts.output = d.path().join("out2.csv");
    let hooks = BatchHooks {
        previous_codes: Some(Arc::new(prev)),
        ..BatchHooks::default()
    };
    let s2 = run(&opts, &KeywordLabeler::new(), &hooks).unwrap();
    assert_eq!(s2.diff.unwrap(), r);
}
