//! Layered configuration: built-in defaults → TOML file → `TOUXIANG_*` environment → flags.
//!
//! The file is `--config FILE`, else `DATA_DIR/touxiang.toml` when it exists. Environment keys
//! nest with double underscores: `TOUXIANG_LIMITS__MAX_ITEMS=512`, `TOUXIANG_QDRANT__URL=...`.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Request and queue limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Largest JSON request body, bytes (→ 413 above).
    pub max_body_bytes: usize,
    /// Largest multipart upload (portfolio files, batch jobs), bytes.
    pub max_upload_bytes: usize,
    /// Row problems listed in an ingest summary (`rejected`) at most; all of them are counted
    /// (`rejected_total`) and written to the downloadable report.
    pub max_reported_row_errors: usize,
    /// Most texts/items in one embed or classify request (→ 422 above).
    pub max_items: usize,
    /// Longest single text, in characters (→ 422 above).
    pub max_text_chars: usize,
    /// Token budget of one forward pass (padded tokens).
    pub max_batch_tokens: usize,
    /// Tokens allowed to wait in the embedding queue (→ 429 above).
    pub max_queue_tokens: usize,
    /// Admitted requests not yet answered (→ 429 above): many short texts never fill the token
    /// budget.
    pub max_queue_requests: usize,
    /// Longest expected wait, milliseconds: a request that would wait longer (queued tokens ×
    /// the measured seconds per token, or requests in flight × the measured pace of answers) is
    /// refused with 429 and a `Retry-After` of that wait, instead of being answered after tens
    /// of seconds.
    pub max_queue_wait_ms: u64,
    /// Per-request timeout, seconds (until the response starts).
    pub request_timeout_secs: u64,
    /// Timeout of file uploads (portfolio loans, batch jobs), seconds: reading a large body and
    /// ingesting it (with classification of unlabeled rows) takes longer than a request.
    pub upload_timeout_secs: u64,
    /// A client must send a request's headers within this many seconds, or its connection is
    /// closed (slow-header clients once held thousands of connections open).
    pub header_read_timeout_secs: u64,
    /// Open client connections at most (and at most the file-descriptor limit less 256); at the
    /// cap the server stops accepting until a connection closes.
    pub max_connections: usize,
    /// Requests one API key may have in flight at once (→ 429 with `Retry-After` above), so one
    /// client — a runaway batch script, a retry storm — cannot take every worker and queue slot
    /// from the others. 0 = no limit.
    pub max_in_flight_per_key: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 2 * 1024 * 1024,
            max_upload_bytes: 512 * 1024 * 1024,
            max_reported_row_errors: 1000,
            max_items: 256,
            max_text_chars: 2000,
            max_batch_tokens: 8192,
            max_queue_tokens: 65536,
            max_queue_requests: 2048,
            max_queue_wait_ms: 1000,
            request_timeout_secs: 60,
            upload_timeout_secs: 3600,
            header_read_timeout_secs: 10,
            max_connections: 32_768,
            max_in_flight_per_key: 64,
        }
    }
}

/// Classification settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ClassifyConfig {
    /// Default taxonomy id.
    pub default_taxonomy: String,
    /// Share of `auto` decisions also sent to review as a QA sample.
    pub qa_sample_rate: f64,
    /// Review queue that classify routes to.
    pub review_queue: String,
    /// Upper bounds for `top_k` and `neighbors`.
    pub max_top_k: usize,
    pub max_neighbors: usize,
    /// Directory of trained artifacts; default `<data_dir>/artifacts`, falling back to the
    /// artifacts shipped in the repository.
    pub artifacts_dir: Option<PathBuf>,
    /// Embed the shipped exemplars into the store after start-up (once per data dir and model
    /// version; minutes of CPU on the first start). `false` starts without them: the neighbour
    /// vote stays off until they are there, classify answers from the heads and the lexical vote,
    /// and reviewed labels still become neighbours (quick demos, UI tests, read-only replicas).
    pub seed_exemplars: bool,
}

