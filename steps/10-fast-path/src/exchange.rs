//! One client connection, request after request, driven from one task.
//!
//! Step 03 runs two state machines per request — hyper's server side for
//! the client, hyper's client side for the upstream — joined by a body
//! channel, with the upstream connection driven by a task of its own. Here
//! one task owns both sockets and moves bytes between them:
//!
//! ```text
//! client ──head──▶ parse (offsets) ──▶ out: edited head + first body bytes ──▶ upstream
//! client ◀── edited head + first body bytes ◀── parse ◀──head── upstream
//! then body bytes as they come, each read followed by one write
//! ```
//!
//! Each side has one buffer, lent by a shared store when a request's first
//! bytes arrive and given back when the connection waits for the next
//! ([`crate::buffers`]). A message's head and
//! the body bytes that arrived with it leave in one write. While it waits
//! for the upstream, the task also watches the client: a client that hangs
//! up cancels the request (the upstream connection is closed, as
//! step 03's), and bytes it sends early (a pipelined request) wait in its
//! buffer.
//!
//! A request body keeps streaming to the upstream while the response
//! arrives: an upstream that answers early (a 413, an echo) is read from
//! while the client is still sending.
//!
//! What to do with each request — admit it or not, where it goes, where
//! it goes when that fails — is asked of the proxy's [`Hooks`]: step 10's
//! own send everything to one upstream.
//!
//! A client stream may be TLS (the gateway's `[tls]` listener): every
//! write to it is flushed, since rustls may hold part of a write until
//! then. An HTTP/2 client's preface is no HTTP/1 request: the engine hands
//! the connection, with the bytes read, to the server behind it
//! ([`Client::hand_over`]), as it does when the hooks decline a request.
//!
//! Left out on purpose: speaking HTTP/2 itself.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use proxy_core::TrustedProxies;
use proxy_core::refusal::UpgradeRefusal;
use serving::{ClientStream, EngineStream, Stopping};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::buffers::{Buffers, Store};
use crate::chunked::{ChunkError, Chunked};
use crate::forward::{self, Hop};
use crate::head::{self, Framing, HeadError, HeaderAt, RequestHead, ResponseHead, slice};
use crate::hooks::{Declined, Destination, Head, Hooks, Refusal};

/// The largest head accepted (431 beyond), and the most a buffer holds.
pub const MAX_HEAD: usize = 64 * 1024;

/// How an HTTP/2 client's connection preface begins (RFC 9113, 3.4):
/// enough to tell it from any HTTP/1 request.
const H2_PREFACE_START: &[u8] = b"PRI * HTTP/2";

/// Settings of the fast path.
#[derive(Debug, Clone)]
pub struct Settings {
    pub connect_timeout: Duration,
    /// A request head must arrive within this, from accept or from the end
    /// of the previous response.
    pub header_timeout: Duration,
    /// 504 when the upstream's response head takes longer.
    pub response_timeout: Option<Duration>,
    /// 408 when a client owing a request body sends none of it for this
    /// long (nginx's `client_body_timeout`; see `proxy_core::client_body`).
    pub client_body_timeout: Duration,
    /// Peers whose X-Forwarded-For is believed.
    pub trusted: TrustedProxies,
}

/// The shared state: settings, the hooks (and through them the upstreams
/// and their pools), spare buffers.
pub struct FastPath<H> {
    pub settings: Settings,
    pub hooks: H,
    /// Spare request buffers.
    pub buffers: Store,
}

/// A client's stream, which the engine can also wait on without reading
/// it: a connection between requests holds no buffer to read into.
pub trait Client: AsyncRead + AsyncWrite + Unpin + Send {
    /// Resolves when there is something to read (or the client closed).
    fn readable(&self) -> impl Future<Output = io::Result<()>>;

    /// The client spoke TLS to us.
    fn is_tls(&self) -> bool {
        false
    }

    /// A write may leave bytes in the stream until a flush (TLS). A TCP
    /// socket's flush does nothing, and skipping it saves 1 % of step 10's
    /// CPU per request.
    fn holds_writes(&self) -> bool {
        self.is_tls()
    }

    /// Let the server behind the engine serve the rest of the connection,
    /// starting with `read` (bytes read from it and not used): an HTTP/2
    /// client, or a request the hooks leave to it. A client with no server
    /// behind it comes back.
    fn hand_over(self, read: Bytes) -> Result<impl Future<Output = ()> + Send, Self>
    where
        Self: Sized,
    {
        let _ = read;
        Err::<std::future::Ready<()>, _>(self)
    }
}

impl Client for ClientStream {
    fn readable(&self) -> impl Future<Output = io::Result<()>> {
        // The read direction's own waker slot, as a read uses: cheaper than
        // `TcpStream::readable`, whose waiters queue behind a lock.
        std::future::poll_fn(|cx| self.get_ref().poll_read_ready(cx))
    }
}

