//! A proxy follows the registry: the children of a path, and what each
//! holds, read again each time a watch says they changed.
//!
//! [`follow`] keeps a watch on a path's children and tells a callback
//! what happens ([`Followed`]): every new set (each child's data, as
//! text), a set not taken, a failure. A watch fires once, so
//! each read sets the next: read the children and watch them, read each
//! child's data, report, wait for the watch, again. A path that does not
//! exist yet is watched for its creation. The session is ZooKeeper's
//! client's; when it expires or ZooKeeper cannot be reached, the task
//! connects again every [`RETRY_EVERY`] and reads the whole set afresh
//! (what changed meanwhile was never told), logging the outage once and
//! its end once. Meanwhile the last set stands — the callback is simply
//! not called — and a set read as empty is not reported either while a
//! non-empty one was: the last non-empty set keeps serving (logged).
//!
//! [`RETRY_EVERY`]: crate::RETRY_EVERY

use tokio::task::JoinHandle;
use zookeeper_client as zk;

use crate::{RETRY_EVERY, connect};

/// What following a path tells its callback.
#[derive(Debug, Clone, PartialEq)]
pub enum Followed {
    /// The set now, different from the last one reported.
    Changed(Vec<String>),
    /// ZooKeeper holds no child, after a set that had some: not taken.
    EmptyIgnored,
    /// ZooKeeper could not be reached, or the session ended: the last
    /// set stands. Said at each failed attempt (logged only at the first).
    Failed,
}

/// Follow the children of `path` in the ZooKeeper at `servers`, telling
/// `told` each new set and each failure.
pub fn follow<F>(servers: String, path: String, told: F) -> JoinHandle<()>
where
    F: Fn(Followed) + Send + Sync + 'static,
{
    tokio::spawn(async move {
        let mut reported: Option<Vec<String>> = None;
        let mut away = false;
        loop {
            let failure = match connect(&servers).await {
                Ok(client) => {
                    if away {
                        tracing::info!("ZooKeeper {servers} answers again: following {path}");
                        away = false;
                    }
                    watch_until_lost(&client, &path, |set| {
                        report(&path, set, &mut reported, &told)
                    })
                    .await
                }
                Err(e) => e,
            };
            told(Followed::Failed);
            if !away {
                tracing::warn!(
                    "ZooKeeper {servers}: {failure}; {path}'s last known upstreams keep serving, trying every {RETRY_EVERY:?}"
                );
                away = true;
            }
            tokio::time::sleep(RETRY_EVERY).await;
        }
    })
}

/// What a follower makes of a set it read.
#[derive(Debug, Clone, PartialEq)]
pub enum Judged {
    /// A new set to take: sorted, each entry once.
    New(Vec<String>),
    /// The set taken last, again.
    Same,
    /// Empty, after a set that was not: not taken.
    EmptyAfterSome,
}

/// Judge `read` (children's data, in ZooKeeper's order) against `last`,
/// the set taken last. Order means nothing, and an entry may be there
/// twice: a backend that registered again before ZooKeeper expired its
/// old session's node is listed by both until then.
pub fn judge(last: Option<&[String]>, mut read: Vec<String>) -> Judged {
    read.sort();
    read.dedup();
    match last {
        Some(last) if *last == *read => Judged::Same,
        Some(last) if read.is_empty() && !last.is_empty() => Judged::EmptyAfterSome,
        _ => Judged::New(read),
    }
}

/// Report `set` unless it is the one reported last, or empty after one
/// that was not.
fn report(
    path: &str,
    set: Vec<String>,
    reported: &mut Option<Vec<String>>,
    told: &impl Fn(Followed),
) {
    match judge(reported.as_deref(), set) {
        Judged::Same => {}
        Judged::EmptyAfterSome => {
            tracing::warn!("{path} has no upstreams in ZooKeeper; the last set keeps serving");
            told(Followed::EmptyIgnored);
        }
        Judged::New(set) => {
            tracing::info!("{path}: {} upstream(s) in ZooKeeper", set.len());
            *reported = Some(set.clone());
            told(Followed::Changed(set));
        }
    }
}

/// Read, report and watch again, until the session is lost.
async fn watch_until_lost(
    client: &zk::Client,
    path: &str,
    mut report: impl FnMut(Vec<String>),
) -> zk::Error {
    loop {
        let fired = match client.get_and_watch_children(path).await {
            Ok((children, _, watcher)) => {
                match read_all(client, path, &children).await {
                    Ok(set) => report(set),
                    Err(e) => return e,
                }
                watcher.changed().await
            }
            Err(zk::Error::NoNode) => match client.check_and_watch_stat(path).await {
                Ok((Some(_), _)) => continue, // created meanwhile
                Ok((None, watcher)) => {
                    report(Vec::new());
                    watcher.changed().await
                }
                Err(e) => return e,
            },
            Err(e) => return e,
        };
        if fired.event_type == zk::EventType::Session && fired.session_state.is_terminated() {
            return zk::Error::SessionExpired;
        }
    }
}

/// Each child's data, as text (a child gone meanwhile is skipped).
async fn read_all(
    client: &zk::Client,
    path: &str,
    children: &[String],
) -> Result<Vec<String>, zk::Error> {
    let mut set = Vec::with_capacity(children.len());
    for child in children {
        match client.get_data(&format!("{path}/{child}")).await {
            Ok((data, _)) => set.push(String::from_utf8_lossy(&data).into_owned()),
            Err(zk::Error::NoNode) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(set)
}
