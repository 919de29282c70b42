//! Reloading: the file read again, checked whole, and swapped in at once.
//!
//! Three ways ask for it — SIGHUP (as nginx and HAProxy take it), `POST
//! /reload` on the admin API, and `--watch` — and all three end in
//! [`Gateway::reload`]: read, parse, build the new routes beside the old
//! (keeping what did not change), and store them in one atomic swap. A file
//! with a mistake changes nothing; the answer says where the mistake is.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use crate::config;
use crate::gateway::{Fixed, Gateway};

/// How often `--watch` looks at the file.
const WATCH_EVERY: Duration = Duration::from_millis(500);

impl Gateway {
    /// Read the file again and, if it is valid whole, serve it; if not,
    /// keep serving the old one and say why.
    pub(crate) async fn reload(&self) -> Result<usize, String> {
        let Some(file) = &self.file else {
            return Err("serving the built-in example: there is no --config file to reload".into());
        };
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("{}: cannot read it: {e}", file.display()))?;
        *self
            .last_read
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = text.clone();
        let config =
            config::parse(&text, &file.display().to_string()).map_err(|e| e.to_string())?;
        if Fixed::of(&config) != self.fixed {
            tracing::warn!(
                "{}: listen, [tls], [admin] listen and upstream_ca changed; they take effect at the next start",
                file.display()
            );
        }
        let _one_change_at_a_time = self.changing.lock().await;
        let old = self.routes.load_full();
        let routes = self
            .build(&config, Some(&old))
            .map_err(|e| format!("{e:#}"))?;
        let count = routes.table.services.len();
        self.tcp
            .apply(&self.tcp_services(&config))
            .await
            .map_err(|e| format!("{e:#}"))?;
        self.serve_config(&config, routes);
        Ok(count)
    }

    /// The reload, logged.
    pub(crate) async fn reload_logged(&self, why: &str) -> Result<usize, String> {
        let reloaded = self.reload().await;
        match &reloaded {
            Ok(count) => tracing::info!("{why}: reloaded, {}", services(*count)),
            Err(e) => tracing::warn!("{why}: not reloaded, the old config keeps serving: {e}"),
        }
        reloaded
    }

    /// Has the file changed since it was last read?
    fn file_changed(&self) -> bool {
        let Some(file) = &self.file else {
            return false;
        };
        match std::fs::read_to_string(file) {
            Ok(text) => {
                *self
                    .last_read
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    != text
            }
            // Editors replace files by renaming: a moment without one is
            // not a change; a reload would only report it missing.
            Err(_) => false,
        }
    }
}

/// "1 service", "3 services".
pub(crate) fn services(count: usize) -> String {
    match count {
        1 => "1 service".to_owned(),
        n => format!("{n} services"),
    }
}

/// SIGHUP reloads, as nginx and HAProxy do.
pub(crate) async fn reload_on_sighup(gateway: Arc<Gateway>) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::warn!("cannot listen for SIGHUP; reload with POST /reload on the admin listener");
        return;
    };
    while hangups.recv().await.is_some() {
        let _ = gateway.reload_logged("SIGHUP").await;
    }
}

/// `--watch`: read the file every WATCH_EVERY, reload when it changed.
/// Reading beats file-system notifications here: it works on every file
/// system (including the bind mounts and ConfigMaps configs often live on),
/// and a file read twice a second costs nothing.
pub(crate) async fn reload_on_change(gateway: Arc<Gateway>) {
    let mut ticks = tokio::time::interval(WATCH_EVERY);
    loop {
        ticks.tick().await;
        if gateway.file_changed() {
            let _ = gateway.reload_logged("the file changed").await;
        }
    }
}
