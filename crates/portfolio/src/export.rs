//! CSV and XLSX export of any aggregation result: one column per dimension code and name, then
//! the metrics (and change columns when present); a final `TOTAL` row carries the totals.
//!
//! CSV text cells (codes, names, months) go through [`touxiang_datasets::csv_safe`], so a value
//! such as `=1+1` is written as `'=1+1` and never runs as a spreadsheet formula; numbers are
//! written as numbers. XLSX cells are typed (strings stay strings) and need no escaping.

use std::io::Write;

use touxiang_datasets::csv_safe;

use crate::agg::{AggResult, Change, Metrics};
use crate::error::{PortfolioError, Result};

enum Cell {
    Text(Option<String>),
    Num(Option<f64>),
}

fn table(r: &AggResult) -> (Vec<String>, Vec<Vec<Cell>>) {
    let has_change = r.rows.iter().any(|x| x.change.is_some()) || r.totals.change.is_some();
    let mut header = Vec::new();
    for d in &r.by {
        header.push(d.as_str().to_string());
        header.push(format!("{}_name", d.as_str()));
    }
    for m in [
        "loans",
        "balance",
        "overdue_loans",
        "overdue_balance",
        "overdue_rate_count",
        "overdue_rate_balance",
        "share_of_total",
    ] {
        header.push(m.to_string());
    }
    if has_change {
        for m in [
            "prev_month",
            "prev_loans",
            "prev_balance",
            "prev_overdue_rate_count",
            "balance_change",
            "balance_change_pct",
            "overdue_rate_count_change",
            "overdue_rate_balance_change",
        ] {
            header.push(m.to_string());
        }
    }
    let metric_cells = |m: &Metrics, c: &Option<Change>, out: &mut Vec<Cell>| {
        out.push(Cell::Num(Some(m.loans as f64)));
        out.push(Cell::Num(Some(m.balance)));
        out.push(Cell::Num(Some(m.overdue_loans as f64)));
        out.push(Cell::Num(Some(m.overdue_balance)));
        out.push(Cell::Num(Some(m.overdue_rate_count)));
        out.push(Cell::Num(Some(m.overdue_rate_balance)));
        out.push(Cell::Num(Some(m.share_of_total)));
        if has_change {
            match c {
                Some(c) => {
                    out.push(Cell::Text(Some(c.prev_month.clone())));
                    out.push(Cell::Num(Some(c.prev_loans as f64)));
                    out.push(Cell::Num(Some(c.prev_balance)));
                    out.push(Cell::Num(Some(c.prev_overdue_rate_count)));
                    out.push(Cell::Num(Some(c.balance_change)));
                    out.push(Cell::Num(c.balance_change_pct));
                    out.push(Cell::Num(Some(c.overdue_rate_count_change)));
                    out.push(Cell::Num(Some(c.overdue_rate_balance_change)));
                }
                None => (0..8).for_each(|_| out.push(Cell::Text(None))),
            }
        }
    };
    let mut rows = Vec::new();
    for row in &r.rows {
        let mut cells = Vec::new();
        if r.by.is_empty() {
            cells.push(Cell::Text(None));
        }
        for k in &row.keys {
            cells.push(Cell::Text(k.code.clone()));
            cells.push(Cell::Text(k.name.clone()));
        }
        metric_cells(&row.metrics, &row.change, &mut cells);
        rows.push(cells);
    }
    let mut cells = Vec::new();
    for (i, _) in r.by.iter().enumerate() {
        cells.push(Cell::Text((i == 0).then(|| "TOTAL".to_string())));
        cells.push(Cell::Text(None));
    }
    if r.by.is_empty() {
        header.insert(0, "row".into());
        cells.push(Cell::Text(Some("TOTAL".into())));
    }
    metric_cells(&r.totals.metrics, &r.totals.change, &mut cells);
    rows.push(cells);
    (header, rows)
}

/// Write a result as CSV (UTF-8, header row, one row per result row, then a `TOTAL` row). Text
/// cells are neutralised with [`csv_safe`] (formula injection); numeric cells are left as numbers.
pub fn to_csv<W: Write>(r: &AggResult, w: W) -> Result<()> {
    let (header, rows) = table(r);
    let mut wtr = csv::Writer::from_writer(w);
    let err = |e: csv::Error| PortfolioError::Export(e.to_string());
    wtr.write_record(&header).map_err(err)?;
    for row in rows {
        let rec: Vec<String> = row
            .into_iter()
            .map(|c| match c {
                Cell::Text(t) => t
                    .as_deref()
                    .map(|t| csv_safe(t).into_owned())
                    .unwrap_or_default(),
                Cell::Num(n) => n.map(|v| v.to_string()).unwrap_or_default(),
            })
            .collect();
        wtr.write_record(&rec).map_err(err)?;
    }
    wtr.flush()?;
    Ok(())
}

/// Render a result as an XLSX workbook (one sheet "aggregate"; numbers as numbers, rates with a
/// percentage format).
pub fn to_xlsx(r: &AggResult) -> Result<Vec<u8>> {
    use rust_xlsxwriter::{Format, Workbook};
    let (header, rows) = table(r);
    let err = |e: rust_xlsxwriter::XlsxError| PortfolioError::Export(e.to_string());
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("aggregate").map_err(err)?;
    let bold = Format::new().set_bold();
    let pct = Format::new().set_num_format("0.00%");
    let money = Format::new().set_num_format("#,##0.00");
    for (c, h) in header.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, h, &bold)
            .map_err(err)?;
    }
    for (ri, row) in rows.into_iter().enumerate() {
        for (c, cell) in row.into_iter().enumerate() {
            let (rr, cc) = (ri as u32 + 1, c as u16);
            match cell {
                Cell::Text(Some(t)) => {
                    ws.write_string(rr, cc, &t).map_err(err)?;
                }
                Cell::Num(Some(v)) => {
                    let h = &header[c];
                    if h.contains("rate") || h.contains("share") || h.ends_with("_pct") {
                        ws.write_number_with_format(rr, cc, v, &pct).map_err(err)?;
                    } else if h.contains("balance") {
                        ws.write_number_with_format(rr, cc, v, &money)
                            .map_err(err)?;
                    } else {
                        ws.write_number(rr, cc, v).map_err(err)?;
                    }
                }
                _ => {}
            }
        }
    }
    wb.save_to_buffer().map_err(err)
}

