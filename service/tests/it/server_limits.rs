//! The accept loop (`touxiang::server::serve`): slow-header clients are closed after the header
//! timeout, and at the connection cap further clients wait instead of failing — a legitimate
//! request gets through once the slow ones are cut off.

use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_clients_are_cut_off_and_legitimate_ones_get_through() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = touxiang::config::Limits {
        header_read_timeout_secs: 1,
        max_connections: 3,
        ..Default::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = Router::new().route("/ok", get(|| async { "ok" }));
    let server = tokio::spawn(async move {
        touxiang::server::serve(listener, app, &limits, async {
            let _ = stopped.await;
        })
        .await
    });
    // three clients that never finish their headers fill the cap
    let mut slow = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut resp = String::new();
    tokio::time::timeout(Duration::from_secs(10), c.read_to_string(&mut resp))
        .await
        .expect("the legitimate request is answered once the slow clients are cut off")
        .unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(500),
        "at the cap the request waited for a slot ({waited:?})"
    );
    // the slow clients were closed by the server
    for mut s in slow {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
            .await
            .expect("closed after the header timeout");
        assert!(n.is_ok());
    }
    // graceful shutdown ends the loop
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stops on the signal")
        .unwrap()
        .unwrap();
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
