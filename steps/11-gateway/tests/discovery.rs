//! Service discovery through the real binaries: backends started as
//! `real_server --register zk://…/PATH` processes come and go in a real
//! ZooKeeper, and a `step11-gateway` whose service says `discover = PATH`
//! follows them — while a client's GETs go on and none of them fails.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use real_server::Log;
use support::client;
use support::running::Gateway;
use test_programs::zookeeper::ZooKeeper;

const PATH: &str = "/workbench/services/api";

/// How long ZooKeeper keeps a dead backend's node (discovery's session
/// timeout): a backend that leaves sooner deleted its node itself.
const SESSION_TIMEOUT: Duration = discovery::SESSION_TIMEOUT;

/// Room for a loaded machine, for what should take a second or a few.
const PATIENCE: Duration = Duration::from_secs(30);

/// `real_server`'s binary, built beside these tests (this package's
/// example of that name).
fn real_server_binary() -> PathBuf {
    // target/debug/deps/discovery-… → target/debug/examples/real_server
    let binary = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples/real_server");
    assert!(
        binary.exists(),
        "{} is not built: run all of this package's tests (cargo test -p step11-gateway), or cargo build -p step11-gateway --examples first",
        binary.display()
    );
    binary
}

/// A `real_server --register zk://SERVERS/PATH` process, killed when dropped.
struct Backend {
    child: Child,
    /// `127.0.0.1:PORT`: what its answers' `x-served-by` says.
    address: String,
    log: Log,
}

impl Backend {
    fn start(zookeeper: &str) -> Self {
        let mut command = Command::new(real_server_binary());
        command.args([
            "--listen",
            "127.0.0.1:0",
            "--register",
            &format!("zk://{zookeeper}{PATH}"),
        ]);
        let (child, urls, log) =
            real_server::start_binary_logged(command, &[real_server::NAME]).unwrap();
        let address = urls[0].trim_start_matches("http://").to_owned();
        Self {
            child,
            address,
            log,
        }
    }

