//! Diff of new labels against previous ones: changes per level, biggest flows, examples.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use touxiang_datasets::Taxonomy;

use crate::error::BatchError;

/// Changes at one level of the taxonomy (ancestors of old and new code at that depth).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LevelDiff {
    /// Level name ("section", "division", "group", "class", …).
    pub level: String,
    pub depth: usize,
    /// Rows where both old and new code reach this depth.
    pub compared: u64,
    pub changed: u64,
    pub unchanged: u64,
    /// Rows with an old code where old or new code does not reach this depth (or is unknown).
    pub not_comparable: u64,
    /// Balance of the changed rows.
    pub changed_balance: f64,
}

/// Example row of a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowExample {
    pub row: u64,
    pub id: String,
    pub text: String,
}

/// Rows whose full code moved from `old` to `new` (`new` empty = no new label: error/abstain).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flow {
    pub old: String,
    pub old_name: Option<String>,
    pub new: String,
    pub new_name: Option<String>,
    pub count: u64,
    pub balance: f64,
    pub examples: Vec<FlowExample>,
}

/// The diff report (JSON as serialised; XLSX via [`DiffReport::write_xlsx`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiffReport {
    pub taxonomy: String,
    /// Rows considered (all rows of the run).
    pub rows: u64,
    pub rows_with_old_code: u64,
    pub rows_without_old_code: u64,
    /// Old codes that are not in the taxonomy (counted, not compared by level).
    pub unknown_old_codes: u64,
    /// Rows with an old code but no new label (unlabeled row or abstention).
    pub rows_without_new_code: u64,
    /// Rows with an old code whose full code is the same / differs.
    pub unchanged: u64,
    pub changed: u64,
    pub changed_balance: f64,
    pub levels: Vec<LevelDiff>,
    /// Number of distinct (old, new) pairs with old ≠ new.
    pub total_flows: u64,
    /// The biggest flows, by count (then balance), at most `diff_top_flows`.
    pub flows: Vec<Flow>,
}

/// Accumulates a [`DiffReport`] row by row (serialisable, so it survives in the checkpoint).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DiffAccumulator {
    report: DiffReport,
    /// Key `"old\tnew"`.
    flows: BTreeMap<String, Flow>,
    examples_per_flow: usize,
}

impl DiffAccumulator {
    /// Empty accumulator for `taxonomy`.
    pub fn new(taxonomy: &Taxonomy, examples_per_flow: usize) -> DiffAccumulator {
        let levels = (0..taxonomy.level_names().len())
            .map(|d| LevelDiff {
                level: taxonomy.level_name(d).to_string(),
                depth: d,
                ..Default::default()
            })
            .collect();
        DiffAccumulator {
            report: DiffReport {
                taxonomy: taxonomy.id().to_string(),
                levels,
                ..Default::default()
            },
            flows: BTreeMap::new(),
            examples_per_flow,
        }
    }

    /// Add one row: its previous code (if any), its new code (if any), balance, id and text.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        taxonomy: &Taxonomy,
        row: u64,
        id: &str,
        text: &str,
        old: Option<&str>,
        new: Option<&str>,
        balance: Option<f64>,
    ) {
        let r = &mut self.report;
        r.rows += 1;
        let Some(old) = old.map(str::trim).filter(|s| !s.is_empty()) else {
            r.rows_without_old_code += 1;
            return;
        };
        r.rows_with_old_code += 1;
        let bal = balance.unwrap_or(0.0);
        if !taxonomy.contains(old) {
            r.unknown_old_codes += 1;
        }
        if new.is_none() {
            r.rows_without_new_code += 1;
        }
        for lv in r.levels.iter_mut() {
            let a = taxonomy.ancestor_at(old, lv.depth);
            let b = new.and_then(|n| taxonomy.ancestor_at(n, lv.depth));
            match (a, b) {
                (Some(a), Some(b)) => {
                    lv.compared += 1;
                    if a.code == b.code {
                        lv.unchanged += 1;
                    } else {
                        lv.changed += 1;
                        lv.changed_balance += bal;
                    }
                }
                _ => lv.not_comparable += 1,
            }
        }
        let new = new.unwrap_or("");
        if old == new {
            r.unchanged += 1;
            return;
        }
        r.changed += 1;
        r.changed_balance += bal;
        let key = format!("{old}\t{new}");
        let flow = self.flows.entry(key).or_insert_with(|| Flow {
            old: old.to_string(),
            old_name: taxonomy.get(old).map(|n| n.name.clone()),
            new: new.to_string(),
            new_name: taxonomy.get(new).map(|n| n.name.clone()),
            count: 0,
            balance: 0.0,
            examples: Vec::new(),
        });
        flow.count += 1;
        flow.balance += bal;
        if flow.examples.len() < self.examples_per_flow {
            flow.examples.push(FlowExample {
                row,
                id: id.to_string(),
                text: text.to_string(),
            });
        }
    }

    /// The report with the `top` biggest flows.
    pub fn report(&self, top: usize) -> DiffReport {
        let mut r = self.report.clone();
        let mut flows: Vec<&Flow> = self.flows.values().collect();
        flows.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(b.balance.total_cmp(&a.balance))
                .then(a.old.cmp(&b.old))
                .then(a.new.cmp(&b.new))
        });
        r.total_flows = flows.len() as u64;
        r.flows = flows.into_iter().take(top).cloned().collect();
        r
    }
}

