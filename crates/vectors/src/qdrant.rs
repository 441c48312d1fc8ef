//! Qdrant server backend (gRPC through `qdrant-client`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use qdrant_client::qdrant::{
    value::Kind, Condition, CountPointsBuilder, CreateCollectionBuilder,
    CreateFieldIndexCollectionBuilder, DeletePointsBuilder, Distance, FieldType, Filter as QFilter,
    GetPointsBuilder, PointId, PointStruct, PointsIdsList, QueryPointsBuilder, UpsertPointsBuilder,
    Value, VectorParamsBuilder,
};
use qdrant_client::{Payload as QPayload, Qdrant, QdrantError};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::{
    validate_points, validate_query, Filter, Health, Hit, Payload, Point, Result, VectorError,
    VectorStore,
};

/// Configuration of [`QdrantStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QdrantConfig {
    /// gRPC URL, e.g. `http://localhost:6334`.
    pub url: String,
    /// Collection name (created with cosine distance and `dim` if missing).
    pub collection: String,
    /// API key, if the server requires one.
    pub api_key: Option<String>,
    /// Vector dimension.
    pub dim: usize,
    /// Per-request timeout; a request that takes longer fails with `Unavailable`.
    pub timeout: Duration,
    /// Connection timeout.
    pub connect_timeout: Duration,
}

impl QdrantConfig {
    /// Config with 2 s request and 1 s connect timeouts and no API key.
    pub fn new(url: impl Into<String>, collection: impl Into<String>, dim: usize) -> Self {
        Self {
            url: url.into(),
            collection: collection.into(),
            api_key: None,
            dim,
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
        }
    }
}

/// Payload fields with a keyword index (`code_prefixes` holds every prefix of `code`, so
/// [`Filter::code_prefix`] is an exact keyword match).
const INDEXED: [&str; 5] = [
    "taxonomy",
    "source",
    "code",
    "model_version",
    "code_prefixes",
];
/// Payload key holding the caller's string id (Qdrant ids must be integers or UUIDs).
const ID_KEY: &str = "point_id";

/// Vector store on a Qdrant server.
///
/// Construction never contacts the server (the client skips its version check and connects
/// lazily), so the service starts while Qdrant is down; the collection and payload indexes are
/// created on the first successful call. Connectivity problems and timeouts surface as
/// [`VectorError::Unavailable`]. String ids are mapped to UUIDs (first 16 bytes of SHA-256 of the
/// id); the original id travels in the `point_id` payload field.
pub struct QdrantStore {
    cfg: QdrantConfig,
    client: Qdrant,
    /// Set once the collection is known to exist; replaced by an empty cell when the server
    /// says it does not (deleted behind our back), so the next call creates it again.
    ready: parking_lot::Mutex<Arc<OnceCell<()>>>,
}

