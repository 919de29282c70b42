//! A real `redis-server` for tests: Debian's package, on a free port.
//!
//! Tests of what talks to Redis (step 08's TCP proxy, the gateway's shared
//! limits) use the server users run, not a fake. Without redis-server
//! installed such a test is *ignored*: its crate's build script asks
//! `test_programs` and sets `cfg(has_redis_server)`, and the test carries
//! `#[cfg_attr(not(has_redis_server), ignore = "…")]` — unless
//! `PROXY_WORKBENCH_REQUIRE_REDIS` is set (`.ci/run` sets it and installs
//! the package): then it runs, and a missing server fails it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server on a free port, killed when dropped.
pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    /// A new server on a free port.
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("a bound address")
            .port();
        Self::start_on(port).await
    }

    /// A new server on `port` (a test restarts one where it was).
    pub async fn start_on(port: u16) -> Self {
        let spawned = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn();
        let child =
            spawned.unwrap_or_else(|e| panic!("redis-server: {e} (apt-get install redis-server)"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "redis-server never listened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { child, port }
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash would; the port is free again when this returns.
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