/// The gateway's listeners: TLS too, and hyper behind the engine.
impl Client for EngineStream {
    fn readable(&self) -> impl Future<Output = io::Result<()>> {
        std::future::poll_fn(|cx| self.poll_read_ready(cx))
    }

    fn is_tls(&self) -> bool {
        EngineStream::is_tls(self)
    }

    fn hand_over(self, read: Bytes) -> Result<impl Future<Output = ()> + Send, Self> {
        Ok(EngineStream::hand_over(self, read))
    }
}

/// Write `bytes` to the client, all of them: over TLS, a write may leave
/// some in rustls until a flush, and the engine's next step may be a wait.
async fn send<C: Client>(client: &mut C, bytes: &[u8]) -> io::Result<()> {
    client.write_all(bytes).await?;
    if client.holds_writes() {
        client.flush().await?;
    }
    Ok(())
}

/// Why an exchange ended early, and what the client is told.
enum Failure {
    /// Answer with this status and reason, then close.
    Answer(u16, String),
    /// The upstream failed the request before its response began: answer
    /// with this status and reason, then close — unless the hooks send it
    /// elsewhere, which they may when none of it left (`unsent`).
    Upstream {
        status: u16,
        reason: String,
        unsent: bool,
    },
    /// The hooks refused the request: answer their refusal, then close.
    Refused(Refusal),
    /// The connection is the server behind the engine's from this request
    /// on (its bytes are still unread in the buffer).
    HandOver,
    /// Close the client's connection without a word (it went away, or the
    /// response was already under way).
    Close,
}

impl From<HeadError> for Failure {
    fn from(e: HeadError) -> Self {
        Failure::Answer(e.status(), e.to_string())
    }
}

impl From<io::Error> for Failure {
    fn from(_: io::Error) -> Self {
        Failure::Close
    }
}

/// Serve one client connection until it closes.
pub async fn serve<C, H>(
    path: Arc<FastPath<H>>,
    mut client: C,
    peer: SocketAddr,
    stopping: Stopping,
) where
    C: Client,
    H: Hooks,
{
    let mut conn = Conn {
        path: &path,
        client_ip: peer.ip(),
        tls: client.is_tls(),
        stopping,
        // The buffers come with a request's first bytes (`first_bytes`).
        cbuf: Vec::new(),
        pos: 0,
        ubuf: Vec::new(),
        out: Vec::new(),
        headers: Vec::new(),
        upstream_headers: Vec::new(),
        client_body_timeout: path.settings.client_body_timeout,
        response_deadline: None,
    };
    loop {
        // Unread bytes (a pipelined request) move to the front.
        conn.cbuf.drain(..conn.pos);
        conn.pos = 0;
        // The next head is due within the header timeout, counted from now:
        // the end of the previous response, or accept.
        let deadline = tokio::time::Instant::now() + path.settings.header_timeout;
        if conn.cbuf.is_empty() && !conn.first_bytes(&mut client, deadline).await {
            break;
        }
        // A request's state (1.5 KiB of future: every await point's
        // locals) lives on the heap for the request's life only, so an idle
        // connection's task is this loop and its wait, a few hundred bytes
        // (bench/README.md, "Idle connections").
        let answer = match Box::pin(conn.exchange(&mut client, deadline)).await {
            Ok(true) => continue,
            Ok(false) => break,
            Err(Failure::Answer(status, reason) | Failure::Upstream { status, reason, .. }) => {
                error_response(status, &reason)
            }
            Err(Failure::Refused(refusal)) => refusal_response(&refusal),
            Err(Failure::HandOver) => {
                match client.hand_over(Bytes::copy_from_slice(&conn.cbuf[conn.pos..])) {
                    Ok(served) => {
                        drop(conn);
                        return served.await;
                    }
                    Err(back) => {
                        client = back;
                        error_response(502, "no server here takes this request")
                    }
                }
            }
            Err(Failure::Close) => break,
        };
        let _ = send(&mut client, &answer).await;
        break;
    }
    let _ = client.shutdown().await;
}

/// A connection's buffers, reused by every request on it.
struct Conn<'p, H> {
    path: &'p FastPath<H>,
    client_ip: IpAddr,
    /// The client spoke TLS.
    tls: bool,
    /// Shutdown: a connection waiting for its next request closes.
    stopping: Stopping,
    /// Bytes from the client; `pos` is where the unread ones start.
    cbuf: Vec<u8>,
    pos: usize,
    /// Bytes from the upstream.
    ubuf: Vec<u8>,
    /// The head being written (either way).
    out: Vec<u8>,
    headers: Vec<HeaderAt>,
    upstream_headers: Vec<HeaderAt>,
    /// This request's client body timeout: the setting's, unless its hooks
    /// say else.
    client_body_timeout: Duration,
    /// When the response head is due: the hooks' (or the setting's)
    /// timeout, counted from the request's sending.
    response_deadline: Option<tokio::time::Instant>,
}

