//! The real axum app on a free 127.0.0.1 port, for the end-to-end tests.

use cryptonas_server::{app, AppState, HostedModel, Limits};
use std::net::SocketAddr;
use std::sync::Arc;

/// Serves `state` until the test's runtime ends; returns its address.
pub(crate) async fn serve_state(state: AppState) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// Serves one model under `limits`; returns the base URL.
pub(crate) async fn serve_with(hosted: Arc<dyn HostedModel>, limits: Limits) -> String {
    let state = AppState::new(vec![hosted], limits, std::env::temp_dir());
    format!("http://{}", serve_state(state).await)
}

/// Serves one model without the per-address session rate limit (the tests open many sessions).
pub(crate) async fn serve_hosted(hosted: Arc<dyn HostedModel>) -> String {
    serve_with(
        hosted,
        Limits {
            sessions_per_minute: 0,
            ..Limits::default()
        },
    )
    .await
}
