//! Small input books for tests.

use std::path::Path;

/// Write a CSV with header `loan_id,purpose_text,balance,old_code`.
pub fn write_csv(path: &Path, rows: &[(&str, &str, &str, &str)]) {
    let mut w = csv::Writer::from_path(path).unwrap();
    w.write_record(["loan_id", "purpose_text", "balance", "old_code"])
        .unwrap();
    for (a, b, c, d) in rows {
        w.write_record([a, b, c, d]).unwrap();
    }
    w.flush().unwrap();
}

/// A varied set of rows with repeats.
pub fn sample_rows(n: usize) -> Vec<(String, String)> {
    let texts = [
        "采购热轧钢卷",
        "补充流动资金",
        "烤串店装修及购买冷柜",
        "超市进货",
        "软件开发人员工资",
        "批发日用百货",
        "种植水稻",
        "楼盘开发",
        "城市客运线路运营",
        "餐厅装修",
    ];
    (0..n)
        .map(|i| {
            let t = if i % 3 == 0 {
                format!("{}，第{}批", texts[i % texts.len()], i % 17)
            } else {
                texts[(i * 7) % texts.len()].to_string()
            };
            (format!("L{i:05}"), t)
        })
        .collect()
}

/// A CSV of [`sample_rows`] (`n` rows, balance 1000, no old code) at `path`.
pub fn sample_csv(path: &Path, n: usize) {
    let rows = sample_rows(n);
    let v: Vec<(&str, &str, &str, &str)> = rows
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str(), "1000", ""))
        .collect();
    write_csv(path, &v);
}
