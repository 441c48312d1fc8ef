//! Authentication and authorisation of HTTP calls.
//!
//! Every call carries `Authorization: Bearer KEY`; the key is verified against the key store
//! (`DATA_DIR/auth.sqlite`, [`touxiang_auth::KeyStore`], opened once per process and kept in
//! [`AppState`]). Which permission a route needs is decided by ONE table, [`ROUTES`]; which role
//! holds which permission is decided by [`touxiang_auth::allowed`] (the role matrix of the auth
//! crate). Missing, unknown or revoked key → 401; key of a role without the permission → 403
//! (both in the error contract shape). The verified [`Principal`] goes into the request
//! extensions for the handlers (reviewers act only as themselves).
//!
//! A route missing from the table is admin-only (default deny), and a test checks that every
//! route of the OpenAPI document has an entry. `--insecure-no-auth`
//! ([`crate::config::Config::insecure_no_auth`]) switches all of this off.

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use touxiang_auth::{allowed, KeyStore, Permission, Principal, Role};

use crate::error::ApiError;
use crate::state::AppState;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No key needed (health, readiness, API document and its UI).
    Open,
    /// A key whose role holds this permission.
    Needs(Permission),
    /// Any valid key, whatever its role (who am I, taxonomy look-ups).
    AnyKey,
}

/// The route → permission table: `(method, path pattern, access)`, first match wins.
///
/// Method `*` matches any method (`HEAD` is treated as `GET`). Pattern segments: a literal, `*`
/// for exactly one segment (an id), or a final `**` for the prefix itself and anything below.
pub const ROUTES: &[(&str, &str, Access)] = {
    use Access::{AnyKey, Needs, Open};
    use Permission as P;
    &[
        ("GET", "/healthz", Open),
        ("GET", "/readyz", Open),
        ("GET", "/openapi.json", Open),
        ("GET", "/docs/**", Open),
        // The browser pages ask for a key themselves; every API call they make is checked.
        ("GET", "/ui/**", Open),
        ("GET", "/metrics", Needs(P::Metrics)),
        ("POST", "/v1/embed", Needs(P::Embed)),
        ("POST", "/v1/classify", Needs(P::Classify)),
        // Who the caller is, and the taxonomies (list and search): any valid key.
        ("GET", "/v1/whoami", AnyKey),
        ("GET", "/v1/taxonomies/**", AnyKey),
        // Review: stats and reports first, then the reviewer's own work.
        ("GET", "/v1/review/stats", Needs(P::ReviewStats)),
        ("GET", "/v1/review/agreement", Needs(P::ReviewReports)),
        ("*", "/v1/review/**", Needs(P::ReviewWork)),
        // Portfolio read-outs and writes.
        ("GET", "/v1/portfolios/**", Needs(P::Aggregate)),
        ("*", "/v1/portfolios/**", Needs(P::PortfolioWrite)),
        ("GET", "/v1/aggregate", Needs(P::Aggregate)),
        ("GET", "/v1/concentration", Needs(P::Aggregate)),
        ("GET", "/v1/scores", Needs(P::Aggregate)),
        ("GET", "/v1/alerts", Needs(P::Aggregate)),
        // Fund flow and the borrower graph are read-outs like the aggregates; payment and
        // relation uploads fall under `/v1/portfolios/**` above (PortfolioWrite).
        ("GET", "/v1/loans/*/flow", Needs(P::Aggregate)),
        ("GET", "/v1/graph/**", Needs(P::Aggregate)),
        // Batch jobs: reading status and outputs is an export; starting/cancelling is a write.
        ("GET", "/v1/jobs/**", Needs(P::Export)),
        ("*", "/v1/jobs/**", Needs(P::PortfolioWrite)),
        ("GET", "/v1/exports/**", Needs(P::Export)),
        // Administration.
        ("*", "/v1/admin/keys/**", Needs(P::ManageKeys)),
        ("*", "/v1/admin/settings/**", Needs(P::Settings)),
        ("*", "/v1/admin/**", Needs(P::Reload)),
    ]
};

/// Does `path` match `pattern` (see [`ROUTES`])?
fn path_matches(pattern: &str, path: &str) -> bool {
    let mut pat = pattern.split('/').peekable();
    let mut segs = path.split('/');
    while let Some(p) = pat.next() {
        if p == "**" && pat.peek().is_none() {
            return true;
        }
        match segs.next() {
            Some(s) if p == "*" && !s.is_empty() => {}
            Some(s) if p == s => {}
            _ => return false,
        }
    }
    segs.next().is_none()
}

/// The access rule of `method path`; `None` when no row matches (then admin only).
pub fn access_for(method: &Method, path: &str) -> Option<Access> {
    let m = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    ROUTES
        .iter()
        .find(|(rm, pat, _)| (*rm == "*" || *rm == m) && path_matches(pat, path))
        .map(|(_, _, a)| *a)
}

