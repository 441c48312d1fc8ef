//! Options of a batch run: formats, columns, shard, resume, cache, diff.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::BatchError;

/// File formats for input and output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Xlsx,
    Jsonl,
    Parquet,
}

impl Format {
    /// All formats, in a stable order.
    pub const ALL: [Format; 4] = [Format::Csv, Format::Xlsx, Format::Jsonl, Format::Parquet];

    /// Format from the file extension (`.csv`, `.xlsx`, `.jsonl`/`.ndjson`, `.parquet`/`.pq`).
    pub fn from_path(path: &Path) -> Result<Format, BatchError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .unwrap_or_default();
        ext.parse().map_err(|_| BatchError::Options {
            option: "format",
            message: format!(
                "cannot tell the format of {} from its extension; give it explicitly (csv, xlsx, jsonl, parquet)",
                path.display()
            ),
        })
    }

    /// Lower-case name (`csv`, `xlsx`, `jsonl`, `parquet`), also the canonical extension.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
            Format::Jsonl => "jsonl",
            Format::Parquet => "parquet",
        }
    }
}

impl FromStr for Format {
    type Err = BatchError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "xlsx" => Ok(Format::Xlsx),
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            "parquet" | "pq" => Ok(Format::Parquet),
            other => Err(BatchError::Options {
                option: "format",
                message: format!("unknown format {other:?} (csv, xlsx, jsonl, parquet)"),
            }),
        }
    }
}

/// Character encoding of CSV/JSONL input. XLSX and Parquet are always Unicode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputEncoding {
    /// UTF-8 (a leading BOM is skipped). Rows with invalid UTF-8 are reported and skipped.
    #[default]
    Utf8,
    /// GB18030 (superset of GBK/GB2312), as exported by many Chinese bank systems and Excel.
    Gb18030,
}

impl FromStr for InputEncoding {
    type Err = BatchError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('-', "").as_str() {
            "utf8" => Ok(InputEncoding::Utf8),
            "gbk" | "gb18030" | "gb2312" => Ok(InputEncoding::Gb18030),
            other => Err(BatchError::Options {
                option: "encoding",
                message: format!("unknown encoding {other:?} (utf-8, gb18030)"),
            }),
        }
    }
}

/// One of `count` contiguous shards, `index` 0-based (`--shard 0/4` … `--shard 3/4`, matching a
/// Kubernetes indexed Job's `JOB_COMPLETION_INDEX`).
///
/// Shard `i` of `n` takes data rows `[floor(N·i/n), floor(N·(i+1)/n))` (0-based, `N` = number of
/// data rows). So the shard outputs, in shard order, hold exactly the rows of the whole run in
/// input order; see [`crate::merge_shards`] for the byte-exact concatenation rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Half-open range of 0-based data rows this shard owns out of `total`.
    pub fn range(&self, total: u64) -> (u64, u64) {
        let n = self.count as u128;
        let t = total as u128;
        let start = t * self.index as u128 / n;
        let end = t * (self.index as u128 + 1) / n;
        (start as u64, end as u64)
    }
}

impl FromStr for Shard {
    type Err = BatchError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |m: &str| BatchError::Options {
            option: "shard",
            message: format!("{s:?}: {m} (expected i/n with 0 <= i < n, e.g. 0/4)"),
        };
        let (i, n) = s.split_once('/').ok_or_else(|| bad("no '/'"))?;
        let index: u32 = i.trim().parse().map_err(|_| bad("i is not a number"))?;
        let count: u32 = n.trim().parse().map_err(|_| bad("n is not a number"))?;
        if count == 0 || index >= count {
            return Err(bad("out of range"));
        }
        Ok(Shard { index, count })
    }
}

