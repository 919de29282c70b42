//! TCP services: step 08's proxy, one listener per `[[tcp_services]]`
//! entry, configured and reloaded with the rest of the file.
//!
//! An HTTP service is a route on the gateway's listener; a TCP service
//! cannot be — bytes that are not HTTP carry no host or path to route by —
//! so each has a listener of its own, as in nginx's `stream {}`. Each
//! connection picks an upstream with the service's balancer (passive
//! health always, a connect check every `health_interval` if set) and is
//! refused at once when its client is outside `allow` or inside `deny`.
//!
//! A reload compares entries by name. A service whose entry did not
//! change is left alone. One that changed but listens where it did keeps
//! its listener: the new settings are swapped in for the connections that
//! come next, while open ones go on with the settings they started with
//! (upstreams that stayed keep their health). One that moved or went away
//! stops accepting, and its open connections get the grace period to
//! finish. New listeners are bound before anything changes, so a reload
//! that cannot bind one changes nothing.
//!
//! Left out on purpose: a service's connection cap carried across a
//! change (the new settings count from zero; the old connections are
//! still counted by the old ones) and its metrics on `/metrics`
//! (`/services` shows its open connections).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::config;
use crate::gateway::{AbortOnDrop, carried_over};
use arc_swap::ArcSwap;
use load_balance::{Balancer, HealthPolicy, Options, Upstream};
use middleware::auth::AddressRules;
use serving::{Binder, Server, ServerHandle, ServerOptions};
use step08_tcp_proxy::{TcpProxy, TcpSettings};

/// Timeouts and limits of every TCP service: step 08's defaults.
fn settings(spec: &config::TcpService, options: &ServerOptions) -> TcpSettings {
    TcpSettings {
        connect_timeout: std::time::Duration::from_secs(5),
        idle_timeout: std::time::Duration::from_secs(300),
        first_byte_timeout: None,
        max_connections: options.max_connections,
        proxy_protocol: None,
        health: HealthPolicy {
            max_fails: 3,
            cooldown: std::time::Duration::from_secs(10),
        },
        addresses: AddressRules {
            allow: spec.allow.clone(),
            deny: spec.deny.clone(),
        },
    }
}

/// The TCP services running now.
pub(crate) struct TcpServices {
    binder: Binder,
    options: ServerOptions,
    running: Mutex<HashMap<String, Running>>,
    /// One reload at a time: each binds outside the lock above.
    applying: tokio::sync::Mutex<()>,
}

struct Running {
    spec: config::TcpService,
    /// What new connections are handled by; open ones hold their own.
    proxy: Arc<ArcSwap<TcpProxy>>,
    server: ServerHandle,
    health: Option<AbortOnDrop>,
}

/// What `/services` says of one TCP service.
pub(crate) struct Described {
    pub(crate) spec: config::TcpService,
    pub(crate) listening: std::net::SocketAddr,
    pub(crate) open_connections: i64,
    pub(crate) upstreams: Arc<Vec<Arc<Upstream>>>,
}

impl TcpServices {
    pub(crate) fn new(binder: Binder, options: ServerOptions) -> Self {
        Self {
            binder,
            options,
            running: Mutex::default(),
            applying: tokio::sync::Mutex::default(),
        }
    }

