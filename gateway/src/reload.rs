//! Hot reload: watches the config file (its folder, so editors' rename-on-save and Kubernetes
//! ConfigMap symlink swaps are seen), debounces bursts of events, and asks the gateway to
//! reload. SIGHUP triggers the same path.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::gateway::Gateway;

/// How long events must settle before a reload: editors write files in several steps.
const DEBOUNCE: Duration = Duration::from_millis(150);

/// Spawns the watcher task; it ends when the gateway shuts down.
pub fn spawn(gw: Gateway, path: PathBuf) -> notify::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let file_name = path.file_name().map(|n| n.to_os_string());
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let watched = path.clone();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            let relevant = ev.paths.iter().any(|p| {
                p.file_name().map(|n| n.to_os_string()) == file_name
                    || p == &watched
                    // ConfigMap updates swap a `..data` symlink next to the file.
                    || p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".."))
            });
            if relevant && !matches!(ev.kind, notify::EventKind::Access(_)) {
                let _ = tx.send(());
            }
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;

    let shutdown = gw.shutdown_token();
    tokio::spawn(async move {
        // The watcher lives as long as this task.
        let _watcher = watcher;
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            #[cfg(unix)]
            let hup_recv = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hup_recv = std::future::pending::<Option<()>>();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                ev = rx.recv() => if ev.is_none() { break },
                _ = hup_recv => tracing::info!("SIGHUP: reloading configuration"),
            }
            // Debounce: wait until events stop arriving.
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(DEBOUNCE) => break,
                    ev = rx.recv() => if ev.is_none() { break },
                }
            }
            gw.reload_from_file().await;
        }
    });
    Ok(())
}
