//! The taxonomies the service knows, and search over one of them (any valid key,
//! [`crate::auth::Access::AnyKey`]).
//!
//! * `GET /v1/taxonomies` → `{default, taxonomies: [{id, version, levels, codes, classifier}]}`:
//!   the built-ins (GB/T 4754-2017, the 资金用途 purpose taxonomy), every
//!   `DATA_DIR/taxonomies/<id>.csv`, and the taxonomies of loaded classifiers. Answers before
//!   the model is loaded (`classifier` is then false everywhere).
//! * `GET /v1/taxonomies/{id}/search?q=&limit=20` → ranked hits over codes, names and note
//!   terms ([`crate::taxonomy_search`]).

use std::collections::HashMap;
use std::path::PathBuf;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Access::AnyKey;
use crate::error::ApiError;
use crate::review::blocking;
use crate::routes::access::Routes;
use crate::state::AppState;
use crate::taxonomy_search::SearchHit;

/// Longest search query, in characters.
pub const MAX_QUERY_CHARS: usize = 100;
/// Most hits a search returns.
pub const MAX_LIMIT: usize = 100;
/// Hits a search returns without `limit`.
pub const DEFAULT_LIMIT: usize = 20;

/// The taxonomy routes and who-am-I (merged into [`crate::app`]): any valid key.
pub fn router() -> Routes {
    Routes::new()
        .get("/v1/whoami", AnyKey, crate::routes::whoami::whoami)
        .get("/v1/taxonomies", AnyKey, list)
        .get("/v1/taxonomies/{id}/search", AnyKey, search)
}

/// One taxonomy.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaxonomyInfo {
    /// The id classify and review use (`taxonomy` fields).
    pub id: String,
    /// Version (`gbt4754-2017`; a custom taxonomy's `version` column, or `id@hash` of its file).
    pub version: Option<String>,
    /// Level names, root level first (`section`, `division`, `group`, `class` for GB/T 4754).
    pub levels: Vec<String>,
    /// Number of codes (all levels).
    pub codes: usize,
    /// A trained classifier for it is loaded (false until the model is loaded).
    pub classifier: bool,
}

/// `GET /v1/taxonomies`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaxonomyList {
    /// The taxonomy classify uses when none is given (`classify.default_taxonomy`).
    pub default: String,
    /// By id.
    pub taxonomies: Vec<TaxonomyInfo>,
}

/// `GET /v1/taxonomies/{id}/search`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    pub taxonomy: String,
    /// The query as given.
    pub query: String,
    /// Best first: exact code, code prefix (coarser first), name containing the query (shorter
    /// first), note term containing it (shorter first); each code once.
    pub hits: Vec<SearchHit>,
}

/// The taxonomies the service knows.
#[utoipa::path(get, path = "/v1/taxonomies", tag = "taxonomy", security(("bearer" = [])),
    responses((status = 200, body = TaxonomyList)))]
pub async fn list(State(s): State<AppState>) -> Result<Json<TaxonomyList>, ApiError> {
    let lookup = s.review().lookup(&s);
    let engine = s.engine().ok();
    let taxonomies = lookup
        .all()
        .into_iter()
        .map(|t| TaxonomyInfo {
            id: t.id().to_string(),
            version: Some(t.version().to_string()).filter(|v| !v.is_empty()),
            levels: t.level_names().to_vec(),
            codes: t.len(),
            classifier: engine.is_some_and(|e| e.models.contains_key(t.id())),
        })
        .collect();
    Ok(Json(TaxonomyList {
        default: s.config().classify.default_taxonomy.clone(),
        taxonomies,
    }))
}

/// The artifact whose note terms the search of `id` uses: the loaded classifier's, else the
/// one the engine would load (so search has its terms before the model is loaded).
fn artifact_dir(s: &AppState, id: &str) -> Option<PathBuf> {
    if let Some(m) = s.engine().ok().and_then(|e| e.models.get(id)) {
        return Some(m.artifact_dir.clone());
    }
    crate::engine::artifact_roots(s.config())
        .iter()
        .find_map(|r| touxiang_training::latest_artifact_dir(r, id))
}

/// Build the search index of the default taxonomy in the background (at `serve` start), so
/// the first search does not wait for it.
pub fn warm_up(s: &AppState) {
    let id = s.config().classify.default_taxonomy.clone();
    let Some(taxonomy) = s.review().lookup(s).taxonomy(&id) else {
        return;
    };
    let dir = artifact_dir(s, &id);
    tokio::task::spawn_blocking(move || crate::taxonomy_search::index(taxonomy, dir));
}

/// Search a taxonomy by code, name and note terms.
#[utoipa::path(get, path = "/v1/taxonomies/{id}/search", tag = "taxonomy", security(("bearer" = [])),
    params(("id" = String, Path, description = "Taxonomy id (see GET /v1/taxonomies)"),
        ("q" = String, Query, description = "Code, code prefix, or words of a name or note term (1-100 characters; case-insensitive; traditional characters are read as simplified)"),
        ("limit" = Option<usize>, Query, description = "Most hits, 1-100 (default 20)")),
    responses((status = 200, body = SearchResponse),
        (status = 404, description = "Unknown taxonomy", body = crate::error::ErrorBody),
        (status = 422, description = "`q` empty or over 100 characters, or `limit` outside 1-100 (named in `field`)", body = crate::error::ErrorBody)))]
pub async fn search(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<SearchResponse>, ApiError> {
    let lookup = s.review().lookup(&s);
    let Some(taxonomy) = lookup.taxonomy(&id) else {
        let known: Vec<String> = lookup.all().iter().map(|t| t.id().to_string()).collect();
        return Err(ApiError::NotFound(format!(
            "unknown taxonomy '{id}' (known: {})",
            known.join(", ")
        )));
    };
    let query = params.get("q").cloned().unwrap_or_default();
    let n = query.chars().count();
    if query.trim().is_empty() || n > MAX_QUERY_CHARS {
        return Err(ApiError::invalid(
            "q",
            format!("q must have 1-{MAX_QUERY_CHARS} characters (got {n})"),
        ));
    }
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::invalid(
                    "limit",
                    format!("limit must be an integer 1-{MAX_LIMIT}, got {l:?}"),
                )
            })?,
    };
    let dir = artifact_dir(&s, &id);
    let q = query.clone();
    let hits = blocking(move || Ok(crate::taxonomy_search::index(taxonomy, dir).search(&q, limit)))
        .await?;
    Ok(Json(SearchResponse {
        taxonomy: id,
        query,
        hits,
    }))
}
