//! The HTTP server: an accept loop over hyper (the engine of `axum::serve`) with what
//! `axum::serve` does not offer: a cap on open connections, a deadline for request headers and
//! a graceful drain on shutdown.
//!
//! Slow-header clients (slowloris) are closed after `limits.header_read_timeout_secs`. At
//! `limits.max_connections` open connections (capped below the process's file-descriptor limit,
//! which is raised to its hard maximum at start) the server stops accepting until one closes:
//! further clients wait in the kernel's listen backlog, at most a header timeout, instead of
//! the process running out of descriptors ("Too many open files") for its own files. An accept
//! error is logged and retried after a pause instead of ending the server.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::Limits;

/// How long in-flight requests get to finish after the shutdown signal.
const DRAIN: Duration = Duration::from_secs(30);

/// Descriptors kept free for the process's own files (databases, model, logs, uploads).
const FD_RESERVE: u64 = 256;

/// `wanted` connections, at most the descriptor limit less [`FD_RESERVE`] (the soft limit is
/// first raised to the hard one).
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
        // at the cap, wait for a connection to close before accepting another
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
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
        let _ = stream.set_nodelay(true);
        let conn = builder
            .serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(app.clone()),
            )
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutdown signal: draining in-flight requests");
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