/// The presented bearer token, if any.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
        .filter(|t| !t.is_empty())
}

fn unauthorized(message: &str) -> Response {
    let mut r = ApiError::Unauthorized(message.to_string()).into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"touxiang\""),
    );
    r
}

/// The middleware (installed by [`crate::app`] around every route and the fallback).
pub async fn require(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    if s.config().insecure_no_auth {
        return next.run(req).await;
    }
    let access = access_for(req.method(), req.uri().path());
    if access == Some(Access::Open) {
        return next.run(req).await;
    }
    let Some(key) = bearer(req.headers()) else {
        return unauthorized("missing API key: send `Authorization: Bearer KEY`");
    };
    let keys = match s.key_store() {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let verified = tokio::task::spawn_blocking(move || keys.verify(&key)).await;
    let principal = match verified {
        Ok(Ok(Some(p))) => p,
        Ok(Ok(None)) => return unauthorized("invalid or revoked API key"),
        Ok(Err(e)) => return ApiError::from(e).into_response(),
        Err(e) => return ApiError::Internal(format!("key check failed: {e}")).into_response(),
    };
    let ok = match access {
        Some(Access::Needs(p)) => allowed(principal.role, p),
        Some(Access::AnyKey) => true,
        // Default deny: a route missing from the table is for admins only.
        _ => principal.role == Role::Admin,
    };
    if !ok {
        let what = match access {
            Some(Access::Needs(p)) => format!("permission `{p}`"),
            _ => "an admin key".to_string(),
        };
        return ApiError::Forbidden(format!(
            "a key of role `{}` may not call {} {} (needs {what})",
            principal.role,
            req.method(),
            req.uri().path()
        ))
        .into_response();
    }
    let limit = s.config().limits.max_in_flight_per_key;
    let _permit = match s.inner.in_flight.try_acquire(&principal.key_id, limit) {
        Ok(p) => p,
        Err(n) => {
            metrics::counter!("touxiang_key_limit_refusals_total").increment(1);
            return ApiError::Overloaded {
                message: format!(
                    "key `{}` already has {n} requests in flight (limit {limit}): wait for some to finish",
                    principal.name
                ),
                retry_after_secs: 1,
            }
            .into_response();
        }
    };
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// Requests in flight per API key: a permit is taken when a call is authorised and given back
/// when its response starts (or the client goes away). Keys are few (one per client system
/// or person), so one mutex-guarded map of counters is enough; an entry is dropped when its
/// count returns to 0, so the map holds only keys with calls in flight.
#[derive(Default)]
pub struct KeyLimiter {
    counts: Arc<Mutex<std::collections::HashMap<String, usize>>>,
}

/// A request's place in [`KeyLimiter`]; released on drop.
pub struct KeyPermit {
    counts: Arc<Mutex<std::collections::HashMap<String, usize>>>,
    key: String,
}

impl KeyLimiter {
    /// Take a permit for `key` unless it already holds `limit` (0 = unlimited); `Err` carries
    /// the number in flight.
    pub fn try_acquire(&self, key: &str, limit: usize) -> Result<Option<KeyPermit>, usize> {
        if limit == 0 {
            return Ok(None);
        }
        let mut m = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(key.to_string()).or_insert(0);
        if *n >= limit {
            return Err(*n);
        }
        *n += 1;
        Ok(Some(KeyPermit {
            counts: self.counts.clone(),
            key: key.to_string(),
        }))
    }

    /// Requests in flight for `key`.
    pub fn in_flight(&self, key: &str) -> usize {
        let m = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        m.get(key).copied().unwrap_or(0)
    }
}

impl Drop for KeyPermit {
    fn drop(&mut self) {
        let mut m = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

/// Reviewer checks for the review routes: with authentication on, the caller must be allowed to
/// act as `reviewer` ([`touxiang_auth::may_act_as_reviewer`]: reviewers only as themselves,
/// admins for anyone). Returns the reviewer id to use: the one given, else the key's name.
pub fn acting_reviewer(
    s: &AppState,
    principal: Option<&Principal>,
    reviewer: Option<&str>,
) -> Result<String, ApiError> {
    let reviewer = reviewer.map(str::trim).filter(|r| !r.is_empty());
    if s.config().insecure_no_auth {
        return reviewer.map(str::to_string).ok_or_else(|| {
            ApiError::invalid(
                "reviewer",
                "reviewer is required (no API key to take it from)",
            )
        });
    }
    let p = principal.ok_or_else(|| ApiError::Unauthorized("missing API key".into()))?;
    let reviewer = reviewer.unwrap_or(p.name.as_str());
    if touxiang_auth::may_act_as_reviewer(p.role, &p.name, reviewer) {
        Ok(reviewer.to_string())
    } else {
        Err(ApiError::Forbidden(format!(
            "key `{}` (role `{}`) may not act as reviewer `{reviewer}`: reviewers act only as themselves",
            p.name, p.role
        )))
    }
}

impl AppState {
    /// The key store of this data directory (opened on first use, then shared).
    pub fn key_store(&self) -> Result<Arc<KeyStore>, ApiError> {
        static INIT: Mutex<()> = Mutex::new(());
        if let Some(k) = self.inner.keys.get() {
            return Ok(k.clone());
        }
        let _g = INIT.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = self.inner.keys.get() {
            return Ok(k.clone());
        }
        let ks = KeyStore::open(&self.config().data_dir).map_err(|e| {
            ApiError::Internal(format!(
                "cannot open the key store in {}: {e}",
                self.config().data_dir.display()
            ))
        })?;
        Ok(self.inner.keys.get_or_init(|| Arc::new(ks)).clone())
    }
}

/// `serve` start (after [`crate::store_check::check_stores`]): warn loudly when
/// authentication is off; otherwise make sure an admin key exists (first start: create it,
/// print it once, save it to `DATA_DIR/admin.key`) and open the key store. A damaged key store,
/// or `admin.key` without its key store, is refused: no new admin key over issued keys.
pub fn startup(state: &AppState) -> anyhow::Result<()> {
    let cfg = state.config();
    if cfg.insecure_no_auth {
        let msg = "AUTHENTICATION IS OFF (--insecure-no-auth): every caller may use every \
                   endpoint, including key management. Use this for local work only.";
        tracing::warn!("{msg}");
        eprintln!("WARNING: {msg}");
        return Ok(());
    }
    if let Some(key) = touxiang_auth::ensure_admin(&cfg.data_dir)? {
        let path = cfg.data_dir.join(touxiang_auth::ADMIN_KEY_FILE);
        println!("No API keys found: created an admin key (shown once):");
        println!("{key}");
        println!("It was saved to {} (mode 0600).", path.display());
    }
    state.key_store().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(path_matches("/v1/embed", "/v1/embed"));
        assert!(!path_matches("/v1/embed", "/v1/embed/x"));
        assert!(!path_matches("/v1/embed", "/v1/embedx"));
        assert!(path_matches("/v1/review/**", "/v1/review"));
        assert!(path_matches("/v1/review/**", "/v1/review/rv_1/label"));
        assert!(!path_matches("/v1/review/**", "/v1/reviewer"));
        assert!(path_matches("/v1/jobs/*/cancel", "/v1/jobs/j1/cancel"));
        assert!(!path_matches("/v1/jobs/*/cancel", "/v1/jobs//cancel"));
    }

    #[test]
    fn table_lookups() {
        use Permission as P;
        let get = |p: &str| access_for(&Method::GET, p);
        let post = |p: &str| access_for(&Method::POST, p);
        assert_eq!(get("/healthz"), Some(Access::Open));
        assert_eq!(access_for(&Method::HEAD, "/readyz"), Some(Access::Open));
        assert_eq!(post("/healthz"), None);
        assert_eq!(get("/v1/review/stats"), Some(Access::Needs(P::ReviewStats)));
        assert_eq!(
            get("/v1/review/agreement"),
            Some(Access::Needs(P::ReviewReports))
        );
        assert_eq!(
            post("/v1/review/rv_1/label"),
            Some(Access::Needs(P::ReviewWork))
        );
        assert_eq!(
            post("/v1/portfolios/x/loans"),
            Some(Access::Needs(P::PortfolioWrite))
        );
        assert_eq!(get("/v1/portfolios"), Some(Access::Needs(P::Aggregate)));
        assert_eq!(
            access_for(&Method::DELETE, "/v1/admin/keys/key_1"),
            Some(Access::Needs(P::ManageKeys))
        );
        assert_eq!(
            access_for(&Method::PUT, "/v1/admin/settings"),
            Some(Access::Needs(P::Settings))
        );
        assert_eq!(get("/v1/whoami"), Some(Access::AnyKey));
        assert_eq!(get("/v1/taxonomies"), Some(Access::AnyKey));
        assert_eq!(
            get("/v1/taxonomies/gbt4754-2017/search"),
            Some(Access::AnyKey)
        );
        assert_eq!(post("/v1/taxonomies"), None);
        assert_eq!(get("/v1/review/me"), Some(Access::Needs(P::ReviewWork)));
        assert_eq!(get("/v1/nothing"), None);
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer tx_abc"),
        );
        assert_eq!(bearer(&h).as_deref(), Some("tx_abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  tx_abc "),
        );
        assert_eq!(bearer(&h).as_deref(), Some("tx_abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcg=="),
        );
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
    }
}
