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
    // Handlers go in before anything is announced, so no early signal is lost.
    let signals = Signals::install()?;
    tokio::spawn(signals.cancel_on_first(shutdown.clone()));
    tracing::info!(host = %cfg.default.host, "novakvm compute starting");
    shutdown.cancelled().await;
    tracing::info!("novakvm compute stopped");
    Ok(())
}

/// SIGTERM and SIGINT streams, installed together.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self, ServiceError> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate()).map_err(ServiceError::Signal)?,
            int: signal(SignalKind::interrupt()).map_err(ServiceError::Signal)?,
        })
    }

    /// Cancel `token` on the first SIGTERM or SIGINT.
    async fn cancel_on_first(mut self, token: CancellationToken) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM received, stopping"),
            _ = self.int.recv() => tracing::info!("SIGINT received, stopping"),
        }
        token.cancel();
    }
}
