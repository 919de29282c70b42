//! Where every listener of a launch comes from.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;

/// Creates every listener of a launch, optionally remapping ports.
#[derive(Clone, Debug, Default)]
pub struct Binder {
    ephemeral: bool,
    bound: Arc<Mutex<Vec<(SocketAddr, SocketAddr)>>>,
}

impl Binder {
    /// Bind exactly the address asked for (what binaries do).
    pub fn exact() -> Self {
        Self::default()
    }

    /// Bind port 0 on the requested IP and remember requested → actual
    /// (what tests do, so that no test depends on a free fixed port).
    pub fn ephemeral() -> Self {
        Self {
            ephemeral: true,
            ..Self::default()
        }
    }

    /// Bind a listener for `requested`.
    pub async fn bind(&self, requested: SocketAddr) -> io::Result<TcpListener> {
        let target = if self.ephemeral {
            SocketAddr::new(requested.ip(), 0)
        } else {
            requested
        };
        let listener = TcpListener::bind(target)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {requested}: {e}")))?;
        let actual = listener.local_addr()?;
        self.bound
            .lock()
            .expect("binder mutex poisoned")
            .push((requested, actual));
        Ok(listener)
    }

    /// Every `(requested, actual)` pair bound so far, in bind order.
    pub fn bound(&self) -> Vec<(SocketAddr, SocketAddr)> {
        self.bound.lock().expect("binder mutex poisoned").clone()
    }
}
