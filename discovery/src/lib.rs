//! `discovery`: upstreams that come and go, through ZooKeeper.
//!
//! A file names the upstreams it knows; a fleet whose backends start and
//! die on their own needs a *registry*: each backend writes itself into
//! it, and a proxy follows what is there. ZooKeeper is the course's
//! registry, and two of its features do the work:
//!
//! - An **ephemeral node** lives as long as the session of the client that
//!   made it. A backend registers by creating one under a service's path
//!   (sequential, so two backends never collide on a name), holding its
//!   own URL; when the backend dies, its session expires — it stops
//!   sending heartbeats, and after the session timeout ZooKeeper deletes
//!   the node. Nobody has to notice the death ([`registration`]).
//! - A **watch** is a one-shot notification: "tell me when the children of
//!   this node change". A proxy reads the children and sets a watch in one
//!   call, is told when the set changes, and reads it again, setting the
//!   next watch ([`watch`]). This is the observer pattern with the
//!   registry as the subject: the proxy does not poll, it is told.
//!
//! What a partition does: a backend that cannot reach ZooKeeper keeps
//! serving and keeps trying; if it is away longer than the session
//! timeout, its node is gone, and it registers again when it is back. A
//! proxy that cannot reach ZooKeeper keeps the last set it knew (a proxy
//! keeps its last good configuration), and so does one told the set is
//! empty: an empty registry is far likelier a registry problem than a
//! fleet that died at once.
//!
//! Left out on purpose: ZooKeeper's ACLs and authentication (every node is
//! open, as in the course), TLS to ZooKeeper, and Curator's recipes.

pub mod registration;
pub mod watch;

use std::time::Duration;

use zookeeper_client as zk;

/// How long a session outlives its client's silence: a backend that dies
/// leaves the set this long after its last heartbeat.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(4);

/// How often a connection to an unreachable ZooKeeper is tried again.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);

/// A session with ZooKeeper at `servers` (`host:port[,host:port…]`).
pub(crate) async fn connect(servers: &str) -> Result<zk::Client, zk::Error> {
    zk::Client::connector()
        .session_timeout(SESSION_TIMEOUT)
        .connection_timeout(RETRY_EVERY)
        .connect(servers)
        .await
}
