//! The accept loop (`touxiang::server::serve`): slow-header clients are closed after the header
//! timeout; at the connection cap the oldest connection still waiting for its first request is
//! closed so that a legitimate client gets in at once; graceful shutdown ends the loop.

use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A server on a free port with `limits`; send on the returned channel to stop it.
async fn start(
    limits: touxiang::config::Limits,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = Router::new().route("/ok", get(|| async { "ok" }));
    let server = tokio::spawn(async move {
        touxiang::server::serve(listener, app, &limits, async {
            let _ = stopped.await;
        })
        .await
    });
    (addr, stop, server)
}

/// `n` clients that send part of their headers and never the rest.
async fn slow_clients(addr: std::net::SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut slow = Vec::new();
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(s);
        // accepted in this order (the oldest is closed first)
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    slow
}

async fn get_ok(addr: std::net::SocketAddr) -> String {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut resp = String::new();
    tokio::time::timeout(Duration::from_secs(10), c.read_to_string(&mut resp))
        .await
        .expect("the legitimate request is answered")
        .unwrap();
    resp
}

/// Whether the server closed `s` within `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = Vec::new();
    matches!(
        tokio::time::timeout(within, s.read_to_end(&mut buf)).await,
        Ok(Ok(_)) | Ok(Err(_))
    )
}

async fn stop_server(
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
) {
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stops on the signal")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_clients_are_cut_off_after_the_header_timeout() {
    let limits = touxiang::config::Limits {
        header_read_timeout_secs: 1,
        max_connections: 64,
        ..Default::default()
    };
    let (addr, stop, server) = start(limits).await;
    let mut slow = slow_clients(addr, 3).await;
    let resp = get_ok(addr).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    for s in &mut slow {
        assert!(
            closed_within(s, Duration::from_secs(5)).await,
            "closed after the timeout"
        );
    }
    stop_server(stop, server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_the_oldest_waiting_connection_makes_room_for_a_new_client() {
    // a header timeout far beyond the test: only the cap's eviction can let the client in
    let limits = touxiang::config::Limits {
        header_read_timeout_secs: 60,
        max_connections: 3,
        ..Default::default()
    };
    let (addr, stop, server) = start(limits).await;
    let mut slow = slow_clients(addr, 3).await;
    let t = Instant::now();
    let resp = get_ok(addr).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "answered at once, not after a header timeout ({:?})",
        t.elapsed()
    );
    // the oldest slow client was closed to make room; the two newer ones are still held
    assert!(closed_within(&mut slow[0], Duration::from_secs(2)).await);
    for s in &mut slow[1..] {
        assert!(
            !closed_within(s, Duration::from_millis(300)).await,
            "still open"
        );
    }
    stop_server(stop, server).await;
}

/// 414 and 431 leave in the contract shape, through the real server (hyper in front).
#[tokio::test]
async fn long_uris_and_header_floods_are_contract_errors() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = crate::common::cold_state();
    let limits = state.config().limits.clone();
    let app = touxiang::app(state);
    tokio::spawn(async move {
        touxiang::server::serve(listener, app, &limits, std::future::pending()).await
    });
    async fn raw(addr: std::net::SocketAddr, head: String) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf)).await;
        String::from_utf8_lossy(&buf).into_owned()
    }
    let long = "a".repeat(touxiang::routes::MAX_URI_BYTES + 1);
    let r = raw(
        addr,
        format!("GET /healthz?{long} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 414"), "{}", &r[..r.len().min(200)]);
    assert!(r.contains(r#""code":"uri_too_long""#), "{r}");
    let many: String = (0..touxiang::routes::MAX_HEADERS + 1)
        .map(|i| format!("X-Filler-{i}: {i}\r\n"))
        .collect();
    let r = raw(
        addr,
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n"),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 431"), "{}", &r[..r.len().min(200)]);
    assert!(r.contains(r#""code":"headers_too_large""#), "{r}");
    // within the limits, the same request is fine
    let r = raw(
        addr,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into(),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}
