//! Labeled examples from outside the notes: custom or reviewed JSONL and the Lending Club CSV.

use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;

use super::{split_of, Example, Source, Split, SplitRatios};
use crate::error::{Result, TrainError};
use crate::tree::{Tree, VAGUE_CODE};

#[derive(Deserialize)]
struct JsonExample {
    text: Option<String>,
    code: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

/// Read labeled examples `{"text", "code"[, "source"]}` (JSONL). Every code must be in `tree`;
/// an unknown code, an empty text or bad JSON is an error naming the line. `source: "reviewed"`
/// marks labels exported from the review queue; anything else is `custom`. Splits are assigned
/// by a seeded hash of the text.
pub fn load_examples_jsonl(
    path: &Path,
    tree: &Tree,
    seed: u64,
    ratios: SplitRatios,
) -> Result<Vec<Example>> {
    let f = std::fs::File::open(path).map_err(|e| TrainError::io(path, e))?;
    let mut out = Vec::new();
    for (ln, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| TrainError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| TrainError::BadLine {
            path: path.to_path_buf(),
            line: ln + 1,
            message,
        };
        let j: JsonExample =
            serde_json::from_str(&line).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let text = j.text.map(|t| t.trim().to_string()).unwrap_or_default();
        if text.is_empty() {
            return Err(bad("field \"text\" is missing or empty".into()));
        }
        let code = j
            .code
            .ok_or_else(|| bad("field \"code\" is missing".into()))?;
        if tree.find(&code).is_none() || code == VAGUE_CODE && tree.vague().is_none() {
            return Err(bad(format!(
                "field \"code\": unknown code {code:?} (not in taxonomy {})",
                tree.id
            )));
        }
        let source = match j.source.as_deref() {
            Some("reviewed") => Source::Reviewed,
            _ => Source::Custom,
        };
        let split = if source == Source::Reviewed {
            Split::Train
        } else {
            split_of(&text, seed, ratios)
        };
        out.push(Example {
            item: text.clone(),
            text,
            code,
            source,
            split,
            weight: 1.0,
        });
    }
    Ok(out)
}

/// Lending Club: a flat taxonomy (id `lendingclub-purpose`, level `purpose`) of the 14 `purpose` values and one example per loan with text
/// `title` + ". " + `desc` (loans with neither are counted in the returned skip count). Splits by
/// a seeded hash of `loan_id`.
pub fn lendingclub_examples(
    path: &Path,
    seed: u64,
    ratios: SplitRatios,
) -> Result<(touxiang_datasets::Taxonomy, Vec<Example>, usize)> {
    let mut rdr = csv::Reader::from_path(path)
        .map_err(|e| TrainError::Invalid(format!("{}: {e}", path.display())))?;
    let headers = rdr
        .headers()
        .map_err(|e| TrainError::Invalid(format!("{}: {e}", path.display())))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| TrainError::BadLine {
                path: path.to_path_buf(),
                line: 1,
                message: format!("missing column {name:?}"),
            })
    };
    let (c_id, c_purpose, c_title, c_desc) = (
        col("loan_id")?,
        col("purpose")?,
        col("title")?,
        col("desc")?,
    );
    let mut rows = Vec::new();
    let mut skipped = 0;
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| TrainError::BadLine {
            path: path.to_path_buf(),
            line: i + 2,
            message: e.to_string(),
        })?;
        let purpose = rec.get(c_purpose).unwrap_or("").trim().to_string();
        if purpose.is_empty() {
            return Err(TrainError::BadLine {
                path: path.to_path_buf(),
                line: i + 2,
                message: "empty purpose".into(),
            });
        }
        let title = rec.get(c_title).unwrap_or("").trim();
        let desc = rec.get(c_desc).unwrap_or("").trim();
        let text = match (title.is_empty(), desc.is_empty()) {
            (true, true) => {
                skipped += 1;
                continue;
            }
            (false, true) => title.to_string(),
            (true, false) => desc.to_string(),
            (false, false) => format!("{title}. {desc}"),
        };
        rows.push((rec.get(c_id).unwrap_or("").to_string(), purpose, text));
    }
    let purposes: std::collections::BTreeSet<String> = rows.iter().map(|r| r.1.clone()).collect();
    let mut csv_text = String::from("code,name,parent,level\n");
    for p in &purposes {
        if p.contains([',', '"', '\n']) {
            return Err(TrainError::Invalid(format!(
                "{}: purpose {p:?} contains a CSV delimiter",
                path.display()
            )));
        }
        csv_text.push_str(&format!("{p},{},,purpose\n", p.replace('_', " ")));
    }
    let tax =
        touxiang_datasets::Taxonomy::from_csv_reader("lendingclub-purpose", csv_text.as_bytes())
            .map_err(|e| TrainError::Invalid(format!("lending club taxonomy: {e}")))?;
    let examples = rows
        .into_iter()
        .map(|(id, code, text)| Example {
            split: split_of(&id, seed, ratios),
            item: id,
            text,
            code,
            source: Source::Custom,
            weight: 1.0,
        })
        .collect();
    Ok((tax, examples, skipped))
}
