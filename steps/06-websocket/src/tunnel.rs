//! Websocket tunnels that end well.
//!
//! Step 03's tunnel copies bytes until one side hangs up, and that is all a
//! proxy *must* do after a 101. A proxy that runs for months in front of
//! browsers needs two more things, and both need the proxy to speak up:
//!
//! * **idle timeout** — a tunnel over which nothing has moved for a while
//!   holds two sockets and two buffers for a peer that may be long gone (a
//!   laptop closed mid-session sends no FIN). After `--idle-timeout`, the
//!   tunnel is closed;
//! * **graceful shutdown** — hyper's graceful shutdown stops at the 101: an
//!   upgraded connection is no longer HTTP, so nobody would tell it the
//!   proxy is going away, and a redeploy would look like a crash to every
//!   connected browser.
//!
//! In both cases the proxy closes the way the protocol says to: it sends
//! each side a close frame (1001 Going Away, with the reason), lets their
//! own close frames come back (bounded by [`CLOSE_WAIT`]), and only then
//! closes the sockets. A close frame may only be sent between frames, so
//! each direction tracks frame boundaries ([`Frames`]) and a frame in
//! flight is finished before the close is sent. An upgrade to anything but
//! websocket is copied the same way, but closed without a frame (the proxy
//! does not know that protocol's goodbye).
//!
//! Left out on purpose: ping/pong keep-alives (the endpoints' business —
//! the idle timeout counts their bytes like any others) and
//! permessage-deflate (it changes payloads, never frame boundaries).

use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use step03_reverse_proxy::{Upgrade, UpgradeHandler};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::debug;

use crate::frames::{Frames, Toward, close_frame};

/// How long each side gets to answer the proxy's close frame.
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Read buffer per direction: a tunnel holds two of them for its lifetime.
const BUFFER: usize = 8 * 1024;

/// The close code for "the server is going away" (RFC 6455 §7.4.1).
const GOING_AWAY: u16 = 1001;

/// The close code for "try again later" (IANA's websocket close codes).
const TRY_AGAIN_LATER: u16 = 1013;

/// Every tunnel the proxy holds open, and the means to close them all.
#[derive(Clone)]
pub struct Tunnels {
    idle_timeout: Duration,
    /// At most this many open at once; more are closed as they open.
    max_open: usize,
    /// Flips to true at shutdown. Each tunnel holds a receiver, so the
    /// receiver count is the number of open tunnels, and `closed()` resolves
    /// when the last one has gone.
    closing: Arc<watch::Sender<bool>>,
}