    /// Run `specs`: start the new, change the changed, stop the gone.
    /// What can fail — a balancer, a listener — comes before any change,
    /// so a reload that fails changes nothing.
    pub(crate) async fn apply(&self, specs: &[config::TcpService]) -> anyhow::Result<()> {
        let _one_at_a_time = self.applying.lock().await;
        // The new settings of every new or changed service, and whether it
        // needs a listener of its own (it is new, or moved).
        let mut changes: HashMap<&str, (Arc<TcpProxy>, bool)> = HashMap::new();
        {
            let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            for spec in specs {
                let previous = running.get(&spec.name);
                if previous.is_some_and(|r| r.spec == *spec) {
                    continue;
                }
                let proxy = self
                    .proxy(spec, previous)
                    .map_err(|e| anyhow::anyhow!("tcp service {}: {e}", spec.name))?;
                let moved = previous.is_none_or(|r| r.spec.listen != spec.listen);
                changes.insert(&spec.name, (proxy, moved));
            }
        }
        let mut listeners = HashMap::new();
        for spec in specs {
            if let Some((_, true)) = changes.get(spec.name.as_str()) {
                let listener = self
                    .binder
                    .bind(spec.listen)
                    .await
                    .map_err(|e| anyhow::anyhow!("tcp service {}: {e}", spec.name))?;
                listeners.insert(spec.name.as_str(), listener);
            }
        }
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let mut stopped = Vec::new();
        let mut next = HashMap::new();
        for spec in specs {
            let kept = running.remove(&spec.name);
            let Some((proxy, _)) = changes.remove(spec.name.as_str()) else {
                next.insert(spec.name.clone(), kept.expect("unchanged, so running"));
                continue;
            };
            let health = spec.health_interval.map(|interval| {
                AbortOnDrop(step08_tcp_proxy::spawn_health_checks(
                    proxy.balancer(),
                    interval,
                ))
            });
            let service = match (kept, listeners.remove(spec.name.as_str())) {
                (Some(mut kept), None) => {
                    // Same listener: the next connections get the new
                    // settings.
                    kept.proxy.store(proxy);
                    kept.health = health;
                    kept.spec = spec.clone();
                    tracing::info!("tcp service {}: changed", spec.name);
                    kept
                }
                (kept, listener) => {
                    let listener = listener.expect("bound above: new or moved");
                    let proxy = Arc::new(ArcSwap::new(proxy));
                    let current = proxy.clone();
                    let server = Server::new(listener, "tcp service")
                        .options(self.options.clone())
                        .spawn_streams("tcp", move |client, peer, _| {
                            let proxy = current.load_full();
                            async move { proxy.handle(client, peer).await }
                        })?;
                    tracing::info!("tcp service {} on tcp://{}", spec.name, server.addr());
                    stopped.extend(kept.map(|k| k.server));
                    Running {
                        spec: spec.clone(),
                        proxy,
                        server,
                        health,
                    }
                }
            };
            next.insert(spec.name.clone(), service);
        }
        stopped.extend(running.drain().map(|(name, gone)| {
            tracing::info!("tcp service {name}: removed; its open connections finish");
            gone.server
        }));
        *running = next;
        drop(running);
        for server in stopped {
            tokio::spawn(server.shutdown());
        }
        Ok(())
    }

    /// A proxy for `spec`, keeping from `previous` every upstream that
    /// stayed (its health with it) and its counts.
    fn proxy(
        &self,
        spec: &config::TcpService,
        previous: Option<&Running>,
    ) -> Result<Arc<TcpProxy>, load_balance::Error> {
        let kept = previous
            .map(|p| p.proxy.load().balancer().upstreams())
            .unwrap_or_default();
        let upstreams = carried_over(&spec.upstreams, &kept);
        let balancer = Arc::new(Balancer::new(spec.balance, upstreams, Options::default())?);
        let metrics = previous.map_or_else(Arc::default, |p| p.proxy.load().metrics().clone());
        let settings = settings(spec, &self.options);
        Ok(Arc::new(TcpProxy::new(balancer, &settings, metrics)))
    }

    /// Every TCP service, for `/services`, by name.
    pub(crate) fn describe(&self) -> Vec<Described> {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let mut described: Vec<Described> = running
            .values()
            .map(|r| Described {
                spec: r.spec.clone(),
                listening: r.server.addr(),
                open_connections: r.proxy.load().metrics().open_connections(),
                upstreams: r.proxy.load().balancer().upstreams(),
            })
            .collect();
        described.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        described
    }

    /// Stop every listener; open connections get the grace period.
    pub(crate) async fn stop_all(&self) {
        let servers: Vec<ServerHandle> = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(_, r)| r.server)
            .collect();
        for server in servers {
            server.shutdown().await;
        }
    }
}
