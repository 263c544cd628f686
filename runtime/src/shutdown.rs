//! Shutdown: SIGINT or SIGTERM cancels one token that every task watches;
//! a tracker counts the tasks still finishing their work.

use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// Handed to every part of a process: `token` says "stop taking work",
/// `tracker` holds the in-flight work that must finish first.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    pub token: CancellationToken,
    pub tracker: TaskTracker,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels the token on the first SIGINT or SIGTERM.
    pub fn cancel_on_signal(&self) {
        let token = self.token.clone();
        tokio::spawn(async move {
            signal().await;
            tracing::info!("shutdown requested: finishing in-flight work");
            token.cancel();
        });
    }

    /// Waits, at most `limit`, for tracked tasks to finish after a cancel.
    pub async fn wait(&self, limit: std::time::Duration) -> bool {
        self.tracker.close();
        tokio::time::timeout(limit, self.tracker.wait()).await.is_ok()
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
