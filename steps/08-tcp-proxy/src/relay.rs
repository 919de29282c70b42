//! Moving bytes both ways until both sides are done, or nothing moves.
//!
//! A TCP connection has two directions that end separately: a client may
//! send its whole request and close its writing side (`shutdown(SHUT_WR)`,
//! a *half-close*) while still reading the answer. A relay that closed the
//! whole connection at the first end of stream would cut that answer off.
//! tokio's `copy_bidirectional` does it right: when one side's reading
//! ends, it shuts down the writing side of the other and keeps copying the
//! other direction until that ends too.
//!
//! What it does not do is give up on a connection where nothing moves.
//! Every read here is counted (the counts are also the connection's byte
//! totals), and a watchdog closes the connection once they have stood
//! still for the idle timeout (checked four times per timeout, so it fires
//! between 1 and 1.25 times the timeout).
//!
//! Left out on purpose: `splice(2)`, which moves bytes between sockets
//! without copying them through user space — measured, the per-request
//! cost here is system calls, not copying (bench/README.md, "Step 08").

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The size of each direction's buffer: HAProxy's default `tune.bufsize`.
const BUFFER: usize = 16 * 1024;

/// How a relayed connection ended.
#[derive(Debug)]
pub struct Relayed {
    /// Bytes from the client to the upstream, and back.
    pub sent: u64,
    pub received: u64,
    pub ended: Ended,
}

/// Why a relay stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// Both directions finished.
    Finished,
    /// Nothing moved for the idle timeout.
    Idle,
    /// The proxy closed it (`stop` resolved: see [`crate::silent`]).
    Stopped,
}

/// Copy between `client` and `upstream` until both directions have ended,
/// either side fails, nothing has moved for `idle`, or `stop` resolves.
/// Bytes from the client are counted into `from_client` as they arrive, so
/// that whoever holds it can tell a client that has spoken from one that
/// has not.
pub async fn relay<C, U>(
    client: &mut C,
    upstream: &mut U,
    idle: Duration,
    from_client: &AtomicU64,
    stop: impl Future<Output = ()>,
) -> io::Result<Relayed>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let from_upstream = AtomicU64::new(0);
    let mut client = Counted {
        inner: client,
        read: from_client,
    };
    let mut upstream = Counted {
        inner: upstream,
        read: &from_upstream,
    };
    let copying =
        tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, BUFFER, BUFFER);
    let moved = || from_client.load(Ordering::Relaxed) + from_upstream.load(Ordering::Relaxed);
    let ended = tokio::select! {
        copied = copying => {
            copied?;
            Ended::Finished
        }
        () = stood_still(moved, idle) => Ended::Idle,
        () = stop => Ended::Stopped,
    };
    Ok(Relayed {
        sent: from_client.load(Ordering::Relaxed),
        received: from_upstream.load(Ordering::Relaxed),
        ended,
    })
}

/// Resolves once `moved()` has not changed for `idle`.
async fn stood_still(moved: impl Fn() -> u64, idle: Duration) {
    let (mut seen, mut since) = (moved(), Instant::now());
    loop {
        tokio::time::sleep(idle / 4).await;
        let now = moved();
        if now != seen {
            (seen, since) = (now, Instant::now());
        } else if since.elapsed() >= idle {
            return;
        }
    }
}

/// A stream whose reads are counted.
struct Counted<'a, S> {
    inner: &'a mut S,
    read: &'a AtomicU64,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut *self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.read.fetch_add(read as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}
