//! [`EvalReport`]: every system's metrics side by side, as JSON, Markdown and a short summary.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::baseline::BaselineStats;
use crate::error::{EvalError, Result};
use crate::metrics::{CurvePoint, Metrics};

/// One system's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemReport {
    pub name: String,
    pub description: String,
    /// Wall time of predicting the evaluation set.
    pub seconds_predict: f64,
    pub metrics: Metrics,
    /// Training statistics when the system is the baseline.
    pub baseline: Option<BaselineStats>,
}

/// An evaluation report: the system under test first, then the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub title: String,
    /// The evaluation data (file or split).
    pub data: String,
    pub taxonomy_id: String,
    pub taxonomy_version: String,
    pub examples: usize,
    pub level_names: Vec<String>,
    pub target_precision: f64,
    pub systems: Vec<SystemReport>,
}

/// Paths written by [`write_report`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    pub json: PathBuf,
    pub markdown: PathBuf,
}

/// Thresholds shown in the Markdown curve table (the JSON has the full grid).
pub const CURVE_SHOWN: [f64; 8] = [0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99];

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.1} %", 100.0 * x))
        .unwrap_or_else(|| "–".into())
}

fn num(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "–".into())
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn point_at(curve: &[CurvePoint], t: f64) -> Option<&CurvePoint> {
    curve.iter().find(|p| (p.threshold - t).abs() < 1e-9)
}

fn target_cell(p: &Option<CurvePoint>) -> String {
    match p {
        Some(p) => format!(
            "t = {:.4}: {} coverage, {} precision",
            p.threshold,
            pct(Some(p.coverage)),
            pct(p.precision)
        ),
        None => "not reached".into(),
    }
}

