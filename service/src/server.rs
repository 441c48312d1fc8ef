//! The HTTP server: an accept loop over hyper (the engine of `axum::serve`) with what
//! `axum::serve` does not offer: a cap on open connections, a deadline for request headers and
//! a graceful drain on shutdown.
//!
//! Slow-header clients (slowloris) are closed after `limits.header_read_timeout_secs`. At
//! `limits.max_connections` open connections (capped below the process's file-descriptor limit,
//! which is raised at start: the hard limit too when the process may) the server closes the
//! oldest connection whose first request has not begun — under a slow-header flood, one of the
//! flood — and accepts the next client in its place; when every connection is serving a request
//! it stops accepting until one closes (further clients wait in the kernel's listen backlog).
//! Either way the process never runs out of descriptors ("Too many open files") for its own
//! files, and a legitimate client is not starved by clients that never finish their headers.
//! An accept error is logged and retried after a pause instead of ending the server.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};

use crate::config::Limits;

/// How long in-flight requests get to finish after the shutdown signal.
const DRAIN: Duration = Duration::from_secs(30);

/// Descriptors kept free for the process's own files (databases, model, logs, uploads).
const FD_RESERVE: u64 = 256;

/// `wanted` connections, at most the descriptor limit less [`FD_RESERVE`]. A hard limit below
/// what `wanted` needs is raised when the process may (root or `CAP_SYS_RESOURCE`, up to the
/// kernel's `nr_open`); the soft limit is then raised to the hard one.
fn connection_cap(wanted: usize) -> usize {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read/write the struct passed by reference.
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
        if ok {
            let need = (wanted as u64).saturating_add(FD_RESERVE) as libc::rlim_t;
            if lim.rlim_max < need {
                let raised = libc::rlimit {
                    rlim_cur: need,
                    rlim_max: need,
                };
                // SAFETY: as above; refused (EPERM) without the privilege, which is fine
                if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                    lim = raised;
                }
            }
            if lim.rlim_cur < lim.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                };
                // SAFETY: as above
                if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                    lim.rlim_cur = lim.rlim_max;
                }
            }
            let room = lim.rlim_cur.saturating_sub(FD_RESERVE).max(16);
            return wanted.clamp(1, usize::try_from(room).unwrap_or(usize::MAX));
        }
    }
    wanted.max(1)
}

/// Connections accepted whose first request has not begun, oldest first, each with the signal
/// that closes it: at the connection cap the oldest is closed to let a new client in.
#[derive(Default)]
struct Waiting {
    next: u64,
    conns: BTreeMap<u64, oneshot::Sender<()>>,
}

impl Waiting {
    fn lock(w: &Mutex<Waiting>) -> std::sync::MutexGuard<'_, Waiting> {
        w.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn add(w: &Mutex<Waiting>, close: oneshot::Sender<()>) -> u64 {
        let mut g = Self::lock(w);
        let id = g.next;
        g.next += 1;
        g.conns.insert(id, close);
        id
    }
    /// Its first request began (or it ended): no longer a candidate for closing.
    fn remove(w: &Mutex<Waiting>, id: u64) {
        Self::lock(w).conns.remove(&id);
    }
    /// Close the oldest waiting connection; false when none waits.
    fn close_oldest(w: &Mutex<Waiting>) -> bool {
        let oldest = Self::lock(w).conns.pop_first();
        match oldest {
            Some((_, close)) => {
                let _ = close.send(());
                true
            }
            None => false,
        }
    }
}

/// Serve `app` on `listener` until `shutdown` resolves, then drain open connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let cap = connection_cap(limits.max_connections);
    tracing::info!(
        max_connections = cap,
        header_read_timeout_secs = limits.header_read_timeout_secs,
        "connection limits"
    );
    let permits = Arc::new(Semaphore::new(cap));
    let waiting = Arc::new(Mutex::new(Waiting::default()));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // above the app's own limits (`routes::MAX_HEADERS`), so the app answers 431 in the
        // contract shape before hyper would answer it with an empty body
        .max_headers(256)
        .header_read_timeout(Duration::from_secs(limits.header_read_timeout_secs.max(1)));
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; retrying");
                    metrics::counter!("touxiang_accept_errors_total").increment(1);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // at the cap, close the oldest connection still waiting for its first request (if
        // any) and take its slot; with none waiting, hold this one until a slot frees
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if Waiting::close_oldest(&waiting) {
                    metrics::counter!("touxiang_connections_evicted_total").increment(1);
                }
                tokio::select! {
                    p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                    () = &mut shutdown => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let (close, closed) = oneshot::channel();
        let id = Waiting::add(&waiting, close);
        let began = waiting.clone();
        let svc = tower::ServiceExt::map_request(app.clone(), move |req| {
            Waiting::remove(&began, id);
            req
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(svc))
            .into_owned();
        let conn = graceful.watch(conn);
        let ended = waiting.clone();
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                r = &mut conn => Some(r),
                signal = closed => match signal {
                    // closed at the cap before its first request: dropping it closes the socket
                    Ok(()) => None,
                    // its first request began: serve it to the end
                    Err(_) => Some(conn.await),
                },
            };
            if let Some(Err(e)) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            Waiting::remove(&ended, id);
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutdown signal: draining in-flight requests");
    // connections whose first request has not begun hold nothing to drain
    while Waiting::close_oldest(&waiting) {}
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            after_secs = DRAIN.as_secs(),
            "connections still open at shutdown"
        );
    }
    Ok(())
}