impl Tunnels {
    pub fn new(idle_timeout: Duration, max_open: usize) -> Self {
        Self {
            idle_timeout,
            max_open,
            closing: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Tunnels open right now.
    pub fn open(&self) -> usize {
        self.closing.receiver_count()
    }

    /// The handler to give the proxy: every accepted upgrade becomes one of ours.
    pub fn handler(&self) -> UpgradeHandler {
        let tunnels = self.clone();
        Arc::new(move |upgrade| tunnels.spawn(upgrade))
    }

    fn spawn(&self, upgrade: Upgrade) {
        let place = self.enter();
        tokio::spawn(async move {
            let (peer, target) = (upgrade.peer, upgrade.target.clone());
            let protocol = upgrade.protocol.clone();
            match upgrade.connect().await {
                Ok((client, backend)) => {
                    relay(client, backend, peer, target, protocol.as_bytes(), place).await;
                }
                Err(e) => debug!("upgrade for {peer} failed: {e}"),
            }
        });
    }

    /// Carry a connection another engine switched to `protocol` after a
    /// 101 (step 10's hands over its own sockets), in the caller's task:
    /// the same cap, idle timeout and goodbyes as [`Self::handler`]'s.
    pub async fn carry<C, B>(
        &self,
        client: C,
        backend: B,
        peer: impl fmt::Display,
        target: impl fmt::Display,
        protocol: &[u8],
    ) where
        C: AsyncRead + AsyncWrite + Unpin,
        B: AsyncRead + AsyncWrite + Unpin,
    {
        relay(client, backend, peer, target, protocol, self.enter()).await;
    }

    /// A new tunnel's place: counted among the open ones until dropped.
    /// A tunnel is not a request: once the 101 is out, no request cap
    /// counts it, and it may stay for hours. Past the cap a new tunnel is
    /// closed at once, both ways, with "try again later" — the websocket
    /// way of saying 503 after the handshake.
    fn enter(&self) -> Place {
        Place {
            full: (self.open() >= self.max_open).then_some(self.max_open),
            closing: self.closing.subscribe(),
            idle_timeout: self.idle_timeout,
        }
    }

    /// Close every tunnel (close frames both ways) and wait until all are gone.
    pub async fn close_all(&self) {
        self.closing.send_replace(true);
        let open = self.open();
        if open > 0 {
            debug!("closing {open} websocket tunnels");
        }
        self.closing.closed().await;
    }
}

/// Why the proxy ended a tunnel.
#[derive(Debug, Clone, Copy)]
enum Reason {
    Idle(Duration),
    Shutdown,
    Full(usize),
}

impl Reason {
    fn close_code(self) -> u16 {
        match self {
            Reason::Idle(_) | Reason::Shutdown => GOING_AWAY,
            Reason::Full(_) => TRY_AGAIN_LATER,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Idle(limit) => write!(f, "idle for {limit:?}"),
            Reason::Shutdown => f.write_str("proxy shutting down"),
            Reason::Full(max) => write!(f, "{max} tunnels already open"),
        }
    }
}

/// When a byte last crossed the tunnel, either way.
struct Activity {
    started: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.started + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// One tunnel's standing among the open ones.
struct Place {
    /// The cap it found reached, if it did.
    full: Option<usize>,
    /// Held for the tunnel's life: it counts the tunnel as open, and says
    /// when the proxy is stopping.
    closing: watch::Receiver<bool>,
    idle_timeout: Duration,
}

async fn relay<C, B>(
    client: C,
    backend: B,
    peer: impl fmt::Display,
    target: impl fmt::Display,
    protocol: &[u8],
    place: Place,
) where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let Place {
        full,
        mut closing,
        idle_timeout,
    } = place;
    let websocket = protocol.eq_ignore_ascii_case(b"websocket");
    debug!("tunnel {peer} ⇄ {target} open");
    let activity = Activity::new();
    let (stop, stopped) = watch::channel(None);
    let (client_read, client_write) = tokio::io::split(client);
    let (backend_read, backend_write) = tokio::io::split(backend);
    let frames = || websocket.then(Frames::new);
    let up = pump(
        client_read,
        backend_write,
        frames(),
        Toward::Backend,
        stopped.clone(),
        &activity,
    );
    let down = pump(
        backend_read,
        client_write,
        frames(),
        Toward::Client,
        stopped,
        &activity,
    );
    let pumps = async { tokio::try_join!(up, down) };
    tokio::pin!(pumps);

    let reason = tokio::select! {
        biased;
        () = std::future::ready(()), if full.is_some() => Reason::Full(full.unwrap_or_default()),
        ended = &mut pumps => {
            match ended {
                Ok((up, down)) => debug!("tunnel {peer} ⇄ {target} closed: {up} bytes up, {down} down"),
                Err(e) => debug!("tunnel {peer} ⇄ {target} broke: {e}"),
            }
            return;
        }
        reason = watchdog(&activity, idle_timeout, &mut closing) => reason,
    };
    stop.send_replace(Some(reason));
    match tokio::time::timeout(CLOSE_WAIT, pumps).await {
        Ok(Ok(_)) => debug!("tunnel {peer} ⇄ {target} closed cleanly: {reason}"),
        Ok(Err(e)) => debug!("tunnel {peer} ⇄ {target} broke while closing ({reason}): {e}"),
        Err(_) => {
            debug!("tunnel {peer} ⇄ {target}: no close answer within {CLOSE_WAIT:?}; dropped")
        }
    }
}

/// Resolves when the tunnel has been idle too long or the proxy is stopping.
async fn watchdog(
    activity: &Activity,
    idle_timeout: Duration,
    closing: &mut watch::Receiver<bool>,
) -> Reason {
    let idle = async {
        loop {
            tokio::time::sleep_until(activity.last() + idle_timeout).await;
            if activity.last() + idle_timeout <= Instant::now() {
                return;
            }
        }
    };
    tokio::select! {
        _ = idle => Reason::Idle(idle_timeout),
        // An error means the Tunnels are gone with the proxy: stopping too.
        _ = closing.wait_for(|closing| *closing) => Reason::Shutdown,
    }
}

/// Copy one direction, `from` → `to`. On a stop request: finish the frame
/// in flight, send `to` a close frame, then read (and drop) what `from`
/// still sends until its own close frame arrives — its answer to the close
/// the other direction's pump sent it. Returns the bytes forwarded.
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    mut frames: Option<Frames>,
    toward: Toward,
    mut stop: watch::Receiver<Option<Reason>>,
    activity: &Activity,
) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0; BUFFER];
    let mut forwarded = 0;
    let mut reason = None;
    let mut unread = 0..0;
    loop {
        if reason.is_some() && frames.as_ref().is_none_or(Frames::at_boundary) {
            break;
        }
        let read = tokio::select! {
            // A stop is noticed before more bytes are taken.
            biased;
            asked = stop.wait_for(Option::is_some), if reason.is_none() => {
                reason = Some(asked.map_or(Reason::Shutdown, |r| r.unwrap_or(Reason::Shutdown)));
                continue;
            }
            read = from.read(&mut buf) => read?,
        };
        if read == 0 {
            // The peer finished sending: pass its half-close on.
            to.shutdown().await?;
            return Ok(forwarded);
        }
        activity.touch();
        let take = match (&mut frames, reason) {
            (Some(frames), stopping) => frames.advance(&buf[..read], stopping.is_some()),
            (None, _) => read,
        };
        to.write_all(&buf[..take]).await?;
        // Over TLS, part of a write may wait in rustls for a flush: the
        // frame must be out before this side waits for the next one.
        to.flush().await?;
        forwarded += take as u64;
        unread = take..read;
    }
    let (Some(mut frames), Some(reason)) = (frames, reason) else {
        // Not a websocket: no goodbye we could say.
        to.shutdown().await?;
        return Ok(forwarded);
    };
    // A close that already went this way (a close handshake under way)
    // must not be followed by a second one.
    if frames.closes() == 0 {
        to.write_all(&close_frame(
            reason.close_code(),
            &reason.to_string(),
            toward,
        ))
        .await?;
    }
    frames.advance(&buf[unread], false);
    while frames.closes() == 0 {
        let read = from.read(&mut buf).await?;
        if read == 0 {
            break;
        }
        frames.advance(&buf[..read], false);
    }
    to.shutdown().await?;
    Ok(forwarded)
}