impl Default for ClassifyConfig {
    fn default() -> Self {
        Self {
            default_taxonomy: "gbt4754-2017".into(),
            qa_sample_rate: 0.02,
            review_queue: "default".into(),
            max_top_k: 20,
            max_neighbors: 50,
            artifacts_dir: None,
            seed_exemplars: true,
        }
    }
}

/// Review queue settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ReviewConfig {
    pub lease_ttl_secs: u64,
    /// Share of review items labeled independently by two reviewers.
    pub double_review_rate: f64,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        Self {
            lease_ttl_secs: 600,
            double_review_rate: 0.1,
        }
    }
}

/// Optional Qdrant server for the exemplar store (see [`crate::vector_store`]); without it (or
/// with a blank `url`) the exemplars live in the embedded store under `DATA_DIR/vectors`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct QdrantConfig {
    /// gRPC URL, e.g. `http://qdrant:6334` (`TOUXIANG_QDRANT__URL`, `serve --qdrant-url`).
    pub url: String,
    /// Collection (created with its payload indexes on first contact); default
    /// `touxiang_exemplars`.
    #[serde(default = "default_collection")]
    pub collection: String,
    /// API key, when the server requires one (`TOUXIANG_QDRANT__API_KEY`).
    #[serde(default)]
    pub api_key: Option<String>,
}

/// The embedded exemplar store (`DATA_DIR/vectors`): when its neighbour search switches from the
/// exact scan to the HNSW graph (see `touxiang_vectors::EmbeddedConfig`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct VectorsConfig {
    /// Search through an HNSW graph once the store holds at least this many points; below it
    /// every search is an exact scan. `TOUXIANG_VECTORS__ANN_THRESHOLD`.
    pub ann_threshold: usize,
    /// HNSW candidate list per search (recall/latency trade-off).
    pub ef_search: usize,
    /// Exact scans over at least this many points use every core (rayon); smaller ones one.
    pub parallel_min_rows: usize,
}

impl Default for VectorsConfig {
    fn default() -> Self {
        let d = touxiang_vectors::EmbeddedConfig::new("", 1);
        Self {
            ann_threshold: d.ann_threshold,
            ef_search: d.hnsw.ef_search,
            parallel_min_rows: d.parallel_min_rows,
        }
    }
}

fn default_collection() -> String {
    "touxiang_exemplars".into()
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub addr: String,
    pub data_dir: PathBuf,
    /// Pre-provisioned model files (offline installs); default `<data_dir>/model`.
    pub model_dir: Option<PathBuf>,
    /// Switch authentication off (local use only).
    pub insecure_no_auth: bool,
    /// `text` or `json` logs.
    pub log_format: String,
    pub limits: Limits,
    pub classify: ClassifyConfig,
    pub review: ReviewConfig,
    pub qdrant: Option<QdrantConfig>,
    /// The embedded exemplar store's search (ignored with `qdrant`).
    pub vectors: VectorsConfig,
    /// The compute threads (encoder and exact scan).
    pub compute: ComputeConfig,
}

/// The compute thread pool that runs the encoder's forward passes and the exact neighbour scans.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ComputeConfig {
    /// Pin each compute thread to its own CPU when the process may run on exactly as many CPUs
    /// as the pool has threads (a dedicated VM or a container with its own cpuset); never where
    /// it shares a wider CPU set under a quota. `TOUXIANG_COMPUTE__PIN_THREADS`. See
    /// `crate::compute`.
    pub pin_threads: bool,
}

impl Default for ComputeConfig {
    fn default() -> Self {
        Self { pin_threads: true }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./touxiang-data"),
            model_dir: None,
            insecure_no_auth: false,
            log_format: "text".into(),
            limits: Limits::default(),
            classify: ClassifyConfig::default(),
            review: ReviewConfig::default(),
            qdrant: None,
            vectors: VectorsConfig::default(),
            compute: ComputeConfig::default(),
        }
    }
}

/// Values given on the command line (highest precedence); `None` = not given.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure_no_auth: Option<bool>,
    /// `serve --qdrant-url`: sets `qdrant.url` only (collection and key stay as configured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qdrant: Option<QdrantUrlFlag>,
}

/// The part of the `qdrant` section a flag sets.
#[derive(Debug, Clone, Serialize)]
pub struct QdrantUrlFlag {
    pub url: String,
}