    /// Wait until its log has a line containing `text`.
    async fn logs(&self, text: &str) {
        let log = self.log.clone();
        eventually(&format!("{} logs {text:?}", self.address), || {
            log.lock().unwrap().iter().any(|line| line.contains(text))
        })
        .await;
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `done` until it holds, failing after [`PATIENCE`].
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A gateway on `engine` whose service `api` discovers [`PATH`] in
/// `zookeeper`, beside the upstreams in `listed` (a TOML array).
fn gateway(engine: &'static str, zookeeper: &str, listed: &str) -> Gateway {
    Gateway::start_on(engine, &services(zookeeper, listed, ""), &[])
}

fn services(zookeeper: &str, listed: &str, more: &str) -> String {
    format!(
        "[zookeeper]\nservers = \"{zookeeper}\"\n\
         [[services]]\nname = \"api\"\ndiscover = \"{PATH}\"\nupstreams = {listed}\n{more}"
    )
}

/// The upstreams of the service `api`, from `/services`: (url, source).
async fn upstreams(gateway: &Gateway) -> Vec<(String, String)> {
    let services = gateway.admin_json("/services").await;
    let api = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "api")
        .unwrap()
        .clone();
    api["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let url = u["url"].as_str().unwrap().trim_end_matches('/').to_owned();
            (url, u["source"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// How often the admin API is asked: well inside its 20 requests a second.
const ASK_ADMIN_EVERY: Duration = Duration::from_millis(100);

/// Wait until `/services` lists exactly `wanted` (addresses) for `api`.
async fn until_upstreams(gateway: &Gateway, wanted: &[&str]) {
    let mut wanted: Vec<String> = wanted.iter().map(|a| format!("http://{a}")).collect();
    wanted.sort();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut now: Vec<String> = upstreams(gateway).await.into_iter().map(|u| u.0).collect();
        now.sort();
        if now == wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the upstreams never became {wanted:?}: {now:?}"
        );
        tokio::time::sleep(ASK_ADMIN_EVERY).await;
    }
}

/// Who served a GET through the gateway (its `x-served-by`), or why it
/// failed.
async fn served_by(gateway: &Gateway) -> Result<String, String> {
    let answer = client()
        .get(format!("{}/echo", gateway.url))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if answer.status() != 200 {
        return Err(format!("status {}", answer.status()));
    }
    Ok(answer.headers()["x-served-by"].to_str().unwrap().to_owned())
}

/// GETs sent one after another through the gateway until stopped: who
/// served each, or why it failed.
struct Traffic {
    answers: Arc<Mutex<Vec<Result<String, String>>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    fn start(gateway: &Gateway) -> Self {
        let url = gateway.url.clone();
        let (answers, stop) = (
            Arc::<Mutex<Vec<_>>>::default(),
            Arc::<AtomicBool>::default(),
        );
        let (kept, stopping) = (answers.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let client = client();
            while !stopping.load(Ordering::Relaxed) {
                let answer = match client.get(format!("{url}/echo")).send().await {
                    Ok(answer) if answer.status() == 200 => {
                        Ok(answer.headers()["x-served-by"].to_str().unwrap().to_owned())
                    }
                    Ok(answer) => Err(format!("status {}", answer.status())),
                    Err(e) => Err(e.to_string()),
                };
                kept.lock().unwrap().push(answer);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        Self {
            answers,
            stop,
            task,
        }
    }

    /// Has `address` served any of them yet?
    fn reached(&self, address: &str) -> bool {
        let answers = self.answers.lock().unwrap();
        answers.iter().any(|a| a.as_deref() == Ok(address))
    }

    /// Stop, and say that every GET succeeded: how many there were.
    async fn none_failed(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        let answers = self.answers.lock().unwrap();
        let failed: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
        assert!(
            failed.is_empty(),
            "{} of {} GETs failed: {failed:?}",
            failed.len(),
            answers.len()
        );
        answers.len()
    }
}

async fn a_backend_that_registers_gets_traffic_within_two_seconds(engine: &'static str) {
    let zookeeper = ZooKeeper::start();
    let gateway = gateway(engine, &zookeeper.servers(), "[]");
    // Nothing registered yet: the service has no upstream to send to.
    assert_eq!(upstreams(&gateway).await, []);
    let backend = Backend::start(&zookeeper.servers());
    backend.logs("registered in ZooKeeper").await;
    let registered = Instant::now();
    loop {
        if served_by(&gateway).await.as_deref() == Ok(backend.address.as_str()) {
            break;
        }
        assert!(
            registered.elapsed() < Duration::from_secs(2),
            "no traffic 2 s after registering"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        upstreams(&gateway).await,
        [(
            format!("http://{}", backend.address),
            format!("zookeeper:{PATH}")
        )]
    );
}

mod hyper_engine {
    #[tokio::test]
    #[cfg_attr(
        not(has_zookeeper),
        ignore = "ZooKeeper is not installed (apt-get install zookeeper)"
    )]
    async fn a_backend_that_registers_gets_traffic_within_two_seconds() {
        super::a_backend_that_registers_gets_traffic_within_two_seconds("hyper").await
    }
}

mod fast_engine {
    #[tokio::test]
    #[cfg_attr(
        not(has_zookeeper),
        ignore = "ZooKeeper is not installed (apt-get install zookeeper)"
    )]
    async fn a_backend_that_registers_gets_traffic_within_two_seconds() {
        super::a_backend_that_registers_gets_traffic_within_two_seconds("fast").await
    }
}

#[tokio::test]
#[cfg_attr(
    not(has_zookeeper),
    ignore = "ZooKeeper is not installed (apt-get install zookeeper)"
)]
async fn a_killed_backend_leaves_when_its_session_expires_and_no_get_fails() {
    let zookeeper = ZooKeeper::start();
    let gateway = gateway("hyper", &zookeeper.servers(), "[]");
    let (a, mut b) = (
        Backend::start(&zookeeper.servers()),
        Backend::start(&zookeeper.servers()),
    );
    until_upstreams(&gateway, &[&a.address, &b.address]).await;
    let traffic = Traffic::start(&gateway);
    eventually("B serves", || traffic.reached(&b.address)).await;
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    let killed = Instant::now();
    until_upstreams(&gateway, &[&a.address]).await;
    // It went with its session, not before: nobody deleted its node.
    assert!(
        killed.elapsed() >= SESSION_TIMEOUT / 2,
        "{:?}",
        killed.elapsed()
    );
    let sent = traffic.none_failed().await;
    assert!(sent > 10, "{sent}");
}

#[tokio::test]
#[cfg_attr(
    not(has_zookeeper),
    ignore = "ZooKeeper is not installed (apt-get install zookeeper)"
)]
async fn sigterm_leaves_the_set_at_once() {
    let zookeeper = ZooKeeper::start();
    let gateway = gateway("hyper", &zookeeper.servers(), "[]");
    let (a, b) = (
        Backend::start(&zookeeper.servers()),
        Backend::start(&zookeeper.servers()),
    );
    until_upstreams(&gateway, &[&a.address, &b.address]).await;
    let traffic = Traffic::start(&gateway);
    eventually("B serves", || traffic.reached(&b.address)).await;
    let signalled = Instant::now();
    b.signal("-TERM");
    b.logs("left ZooKeeper").await;
    until_upstreams(&gateway, &[&a.address]).await;
    // Sooner than ZooKeeper would have noticed its death.
    assert!(
        signalled.elapsed() < SESSION_TIMEOUT,
        "{:?}",
        signalled.elapsed()
    );
    traffic.none_failed().await;
}

