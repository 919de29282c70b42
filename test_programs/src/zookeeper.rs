//! A real ZooKeeper for tests: Debian's package, one standalone server on
//! a free port, with a data directory of its own.
//!
//! A test that needs it is ignored where the package is missing (its
//! crate's build script calls [`zookeeper`](crate::zookeeper), which sets
//! `cfg(has_zookeeper)`), unless `PROXY_WORKBENCH_REQUIRE_ZOOKEEPER` is
//! set, as `.ci/run` sets it. Starting waits (blocking) until the server
//! listens.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's `zookeeper` package puts the server (or `ZOOKEEPER_JAR`).
fn jar() -> PathBuf {
    std::env::var_os("ZOOKEEPER_JAR").map_or_else(|| crate::ZOOKEEPER_JAR.into(), PathBuf::from)
}

/// A standalone ZooKeeper on a free port, killed when dropped.
pub struct ZooKeeper {
    child: Child,
    pub port: u16,
    data: PathBuf,
}

impl ZooKeeper {
    /// A new server on a free port.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("a bound address")
            .port();
        Self::start_on(port)
    }

    /// A server on `port` (a test restarts one where it was), with an empty
    /// data directory.
    pub fn start_on(port: u16) -> Self {
        let data = std::env::temp_dir().join(format!("zookeeper-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).expect("a data directory");
        let spawned = Command::new("java")
            .arg("-cp")
            .arg(jar())
            .arg("-Dzookeeper.admin.enableServer=false")
            .arg("-Xmx128m")
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(port.to_string())
            .arg(&data)
            // The tick: sessions may last from 2 to 20 ticks.
            .arg("200")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = spawned.unwrap_or_else(|e| panic!("java: {e} (apt-get install zookeeper)"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "ZooKeeper never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port, data }
    }

    /// `127.0.0.1:PORT`, as clients name their servers.
    pub fn servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash would; the port is free again when this returns.
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        self.stop();
    }
}