impl Config {
    /// Resolve the layers. `file` overrides the default `DATA_DIR/touxiang.toml` lookup.
    pub fn load(file: Option<&Path>, flags: &FlagOverrides) -> Result<Config, Box<figment::Error>> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        // The data dir decides where the default config file lives: resolve it first.
        let data_dir = flags
            .data_dir
            .clone()
            .or_else(|| std::env::var_os("TOUXIANG_DATA_DIR").map(PathBuf::from))
            .unwrap_or_else(|| Config::default().data_dir);
        match file {
            Some(f) => fig = fig.merge(Toml::file_exact(f)),
            None => fig = fig.merge(Toml::file(data_dir.join("touxiang.toml"))),
        }
        fig = fig.merge(
            Env::prefixed("TOUXIANG_")
                .split("__")
                .ignore(&["test_qdrant_url", "model_dir_test"]),
        );
        fig = fig.merge(Serialized::defaults(flags));
        fig.extract().map_err(Box::new)
    }

    /// Where model files live.
    pub fn model_dir(&self) -> PathBuf {
        self.model_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("model"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vectors_section_tunes_the_embedded_store() {
        let d = Config::default().vectors;
        let e = touxiang_vectors::EmbeddedConfig::new("", 1);
        assert_eq!(
            (d.ann_threshold, d.ef_search, d.parallel_min_rows),
            (e.ann_threshold, e.hnsw.ef_search, e.parallel_min_rows),
            "by default the store's own defaults"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("touxiang.toml"),
            "[vectors]\nann_threshold = 50000\nef_search = 256\n",
        )
        .unwrap();
        let flags = FlagOverrides {
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let v = Config::load(None, &flags).unwrap().vectors;
        assert_eq!((v.ann_threshold, v.ef_search), (50_000, 256));
        assert_eq!(
            v.parallel_min_rows, e.parallel_min_rows,
            "untouched key keeps its default"
        );
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("touxiang.toml"),
            "addr = \"0.0.0.0:9000\"\n[limits]\nmax_items = 7\n",
        )
        .unwrap();
        let flags = FlagOverrides {
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let c = Config::load(None, &flags).unwrap();
        assert_eq!(c.addr, "0.0.0.0:9000", "file overrides default");
        assert_eq!(c.limits.max_items, 7);
        assert_eq!(
            c.limits.max_text_chars,
            Limits::default().max_text_chars,
            "untouched defaults stay"
        );
        let flags = FlagOverrides {
            addr: Some("127.0.0.1:1".into()),
            ..flags
        };
        assert_eq!(
            Config::load(None, &flags).unwrap().addr,
            "127.0.0.1:1",
            "flag overrides file"
        );
    }

    #[test]
    fn qdrant_url_flag_keeps_the_configured_collection() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("touxiang.toml"),
            "[qdrant]\nurl = \"http://file:6334\"\ncollection = \"bank\"\n",
        )
        .unwrap();
        let flags = FlagOverrides {
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let q = Config::load(None, &flags).unwrap().qdrant.unwrap();
        assert_eq!(
            (q.url.as_str(), q.collection.as_str()),
            ("http://file:6334", "bank")
        );
        let flags = FlagOverrides {
            qdrant: Some(QdrantUrlFlag {
                url: "http://flag:6334".into(),
            }),
            ..flags
        };
        let q = Config::load(None, &flags).unwrap().qdrant.unwrap();
        assert_eq!(
            (q.url.as_str(), q.collection.as_str()),
            ("http://flag:6334", "bank")
        );
        // without a file: the flag alone configures Qdrant with the default collection
        let flags = FlagOverrides {
            data_dir: Some(dir.path().join("none")),
            ..flags
        };
        let q = Config::load(None, &flags).unwrap().qdrant.unwrap();
        assert_eq!(
            (q.url.as_str(), q.collection.as_str()),
            ("http://flag:6334", "touxiang_exemplars")
        );
    }

    #[test]
    fn bad_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[limits]\nmax_items = \"many\"\n").unwrap();
        let e = Config::load(Some(&f), &FlagOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_items"), "{e}");
    }
}