/// A connection that ends gives its buffers to the next one.
impl<H> Drop for Conn<'_, H> {
    fn drop(&mut self) {
        self.give_back_buffers();
    }
}

/// Buffers come from the store and go back to it.
impl<H> Conn<'_, H> {
    /// Give the buffers to the store (a connection without them gives
    /// nothing: a new one, or one already waiting).
    fn give_back_buffers(&mut self) {
        if self.cbuf.capacity() == 0 {
            return;
        }
        self.path.buffers.give(Buffers {
            client: std::mem::take(&mut self.cbuf),
            upstream: std::mem::take(&mut self.ubuf),
            out: std::mem::take(&mut self.out),
            headers: std::mem::take(&mut self.headers),
            upstream_headers: std::mem::take(&mut self.upstream_headers),
        });
    }

    fn take_buffers(&mut self) {
        let buffers = self.path.buffers.take();
        self.cbuf = buffers.client;
        self.ubuf = buffers.upstream;
        self.out = buffers.out;
        self.headers = buffers.headers;
        self.upstream_headers = buffers.upstream_headers;
    }
}

/// A request whose upstream side is ready.
struct Sent {
    upstream: TcpStream,
    /// The connection came from the pool and the request may be sent again
    /// if the connection closes before any answer: it is all in `out` and
    /// its method is idempotent. (The upstream may have read it before
    /// closing: a POST is never sent twice, chapter 4's retry rule.)
    resend_on_silence: bool,
    /// The client asked to be told when to send its body (`Expect:
    /// 100-continue`) and has not been told yet.
    continue_owed: bool,
}

