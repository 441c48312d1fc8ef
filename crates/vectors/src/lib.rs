//! Exemplar vector store for touxiang.
//!
//! The classifier keeps labeled exemplars (seed items from the GB/T notes, reviewed cases, …) as
//! L2-normalised sentence embeddings and asks for the k nearest neighbours of a query, filtered by
//! payload (taxonomy, source, model version, code prefix). Reviewed labels are upserted at once so
//! the next similar text sees them (active learning).
//!
//! Everything goes through one async trait, [`VectorStore`], with these implementations:
//! - [`EmbeddedStore`] (default): persisted in SQLite under a directory (WAL, `synchronous=FULL`,
//!   so an acknowledged upsert survives `kill -9`), searched in memory over one contiguous `f32`
//!   matrix (exact: one matrix-vector product + partial top-k, parallel with rayon), with an
//!   HNSW index ([`hnsw_rs`]) built in the background once the store holds more than
//!   [`EmbeddedConfig::ann_threshold`] points.
//! - [`QdrantStore`]: a Qdrant server over gRPC (`qdrant-client`), collection and payload indexes
//!   created on first use, startup tolerant of an unreachable server.
//! - [`ResilientStore`]: wraps a (remote) store; searches fail fast with
//!   [`VectorError::Unavailable`], writes go through a durable local outbox replayed in order
//!   until acknowledged.
//!
//! [`conformance::run_all`] is the behavioural test suite every backend must pass; [`bench`] holds
//! the recall/latency measurement used by the `vector_bench` example.

#![forbid(unsafe_code)]

pub mod bench;
pub mod conformance;
mod embedded;
mod integrity;
mod qdrant;
mod resilient;

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use embedded::{EmbeddedConfig, EmbeddedStore, HnswParams};
pub use integrity::check_store_files;
pub use qdrant::{QdrantConfig, QdrantStore};
pub use resilient::{ResilientConfig, ResilientStore};

/// Errors of the vector store crate.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    /// A caller-supplied value is invalid; `field` names it (e.g. `points[3].vector`).
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// Path of the offending field, e.g. `points[2].vector`.
        field: String,
        /// Human-readable reason.
        reason: String,
    },
    /// A vector does not have the configured dimension.
    #[error("{field}: expected dimension {expected}, got {got}")]
    DimensionMismatch {
        /// Path of the offending field.
        field: String,
        /// Configured dimension.
        expected: usize,
        /// Dimension received.
        got: usize,
    },
    /// The backend cannot be reached right now (network, timeout, circuit open). Callers should
    /// degrade (e.g. answer without neighbours) rather than fail; writes through
    /// [`ResilientStore`] are queued and retried.
    #[error("vector store unavailable: {0}")]
    Unavailable(String),
    /// Local storage failed (disk, SQLite).
    #[error("vector storage error: {0}")]
    Storage(String),
    /// Persisted data could not be decoded.
    #[error("corrupt vector store data: {0}")]
    Corrupt(String),
    /// The backend answered with an error that is not a connectivity problem.
    #[error("vector backend error: {0}")]
    Backend(String),
    /// A local store file (`vectors.sqlite`, `outbox.sqlite`) is damaged (empty, corrupt,
    /// without its tables) or could not be opened: refused, left unchanged.
    #[error(transparent)]
    Store(#[from] touxiang_sqlite::StoreError),
}