/// Everything that configures one batch run. Build with [`BatchOptions::new`] and set fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchOptions {
    /// Input file.
    pub input: PathBuf,
    /// Input format; `None` = from the extension.
    pub input_format: Option<Format>,
    /// Encoding of CSV/JSONL input.
    pub input_encoding: InputEncoding,
    /// XLSX sheet to read; `None` = the first sheet.
    pub sheet: Option<String>,
    /// Output file. While running, rows go to `OUTPUT.part` and the checkpoint to
    /// `OUTPUT.ckpt.json`; the output appears (atomic rename) only when the run is complete.
    pub output: PathBuf,
    /// Output format; `None` = from the extension.
    pub output_format: Option<Format>,
    /// Id column (default `loan_id`).
    pub id_column: String,
    /// Text column (default `purpose_text`).
    pub text_column: String,
    /// Continue from the checkpoint if there is one (no checkpoint = fresh start).
    pub resume: bool,
    /// Process only this shard of the input.
    pub shard: Option<Shard>,
    /// Offer every labeled row to the review sink, which routes it (needs
    /// [`crate::BatchHooks::review`]).
    pub review: bool,
    /// Column with the previous code of each row, for the diff report.
    pub old_code_column: Option<String>,
    /// Column with the balance of each row, summed per flow in the diff report.
    pub balance_column: Option<String>,
    /// Column with the borrower's name, read with the purpose text (optional).
    pub borrower_name_column: Option<String>,
    /// Column with the borrower's business scope (经营范围), read with the text (optional).
    pub business_scope_column: Option<String>,
    /// SQLite label cache shared across runs (e.g. `DATA_DIR/batch-cache.sqlite`); `None` = an
    /// in-memory cache for this run only.
    pub cache_path: Option<PathBuf>,
    /// Rows per chunk (unit of dedup, checkpointing and cancellation). Default 4096.
    pub chunk_size: usize,
    /// Texts per labeler call. Default 256.
    pub label_batch_size: usize,
    /// Where to write the diff report as JSON (when a diff source is present).
    pub diff_json: Option<PathBuf>,
    /// Where to write the diff report as XLSX (when a diff source is present).
    pub diff_xlsx: Option<PathBuf>,
    /// How many row issues to keep in the summary (all are counted). Default 1000.
    pub max_issue_samples: usize,
    /// Flows listed in the diff report (largest by count). Default 50.
    pub diff_top_flows: usize,
    /// Example rows kept per flow. Default 3.
    pub diff_examples_per_flow: usize,
}

impl BatchOptions {
    /// Defaults for everything except the input and output paths.
    pub fn new(input: impl Into<PathBuf>, output: impl Into<PathBuf>) -> Self {
        BatchOptions {
            input: input.into(),
            input_format: None,
            input_encoding: InputEncoding::Utf8,
            sheet: None,
            output: output.into(),
            output_format: None,
            id_column: "loan_id".into(),
            text_column: "purpose_text".into(),
            resume: false,
            shard: None,
            review: false,
            old_code_column: None,
            balance_column: None,
            borrower_name_column: None,
            business_scope_column: None,
            cache_path: None,
            chunk_size: 4096,
            label_batch_size: 256,
            diff_json: None,
            diff_xlsx: None,
            max_issue_samples: 1000,
            diff_top_flows: 50,
            diff_examples_per_flow: 3,
        }
    }

    pub(crate) fn resolved_input_format(&self) -> Result<Format, BatchError> {
        match self.input_format {
            Some(f) => Ok(f),
            None => Format::from_path(&self.input),
        }
    }

    pub(crate) fn resolved_output_format(&self) -> Result<Format, BatchError> {
        match self.output_format {
            Some(f) => Ok(f),
            None => Format::from_path(&self.output),
        }
    }

    /// Path of the partial output (`OUTPUT.part`).
    pub fn part_path(&self) -> PathBuf {
        suffixed(&self.output, ".part")
    }

    /// Path of the checkpoint (`OUTPUT.ckpt.json`).
    pub fn checkpoint_path(&self) -> PathBuf {
        suffixed(&self.output, ".ckpt.json")
    }
}

pub(crate) fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_ranges_cover_everything_once() {
        for total in [0u64, 1, 2, 7, 100, 1001] {
            for n in 1..=7u32 {
                let mut next = 0;
                for i in 0..n {
                    let (s, e) = Shard { index: i, count: n }.range(total);
                    assert_eq!(s, next);
                    assert!(e >= s);
                    next = e;
                }
                assert_eq!(next, total);
            }
        }
    }

    #[test]
    fn shard_parse() {
        assert_eq!(
            "1/4".parse::<Shard>().unwrap(),
            Shard { index: 1, count: 4 }
        );
        assert!("4/4".parse::<Shard>().is_err());
        assert!("0/0".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
    }

    #[test]
    fn format_from_extension() {
        assert_eq!(
            Format::from_path(Path::new("a/b.CSV")).unwrap(),
            Format::Csv
        );
        assert_eq!(
            Format::from_path(Path::new("b.ndjson")).unwrap(),
            Format::Jsonl
        );
        assert!(Format::from_path(Path::new("b.txt")).is_err());
    }
}
