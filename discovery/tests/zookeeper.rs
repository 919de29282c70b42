//! Registration and watching against a real ZooKeeper.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use discovery::registration::register;
use discovery::watch::{Followed, follow};
use test_programs::zookeeper::ZooKeeper;
use tokio::sync::watch;

/// Every set reported, in order.
type Reports = Arc<Mutex<Vec<Vec<String>>>>;

/// Follow `path`: the task, a receiver of the latest set, and every set.
fn following(
    zookeeper: &ZooKeeper,
    path: &str,
) -> (
    tokio::task::JoinHandle<()>,
    watch::Receiver<Vec<String>>,
    Reports,
) {
    let (sender, receiver) = watch::channel(Vec::new());
    let reports = Reports::default();
    let all = reports.clone();
    let task = follow(zookeeper.servers(), path.to_owned(), move |told| {
        if let Followed::Changed(set) = told {
            all.lock().unwrap().push(set.clone());
            let _ = sender.send(set);
        }
    });
    (task, receiver, reports)
}

async fn until(receiver: &mut watch::Receiver<Vec<String>>, wanted: &[&str]) {
    let wanted: Vec<String> = wanted.iter().map(|s| s.to_string()).collect();
    let reached = tokio::time::timeout(
        Duration::from_secs(10),
        receiver.wait_for(|set| *set == wanted),
    )
    .await
    .is_ok();
    assert!(
        reached,
        "the set never became {wanted:?}: {:?}",
        *receiver.borrow()
    );
}

#[tokio::test]
#[cfg_attr(
    not(has_zookeeper),
    ignore = "ZooKeeper is not installed (apt-get install zookeeper)"
)]
async fn a_follower_sees_backends_register_and_leave() {
    let zookeeper = ZooKeeper::start();
    let (_task, mut sets, reports) = following(&zookeeper, "/workbench/services/api");
    let a = register(
        zookeeper.servers(),
        "/workbench/services/api".into(),
        "http://a:1".into(),
    );
    until(&mut sets, &["http://a:1"]).await;
    let b = register(
        zookeeper.servers(),
        "/workbench/services/api".into(),
        "http://b:2".into(),
    );
    until(&mut sets, &["http://a:1", "http://b:2"]).await;
    b.leave().await;
    until(&mut sets, &["http://a:1"]).await;
    // The last one leaving does not empty the set: it keeps serving until
    // another comes.
    a.leave().await;
    let _c = register(
        zookeeper.servers(),
        "/workbench/services/api".into(),
        "http://c:3".into(),
    );
    until(&mut sets, &["http://c:3"]).await;
    // (Before anything registered, the set was empty, and said so.)
    let reports = reports.lock().unwrap();
    let since_first = reports.iter().skip_while(|set| set.is_empty());
    assert!(
        since_first.clone().all(|set| !set.is_empty()),
        "{reports:?}"
    );
}

#[tokio::test]
#[cfg_attr(
    not(has_zookeeper),
    ignore = "ZooKeeper is not installed (apt-get install zookeeper)"
)]
async fn a_registration_made_while_zookeeper_is_away_lands_when_it_is_back() {
    let zookeeper = ZooKeeper::start();
    let port = zookeeper.port;
    zookeeper.kill();
    let servers = format!("127.0.0.1:{port}");
    let _a = register(
        servers,
        "/workbench/services/late".into(),
        "http://a:1".into(),
    );
    let zookeeper = ZooKeeper::start_on(port);
    let (_task, mut sets, _) = following(&zookeeper, "/workbench/services/late");
    until(&mut sets, &["http://a:1"]).await;
}