#[tokio::test]
#[cfg_attr(
    not(has_zookeeper),
    ignore = "ZooKeeper is not installed (apt-get install zookeeper)"
)]
async fn zookeeper_restarted_under_load_fails_no_request_and_brings_the_newcomer() {
    let zookeeper = ZooKeeper::start();
    let (servers, port) = (zookeeper.servers(), zookeeper.port);
    let gateway = gateway("hyper", &servers, "[]");
    let a = Backend::start(&servers);
    until_upstreams(&gateway, &[&a.address]).await;
    let traffic = Traffic::start(&gateway);
    eventually("A serves", || traffic.reached(&a.address)).await;
    zookeeper.kill();
    // A newcomer while ZooKeeper is away: it serves and keeps trying.
    let newcomer = Backend::start(&servers);
    newcomer.logs("cannot register in ZooKeeper").await;
    // ZooKeeper comes back empty (a new data directory): every backend
    // registers again, and the gateway reads the set afresh.
    let _zookeeper = ZooKeeper::start_on(port);
    eventually("the newcomer serves", || traffic.reached(&newcomer.address)).await;
    until_upstreams(&gateway, &[&a.address, &newcomer.address]).await;
    traffic.none_failed().await;
    assert_eq!(gateway.logged("keep serving, trying every"), 1);
}

#[tokio::test]
#[cfg_attr(
    not(has_zookeeper),
    ignore = "ZooKeeper is not installed (apt-get install zookeeper)"
)]
async fn a_gateway_started_without_zookeeper_serves_its_file_and_keeps_trying() {
    // A port where nothing listens yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let servers = format!("127.0.0.1:{port}");
    let listed =
        real_server::spawn(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();
    let gateway = gateway("hyper", &servers, &format!("[\"{}\"]", listed.url()));
    assert_eq!(served_by(&gateway).await, Ok(listed.addr().to_string()));
    // Its first try has failed: what follows needs it to try again.
    eventually("the gateway says ZooKeeper is away", || {
        gateway.logged("keep serving, trying every") == 1
    })
    .await;
    let _zookeeper = ZooKeeper::start_on(port);
    let backend = Backend::start(&servers);
    until_upstreams(&gateway, &[&listed.addr().to_string(), &backend.address]).await;
    let sources: Vec<String> = upstreams(&gateway).await.into_iter().map(|u| u.1).collect();
    assert_eq!(sources, ["file".to_owned(), format!("zookeeper:{PATH}")]);
}

#[tokio::test]
#[cfg_attr(
    not(has_zookeeper),
    ignore = "ZooKeeper is not installed (apt-get install zookeeper)"
)]
async fn a_reload_keeps_the_watch() {
    let zookeeper = ZooKeeper::start();
    let gateway = gateway("hyper", &zookeeper.servers(), "[]");
    let a = Backend::start(&zookeeper.servers());
    until_upstreams(&gateway, &[&a.address]).await;
    gateway.rewrite(&services(&zookeeper.servers(), "[]", "timeout = \"20s\"\n"));
    assert_eq!(gateway.post("/reload").await.status(), 200);
    // The reload rebuilt the service with what ZooKeeper holds...
    until_upstreams(&gateway, &[&a.address]).await;
    // ...and goes on following it.
    let b = Backend::start(&zookeeper.servers());
    until_upstreams(&gateway, &[&a.address, &b.address]).await;
}

/// The value of the `/metrics` series `series` (name and labels), if it is
/// there.
async fn metric(gateway: &Gateway, series: &str) -> Option<u64> {
    support::running::series(&gateway.metrics().await, series)
}

#[tokio::test]
#[cfg_attr(
    not(has_zookeeper),
    ignore = "ZooKeeper is not installed (apt-get install zookeeper)"
)]
async fn metrics_count_changes_and_entries_that_are_not_upstreams() {
    let zookeeper = ZooKeeper::start();
    let gateway = gateway("hyper", &zookeeper.servers(), "[]");
    let a = Backend::start(&zookeeper.servers());
    until_upstreams(&gateway, &[&a.address]).await;
    let changed = format!("proxy_discovery_events_total{{path=\"{PATH}\",event=\"changed\"}}");
    let invalid =
        format!("proxy_discovery_errors_total{{path=\"{PATH}\",error=\"invalid_entry\"}}");
    let changes = metric(&gateway, &changed).await.unwrap();
    assert_eq!(metric(&gateway, &invalid).await, None);
    let junk = discovery::registration::register(
        zookeeper.servers(),
        PATH.to_owned(),
        "not an upstream".to_owned(),
    );
    let deadline = Instant::now() + PATIENCE;
    while metric(&gateway, &invalid).await != Some(1) {
        assert!(Instant::now() < deadline, "the junk was never counted");
        tokio::time::sleep(ASK_ADMIN_EVERY).await;
    }
    // One more set told: A and the junk (the junk skipped, A kept).
    assert_eq!(metric(&gateway, &changed).await, Some(changes + 1));
    assert_eq!(gateway.logged("skipping \"not an upstream\""), 1);
    until_upstreams(&gateway, &[&a.address]).await;
    junk.leave().await;
}