impl<H: Hooks> Conn<'_, H> {
    /// One request and its response. `Ok(true)`: the connection may carry
    /// another; `Ok(false)`: it is done.
    async fn exchange<C>(
        &mut self,
        client: &mut C,
        deadline: tokio::time::Instant,
    ) -> Result<bool, Failure>
    where
        C: Client,
    {
        let request = self.read_request_head(client, deadline).await?;
        // What is needed of the head later: its bytes may be gone by then
        // (the buffer is reused while the body streams).
        let head_request = request.is_head(&self.cbuf);
        let asked_upgrade = self.upgrade_to_tunnel(&request)?;
        let hop = self.hop(&request);
        let hooks = &self.path.hooks;
        let head = Head {
            buf: &self.cbuf,
            head: &request,
            headers: &self.headers,
        };
        let mut admitted = hooks
            .admit(&head, &hop)
            .await
            .map_err(|declined| match declined {
                Declined::Refused(refusal) => Failure::Refused(refusal),
                Declined::HandOver => Failure::HandOver,
            })?;
        let settings = &self.path.settings;
        self.client_body_timeout =
            hooks.client_body_timeout(&admitted, settings.client_body_timeout);
        let (mut sent, mut body, response) = loop {
            match self
                .forward(client, &request, &hop, &admitted, head_request)
                .await
            {
                Ok(forwarded) => break forwarded,
                Err(Failure::Upstream {
                    status,
                    reason,
                    unsent,
                }) => {
                    if hooks.failed(&mut admitted, &reason, unsent) && unsent {
                        continue;
                    }
                    // The client is answered by the engine instead.
                    hooks.answered(&mut admitted, status);
                    return Err(Failure::Upstream {
                        status,
                        reason,
                        unsent,
                    });
                }
                // Anything else that ends it now is the client's doing.
                Err(failure) => {
                    let status = match &failure {
                        Failure::Answer(status, _) => Some(*status),
                        _ => None,
                    };
                    hooks.client_failed(&mut admitted, status);
                    return Err(failure);
                }
            }
        };
        hooks.answered(&mut admitted, response.status);
        if response.status == 101 {
            let edits = hooks.response_headers(&admitted);
            let mut upstream = sent.upstream;
            self.switch(
                client,
                &mut upstream,
                asked_upgrade.as_deref(),
                &response,
                edits,
            )
            .await?;
            // The request is over; the tunnel outlives it, and needs neither
            // its state (a gateway's routes of the moment) nor the buffers.
            drop(admitted);
            self.give_back_buffers();
            let protocol = asked_upgrade.unwrap_or_default();
            hooks
                .tunnel(client, upstream, &protocol, self.client_ip)
                .await;
            return Ok(false);
        }
        // The client's body, if the upstream answered without waiting for it,
        // is never read: the connection cannot carry another request.
        let chunked_ok = request.minor == 1;
        let framing = response.common.framing.unwrap_or(Framing::Empty);
        let close = request.common.close
            || !body.done()
            || request.minor == 0
            || request.common.length_ignored
            || framing == Framing::UntilClose;
        self.head_for_client(
            &response,
            chunked_ok,
            close,
            hooks.response_headers(&admitted),
        );
        let (reusable, body_bytes) = self
            .send_response_body(client, &mut sent.upstream, &response, chunked_ok, &mut body)
            .await?;
        hooks.finished(&mut admitted, body_bytes);
        if reusable && !response.common.close && body.done() {
            hooks.destination(&admitted).pool.put(sent.upstream);
        }
        Ok(!close)
    }

    /// Send the request to its destination and read the final response
    /// head — the part of an exchange that may be done again elsewhere.
    async fn forward<C>(
        &mut self,
        client: &mut C,
        request: &RequestHead,
        hop: &Hop,
        admitted: &H::Request,
        head_request: bool,
    ) -> Result<(Sent, BodyState, ResponseHead), Failure>
    where
        C: Client,
    {
        let destination = self.path.hooks.destination(admitted);
        let (mut sent, mut body) = self
            .send_request(client, request, hop, admitted, destination)
            .await?;
        let response = self
            .final_response(
                client,
                &mut sent,
                request,
                head_request,
                &mut body,
                destination,
            )
            .await?;
        Ok((sent, body, response))
    }

    /// The protocol to tunnel if the upstream switches to it, or none (no
    /// upgrade, or `h2c`); an unprintable one is refused here.
    fn upgrade_to_tunnel(&self, request: &RequestHead) -> Result<Option<Vec<u8>>, Failure> {
        let Some(asked) = request.common.upgrade.map(|u| slice(&self.cbuf, u)) else {
            return Ok(None);
        };
        if !asked.iter().all(|b| b.is_ascii_graphic()) {
            // Go's rule: an upgrade to a protocol that cannot be named in
            // printable ASCII is refused before it reaches anyone.
            let refusal = UpgradeRefusal::invalid_protocol(asked);
            return Err(Failure::Answer(502, refusal.to_string()));
        }
        Ok(forward::tunnels_upgrade(&self.cbuf, request).then(|| asked.to_vec()))
    }

    /// Send the request's head upstream with the body bytes that came with
    /// it, then the rest of its body — unless the client waits for `100
    /// Continue`, which the response loop relays first.
    async fn send_request<C>(
        &mut self,
        client: &mut C,
        request: &RequestHead,
        hop: &Hop,
        admitted: &H::Request,
        destination: &Destination,
    ) -> Result<(Sent, BodyState), Failure>
    where
        C: Client,
    {
        self.out.clear();
        let (path, query) = forward::origin(request.target(&self.cbuf));
        // A target is ASCII in practice, and then this borrows.
        let path = String::from_utf8_lossy(path);
        let target = forward::Target {
            upstream: &destination.upstream,
            path: self.path.hooks.path(admitted, &path).as_bytes(),
            query,
        };
        forward::request_head(
            &mut self.out,
            &self.cbuf,
            request,
            &self.headers,
            &target,
            hop,
            self.path.hooks.request_headers(admitted),
        );
        self.pos = request.len;
        let mut body = BodyState::new(request.framing());
        let waits_for_continue = request.expect_continue && !body.done();
        if !waits_for_continue {
            let available = &self.cbuf[self.pos..];
            let taken = body.follow(available, &mut |_| {}).map_err(|e| {
                Failure::Answer(400, format!("malformed chunked request body: {e}"))
            })?;
            self.out.extend_from_slice(&available[..taken]);
            self.pos += taken;
        }
        // A request whose body is all in `out` can be sent again if a
        // pooled connection turns out dead: whatever its method if the
        // write failed (nothing reached the upstream), only if idempotent
        // if the connection closed after taking it.
        let whole = body.done();
        let idempotent = proxy_core::headers::is_idempotent(request.method(&self.cbuf));
        // The response timeout runs from the sending, through the body.
        let settings = &self.path.settings;
        self.response_deadline = self
            .path
            .hooks
            .response_timeout(admitted, settings.response_timeout)
            .map(|t| tokio::time::Instant::now() + t);
        let mut sent = self.send_head(destination, whole, idempotent).await?;
        sent.continue_owed = waits_for_continue;
        if !waits_for_continue {
            self.send_body(client, &mut sent.upstream, &mut body)
                .await?;
        }
        Ok((sent, body))
    }

    /// The upstream's final response head: interim ones (1xx but 101) are
    /// relayed to an HTTP/1.1 client, and a `100 Continue` releases a body
    /// the client held back.
    async fn final_response<C>(
        &mut self,
        client: &mut C,
        sent: &mut Sent,
        request: &RequestHead,
        head_request: bool,
        body: &mut BodyState,
        destination: &Destination,
    ) -> Result<ResponseHead, Failure>
    where
        C: Client,
    {
        let waits_for_continue = request.expect_continue;
        loop {
            let response = self
                .read_response_head(client, sent, head_request, body, destination)
                .await?;
            if !(100..200).contains(&response.status) || response.status == 101 {
                return Ok(response);
            }
            // A second `100 Continue` (ours went first) would tell the
            // client nothing.
            let told = response.status == 100 && waits_for_continue && !sent.continue_owed;
            if request.minor == 1 && !told {
                self.head_for_client(&response, true, false, forward::Edits::default());
                send(client, &self.out).await?;
            }
            if response.status == 100 {
                sent.continue_owed = false;
            }
            self.ubuf.drain(..response.len);
            // The upstream has answered: the request is no longer one to
            // send again (and `out` now holds the interim head).
            sent.resend_on_silence = false;
            if response.status == 100 && waits_for_continue && !body.done() {
                self.send_body(client, &mut sent.upstream, body).await?;
            }
        }
    }

    /// `out` = the response head for the client (see
    /// [`forward::response_head`]).
    fn head_for_client(
        &mut self,
        response: &ResponseHead,
        chunked_ok: bool,
        close: bool,
        edits: forward::Edits<'_>,
    ) {
        self.out.clear();
        forward::response_head(
            &mut self.out,
            &self.ubuf,
            response,
            &self.upstream_headers,
            chunked_ok,
            close,
            edits,
        );
    }

    /// Who sent `request`: the peer, or whom a trusted peer forwarded.
    fn hop(&self, request: &RequestHead) -> Hop {
        let peer = self.client_ip;
        let buf = &self.cbuf[..request.len];
        let forwarded = self.path.settings.trusted.forwarded_client(
            peer,
            self.headers
                .iter()
                .filter(|h| h.name(buf).eq_ignore_ascii_case(b"x-forwarded-for"))
                .map(|h| h.value(buf)),
        );
        Hop {
            peer,
            client: forwarded.unwrap_or(peer),
            peer_trusted: forwarded.is_some(),
            tls: self.tls,
        }
    }

    /// Read until a whole request head is in `cbuf` (its first bytes
    /// already are).
    async fn read_request_head<C>(
        &mut self,
        client: &mut C,
        deadline: tokio::time::Instant,
    ) -> Result<RequestHead, Failure>
    where
        C: Client,
    {
        loop {
            match head::parse_request(&self.cbuf, &mut self.headers) {
                Ok(Some(head)) => return Ok(head),
                Ok(None) => {}
                // HTTP/2 with prior knowledge: its preface is no HTTP/1
                // request, and the server behind the engine may speak it.
                Err(_) if self.cbuf.starts_with(H2_PREFACE_START) => {
                    return Err(Failure::HandOver);
                }
                Err(e) => return Err(e.into()),
            }
            if self.cbuf.len() >= MAX_HEAD {
                return Err(Failure::Answer(431, "request head too large".into()));
            }
            reserve(&mut self.cbuf);
            match tokio::time::timeout_at(deadline, client.read_buf(&mut self.cbuf)).await {
                Ok(Ok(0) | Err(_)) => return Err(Failure::Close),
                Ok(Ok(_)) => {}
                // Slowloris: a head that does not come in time.
                Err(_) => return Err(Failure::Answer(408, "request head too slow".into())),
            }
        }
    }

    /// Wait for the first bytes of the next request holding no buffer, and
    /// take the buffers back when they come. An idle keep-alive connection
    /// then costs its task and its socket — not the 18 KiB of buffers a
    /// request needs, which 8,000 idle clients would hold for nothing
    /// (bench/README.md, "Idle connections"). `false`: the client closed,
    /// failed or sent nothing in time, or the server is stopping — the
    /// connection ends quietly.
    async fn first_bytes<C>(&mut self, client: &mut C, deadline: tokio::time::Instant) -> bool
    where
        C: Client,
    {
        self.give_back_buffers();
        let ready = tokio::select! {
            ready = tokio::time::timeout_at(deadline, client.readable()) => ready,
            // Shutting down: a connection between requests closes now; one
            // in the middle of a head gets to finish it.
            () = self.stopping.wait() => return false,
        };
        if !matches!(ready, Ok(Ok(()))) {
            return false;
        }
        self.take_buffers();
        matches!(
            tokio::time::timeout_at(deadline, client.read_buf(&mut self.cbuf)).await,
            Ok(Ok(1..))
        )
    }

    /// A connection to the upstream, with `out` (the head and first body
    /// bytes) written to it.
    async fn send_head(
        &mut self,
        destination: &Destination,
        whole: bool,
        idempotent: bool,
    ) -> Result<Sent, Failure> {
        if let Some(mut upstream) = destination.pool.take() {
            match upstream.write_all(&self.out).await {
                Ok(()) => {
                    return Ok(Sent {
                        upstream,
                        resend_on_silence: whole && idempotent,
                        continue_owed: false,
                    });
                }
                // Refused by a connection already dead: nothing arrived.
                Err(_) if whole => {}
                Err(e) => return Err(upstream_failure(e)),
            }
        }
        let mut upstream = self.connect(destination).await?;
        upstream
            .write_all(&self.out)
            .await
            .map_err(upstream_failure)?;
        Ok(Sent {
            upstream,
            resend_on_silence: false,
            continue_owed: false,
        })
    }

    /// A new connection to `destination`. Failing, nothing of the request
    /// has left.
    async fn connect(&self, destination: &Destination) -> Result<TcpStream, Failure> {
        let limit = self.path.settings.connect_timeout;
        let connect = TcpStream::connect(&destination.connect_to);
        let reason = match tokio::time::timeout(limit, connect).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => format!("upstream request failed: cannot connect: {e}"),
            Err(_) => format!("upstream request failed: cannot connect within {limit:?}"),
        };
        Err(Failure::Upstream {
            status: 502,
            reason,
            unsent: true,
        })
    }

    /// Stream the request body from the client to `upstream` until it is
    /// done — or until the upstream starts answering first: then the rest
    /// of the body goes on while the response is read (a server may answer
    /// an upload before its end, and some wait for the answer to be read).
    async fn send_body<C>(
        &mut self,
        client: &mut C,
        upstream: &mut TcpStream,
        body: &mut BodyState,
    ) -> Result<(), Failure>
    where
        C: AsyncRead + Unpin,
    {
        loop {
            self.forward_body(upstream, body).await?;
            if body.done() {
                return Ok(());
            }
            reserve(&mut self.cbuf);
            reserve(&mut self.ubuf);
            let timeout = self.client_body_timeout;
            tokio::select! {
                read = read_client(client, &mut self.cbuf, Some(timeout)) => {
                    if read? == 0 {
                        // The client went away mid-body: so does the request.
                        return Err(Failure::Close);
                    }
                }
                () = until(self.response_deadline) => return Err(timed_out_owing_body()),
                read = upstream.read_buf(&mut self.ubuf) => {
                    // The answer has begun (or the upstream hung up, which
                    // reading the answer will report).
                    let _ = read;
                    return Ok(());
                }
            }
        }
    }

    /// Send what `cbuf` holds of the request body to `upstream`.
    async fn forward_body(
        &mut self,
        upstream: &mut TcpStream,
        body: &mut BodyState,
    ) -> Result<(), Failure> {
        let available = &self.cbuf[self.pos..];
        let taken = body
            .follow(available, &mut |_| {})
            .map_err(|e| Failure::Answer(400, format!("malformed chunked request body: {e}")))?;
        if taken == 0 {
            // Nothing sent, nothing to make room for: the head stays in the
            // buffer, which a request sent again needs.
            return Ok(());
        }
        // An upstream that stops taking the body is given as long as a
        // client is to send it (and no longer than the response timeout).
        let limit = tokio::time::Instant::now() + self.client_body_timeout;
        let deadline = self.response_deadline.map_or(limit, |due| due.min(limit));
        match tokio::time::timeout_at(deadline, upstream.write_all(&available[..taken])).await {
            Ok(written) => written.map_err(upstream_failure)?,
            Err(_) => {
                return Err(Failure::Upstream {
                    status: 504,
                    reason: "upstream request failed: the upstream stopped taking the request body"
                        .into(),
                    unsent: false,
                });
            }
        }
        self.pos += taken;
        if self.pos == self.cbuf.len() {
            self.cbuf.clear();
            self.pos = 0;
        }
        Ok(())
    }

    /// Read the upstream's response head into `ubuf`, watching the client:
    /// if it hangs up, the request is cancelled. A pooled connection that
    /// closes before answering an idempotent request is replaced once, and
    /// the request sent again.
    async fn read_response_head<C>(
        &mut self,
        client: &mut C,
        sent: &mut Sent,
        head_request: bool,
        body: &mut BodyState,
        destination: &Destination,
    ) -> Result<ResponseHead, Failure>
    where
        C: Client,
    {
        loop {
            if !self.ubuf.is_empty() {
                match head::parse_response(&self.ubuf, &mut self.upstream_headers, head_request) {
                    Ok(Some(head)) => return Ok(head),
                    Ok(None) => {}
                    Err(e) => return Err(upstream_failure(format!("bad response head: {e}"))),
                }
                if self.ubuf.len() >= MAX_HEAD {
                    return Err(upstream_failure("response head too large"));
                }
            }
            reserve(&mut self.ubuf);
            let client_room = self.cbuf.len() < MAX_HEAD;
            if client_room {
                reserve(&mut self.cbuf);
            }
            let timeout = until(self.response_deadline);
            let owed = (!body.done()).then_some(self.client_body_timeout);
            tokio::select! {
                read = sent.upstream.read_buf(&mut self.ubuf) => match read {
                    Ok(0) | Err(_) if sent.resend_on_silence && self.ubuf.is_empty() => {
                        // The pooled connection was closed under us before
                        // it answered: once more, on a fresh one.
                        sent.resend_on_silence = false;
                        sent.upstream = self.connect(destination).await?;
                        sent.upstream.write_all(&self.out).await.map_err(upstream_failure)?;
                    }
                    Ok(0) => return Err(upstream_failure(
                        "connection closed before a complete response head",
                    )),
                    Ok(_) => {}
                    Err(e) => return Err(upstream_failure(e)),
                },
                read = read_client(client, &mut self.cbuf, owed), if client_room => match read {
                    // A client still waiting for the `100 Continue` the
                    // upstream has not sent is doing as it was told: it
                    // hears one from us (as nginx's clients hear at once),
                    // and its body timeout starts again.
                    Err(Failure::Answer(408, _)) if sent.continue_owed => {
                        sent.continue_owed = false;
                        send(client, b"HTTP/1.1 100 Continue\r\n\r\n").await?;
                    }
                    // Hung up: cancel (dropping the upstream connection
                    // closes it, and the upstream sees that).
                    Ok(0) => return Err(Failure::Close),
                    // More of the body goes on; bytes after it (the next
                    // request) wait.
                    Ok(_) => self.forward_body(&mut sent.upstream, body).await?,
                    Err(failure) => return Err(failure),
                },
                // A client still told to wait for `100 Continue` owes
                // nothing yet: the silence is the upstream's.
                () = timeout => return Err(if body.done() || sent.continue_owed {
                    Failure::Upstream {
                        status: 504,
                        reason: "upstream request failed: no response head in time".into(),
                        unsent: false,
                    }
                } else {
                    timed_out_owing_body()
                }),
            }
        }
    }

    /// Send the response head (in `out`) and its body. `Ok((true, _))`: the
    /// upstream connection ended cleanly and may be reused; and the bytes
    /// of body sent (its payload, without chunked framing).
    async fn send_response_body<C>(
        &mut self,
        client: &mut C,
        upstream: &mut TcpStream,
        response: &ResponseHead,
        chunked_ok: bool,
        request_body: &mut BodyState,
    ) -> Result<(bool, u64), Failure>
    where
        C: Client,
    {
        let framing = response.common.framing.unwrap_or(Framing::Empty);
        let mut body = BodyState::new(framing);
        let decode = framing == Framing::Chunked && !chunked_ok;
        let mut start = response.len;
        let mut payload = 0;
        loop {
            // What has arrived of the body goes out after the head (the
            // first time round, in the same write).
            let available = &self.ubuf[start..];
            let taken = if decode {
                let out = &mut self.out;
                body.follow(available, &mut |data| {
                    payload += data.len() as u64;
                    out.extend_from_slice(data);
                })
            } else {
                body.follow(available, &mut |data| payload += data.len() as u64)
            }
            .map_err(|_| Failure::Close)?;
            if !decode {
                self.out.extend_from_slice(&available[..taken]);
            }
            start += taken;
            if !self.out.is_empty() {
                send(client, &self.out).await?;
                self.out.clear();
            }
            if body.done() {
                // Bytes after the response: the upstream is confused; do
                // not keep that connection.
                let clean = start == self.ubuf.len();
                self.ubuf.clear();
                return Ok((clean && framing != Framing::UntilClose, payload));
            }
            self.ubuf.clear();
            start = 0;
            reserve(&mut self.ubuf);
            let client_room = self.cbuf.len() < MAX_HEAD;
            if client_room {
                reserve(&mut self.cbuf);
            }
            let owed = (!request_body.done()).then_some(self.client_body_timeout);
            tokio::select! {
                read = upstream.read_buf(&mut self.ubuf) => match read {
                    Ok(0) if framing == Framing::UntilClose => return Ok((false, payload)),
                    // Truncated: the client must not see it as complete, so
                    // its connection closes mid-body (NOTES chapter 3, "Bad input").
                    Ok(0) | Err(_) => return Err(Failure::Close),
                    Ok(_) => {}
                },
                read = read_client(client, &mut self.cbuf, owed), if client_room => match read {
                    Ok(0) | Err(_) => return Err(Failure::Close),
                    // The response is under way: a bad (or stalled) body
                    // now can only end the connection.
                    Ok(_) => self
                        .forward_body(upstream, request_body)
                        .await
                        .map_err(|_| Failure::Close)?,
                },
            }
        }
    }

    /// A 101: check it, and forward it with whatever either side sent
    /// after its head; the hooks' tunnel carries the rest.
    async fn switch<C>(
        &mut self,
        client: &mut C,
        upstream: &mut TcpStream,
        asked: Option<&[u8]>,
        response: &ResponseHead,
        edits: forward::Edits<'_>,
    ) -> Result<(), Failure>
    where
        C: Client,
    {
        let switched = response.common.upgrade.map(|u| slice(&self.ubuf, u));
        match (asked, switched) {
            (Some(asked), Some(switched)) if asked.eq_ignore_ascii_case(switched) => {}
            (asked, switched) => {
                return Err(Failure::Answer(
                    502,
                    UpgradeRefusal::mismatch(
                        asked.unwrap_or_default(),
                        switched.unwrap_or_default(),
                    )
                    .to_string(),
                ));
            }
        }
        self.head_for_client(response, true, false, edits);
        self.out.extend_from_slice(&self.ubuf[response.len..]);
        send(client, &self.out).await?;
        upstream.write_all(&self.cbuf[self.pos..]).await?;
        self.pos = self.cbuf.len();
        Ok(())
    }
}

