//! `cryptonas-server`: hosts the models of a directory and runs the server half of private inference.
//!
//! Run: `cargo run --release -p cryptonas-server -- --models models --www www`

use clap::Parser;
use cryptonas_server::{serve, AppState, Config};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let config = Config::parse();
    let state = AppState::load(&config)?;
    let listener = tokio::net::TcpListener::bind(&config.bind).await?;
    let addr = listener.local_addr()?;
    tracing::info!(models = state.model_count(), "listening on http://{addr}/");
    println!("CryptoNAS server ready: http://{addr}/");
    if config.allow_plaintext {
        tracing::warn!("plaintext classification enabled: POST /api/plain reveals images");
    }
    serve(listener, state, config.serve_options(), shutdown_signal()).await?;
    tracing::info!("shut down");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
}