/// Render a result as a fixed-width text table (for terminals and test output): dimension codes
/// and names, loans, balance, overdue loans, overdue rates (count, balance) and share.
pub fn to_text(r: &AggResult) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let label = |keys: &[crate::agg::KeyValue]| -> String {
        keys.iter()
            .map(|k| match (&k.code, &k.name) {
                (Some(c), Some(n)) => format!("{c} {n}"),
                (Some(c), None) => c.clone(),
                (None, _) => "(none)".into(),
            })
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let dims =
        r.by.iter()
            .map(|d| d.as_str())
            .collect::<Vec<_>>()
            .join(" / ");
    let w = r
        .rows
        .iter()
        .map(|x| label(&x.keys).chars().count())
        .chain([dims.chars().count(), 5])
        .max()
        .unwrap_or(5)
        .min(60);
    let pad = |s: &str| {
        let n = s.chars().count();
        if n >= w {
            s.chars().take(w).collect::<String>()
        } else {
            format!("{s}{}", " ".repeat(w - n))
        }
    };
    let _ = writeln!(
        out,
        "{} {:>9} {:>16} {:>9} {:>9} {:>9} {:>7}",
        pad(if dims.is_empty() { "-" } else { &dims }),
        "loans",
        "balance",
        "overdue",
        "rate_cnt",
        "rate_bal",
        "share"
    );
    let line = |out: &mut String, l: &str, m: &Metrics| {
        let _ = writeln!(
            out,
            "{} {:>9} {:>16.0} {:>9} {:>8.2}% {:>8.2}% {:>6.1}%",
            pad(l),
            m.loans,
            m.balance,
            m.overdue_loans,
            m.overdue_rate_count * 100.0,
            m.overdue_rate_balance * 100.0,
            m.share_of_total * 100.0
        );
    };
    for row in &r.rows {
        line(&mut out, &label(&row.keys), &row.metrics);
    }
    line(&mut out, "TOTAL", &r.totals.metrics);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agg::{AggRow, Dimension, KeyValue, Totals};

    fn row(code: &str, name: &str, metrics: Metrics, change: &Change) -> AggRow {
        AggRow {
            keys: vec![KeyValue {
                dim: Dimension::Purpose,
                code: Some(code.to_string()),
                name: Some(name.to_string()),
            }],
            metrics,
            change: Some(change.clone()),
        }
    }

    #[test]
    fn csv_neutralises_formula_cells_and_keeps_negative_numbers() {
        let change = Change {
            prev_month: "@SUM(A1)".into(),
            prev_loans: 1,
            prev_balance: 50.0,
            prev_overdue_balance: 0.0,
            prev_overdue_rate_count: 0.0,
            prev_overdue_rate_balance: 0.0,
            balance_change: -12.5,
            balance_change_pct: Some(-0.25),
            overdue_rate_count_change: 0.0,
            overdue_rate_balance_change: 0.0,
        };
        let metrics = Metrics {
            loans: 1,
            balance: 37.5,
            share_of_total: 0.5,
            ..Metrics::default()
        };
        let r = AggResult {
            portfolio: "p".into(),
            by: vec![Dimension::Purpose],
            months: vec!["2024-06".into()],
            as_of_dates: vec!["2024-06-30".into()],
            previous_month: Some("2024-05".into()),
            overdue_definition: "days past due > 0".into(),
            total_rows: 2,
            rows: vec![
                row("=1+1", "@SUM(A1)", metrics, &change),
                row("-12.5", "采购钢材", metrics, &change),
            ],
            totals: Totals {
                metrics,
                change: Some(change.clone()),
            },
            concentration: Vec::new(),
        };
        let mut buf = Vec::new();
        to_csv(&r, &mut buf).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        assert!(!text.contains(",=") && !text.contains(",@") && !text.starts_with('='));
        let mut rdr = csv::Reader::from_reader(buf.as_slice());
        let header = rdr.headers().unwrap().clone();
        let col = |name: &str| header.iter().position(|h| h == name).unwrap();
        let rows: Vec<csv::StringRecord> = rdr.records().map(|x| x.unwrap()).collect();
        assert_eq!(rows.len(), 3);
        // user-controlled text is neutralised ...
        assert_eq!(&rows[0][col("purpose")], "'=1+1");
        assert_eq!(&rows[0][col("purpose_name")], "'@SUM(A1)");
        assert_eq!(&rows[0][col("prev_month")], "'@SUM(A1)");
        // ... a numeric-looking code and plain text are not ...
        assert_eq!(&rows[1][col("purpose")], "-12.5");
        assert_eq!(&rows[1][col("purpose_name")], "采购钢材");
        assert_eq!(&rows[2][col("purpose")], "TOTAL");
        // ... and negative numbers stay numbers
        for rec in &rows {
            assert_eq!(&rec[col("balance_change")], "-12.5");
            assert_eq!(&rec[col("balance_change_pct")], "-0.25");
            assert_eq!(&rec[col("balance")], "37.5");
        }
    }
}