/// A body being followed: how much is left, or where a chunked one is.
enum BodyState {
    Remaining(u64),
    Chunked(Chunked),
    UntilClose,
}

impl BodyState {
    fn new(framing: Framing) -> Self {
        match framing {
            Framing::Empty => BodyState::Remaining(0),
            Framing::Length(n) => BodyState::Remaining(n),
            Framing::Chunked => BodyState::Chunked(Chunked::new()),
            Framing::UntilClose => BodyState::UntilClose,
        }
    }

    fn done(&self) -> bool {
        match self {
            BodyState::Remaining(n) => *n == 0,
            BodyState::Chunked(chunked) => chunked.is_done(),
            BodyState::UntilClose => false,
        }
    }

    /// How many of `bytes` belong to the body; chunk data to `data`.
    fn follow(&mut self, bytes: &[u8], data: &mut impl FnMut(&[u8])) -> Result<usize, ChunkError> {
        match self {
            BodyState::Remaining(n) => {
                let take = (bytes.len() as u64).min(*n) as usize;
                *n -= take as u64;
                data(&bytes[..take]);
                Ok(take)
            }
            BodyState::Chunked(chunked) => chunked.advance(bytes, data),
            BodyState::UntilClose => {
                data(bytes);
                Ok(bytes.len())
            }
        }
    }
}

