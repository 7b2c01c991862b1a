//! The accept loop: hyper's HTTP/1 server with a header-read timeout (which also closes
//! connections idle between requests), a bound on connections held at once, the client's address
//! for every request, and a graceful shutdown that drains sessions within a deadline.

use crate::{app, AppState};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// Connection-level limits.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Connections held at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Time a connection gets to send a request's headers, also while idle between requests; a
    /// request body must arrive within it as well.
    pub header_timeout: Duration,
    /// After the shutdown signal, how long running sessions get to finish.
    pub drain: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            drain: Duration::from_secs(60),
        }
    }
}

/// Serves `state` on `listener` until `shutdown` resolves, then stops accepting, lets running
/// sessions finish within `options.drain` (new ones are refused with 503), closes the rest with
/// code 1001 and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let router = app(state.clone()).layer(RequestBodyTimeoutLayer::new(options.header_timeout));
    let slots = Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .max_buf_size(64 << 10);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.map_err(std::io::Error::other)?,
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let svc = router.clone().map_request(
            move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo::<SocketAddr>(peer));
                req
            },
        );
        let conn = http
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
            .with_upgrades();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = async { drop(stopped.wait_for(|s| *s).await) } => {
                    // Finish the request in flight, then close.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    state.begin_drain();
    tracing::info!(
        sessions = state.metrics().active(),
        drain_s = options.drain.as_secs(),
        "shutting down: draining sessions"
    );
    let deadline = tokio::time::Instant::now() + options.drain;
    // HTTP connections finish their request and close; upgraded sessions run on until done.
    stop.send_replace(true);
    let all = u32::try_from(options.max_connections.max(1)).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout_at(deadline, slots.acquire_many(all)).await;
    while state.metrics().active() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if state.metrics().active() > 0 {
        tracing::warn!(
            sessions = state.metrics().active(),
            "drain deadline passed: closing sessions"
        );
        state.close_sessions();
        let grace = tokio::time::Instant::now() + Duration::from_secs(2);
        while state.metrics().active() > 0 && tokio::time::Instant::now() < grace {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}