fn out_err(path: &Path, e: impl std::fmt::Display) -> BatchError {
    BatchError::Output {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl DiffReport {
    /// Write as pretty JSON.
    pub fn write_json(&self, path: &Path) -> Result<(), BatchError> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| out_err(path, e))?;
        std::fs::write(path, json).map_err(|e| BatchError::io("cannot write", path, e))
    }

    /// Write as a workbook with sheets `summary`, `levels`, `flows`, `examples`.
    pub fn write_xlsx(&self, path: &Path) -> Result<(), BatchError> {
        use rust_xlsxwriter::{Format, Workbook};
        let e = |e: rust_xlsxwriter::XlsxError| out_err(path, e);
        let bold = Format::new().set_bold();
        let mut wb = Workbook::new();

        let ws = wb.add_worksheet().set_name("summary").map_err(e)?;
        let rows: Vec<(&str, f64)> = vec![
            ("rows", self.rows as f64),
            ("rows_with_old_code", self.rows_with_old_code as f64),
            ("rows_without_old_code", self.rows_without_old_code as f64),
            ("unknown_old_codes", self.unknown_old_codes as f64),
            ("rows_without_new_code", self.rows_without_new_code as f64),
            ("unchanged", self.unchanged as f64),
            ("changed", self.changed as f64),
            ("changed_balance", self.changed_balance),
            ("total_flows", self.total_flows as f64),
        ];
        ws.write_string_with_format(0, 0, "taxonomy", &bold)
            .map_err(e)?;
        ws.write_string(0, 1, &self.taxonomy).map_err(e)?;
        for (i, (k, v)) in rows.iter().enumerate() {
            ws.write_string_with_format(i as u32 + 1, 0, *k, &bold)
                .map_err(e)?;
            ws.write_number(i as u32 + 1, 1, *v).map_err(e)?;
        }
        ws.set_column_width(0, 24).map_err(e)?;

        let ws = wb.add_worksheet().set_name("levels").map_err(e)?;
        for (c, h) in [
            "level",
            "compared",
            "changed",
            "unchanged",
            "not_comparable",
            "changed_balance",
        ]
        .iter()
        .enumerate()
        {
            ws.write_string_with_format(0, c as u16, *h, &bold)
                .map_err(e)?;
        }
        for (i, l) in self.levels.iter().enumerate() {
            let r = i as u32 + 1;
            ws.write_string(r, 0, &l.level).map_err(e)?;
            ws.write_number(r, 1, l.compared as f64).map_err(e)?;
            ws.write_number(r, 2, l.changed as f64).map_err(e)?;
            ws.write_number(r, 3, l.unchanged as f64).map_err(e)?;
            ws.write_number(r, 4, l.not_comparable as f64).map_err(e)?;
            ws.write_number(r, 5, l.changed_balance).map_err(e)?;
        }

        let ws = wb.add_worksheet().set_name("flows").map_err(e)?;
        for (c, h) in ["old", "old_name", "new", "new_name", "count", "balance"]
            .iter()
            .enumerate()
        {
            ws.write_string_with_format(0, c as u16, *h, &bold)
                .map_err(e)?;
        }
        for (i, f) in self.flows.iter().enumerate() {
            let r = i as u32 + 1;
            ws.write_string(r, 0, &f.old).map_err(e)?;
            ws.write_string(r, 1, f.old_name.as_deref().unwrap_or(""))
                .map_err(e)?;
            ws.write_string(r, 2, &f.new).map_err(e)?;
            ws.write_string(r, 3, f.new_name.as_deref().unwrap_or(""))
                .map_err(e)?;
            ws.write_number(r, 4, f.count as f64).map_err(e)?;
            ws.write_number(r, 5, f.balance).map_err(e)?;
        }

        let ws = wb.add_worksheet().set_name("examples").map_err(e)?;
        for (c, h) in ["old", "new", "row", "id", "text"].iter().enumerate() {
            ws.write_string_with_format(0, c as u16, *h, &bold)
                .map_err(e)?;
        }
        let mut r = 1u32;
        for f in &self.flows {
            for x in &f.examples {
                ws.write_string(r, 0, &f.old).map_err(e)?;
                ws.write_string(r, 1, &f.new).map_err(e)?;
                ws.write_number(r, 2, x.row as f64).map_err(e)?;
                ws.write_string(r, 3, &x.id).map_err(e)?;
                ws.write_string(r, 4, &x.text).map_err(e)?;
                r += 1;
            }
        }
        wb.save(path).map_err(e)
    }
}
