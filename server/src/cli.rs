//! The `serve` command's body, shared by the `cryptonas` tool and the `cryptonas-server` alias:
//! logging, binding, serving until Ctrl-C or SIGTERM, then draining.

use crate::{serve, AppState, Config};
use tracing_subscriber::EnvFilter;

/// Runs the server with `config` until Ctrl-C or SIGTERM (logging to stderr at `RUST_LOG`, default
/// `info`); prints `CryptoNAS server ready: <url>` on stdout once it listens.
pub async fn run(config: &Config) -> anyhow::Result<()> {
    // A second subscriber (the caller installed one) is not an error.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .try_init();
    let state = AppState::load(config)?;
    let listener = tokio::net::TcpListener::bind(&config.bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.bind))?;
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
