//! The `novakvm compute` service: a tokio runtime with graceful shutdown.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Errors of the compute service's own start and stop.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot install a signal handler: {0}")]
    Signal(#[source] std::io::Error),
}

/// Run the agent until SIGTERM or SIGINT.
pub fn run(cfg: Config) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %ServiceError::Runtime(e), "novakvm compute failed");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(serve(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "novakvm compute failed");
            ExitCode::from(1)
        }
    }
}

async fn serve(cfg: Config) -> Result<(), ServiceError> {
    let shutdown = CancellationToken::new();
    tracing::info!(host = %cfg.default.host, "novakvm compute starting");
    let signals = tokio::spawn(wait_for_signal(shutdown.clone()));
    shutdown.cancelled().await;
    match signals.await {
        Ok(res) => res?,
        Err(e) => tracing::warn!(error = %e, "signal task ended abnormally"),
    }
    tracing::info!("novakvm compute stopped");
    Ok(())
}

/// Cancel `token` on the first SIGTERM or SIGINT.
async fn wait_for_signal(token: CancellationToken) -> Result<(), ServiceError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(ServiceError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServiceError::Signal)?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, stopping"),
        _ = int.recv() => tracing::info!("SIGINT received, stopping"),
    }
    token.cancel();
    Ok(())
}
