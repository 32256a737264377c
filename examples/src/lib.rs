//! Examples of mesh, one binary each, and what they share.
#![forbid(unsafe_code)]

/// Resolves when the process is asked to stop: SIGTERM (what Kubernetes sends a pod, and
/// `kill`'s default) or SIGINT (Ctrl-C). The servers then drain: they stop accepting, let the
/// requests in flight finish, and exit 0. If no handler can be installed, it never resolves
/// (the process still stops on the signal, undrained).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = ctrl_c() => {}
                }
            }
            Err(_) => ctrl_c().await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c().await;
}

async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