impl VectorError {
    /// True for [`VectorError::Unavailable`]: the operation may succeed later unchanged.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, VectorError::Unavailable(_))
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        VectorError::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<rusqlite::Error> for VectorError {
    fn from(e: rusqlite::Error) -> Self {
        VectorError::Storage(e.to_string())
    }
}

impl From<rusqlite::types::FromSqlError> for VectorError {
    fn from(e: rusqlite::types::FromSqlError) -> Self {
        VectorError::Corrupt(e.to_string())
    }
}

impl From<std::io::Error> for VectorError {
    fn from(e: std::io::Error) -> Self {
        VectorError::Storage(e.to_string())
    }
}

/// Result alias of this crate.
pub type Result<T, E = VectorError> = std::result::Result<T, E>;

/// Metadata stored with every exemplar vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// The exemplar text (shown to users as a neighbour).
    pub text: String,
    /// Label code in `taxonomy` (any level: section letter, division, group or class).
    pub code: String,
    /// Taxonomy id, e.g. `gbt4754-2017`.
    pub taxonomy: String,
    /// Where the exemplar comes from: `seed`, `reviewed`, `template`, …
    pub source: String,
    /// Reviewer who labeled it (reviewed exemplars).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewer: Option<String>,
    /// When the exemplar was created.
    pub created_at: DateTime<Utc>,
    /// Version of the encoder that produced the vector; vectors of different models are not
    /// comparable, so searches normally filter on it.
    pub model_version: String,
}

/// One exemplar: a stable id, its embedding and payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Stable id; see [`point_id`]. Upserting an existing id replaces the point.
    pub id: String,
    /// The embedding. Should be L2-normalised; stores normalise it (a zero or non-finite vector
    /// is rejected).
    pub vector: Vec<f32>,
    /// Metadata.
    pub payload: Payload,
}

/// Payload filter for [`VectorStore::search`] and [`VectorStore::count`]. `None` fields match
/// everything; set fields are combined with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Exact taxonomy id.
    pub taxonomy: Option<String>,
    /// Any of these sources (an empty list matches nothing).
    pub sources: Option<Vec<String>>,
    /// Exact model version.
    pub model_version: Option<String>,
    /// Codes starting with this prefix (e.g. `62` for every code under division 62).
    pub code_prefix: Option<String>,
}

impl Filter {
    /// A filter matching everything.
    pub fn all() -> Self {
        Self::default()
    }

    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        self.taxonomy.is_none()
            && self.sources.is_none()
            && self.model_version.is_none()
            && self.code_prefix.is_none()
    }

    /// Whether `p` passes this filter.
    pub fn matches(&self, p: &Payload) -> bool {
        self.taxonomy.as_deref().is_none_or(|t| t == p.taxonomy)
            && self.sources.as_ref().is_none_or(|s| s.contains(&p.source))
            && self
                .model_version
                .as_deref()
                .is_none_or(|m| m == p.model_version)
            && self
                .code_prefix
                .as_deref()
                .is_none_or(|c| p.code.starts_with(c))
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// Point id.
    pub id: String,
    /// Cosine similarity to the query, in [-1, 1], higher is closer.
    pub score: f32,
    /// The point's metadata.
    pub payload: Payload,
}

/// Health report of a store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Backend name: `embedded`, `qdrant`, `resilient(qdrant)`, …
    pub backend: String,
    /// True when searches are expected to succeed now.
    pub ok: bool,
    /// Number of stored points, when known.
    pub points: Option<u64>,
    /// Writes accepted locally but not yet acknowledged by the backend ([`ResilientStore`]).
    pub pending_writes: u64,
    /// Free-form detail (index state, last error, …).
    pub detail: String,
}

/// The exemplar vector store.
#[async_trait]
pub trait VectorStore: Send + Sync {
    /// Inserts or replaces points (by id). When this returns `Ok`, the points are durable (for
    /// [`ResilientStore`]: durable in the local outbox) and, unless queued, visible to `search`.
    async fn upsert(&self, points: Vec<Point>) -> Result<()>;
    /// The `k` points most similar (cosine) to `query` among those matching `filter`, best first.
    async fn search(&self, query: &[f32], k: usize, filter: &Filter) -> Result<Vec<Hit>>;
    /// Deletes points by id; unknown ids are ignored.
    async fn delete(&self, ids: Vec<String>) -> Result<()>;
    /// Number of points matching `filter`.
    async fn count(&self, filter: &Filter) -> Result<u64>;
    /// Which of `ids` the store holds with a payload matching `filter`, in order — for resuming
    /// work such as seeding (a point of another encoder version does not count). A store that
    /// cannot tell answers all `false` (the work is then redone, never skipped wrongly).
    async fn contains(&self, ids: &[String], filter: &Filter) -> Result<Vec<bool>> {
        let _ = filter;
        Ok(vec![false; ids.len()])
    }
    /// Health report; `Err` only when the report itself cannot be produced.
    async fn health(&self) -> Result<Health>;
    /// Writes accepted (durable) but not yet applied by the backend: the depth of
    /// [`ResilientStore`]'s outbox, 0 for stores that apply writes before they return. Cheap:
    /// never contacts the backend.
    fn pending_writes(&self) -> u64 {
        0
    }
}

