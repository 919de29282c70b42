//! Upstreams from ZooKeeper: the set each `discover` path holds now, and
//! the watches that keep it current.
//!
//! A service with `discover = PATH` takes as upstreams, beside those its
//! file lists, the data of every child of PATH — one URL each, written as
//! `upstreams` entries are (`discovery::watch` follows the path). A set
//! that changes rebuilds the routes as a reload does: the services whose
//! upstreams changed are rebuilt, and every upstream that stayed keeps its
//! health, counters and drain flag. A child whose data is not an upstream
//! is skipped, and logged. A reload keeps the watches of the paths it
//! still names, starts the new ones and stops the rest.
//!
//! Left out on purpose: TCP services that discover, and a weight or
//! metadata beside the URL (a child's data is one `upstreams` entry).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use hyper::Uri;

use crate::gateway::AbortOnDrop;

/// The sets ZooKeeper holds, by path, and the watches keeping them.
#[derive(Default)]
pub(crate) struct Discovered {
    sets: Mutex<HashMap<String, Vec<(Uri, u32)>>>,
    /// One watch per (servers, path).
    watches: Mutex<HashMap<(String, String), AbortOnDrop>>,
}

impl Discovered {
    /// The upstreams `path` holds now (none before its first read).
    pub(crate) fn upstreams(&self, path: &str) -> Vec<(Uri, u32)> {
        self.sets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    /// Does `path` hold `url` now?
    pub(crate) fn holds(&self, path: &str, url: &Uri) -> bool {
        self.upstreams(path).iter().any(|(held, _)| held == url)
    }

    /// Watch each of `paths` in the ZooKeeper at `servers` (and no other
    /// path): `changed` is called after each new set is kept.
    pub(crate) fn follow(
        self: &Arc<Self>,
        servers: Option<&str>,
        paths: &[&str],
        changed: impl Fn() + Clone + Send + Sync + 'static,
    ) {
        let mut watches = self.watches.lock().unwrap_or_else(PoisonError::into_inner);
        let wanted: Vec<(String, String)> = match servers {
            Some(servers) => paths
                .iter()
                .map(|path| (servers.to_owned(), (*path).to_owned()))
                .collect(),
            None => Vec::new(),
        };
        watches.retain(|key, _| wanted.contains(key));
        for (servers, path) in wanted {
            if watches.contains_key(&(servers.clone(), path.clone())) {
                continue;
            }
            let (discovered, changed, at) = (Arc::downgrade(self), changed.clone(), path.clone());
            let task = discovery::watch::follow(servers.clone(), path.clone(), move |set| {
                if let Some(discovered) = discovered.upgrade() {
                    discovered.keep(&at, set);
                    changed();
                }
            });
            watches.insert((servers, path), AbortOnDrop(task));
        }
    }

    /// Keep `path`'s new set, each entry parsed as an `upstreams` entry is.
    fn keep(&self, path: &str, set: Vec<String>) {
        let upstreams = set
            .iter()
            .filter_map(|entry| match step04_load_balance::parse_upstream(entry) {
                Ok(upstream) => Some(upstream),
                Err(why) => {
                    tracing::warn!("{path}: skipping {entry:?}, not an upstream: {why}");
                    None
                }
            })
            .collect();
        self.sets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path.to_owned(), upstreams);
    }
}