impl EvalReport {
    /// The report as Markdown tables.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let names: Vec<&str> = self.systems.iter().map(|x| x.name.as_str()).collect();
        let head = |s: &mut String, first: &[&str]| {
            let cols: Vec<String> = first
                .iter()
                .map(|c| c.to_string())
                .chain(names.iter().map(|n| cell(n)))
                .collect();
            let _ = writeln!(s, "| {} |", cols.join(" | "));
            let _ = writeln!(s, "|{}", "---|".repeat(cols.len()));
        };
        let _ = writeln!(s, "# {}\n", cell(&self.title));
        let _ = writeln!(s, "- data: `{}` ({} texts)", self.data, self.examples);
        let _ = writeln!(
            s,
            "- taxonomy: `{}` (version `{}`), levels: {}",
            self.taxonomy_id,
            self.taxonomy_version,
            self.level_names.join(" → ")
        );
        let _ = writeln!(
            s,
            "- target precision: {}",
            pct(Some(self.target_precision))
        );
        for sys in &self.systems {
            let _ = writeln!(
                s,
                "- **{}**: {} (prediction {:.1} s)",
                cell(&sys.name),
                cell(&sys.description),
                sys.seconds_predict
            );
            if let Some(b) = &sys.baseline {
                let _ = writeln!(
                    s,
                    "  - trained on {} texts ({} for the threshold, {} vague skipped), {} features of {} n-grams, {} leaves, loss per epoch {:?}, {:.1} s features + {:.1} s SGD",
                    b.train_examples,
                    b.calib_examples,
                    b.skipped_vague,
                    b.features,
                    b.ngrams_seen,
                    b.leaves,
                    b.epoch_loss.iter().map(|l| (l * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
                    b.seconds_features,
                    b.seconds_train
                );
            }
        }

        let _ = writeln!(s, "\n## Summary\n");
        head(&mut s, &["metric"]);
        type Row = (&'static str, fn(&Metrics) -> String);
        let rows: [Row; 12] = [
            ("top-1 leaf (n)", |m| {
                format!("{} ({})", pct(m.top1_leaf.value), m.top1_leaf.n)
            }),
            ("top-5 leaf", |m| pct(m.top5_leaf.value)),
            ("hierarchical partial credit", |m| {
                pct(m.partial_credit.value)
            }),
            ("labeled (not abstained)", |m| pct(Some(m.labeled))),
            ("precision of returned labels", |m| pct(m.label_precision)),
            ("ECE (15 bins)", |m| num(m.calibration.ece)),
            ("ECE of the top-1 guess, abstention ignored", |m| {
                num(m.calibration_top1.ece)
            }),
            ("auto decisions: coverage", |m| {
                pct(Some(m.operating_point.coverage))
            }),
            ("auto decisions: precision", |m| {
                pct(m.operating_point.precision)
            }),
            ("threshold reaching target precision", |m| {
                target_cell(&m.at_target)
            }),
            ("top-1 threshold reaching target precision", |m| {
                target_cell(&m.at_target_top1)
            }),
            ("vague texts abstained (n)", |m| {
                format!("{} ({})", pct(m.vague.abstained), m.vague.n)
            }),
        ];
        for (label, f) in rows {
            let cells: Vec<String> = self.systems.iter().map(|x| f(&x.metrics)).collect();
            let _ = writeln!(s, "| {label} | {} |", cells.join(" | "));
        }

        let level_table =
            |s: &mut String, title: &str, f: fn(&crate::metrics::LevelMetrics) -> String| {
                let _ = writeln!(s, "\n## {title}\n");
                head(s, &["level", "n"]);
                for (d, name) in self.level_names.iter().enumerate() {
                    let n = self
                        .systems
                        .first()
                        .and_then(|x| x.metrics.levels.get(d))
                        .map(|l| l.n)
                        .unwrap_or(0);
                    let cells: Vec<String> = self
                        .systems
                        .iter()
                        .map(|x| x.metrics.levels.get(d).map(f).unwrap_or_default())
                        .collect();
                    let _ = writeln!(s, "| {} | {n} | {} |", cell(name), cells.join(" | "));
                }
            };
        level_table(
            &mut s,
            "Top-1 accuracy per level (full path, no abstention)",
            |l| pct(l.accuracy_forced),
        );
        level_table(
            &mut s,
            "Returned label per level: accuracy (abstaining above the level counts as wrong) / coverage / accuracy among answered",
            |l| {
                format!(
                    "{} / {} / {}",
                    pct(l.accuracy),
                    pct(l.coverage),
                    pct(l.accuracy_answered)
                )
            },
        );
        level_table(
            &mut s,
            "Macro-F1 per level: returned path / full path",
            |l| format!("{} / {}", num(l.macro_f1), num(l.macro_f1_forced)),
        );

        type CurveOf = fn(&Metrics) -> (&[CurvePoint], &Option<CurvePoint>);
        let curve_table = |s: &mut String, title: &str, f: CurveOf| {
            let _ = writeln!(s, "\n## {title}: coverage / precision\n");
            head(s, &["threshold"]);
            for t in CURVE_SHOWN {
                let cells: Vec<String> = self
                    .systems
                    .iter()
                    .map(|x| match point_at(f(&x.metrics).0, t) {
                        Some(p) => format!("{} / {}", pct(Some(p.coverage)), pct(p.precision)),
                        None => "–".into(),
                    })
                    .collect();
                let _ = writeln!(s, "| {t:.2} | {} |", cells.join(" | "));
            }
            let cells: Vec<String> = self
                .systems
                .iter()
                .map(|x| target_cell(f(&x.metrics).1))
                .collect();
            let _ = writeln!(
                s,
                "| reaching {} | {} |",
                pct(Some(self.target_precision)),
                cells.join(" | ")
            );
        };
        curve_table(
            &mut s,
            "Top-1 curve (top-1 confidence ≥ threshold, abstention ignored)",
            |m| (&m.curve_top1, &m.at_target_top1),
        );
        curve_table(
            &mut s,
            "Auto-accept curve (returned label confidence ≥ threshold)",
            |m| (&m.curve, &m.at_target),
        );
        let cells: Vec<String> = self
            .systems
            .iter()
            .map(|x| {
                let o = &x.metrics.operating_point;
                format!("{} / {}", pct(Some(o.coverage)), pct(o.precision))
            })
            .collect();
        let _ = writeln!(s, "| own decisions | {} |", cells.join(" | "));

        let _ = writeln!(s, "\n## Most confused pairs (full path)");
        for sys in &self.systems {
            for c in &sys.metrics.confusions {
                let _ = writeln!(
                    s,
                    "\n### {} — {} level ({} errors)\n",
                    cell(&sys.name),
                    cell(&c.level),
                    c.errors
                );
                if c.pairs.is_empty() {
                    let _ = writeln!(s, "none");
                    continue;
                }
                let _ = writeln!(
                    s,
                    "| gold | predicted | count | example |\n|---|---|---|---|"
                );
                for p in &c.pairs {
                    let _ = writeln!(
                        s,
                        "| {} {} | {} {} | {} | {} |",
                        p.gold,
                        cell(&p.gold_name),
                        p.pred,
                        cell(&p.pred_name),
                        p.count,
                        cell(&p.example)
                    );
                }
            }
        }
        s
    }

    /// A few lines for the terminal.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} — {} texts of {} ({})",
            self.title, self.examples, self.data, self.taxonomy_id
        );
        let levels: Vec<String> = self
            .level_names
            .iter()
            .map(|l| format!("{:>9}", format!("{l:.9}")))
            .collect();
        let _ = writeln!(
            s,
            "{:<10}{}    top5  credit    ECE  auto cov/prec   at {}",
            "top-1",
            levels.join(""),
            pct(Some(self.target_precision))
        );
        for sys in &self.systems {
            let m = &sys.metrics;
            let lv: String = m
                .levels
                .iter()
                .map(|l| format!("{:>9}", pct(l.accuracy_forced)))
                .collect();
            let target = match (&m.at_target, &m.at_target_top1) {
                (Some(p), _) => format!("t={:.4} cov {}", p.threshold, pct(Some(p.coverage))),
                (None, Some(p)) => format!(
                    "labels: not reached; top-1 t={:.4} cov {}",
                    p.threshold,
                    pct(Some(p.coverage))
                ),
                (None, None) => "not reached".into(),
            };
            let _ = writeln!(
                s,
                "{:<10}{lv} {:>7} {:>7} {:>6} {:>7}/{:<7} {}",
                format!("{:.10}", sys.name),
                pct(m.top5_leaf.value),
                pct(m.partial_credit.value),
                num(m.calibration.ece),
                pct(Some(m.operating_point.coverage)),
                pct(m.operating_point.precision),
                target
            );
        }
        s
    }
}

/// Write `eval-report.json` and `eval-report.md` into `dir` (created if missing).
pub fn write_report(dir: &Path, report: &EvalReport) -> Result<ReportFiles> {
    std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, e))?;
    let json = dir.join("eval-report.json");
    let markdown = dir.join("eval-report.md");
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(&json, text).map_err(|e| EvalError::io(&json, e))?;
    std::fs::write(&markdown, report.to_markdown()).map_err(|e| EvalError::io(&markdown, e))?;
    Ok(ReportFiles { json, markdown })
}

/// Read a report written by [`write_report`].
pub fn read_report(path: &Path) -> Result<EvalReport> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    Ok(serde_json::from_str(&text)?)
}