impl QdrantStore {
    /// Builds the client without contacting the server. Fails only on an invalid URL/config.
    pub fn new(cfg: QdrantConfig) -> Result<Self> {
        if cfg.dim == 0 {
            return Err(VectorError::invalid("qdrant.dim", "must be > 0"));
        }
        if cfg.collection.trim().is_empty() {
            return Err(VectorError::invalid(
                "qdrant.collection",
                "must not be empty",
            ));
        }
        let client = Qdrant::from_url(&cfg.url)
            .api_key(cfg.api_key.clone())
            .timeout(cfg.timeout)
            .connect_timeout(cfg.connect_timeout)
            .skip_compatibility_check()
            .build()
            .map_err(|e| VectorError::invalid("qdrant.url", e.to_string()))?;
        Ok(Self {
            cfg,
            client,
            ready: parking_lot::Mutex::new(Arc::new(OnceCell::new())),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &QdrantConfig {
        &self.cfg
    }

    /// Creates the collection (cosine, `dim`) and the keyword payload indexes if missing.
    /// Called lazily by every operation until it succeeds once (and again after the server
    /// answered "not found", e.g. when the collection was deleted).
    pub async fn ensure_collection(&self) -> Result<()> {
        let cell = self.ready.lock().clone();
        cell.get_or_try_init(|| async {
            let name = &self.cfg.collection;
            let exists = self.call(self.client.collection_exists(name)).await?;
            if !exists {
                let created = self
                    .call(self.client.create_collection(
                        CreateCollectionBuilder::new(name).vectors_config(
                            VectorParamsBuilder::new(self.cfg.dim as u64, Distance::Cosine),
                        ),
                    ))
                    .await;
                // Another process may have created it in between.
                if let Err(e) = created {
                    if !self.call(self.client.collection_exists(name)).await? {
                        return Err(e);
                    }
                }
            }
            self.check_vector_params().await?;
            for field in INDEXED {
                self.call(
                    self.client.create_field_index(
                        CreateFieldIndexCollectionBuilder::new(name, field, FieldType::Keyword)
                            .wait(true),
                    ),
                )
                .await?;
            }
            Ok(())
        })
        .await
        .map(|_| ())
    }

    /// Deletes the whole collection (tests, decommissioning); a missing one is not an error.
    /// The next write creates it again.
    pub async fn delete_collection(&self) -> Result<()> {
        self.call(self.client.delete_collection(self.cfg.collection.as_str()))
            .await?;
        Ok(())
    }

    /// An existing collection must hold one unnamed cosine vector of `dim`: points of another
    /// encoder (or another application's collection) are refused with a clear error instead of
    /// failing every write.
    async fn check_vector_params(&self) -> Result<()> {
        use qdrant_client::qdrant::vectors_config::Config as VConfig;
        let name = &self.cfg.collection;
        let info = self
            .call(self.client.collection_info(name.as_str()))
            .await?;
        let params = info
            .result
            .and_then(|i| i.config)
            .and_then(|c| c.params)
            .and_then(|p| p.vectors_config)
            .and_then(|v| v.config);
        match params {
            Some(VConfig::Params(p))
                if p.size == self.cfg.dim as u64 && p.distance == Distance::Cosine as i32 =>
            {
                Ok(())
            }
            Some(VConfig::Params(p)) => Err(VectorError::Backend(format!(
                "qdrant collection `{name}` holds vectors of size {} ({:?} distance); touxiang \
                 needs size {} with cosine distance: choose another qdrant.collection",
                p.size,
                Distance::try_from(p.distance).unwrap_or(Distance::UnknownDistance),
                self.cfg.dim
            ))),
            _ => Err(VectorError::Backend(format!(
                "qdrant collection `{name}` has named vectors or no vector parameters; touxiang \
                 needs one unnamed vector of size {}: choose another qdrant.collection",
                self.cfg.dim
            ))),
        }
    }

    async fn call<T>(
        &self,
        fut: impl std::future::Future<Output = std::result::Result<T, QdrantError>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.cfg.timeout + self.cfg.connect_timeout, fut).await {
            Err(_) => Err(VectorError::Unavailable(format!(
                "qdrant at {} did not answer within {:?}",
                self.cfg.url, self.cfg.timeout
            ))),
            Ok(r) => r.map_err(|e| {
                if matches!(&e, QdrantError::ResponseError { status }
                    if status.code() == tonic::Code::NotFound)
                {
                    *self.ready.lock() = Arc::new(OnceCell::new());
                }
                map_err(e)
            }),
        }
    }
}

fn map_err(e: QdrantError) -> VectorError {
    use tonic::Code;
    match &e {
        QdrantError::ResponseError { status } => match status.code() {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Aborted
            | Code::Unknown => VectorError::Unavailable(e.to_string()),
            // qdrant-client reports a failed (re)connect as `Internal("Failed to connect …")`.
            Code::Internal if status.message().starts_with("Failed to connect") => {
                VectorError::Unavailable(e.to_string())
            }
            Code::Unauthenticated | Code::PermissionDenied => {
                VectorError::Backend(format!("qdrant rejected the credentials: {e}"))
            }
            _ => VectorError::Backend(e.to_string()),
        },
        QdrantError::ResourceExhaustedError { .. } | QdrantError::Io(_) => {
            VectorError::Unavailable(e.to_string())
        }
        _ => VectorError::Backend(e.to_string()),
    }
}

/// UUID (8-4-4-4-12 hex) derived from a string id.
/// Ids per `get_points` call when checking which points exist.
const MAX_GET: usize = 1024;

pub(crate) fn uuid_for(id: &str) -> String {
    let h = Sha256::digest(id.as_bytes());
    let x = hex::encode(&h[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

fn code_prefixes(code: &str) -> Vec<String> {
    code.char_indices()
        .map(|(i, c)| code[..i + c.len_utf8()].to_owned())
        .collect()
}

fn to_payload(id: &str, p: &Payload) -> QPayload {
    let mut q = QPayload::new();
    q.insert(ID_KEY, id);
    q.insert("text", p.text.as_str());
    q.insert("code", p.code.as_str());
    q.insert("code_prefixes", code_prefixes(&p.code));
    q.insert("taxonomy", p.taxonomy.as_str());
    q.insert("source", p.source.as_str());
    if let Some(r) = &p.reviewer {
        q.insert("reviewer", r.as_str());
    }
    q.insert("created_at", p.created_at.to_rfc3339());
    q.insert("model_version", p.model_version.as_str());
    q
}

fn get_str(m: &HashMap<String, Value>, key: &str, id: &str) -> Result<String> {
    match m.get(key).and_then(|v| v.kind.as_ref()) {
        Some(Kind::StringValue(s)) => Ok(s.clone()),
        _ => Err(VectorError::Corrupt(format!(
            "qdrant point {id}: payload field `{key}` missing or not a string"
        ))),
    }
}

fn from_payload(m: &HashMap<String, Value>) -> Result<(String, Payload)> {
    let id = get_str(m, ID_KEY, "?")?;
    let created = get_str(m, "created_at", &id)?;
    let created_at = DateTime::parse_from_rfc3339(&created)
        .map_err(|e| VectorError::Corrupt(format!("qdrant point {id}: created_at: {e}")))?
        .with_timezone(&Utc);
    let payload = Payload {
        text: get_str(m, "text", &id)?,
        code: get_str(m, "code", &id)?,
        taxonomy: get_str(m, "taxonomy", &id)?,
        source: get_str(m, "source", &id)?,
        reviewer: get_str(m, "reviewer", &id).ok(),
        created_at,
        model_version: get_str(m, "model_version", &id)?,
    };
    Ok((id, payload))
}

/// Translates a [`Filter`]; `None` means "matches nothing" (empty `sources` list).
fn to_qfilter(f: &Filter) -> Option<QFilter> {
    let mut must = Vec::new();
    if let Some(t) = &f.taxonomy {
        must.push(Condition::matches("taxonomy", t.clone()));
    }
    if let Some(s) = &f.sources {
        if s.is_empty() {
            return None;
        }
        must.push(Condition::matches("source", s.clone()));
    }
    if let Some(m) = &f.model_version {
        must.push(Condition::matches("model_version", m.clone()));
    }
    if let Some(c) = &f.code_prefix {
        must.push(Condition::matches("code_prefixes", c.clone()));
    }
    Some(QFilter::must(must))
}

#[async_trait]
impl VectorStore for QdrantStore {
    async fn upsert(&self, points: Vec<Point>) -> Result<()> {
        let points = validate_points(points, self.cfg.dim)?;
        if points.is_empty() {
            return Ok(());
        }
        self.ensure_collection().await?;
        // Last write wins for duplicate ids within one batch.
        let mut last: HashMap<&str, usize> = HashMap::new();
        for (i, p) in points.iter().enumerate() {
            last.insert(p.id.as_str(), i);
        }
        let structs: Vec<PointStruct> = points
            .iter()
            .enumerate()
            .filter(|(i, p)| last.get(p.id.as_str()) == Some(i))
            .map(|(_, p)| {
                PointStruct::new(
                    uuid_for(&p.id),
                    p.vector.clone(),
                    to_payload(&p.id, &p.payload),
                )
            })
            .collect();
        self.call(
            self.client
                .upsert_points(UpsertPointsBuilder::new(&self.cfg.collection, structs).wait(true)),
        )
        .await?;
        Ok(())
    }

    async fn search(&self, query: &[f32], k: usize, filter: &Filter) -> Result<Vec<Hit>> {
        let q = validate_query(query, self.cfg.dim)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let Some(qf) = to_qfilter(filter) else {
            return Ok(Vec::new());
        };
        self.ensure_collection().await?;
        let resp = self
            .call(
                self.client.query(
                    QueryPointsBuilder::new(&self.cfg.collection)
                        .query(q)
                        .limit(k as u64)
                        .filter(qf)
                        .with_payload(true),
                ),
            )
            .await?;
        resp.result
            .into_iter()
            .map(|sp| {
                let (id, payload) = from_payload(&sp.payload)?;
                Ok(Hit {
                    id,
                    score: sp.score,
                    payload,
                })
            })
            .collect()
    }

    async fn contains(&self, ids: &[String], filter: &Filter) -> Result<Vec<bool>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.ensure_collection().await?;
        let mut found = std::collections::HashSet::new();
        for chunk in ids.chunks(MAX_GET) {
            let pids: Vec<PointId> = chunk.iter().map(|i| uuid_for(i).into()).collect();
            let resp = self
                .call(
                    self.client.get_points(
                        GetPointsBuilder::new(&self.cfg.collection, pids)
                            .with_payload(true)
                            .with_vectors(false),
                    ),
                )
                .await?;
            for p in resp.result {
                let (id, payload) = from_payload(&p.payload)?;
                if filter.matches(&payload) {
                    found.insert(id);
                }
            }
        }
        Ok(ids.iter().map(|i| found.contains(i)).collect())
    }

    async fn delete(&self, ids: Vec<String>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.ensure_collection().await?;
        let pids: Vec<PointId> = ids.iter().map(|i| uuid_for(i).into()).collect();
        self.call(
            self.client.delete_points(
                DeletePointsBuilder::new(&self.cfg.collection)
                    .points(PointsIdsList { ids: pids })
                    .wait(true),
            ),
        )
        .await?;
        Ok(())
    }

    async fn count(&self, filter: &Filter) -> Result<u64> {
        let Some(qf) = to_qfilter(filter) else {
            return Ok(0);
        };
        self.ensure_collection().await?;
        let resp = self
            .call(
                self.client.count(
                    CountPointsBuilder::new(&self.cfg.collection)
                        .filter(qf)
                        .exact(true),
                ),
            )
            .await?;
        Ok(resp.result.map_or(0, |r| r.count))
    }

    async fn health(&self) -> Result<Health> {
        let check = async {
            self.call(self.client.health_check()).await?;
            self.ensure_collection().await?;
            self.count(&Filter::all()).await
        };
        Ok(match check.await {
            Ok(n) => Health {
                backend: "qdrant".into(),
                ok: true,
                points: Some(n),
                pending_writes: 0,
                detail: format!("{} collection {}", self.cfg.url, self.cfg.collection),
            },
            Err(e) => Health {
                backend: "qdrant".into(),
                ok: false,
                points: None,
                pending_writes: 0,
                detail: e.to_string(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_is_stable_and_well_formed() {
        let u = uuid_for("abc");
        assert_eq!(u, uuid_for("abc"));
        assert_ne!(u, uuid_for("abd"));
        assert_eq!(u.len(), 36);
        assert_eq!(u.matches('-').count(), 4);
    }

    #[test]
    fn prefixes_cover_every_level() {
        assert_eq!(code_prefixes("6291"), vec!["6", "62", "629", "6291"]);
        assert_eq!(code_prefixes("H"), vec!["H"]);
    }

    #[test]
    fn payload_roundtrip() {
        let p = crate::conformance::point("x", vec![1.0], "6291", "reviewed").payload;
        let q = to_payload("x", &p);
        let m: HashMap<String, Value> = q.into();
        let (id, back) = from_payload(&m).unwrap();
        assert_eq!(id, "x");
        assert_eq!(back, p);
    }

    #[test]
    fn empty_sources_match_nothing() {
        let f = Filter {
            sources: Some(vec![]),
            ..Filter::default()
        };
        assert!(to_qfilter(&f).is_none());
    }
}
