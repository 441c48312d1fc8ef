//! Route permissions, declared where each route is added.
//!
//! Every `routes/*.rs` router is a [`Routes`]: adding a route names its method, path, handler
//! and the [`Access`] it needs in one call, e.g.
//!
//! ```text
//! Routes::new()
//!     .get("/v1/review/stats", Needs(P::ReviewStats), stats)
//!     .post("/v1/review/{review_id}/label", Needs(P::ReviewWork), label)
//! ```
//!
//! The builder attaches the check ([`crate::auth::require`] for that access) to the route as a
//! `route_layer`, so it runs only when the route matched, and records the declaration
//! ([`Declared`]) so that tests can compare it with the OpenAPI document
//! ([`crate::auth::access_for`]). What no route declares (unknown paths, methods a path does not
//! serve) is admin-only: see [`crate::routes::app`]. The check reads the [`AppState`] from the
//! request extensions, where [`crate::routes::app`] puts it, so a router can be built (and its
//! declarations read) without a state.

use axum::extract::{DefaultBodyLimit, Request};
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::routing::{self, MethodRouter};
use axum::Router;

use crate::auth::Access;
use crate::state::AppState;

/// One declared route: `method path` needs `access`. `path` is the router's pattern
/// (`/v1/review/{review_id}`, `/ui/{*path}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub method: Method,
    pub path: String,
    pub access: Access,
}

impl Declared {
    /// Does the concrete `path` match this route's pattern? `Some(number of literal segments)`
    /// when it does (the router prefers the route with more of them), `None` otherwise. A
    /// `{param}` segment matches one non-empty segment, a final `{*rest}` one or more.
    pub fn literal_match(&self, path: &str) -> Option<usize> {
        let mut pat = self.path.split('/');
        let mut segs = path.split('/');
        let mut literal = 0;
        loop {
            match (pat.next(), segs.next()) {
                (None, None) => return Some(literal),
                (Some(p), Some(s)) if p.starts_with("{*") => {
                    return (!s.is_empty()).then_some(literal);
                }
                (Some(p), Some(s)) if p.starts_with('{') => {
                    if s.is_empty() {
                        return None;
                    }
                }
                (Some(p), Some(s)) if p == s => literal += usize::from(!p.is_empty()),
                _ => return None,
            }
        }
    }
}

/// A router that records, for each route it adds, the access that route needs, and checks it.
#[derive(Default)]
pub struct Routes {
    router: Router<AppState>,
    declared: Vec<Declared>,
}

impl Routes {
    pub fn new() -> Self {
        Self::default()
    }

    /// `GET path` (and `HEAD`, which the router answers with the `GET` handler) needs `access`.
    pub fn get<H, T>(self, path: &str, access: Access, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.route(path, Method::GET, access, routing::get(handler))
    }

    /// `POST path` needs `access`.
    pub fn post<H, T>(self, path: &str, access: Access, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.route(path, Method::POST, access, routing::post(handler))
    }

    /// `PUT path` needs `access`.
    pub fn put<H, T>(self, path: &str, access: Access, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.route(path, Method::PUT, access, routing::put(handler))
    }

    /// `DELETE path` needs `access`.
    pub fn delete<H, T>(self, path: &str, access: Access, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.route(path, Method::DELETE, access, routing::delete(handler))
    }

    /// `POST path` needs `access` and takes bodies up to `max_body_bytes` (file uploads, above
    /// the limit of the other routes).
    pub fn upload<H, T>(self, path: &str, access: Access, handler: H, max_body_bytes: usize) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let limited = routing::post(handler).layer(DefaultBodyLimit::max(max_body_bytes));
        self.route(path, Method::POST, access, limited)
    }

    /// `method path`, served by `method_router` (which serves exactly `method`), needs `access`.
    fn route(
        mut self,
        path: &str,
        method: Method,
        access: Access,
        method_router: MethodRouter<AppState>,
    ) -> Self {
        self.declared.push(Declared {
            method,
            path: path.to_string(),
            access,
        });
        let check = middleware::from_fn(move |req: Request, next: Next| {
            crate::auth::require(access, req, next)
        });
        self.router = self.router.route(path, method_router.route_layer(check));
        self
    }

    /// A router built elsewhere (the API document and its browsable UI) whose every route is
    /// `GET` with `access`; `paths` are its route patterns, for the record.
    pub fn get_router(mut self, router: Router<AppState>, paths: &[&str], access: Access) -> Self {
        self.declared.extend(paths.iter().map(|p| Declared {
            method: Method::GET,
            path: p.to_string(),
            access,
        }));
        let check = middleware::from_fn(move |req: Request, next: Next| {
            crate::auth::require(access, req, next)
        });
        self.router = self.router.merge(router.route_layer(check));
        self
    }

    /// Add the routes of `other`.
    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.declared.extend(other.declared);
        self
    }

    /// Apply `f` to the router (layers that wrap every route added so far: limits, timeouts,
    /// compression); the declarations stay.
    pub fn map(mut self, f: impl FnOnce(Router<AppState>) -> Router<AppState>) -> Self {
        self.router = f(self.router);
        self
    }

    /// The router and what its routes declared.
    pub fn into_parts(self) -> (Router<AppState>, Vec<Declared>) {
        (self.router, self.declared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(path: &str) -> Declared {
        Declared {
            method: Method::GET,
            path: path.into(),
            access: Access::Open,
        }
    }

    #[test]
    fn patterns() {
        assert_eq!(d("/v1/embed").literal_match("/v1/embed"), Some(2));
        assert_eq!(d("/v1/embed").literal_match("/v1/embed/x"), None);
        assert_eq!(d("/v1/embed").literal_match("/v1/embedx"), None);
        let label = d("/v1/review/{review_id}/label");
        assert_eq!(label.literal_match("/v1/review/rv_1/label"), Some(3));
        assert_eq!(label.literal_match("/v1/review//label"), None);
        assert_eq!(
            d("/v1/review/{id}").literal_match("/v1/review/stats"),
            Some(2)
        );
        assert_eq!(d("/ui/{*path}").literal_match("/ui/js/app.js"), Some(1));
        assert_eq!(d("/ui/{*path}").literal_match("/ui/"), None);
    }
}