/// Stable point id: the first 128 bits of SHA-256 over `taxonomy`, `source` and `text`
/// (separated by NUL), hex-encoded (32 chars).
pub fn point_id(taxonomy: &str, source: &str, text: &str) -> String {
    let mut h = Sha256::new();
    h.update(taxonomy.as_bytes());
    h.update([0u8]);
    h.update(source.as_bytes());
    h.update([0u8]);
    h.update(text.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Returns `v` scaled to unit L2 norm; errors (naming `field`) on a zero, empty or non-finite
/// vector.
pub fn normalized(v: &[f32], field: &str) -> Result<Vec<f32>> {
    if v.is_empty() {
        return Err(VectorError::invalid(field, "empty vector"));
    }
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(VectorError::invalid(
            field,
            format!("non-finite value at index {i}"),
        ));
    }
    let norm = v
        .iter()
        .map(|x| (*x as f64) * (*x as f64))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return Err(VectorError::invalid(field, "zero-norm vector"));
    }
    let inv = (1.0 / norm) as f32;
    Ok(v.iter().map(|x| x * inv).collect())
}

/// Validates ids, dimensions and payloads of `points` and returns them with normalised vectors.
pub(crate) fn validate_points(points: Vec<Point>, dim: usize) -> Result<Vec<Point>> {
    points
        .into_iter()
        .enumerate()
        .map(|(i, mut p)| {
            if p.id.trim().is_empty() {
                return Err(VectorError::invalid(format!("points[{i}].id"), "empty id"));
            }
            if p.vector.len() != dim {
                return Err(VectorError::DimensionMismatch {
                    field: format!("points[{i}].vector"),
                    expected: dim,
                    got: p.vector.len(),
                });
            }
            for (name, val) in [
                ("code", &p.payload.code),
                ("taxonomy", &p.payload.taxonomy),
                ("source", &p.payload.source),
                ("model_version", &p.payload.model_version),
            ] {
                if val.trim().is_empty() {
                    return Err(VectorError::invalid(
                        format!("points[{i}].payload.{name}"),
                        "must not be empty",
                    ));
                }
            }
            p.vector = normalized(&p.vector, &format!("points[{i}].vector"))?;
            Ok(p)
        })
        .collect()
}

/// Validates a query vector against `dim` and normalises it.
pub(crate) fn validate_query(query: &[f32], dim: usize) -> Result<Vec<f32>> {
    if query.len() != dim {
        return Err(VectorError::DimensionMismatch {
            field: "query".into(),
            expected: dim,
            got: query.len(),
        });
    }
    normalized(query, "query")
}

impl fmt::Display for Hit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:.4} {} {}",
            self.id, self.score, self.payload.code, self.payload.text
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_id_is_stable_and_separates_fields() {
        let a = point_id("gbt", "seed", "烤串");
        assert_eq!(a, point_id("gbt", "seed", "烤串"));
        assert_eq!(a.len(), 32);
        assert_ne!(a, point_id("gbt", "reviewed", "烤串"));
        assert_ne!(point_id("ab", "c", "d"), point_id("a", "bc", "d"));
    }

    #[test]
    fn normalized_rejects_bad_vectors() {
        assert!(normalized(&[0.0, 0.0], "v").is_err());
        assert!(normalized(&[], "v").is_err());
        let e = normalized(&[1.0, f32::NAN], "q").unwrap_err();
        assert!(e.to_string().contains("q"), "{e}");
        let v = normalized(&[3.0, 4.0], "v").unwrap();
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    }
}
