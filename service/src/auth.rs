//! Authentication and authorisation of HTTP calls.
//!
//! Every call carries `Authorization: Bearer KEY`; the key is verified against the key store
//! (`DATA_DIR/auth.sqlite`, [`touxiang_auth::KeyStore`], held by [`AppState`]). Which access a
//! route needs is declared where the route is added, in its `routes/*.rs` router, through
//! [`crate::routes::access::Routes`], which attaches [`require`] to that route; which role
//! holds which permission is decided by [`touxiang_auth::allowed`] (the role matrix of the auth
//! crate). Missing, unknown or revoked key → 401; key of a role without the permission → 403
//! (both in the error contract shape). The verified [`Principal`] goes into the request
//! extensions for the handlers (reviewers act only as themselves).
//!
//! Anything not declared is admin-only (default deny): the router's fallback (unknown path,
//! then 404) and its answer to a method a path does not serve (then 405) run the same check
//! with no declared access ([`crate::routes`]). A test checks that every route of the OpenAPI
//! document has a declared access matching its documented security ([`access_for`]).
//! `--insecure-no-auth` ([`crate::config::Config::insecure_no_auth`]) switches all of this off.

use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use touxiang_auth::{allowed, Permission, Principal, Role};

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

/// The declared access of `method path` (a concrete path such as `/v1/review/rv_1/label`);
/// `None` when no route declares it (then admin only). `HEAD` is looked up as `GET`, as the
/// router serves it. Where a literal route and a route with a parameter both match, the one
/// with more literal segments wins, as in the router. Builds the routers to read their
/// declarations: for tests and tools, not for requests.
pub fn access_for(method: &Method, path: &str) -> Option<Access> {
    let m = if method == Method::HEAD {
        Method::GET
    } else {
        method.clone()
    };
    crate::routes::declared()
        .into_iter()
        .filter(|d| d.method == m)
        .filter_map(|d| d.literal_match(path).map(|n| (n, d.access)))
        .max_by_key(|(n, _)| *n)
        .map(|(_, a)| a)
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

/// Why a call is refused: its error, sent in the contract shape; a 401 also carries the
/// `WWW-Authenticate` challenge.
#[derive(Debug)]
pub struct Denied(pub ApiError);

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let challenge = matches!(self.0, ApiError::Unauthorized(_));
        let mut r = self.0.into_response();
        if challenge {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"touxiang\""),
            );
        }
        r
    }
}

fn unauthorized(message: &str) -> Denied {
    Denied(ApiError::Unauthorized(message.to_string()))
}

/// The check a declared route carries (see [`crate::routes::access::Routes`]): authorise the
/// call for `access`, then run the route with the caller's [`Principal`] in the request
/// extensions and its place in the per-key limit held until the response starts.
pub async fn require(access: Access, mut req: Request, next: Next) -> Response {
    match authorize(Some(access), &req).await {
        Err(denied) => denied.into_response(),
        Ok(None) => next.run(req).await,
        Ok(Some((principal, _permit))) => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
    }
}

/// The caller of `req` is allowed `access` (`None` = declared by no route: admin only).
/// `Ok(None)` when no key is needed (open route, or authentication off); else the verified
/// principal and its permit in the per-key limit. `Err` is why not: 401, 403, 429, or 500
/// when the request did not come through [`crate::app`]. What it needs
/// of `req` is read before the future starts, so the future does not borrow the request.
pub fn authorize(
    access: Option<Access>,
    req: &Request,
) -> impl std::future::Future<Output = Result<Option<(Principal, Option<KeyPermit>)>, Denied>>
       + Send
       + 'static {
    let state = req.extensions().get::<AppState>().cloned();
    let key = bearer(req.headers());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    async move {
        let Some(s) = state else {
            return Err(Denied(ApiError::Internal(
                "route called without the application state".into(),
            )));
        };
        if s.config().insecure_no_auth || access == Some(Access::Open) {
            return Ok(None);
        }
        let Some(key) = key else {
            return Err(unauthorized(
                "missing API key: send `Authorization: Bearer KEY`",
            ));
        };
        let keys = s.key_store();
        let verified = tokio::task::spawn_blocking(move || keys.verify(&key)).await;
        let principal = match verified {
            Ok(Ok(Some(p))) => p,
            Ok(Ok(None)) => return Err(unauthorized("invalid or revoked API key")),
            Ok(Err(e)) => return Err(Denied(ApiError::from(e))),
            Err(e) => return Err(Denied(ApiError::Internal(format!("key check failed: {e}")))),
        };
        check_role(&s, access, principal, &method, &path)
    }
}

/// The verified `principal` may call `method path` with `access`, within its per-key limit.
fn check_role(
    s: &AppState,
    access: Option<Access>,
    principal: Principal,
    method: &Method,
    path: &str,
) -> Result<Option<(Principal, Option<KeyPermit>)>, Denied> {
    let ok = match access {
        Some(Access::Needs(p)) => allowed(principal.role, p),
        Some(Access::AnyKey) => true,
        // Default deny: a route nobody declared is for admins only.
        _ => principal.role == Role::Admin,
    };
    if !ok {
        let what = match access {
            Some(Access::Needs(p)) => format!("permission `{p}`"),
            _ => "an admin key".to_string(),
        };
        return Err(Denied(ApiError::Forbidden(format!(
            "a key of role `{}` may not call {method} {path} (needs {what})",
            principal.role,
        ))));
    }
    let limit = s.config().limits.max_in_flight_per_key;
    match s.in_flight().try_acquire(&principal.key_id, limit) {
        Ok(permit) => Ok(Some((principal, permit))),
        Err(n) => {
            metrics::counter!("touxiang_key_limit_refusals_total").increment(1);
            Err(Denied(ApiError::Overloaded {
                message: format!(
                    "key `{}` already has {n} requests in flight (limit {limit}): wait for some to finish",
                    principal.name
                ),
                retry_after_secs: 1,
            }))
        }
    }
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

/// `serve` start (after [`AppState::open`], which opened and checked the key store): warn
/// loudly when authentication is off; otherwise make sure an admin key exists (first start:
/// create it, print it once, save it to `DATA_DIR/admin.key`). A damaged key store, or
/// `admin.key` without its key store, was refused by `AppState::open` already
/// (`KeyStore::open`): no new admin key over issued keys.
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_lookups() {
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
        assert_eq!(get("/v1/review/rv_1"), Some(Access::Needs(P::ReviewWork)));
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
        assert_eq!(get("/v1/jobs/j1"), Some(Access::Needs(P::Export)));
        assert_eq!(post("/v1/jobs"), Some(Access::Needs(P::PortfolioWrite)));
        assert_eq!(get("/ui/js/app.js"), Some(Access::Open));
        assert_eq!(get("/docs/"), Some(Access::Open));
        assert_eq!(get("/v1/nothing"), None);
    }

    #[test]
    fn every_route_is_declared_once() {
        let d = crate::routes::declared();
        for (i, a) in d.iter().enumerate() {
            assert!(
                !d[..i]
                    .iter()
                    .any(|b| b.method == a.method && b.path == a.path),
                "{} {} declared twice",
                a.method,
                a.path
            );
        }
        assert!(d.len() >= 40, "{}", d.len());
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