/// Read from the client into `buf`; `Ok(0)`: it closed. While the client
/// owes a request body (`body_timeout` given), a read that brings nothing
/// for that long ends the request with a 408 — it would otherwise hold the
/// upstream connection for as long as it liked.
async fn read_client<C>(
    client: &mut C,
    buf: &mut Vec<u8>,
    body_timeout: Option<Duration>,
) -> Result<usize, Failure>
where
    C: AsyncRead + Unpin,
{
    let Some(timeout) = body_timeout else {
        return Ok(client.read_buf(buf).await?);
    };
    match tokio::time::timeout(timeout, client.read_buf(buf)).await {
        Ok(read) => Ok(read?),
        Err(_) => Err(Failure::Answer(
            408,
            format!("the client sent no request body bytes for {timeout:?}"),
        )),
    }
}

/// Resolves at `deadline`, or never.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The response timeout ran out while the client still owed body bytes:
/// the upstream may be waiting for them, so it is the client's failure,
/// not the upstream's (408, as on hyper).
fn timed_out_owing_body() -> Failure {
    Failure::Answer(
        408,
        "the client's body was still arriving when the upstream's time ran out".into(),
    )
}

/// Room for one more read: at least 4 KiB free, never past MAX_HEAD.
fn reserve(buf: &mut Vec<u8>) {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve((buf.capacity()).clamp(4096, MAX_HEAD));
    }
}

/// A 502 for an upstream that failed after the request began to leave.
fn upstream_failure(e: impl std::fmt::Display) -> Failure {
    Failure::Upstream {
        status: 502,
        reason: format!("upstream request failed: {e}"),
        unsent: false,
    }
}

/// A short plain-text answer that closes the connection.
fn error_response(status: u16, reason: &str) -> Vec<u8> {
    refusal_response(&Refusal::new(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        reason.to_owned(),
    ))
}

/// A refusal as plain text, its header with it; the connection closes.
fn refusal_response(refusal: &Refusal) -> Vec<u8> {
    let status = refusal.status;
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        refusal.reason.len() + 1
    )
    .into_bytes();
    if let Some((name, value)) = &refusal.header {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(refusal.reason.as_bytes());
    out.push(b'\n');
    out
}
