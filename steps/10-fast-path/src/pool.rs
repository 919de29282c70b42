//! Idle upstream connections, kept for the next request.
//!
//! One list, newest last: the connection used most recently is the one
//! most likely still open (and warm in the upstream's caches). A
//! connection is checked before it is handed out — closed by the upstream
//! while idle, or idle longer than the timeout, it is dropped — and at
//! most `max_idle` are kept.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

pub struct Pool {
    idle: Mutex<Vec<(TcpStream, Instant)>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Pool {
    pub fn new(max_idle: usize, idle_timeout: Duration) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            max_idle,
            idle_timeout,
        }
    }

    /// A live idle connection, if there is one.
    pub fn take(&self) -> Option<TcpStream> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some((stream, since)) = idle.pop() {
            if since.elapsed() < self.idle_timeout && still_open(&stream) {
                return Some(stream);
            }
        }
        None
    }

    /// Keep `stream` for a later request.
    pub fn put(&self, stream: TcpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.max_idle {
            idle.push((stream, Instant::now()));
        }
    }

    /// Connections idle now.
    pub fn idle(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// An idle connection has nothing to read: a read that does not block
/// found either its end (the upstream closed it) or stray bytes — either
/// way it cannot carry a request.
fn still_open(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}
