//! A backend writes itself into the registry, and out of it.
//!
//! [`register`] keeps one ephemeral sequential node under a path, holding
//! what the backend says of itself (its URL), for as long as it runs: it
//! connects (trying again every [`RETRY_EVERY`] while ZooKeeper is away —
//! the backend serves meanwhile), creates the node, and watches its
//! session. A session that expires (the backend was cut off longer than
//! [`SESSION_TIMEOUT`]) took the node with it: the backend connects and
//! registers again. [`Registration::leave`] deletes the node at once,
//! before a backend that is stopping stops serving, so proxies stop
//! sending to it without waiting for a timeout.
//!
//! [`RETRY_EVERY`]: crate::RETRY_EVERY
//! [`SESSION_TIMEOUT`]: crate::SESSION_TIMEOUT

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use zookeeper_client as zk;

use crate::{RETRY_EVERY, connect};

/// A backend's place in the registry, kept until [`leave`](Self::leave).
pub struct Registration {
    leaving: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// Keep a node under `parent` holding `data`, in the ZooKeeper at
/// `servers`, from now until the registration leaves.
pub fn register(servers: String, parent: String, data: String) -> Registration {
    let (leaving, mut told) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut away = false;
        loop {
            let registered = async {
                let client = connect(&servers).await?;
                let open = zk::Acls::anyone_all();
                client
                    .mkdir(&parent, &zk::CreateMode::Persistent.with_acls(open))
                    .await?;
                let prefix = format!("{parent}/upstream-");
                let sequential = zk::CreateMode::EphemeralSequential.with_acls(open);
                let (_, sequence) = client.create(&prefix, data.as_bytes(), &sequential).await?;
                Ok::<_, zk::Error>((client, format!("{prefix}{sequence}")))
            };
            let (client, node) = tokio::select! {
                registered = registered => match registered {
                    Ok(registered) => registered,
                    Err(e) => {
                        if !away {
                            tracing::warn!("cannot register in ZooKeeper {servers} ({e}); serving, and trying every {RETRY_EVERY:?}");
                            away = true;
                        }
                        tokio::select! {
                            () = tokio::time::sleep(RETRY_EVERY) => continue,
                            _ = &mut told => return,
                        }
                    }
                },
                _ = &mut told => return,
            };
            away = false;
            tracing::info!("registered in ZooKeeper {servers} as {node}");
            let mut session = client.state_watcher();
            loop {
                tokio::select! {
                    state = session.changed() => {
                        if state.is_terminated() {
                            tracing::warn!("ZooKeeper session {state:?}: {node} is gone; registering again");
                            break;
                        }
                    }
                    _ = &mut told => {
                        match client.delete(&node, None).await {
                            Ok(()) => tracing::info!("left ZooKeeper: {node} deleted"),
                            Err(e) => tracing::warn!("could not delete {node} ({e}); it goes with the session"),
                        }
                        return;
                    }
                }
            }
        }
    });
    Registration {
        leaving: Some(leaving),
        task,
    }
}

impl Registration {
    /// Delete the node now (if registered), and stop.
    pub async fn leave(mut self) {
        if let Some(leaving) = self.leaving.take() {
            let _ = leaving.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.task.abort();
    }
}
