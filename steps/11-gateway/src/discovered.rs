//! Upstreams from ZooKeeper: the set each `discover` path holds now, and
//! the watches that keep it current.
//!
//! A service with `discover = PATH` takes as upstreams, beside those its
//! file lists, the data of every child of PATH — one upstream each, written
//! as its `upstreams` entries are (`discovery::watch` follows the path): a
//! URL for an HTTP service, `tcp://HOST:PORT` for a TCP one. A set that
//! changes rebuilds the routes as a reload does (the gateway's
//! `rediscovered`): the services whose upstreams changed are rebuilt, and
//! every upstream that stayed keeps its health, counters and drain flag. A
//! child whose data is not an upstream is skipped, logged and counted. A
//! reload keeps the watches of the paths it still names, starts the new
//! ones and stops the rest.
//!
//! `/metrics` counts what the watches are told, by path:
//! `proxy_discovery_events_total{event="changed"|"empty_ignored"}` and
//! `proxy_discovery_errors_total{error="zookeeper"|"invalid_entry"}`.
//!
//! Left out on purpose: a weight or metadata beside the URL (a child's data
//! is one `upstreams` entry, weight included).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use discovery::watch::Followed;
use hyper::Uri;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::gateway::AbortOnDrop;

/// What a path's children are read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Protocol {
    /// A `[[services]]` upstream: `http://`, `https://` or `h2c://`.
    Http,
    /// A `[[tcp_services]]` upstream: `tcp://HOST:PORT`.
    Tcp,
}

impl Protocol {
    fn parse(self, entry: &str) -> Result<(Uri, u32), String> {
        match self {
            Self::Http => step04_load_balance::parse_upstream(entry),
            Self::Tcp => step08_tcp_proxy::parse_upstream(entry),
        }
    }
}

/// A path, read as one protocol.
type Watched = (String, Protocol);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    path: String,
    event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    path: String,
    error: &'static str,
}

/// The sets ZooKeeper holds, by path, and the watches keeping them.
#[derive(Default)]
pub(crate) struct Discovered {
    sets: Mutex<HashMap<Watched, Vec<(Uri, u32)>>>,
    /// One watch per (servers, path, protocol).
    watches: Mutex<HashMap<(String, Watched), AbortOnDrop>>,
    events: Family<EventLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
}

impl Discovered {
    /// Put the counters on `/metrics`.
    pub(crate) fn register_in(&self, metrics: &mut middleware::stats::Metrics) {
        metrics.register(
            "discovery_events",
            "What ZooKeeper's watches told, by path: a new set of upstreams (changed), or an empty one not taken (empty_ignored)",
            self.events.clone(),
        );
        metrics.register(
            "discovery_errors",
            "Discovery's failures, by path: ZooKeeper unreachable or the session lost (zookeeper), a child that is not an upstream (invalid_entry)",
            self.errors.clone(),
        );
    }

    /// The upstreams `path` holds now, read as `protocol` (none before its
    /// first read).
    pub(crate) fn upstreams(&self, path: &str, protocol: Protocol) -> Vec<(Uri, u32)> {
        self.sets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(path.to_owned(), protocol))
            .cloned()
            .unwrap_or_default()
    }

    /// `listed` (the file's upstreams) and, after them, those `discover`
    /// holds now that the file does not list.
    pub(crate) fn add_to(
        &self,
        listed: &[(Uri, u32)],
        discover: Option<&str>,
        protocol: Protocol,
    ) -> Vec<(Uri, u32)> {
        let mut upstreams = listed.to_vec();
        for (url, weight) in discover.map_or_else(Vec::new, |p| self.upstreams(p, protocol)) {
            if !upstreams.iter().any(|(held, _)| *held == url) {
                upstreams.push((url, weight));
            }
        }
        upstreams
    }

    /// Where `url`, an upstream of a service with these `listed` and
    /// `discover`, came from: `file`, or `zookeeper:PATH`.
    pub(crate) fn source(
        &self,
        url: &Uri,
        listed: &[(Uri, u32)],
        discover: Option<&str>,
        protocol: Protocol,
    ) -> String {
        match discover {
            Some(path)
                if !listed.iter().any(|(held, _)| held == url)
                    && self
                        .upstreams(path, protocol)
                        .iter()
                        .any(|(held, _)| held == url) =>
            {
                format!("zookeeper:{path}")
            }
            _ => "file".to_owned(),
        }
    }

    /// Watch each of `paths` in the ZooKeeper at `servers` (and no other
    /// path): `changed` is called after each new set is kept.
    pub(crate) fn follow(
        self: &Arc<Self>,
        servers: Option<&str>,
        paths: &[(&str, Protocol)],
        changed: impl Fn() + Clone + Send + Sync + 'static,
    ) {
        let mut watches = self.watches.lock().unwrap_or_else(PoisonError::into_inner);
        let wanted: Vec<(String, Watched)> = match servers {
            Some(servers) => paths
                .iter()
                .map(|(path, protocol)| (servers.to_owned(), ((*path).to_owned(), *protocol)))
                .collect(),
            None => Vec::new(),
        };
        watches.retain(|key, _| wanted.contains(key));
        for key in wanted {
            if watches.contains_key(&key) {
                continue;
            }
            let (servers, at) = key.clone();
            let (discovered, changed) = (Arc::downgrade(self), changed.clone());
            let task = discovery::watch::follow(servers, at.0.clone(), move |told| {
                if let Some(discovered) = discovered.upgrade()
                    && discovered.told(&at, told)
                {
                    changed();
                }
            });
            watches.insert(key, AbortOnDrop(task));
        }
    }

    /// End every watch (the gateway is stopping: no change is wanted now).
    pub(crate) fn stop(&self) {
        self.watches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Count what the watch on `at` was told, and keep a new set (each
    /// entry parsed as an `upstreams` entry is). Is there a new set?
    fn told(&self, at: &Watched, told: Followed) -> bool {
        let path = at.0.clone();
        let set = match told {
            Followed::Changed(set) => set,
            Followed::EmptyIgnored => {
                self.event(path, "empty_ignored");
                return false;
            }
            Followed::Failed => {
                self.error(path, "zookeeper");
                return false;
            }
        };
        self.event(path.clone(), "changed");
        let upstreams = set
            .iter()
            .filter_map(|entry| match at.1.parse(entry) {
                Ok(upstream) => Some(upstream),
                Err(why) => {
                    tracing::warn!("{path}: skipping {entry:?}, not an upstream: {why}");
                    self.error(path.clone(), "invalid_entry");
                    None
                }
            })
            .collect();
        self.sets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(at.clone(), upstreams);
        true
    }

    fn event(&self, path: String, event: &'static str) {
        self.events
            .get_or_create(&EventLabels { path, event })
            .inc();
    }

    fn error(&self, path: String, error: &'static str) {
        self.errors
            .get_or_create(&ErrorLabels { path, error })
            .inc();
    }
}
