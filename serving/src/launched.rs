//! What a launch started, and stopping it: on a signal, every server stops
//! accepting and requests in flight get [`DEFAULT_GRACE`](crate::DEFAULT_GRACE)
//! to finish. And the runtime a binary runs them on.

use std::future::Future;
use std::io;
use std::pin::Pin;

use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::{DEFAULT_GRACE, ServerHandle};

/// The runtime for `threads` workers (default: as many as cores this
/// process may run on — taskset and cgroup limits count). One worker means
/// one core, and then a current-thread runtime skips work-stealing that
/// only pays off with several (bench/README.md measured it: about 8 % of a
/// proxy's CPU per request on one core).
pub fn runtime(threads: Option<usize>) -> io::Result<tokio::runtime::Runtime> {
    let threads =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

/// Resolves on Ctrl-C or SIGTERM, whichever comes first.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Closes something the servers do not track; see [`Launched::on_shutdown`].
type Closer = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Everything one launch (one `cargo run -p …`) started: servers,
/// background tasks (health checks) that stop with them, and closers for
/// connections that outlive HTTP (upgraded websockets).
#[derive(Default)]
pub struct Launched {
    pub servers: Vec<ServerHandle>,
    tasks: Vec<JoinHandle<()>>,
    closers: Vec<Closer>,
    /// Run, and waited for, before the listeners close.
    leavers: Vec<Closer>,
}

impl std::fmt::Debug for Launched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launched")
            .field("servers", &self.servers)
            .field("tasks", &self.tasks.len())
            .field("closers", &self.closers.len())
            .field("leavers", &self.leavers.len())
            .finish()
    }
}

impl Launched {
    pub fn push(&mut self, server: ServerHandle) {
        self.servers.push(server);
    }

    /// A background task that is aborted when the launch shuts down or drops.
    pub fn push_task(&mut self, task: JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// At shutdown, call `close` and wait (at most [`DEFAULT_GRACE`]) for
    /// what it returns, while the servers finish their requests. For
    /// connections the servers no longer see: once hyper hands an upgraded
    /// connection over, it is not an HTTP exchange any more and graceful
    /// shutdown would not wait for it — or tell it anything.
    pub fn on_shutdown<F>(&mut self, close: impl FnOnce() -> F + Send + 'static)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.closers.push(Box::new(move || Box::pin(close())));
    }

    /// At shutdown, before the listeners close, call `leave` and wait (at
    /// most [`DEFAULT_GRACE`]) for what it returns: a backend deletes its
    /// registration while it still serves, so no proxy sends it a request
    /// it would refuse.
    pub fn before_shutdown<F>(&mut self, leave: impl FnOnce() -> F + Send + 'static)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.leavers.push(Box::new(move || Box::pin(leave())));
    }

    /// Take over everything `other` started.
    pub fn extend(&mut self, mut other: Launched) {
        self.servers.append(&mut other.servers);
        self.tasks.append(&mut other.tasks);
        self.closers.append(&mut other.closers);
        self.leavers.append(&mut other.leavers);
    }

    /// The first server whose name is `name`.
    pub fn get(&self, name: &str) -> Option<&ServerHandle> {
        self.servers.iter().find(|s| s.name == name)
    }

    /// Wait for Ctrl-C / SIGTERM, then shut every server down gracefully.
    pub async fn serve_until_signal(self) {
        shutdown_signal().await;
        info!("shutting down: no new connections, finishing requests in flight");
        self.shutdown().await;
    }

    pub async fn shutdown(mut self) {
        for leave in std::mem::take(&mut self.leavers) {
            if tokio::time::timeout(DEFAULT_GRACE, leave()).await.is_err() {
                warn!("leaving took longer than {DEFAULT_GRACE:?}; not waiting for it");
            }
        }
        for task in &self.tasks {
            task.abort();
        }
        let closers = std::mem::take(&mut self.closers);
        let closing = async move {
            for close in closers {
                if tokio::time::timeout(DEFAULT_GRACE, close()).await.is_err() {
                    warn!("a closer took longer than {DEFAULT_GRACE:?}; not waiting for it");
                }
            }
        };
        let servers = std::mem::take(&mut self.servers);
        let stopping = async move {
            for server in servers {
                server.shutdown().await;
            }
        };
        tokio::join!(closing, stopping);
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