#[cfg(test)]
mod tests {
    use tokio::io::duplex;

    use super::*;

    /// A masked text frame header for `len` payload bytes, then the key.
    fn masked_text_head(len: u8) -> Vec<u8> {
        vec![0x81, 0x80 | len, 9, 9, 9, 9]
    }

    async fn read_exactly(from: &mut (impl AsyncRead + Unpin), n: usize) -> Vec<u8> {
        let mut bytes = vec![0; n];
        from.read_exact(&mut bytes).await.unwrap();
        bytes
    }

    #[tokio::test]
    async fn a_frame_in_flight_is_finished_before_the_close() {
        let (mut client, from) = duplex(1024);
        let (to, mut backend) = duplex(1024);
        let (stop, stopped) = watch::channel(None);
        let activity = Activity::new();
        let pump = pump(
            from,
            to,
            Some(Frames::new()),
            Toward::Backend,
            stopped,
            &activity,
        );
        let test = async {
            // Half a frame goes through before the stop…
            let mut first = masked_text_head(10);
            first.extend(b"hello");
            client.write_all(&first).await.unwrap();
            assert_eq!(read_exactly(&mut backend, first.len()).await, first);
            stop.send_replace(Some(Reason::Shutdown));
            // …and its other half after it, followed by a frame that must not pass.
            let mut rest = b"world".to_vec();
            rest.extend(masked_text_head(3));
            rest.extend(b"NOT");
            client.write_all(&rest).await.unwrap();
            assert_eq!(read_exactly(&mut backend, 5).await, b"world");
            // Then the proxy's own close, masked because it goes to a server.
            let close = read_exactly(&mut backend, 2).await;
            assert_eq!(close[0], 0x88);
            assert_eq!(close[1] & 0x80, 0x80, "masked");
            let rest_of_close = read_exactly(&mut backend, 4 + usize::from(close[1] & 0x7f)).await;
            let (key, payload) = rest_of_close.split_at(4);
            let unmasked: Vec<u8> = payload
                .iter()
                .zip(key.iter().cycle())
                .map(|(b, k)| b ^ k)
                .collect();
            assert_eq!(&unmasked[..2], &1001u16.to_be_bytes());
            assert_eq!(&unmasked[2..], b"proxy shutting down");
            // The pump waits for the client's own close, then ends.
            client.write_all(&[0x88, 0x80, 0, 0, 0, 0]).await.unwrap();
        };
        let (forwarded, ()) = tokio::join!(pump, test);
        assert_eq!(
            forwarded.unwrap(),
            16,
            "the 16 bytes of the first frame, nothing more"
        );
        let mut after = Vec::new();
        backend.read_to_end(&mut after).await.unwrap();
        assert!(after.is_empty(), "nothing after the close: {after:?}");
    }

    #[tokio::test]
    async fn another_protocol_is_copied_and_closed_without_a_frame() {
        let (mut client, from) = duplex(1024);
        let (to, mut backend) = duplex(1024);
        let (stop, stopped) = watch::channel(None);
        let activity = Activity::new();
        let pump = pump(from, to, None, Toward::Backend, stopped, &activity);
        let test = async {
            client.write_all(b"any bytes at all").await.unwrap();
            assert_eq!(read_exactly(&mut backend, 16).await, b"any bytes at all");
            stop.send_replace(Some(Reason::Idle(Duration::from_secs(1))));
            let mut after = Vec::new();
            backend.read_to_end(&mut after).await.unwrap();
            assert!(after.is_empty());
        };
        let (forwarded, ()) = tokio::join!(pump, test);
        assert_eq!(forwarded.unwrap(), 16);
    }
}
