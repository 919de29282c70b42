//! Where a proxy built on this engine decides: its hooks.
//!
//! Step 10 is one fixed behaviour: every request goes to one upstream. The
//! gateway (step 11) runs the same engine with decisions of its own — which
//! service and which upstream, whether to admit the request at all, where
//! it goes when an upstream fails, what to record — so the engine asks a
//! [`Hooks`] at each of those points:
//!
//! ```text
//! head parsed ──▶ admit ──▶ destination (+ path) ──▶ connect ─┬─▶ response head ──▶ answered
//!                   │                                         └─▶ failed ──▶ another destination, or 502
//!                   └─▶ a refusal, answered here
//! ```
//!
//! The engine keeps what is HTTP's and the connection's: framing, the
//! forwarding rules, the pools, resending on a pooled connection found
//! dead. The hooks get what is policy's, and the request's own state
//! ([`Hooks::Request`]) lives as long as the exchange: dropping it is the
//! end of the request (a balancer's in-flight count ends there).
//!
//! Step 10's own hooks, [`Fixed`], decide nothing: one destination, every
//! request admitted. The engine is generic over its hooks, so the compiler
//! makes one copy of it for `Fixed` in which the questions are answered at
//! compile time and leave no trace (bench/README.md, "Hooks").
//!
//! Left out on purpose: resending a request whose upstream failed after taking it —
//! only a failed connect moves a request to another destination, since
//! nothing of it left.

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use hyper::header::HeaderName;
use proxy_core::HeadView;
pub use proxy_core::Refusal;

use tokio::net::TcpStream;

use crate::exchange::Client;
use crate::forward::{self, Edits, Hop, Upstream};
use crate::head::{HeaderAt, RequestHead, slice};
use crate::pool::Pool;

/// Where requests are sent: the upstream as the outgoing head names it,
/// where to connect, and the idle connections to it.
pub struct Destination {
    pub upstream: Upstream,
    /// `host:port`.
    pub connect_to: String,
    pub pool: Pool,
}

impl Destination {
    /// Requests for `url` (`http://host[:port][/base][?query]`), with idle
    /// connections kept in `pool`; none if it names no host.
    pub fn for_url(url: &hyper::Uri, pool: Pool) -> Option<Self> {
        let authority = url.authority()?.as_str().to_owned();
        let connect_to = if url.port().is_some() {
            authority.clone()
        } else {
            format!("{authority}:80")
        };
        let base_path = match url.path() {
            "/" => String::new(),
            path => path.to_owned(),
        };
        Some(Self {
            upstream: Upstream {
                authority,
                base_path,
                base_query: url.query().map(str::to_owned),
            },
            connect_to,
            pool,
        })
    }
}

/// A request head, as the hooks see it: read-only views into the
/// connection's buffer (and a [`HeadView`], so a policy written over that
/// reads it as it reads hyper's).
pub struct Head<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) head: &'a RequestHead,
    pub(crate) headers: &'a [HeaderAt],
}

impl<'a> Head<'a> {
    /// The request target as received (origin form, or absolute form).
    pub fn target(&self) -> &'a [u8] {
        self.head.target(self.buf)
    }

    /// The `Host` header, if there was one.
    pub fn host(&self) -> Option<&'a [u8]> {
        self.head.host.map(|host| slice(self.buf, host))
    }
}

impl HeadView for Head<'_> {
    fn method(&self) -> &[u8] {
        self.head.method(self.buf)
    }

    fn path(&self) -> &[u8] {
        forward::origin(self.target()).0
    }

    fn query(&self) -> Option<&[u8]> {
        forward::origin(self.target()).1
    }

    fn authority(&self) -> Option<&[u8]> {
        let target = self.target();
        match target.windows(3).position(|w| w == b"://") {
            // Absolute form: the authority runs to the path, query or end.
            Some(at) => {
                let rest = &target[at + 3..];
                let end = rest
                    .iter()
                    .position(|b| *b == b'/' || *b == b'?')
                    .unwrap_or(rest.len());
                Some(&rest[..end])
            }
            None => self.host(),
        }
    }

    fn header(&self, name: &HeaderName) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| {
                h.name(self.buf)
                    .eq_ignore_ascii_case(name.as_str().as_bytes())
            })
            .map(|h| h.value(self.buf))
    }
}

/// The decisions a proxy on this engine makes. Every method but
/// [`admit`](Self::admit) and [`destination`](Self::destination) has a
/// default that decides nothing.
pub trait Hooks: Send + Sync + 'static {
    /// What the hooks hold for one request, from admission to its end.
    type Request: Send;

    /// A request head is in: admit it, refuse it with an answer, or leave
    /// it to the server behind the engine. `who`: the peer and the client
    /// it speaks for.
    fn admit(
        &self,
        head: &Head<'_>,
        who: &Hop,
    ) -> impl Future<Output = Result<Self::Request, Declined>> + Send;

    /// Where the request goes (now: a failure may change it).
    fn destination<'a>(&'a self, request: &'a Self::Request) -> &'a Destination;

    /// The path to send instead of the one received (`path`, origin form,
    /// without the query), joined to the destination's base path.
    fn path<'a>(&'a self, _request: &'a Self::Request, path: &'a str) -> &'a str {
        path
    }

    /// The destination failed the request before its response began
    /// (`cause`: why). `resendable`: none of the request left, so it may
    /// go elsewhere — `true` sends it again, to
    /// [`destination`](Self::destination)'s new answer.
    fn failed(&self, _request: &mut Self::Request, _cause: &str, _resendable: bool) -> bool {
        false
    }

    /// The client is answered with `status`: the destination's final
    /// response head, or the engine's 502 or 504 when the destination
    /// failed (after [`failed`](Self::failed)).
    fn answered(&self, _request: &mut Self::Request, _status: u16) {}

    /// The client failed the request before its answer began — its body
    /// stalled or was malformed (answered `status`), or it went away
    /// (`None`). Nothing to hold against the destination.
    fn client_failed(&self, _request: &mut Self::Request, _status: Option<u16>) {}

    /// The response went out whole, `body_bytes` of body (its payload,
    /// without chunked framing).
    fn finished(&self, _request: &mut Self::Request, _body_bytes: u64) {}

    /// This request's response timeout (504 past it, or 408 while its
    /// body is still owed): the engine's `setting`, unless the hooks say.
    fn response_timeout(
        &self,
        _request: &Self::Request,
        setting: Option<Duration>,
    ) -> Option<Duration> {
        setting
    }

    /// This request's client body timeout (408 past it): the engine's
    /// `setting`, unless the hooks say.
    fn client_body_timeout(&self, _request: &Self::Request, setting: Duration) -> Duration {
        setting
    }

    /// Carry a connection both sides switched to `protocol` (after a 101)
    /// until it ends. By default, bytes are copied both ways until either
    /// side closes.
    fn tunnel<'a, C: Client>(
        &'a self,
        client: &'a mut C,
        mut upstream: TcpStream,
        _protocol: &'a [u8],
        _peer: IpAddr,
    ) -> impl Future<Output = ()> + Send + 'a {
        async move {
            let _ = tokio::io::copy_bidirectional(client, &mut upstream).await;
        }
    }

    /// How the client's headers are edited on the way up: headers set in
    /// place of any under those names (a request id), headers removed.
    fn request_headers<'a>(&'a self, _request: &'a Self::Request) -> Edits<'a> {
        Edits::default()
    }

    /// How the upstream's headers are edited on the way to the client.
    fn response_headers<'a>(&'a self, _request: &'a Self::Request) -> Edits<'a> {
        Edits::default()
    }
}

/// Why the hooks did not admit a request.
#[derive(Debug)]
pub enum Declined {
    /// Answer this, then close.
    Refused(Refusal),
    /// Not this engine's to serve: the connection, this request first,
    /// goes to the server behind the engine ([`Client::hand_over`]; the
    /// gateway's hyper, for a service whose upstreams speak HTTP/2 or TLS).
    HandOver,
}

impl From<Refusal> for Declined {
    fn from(refusal: Refusal) -> Self {
        Declined::Refused(refusal)
    }
}

/// Step 10's hooks: every request to one destination.
pub struct Fixed(pub Destination);

impl Hooks for Fixed {
    type Request = ();

    fn admit(&self, _: &Head<'_>, _: &Hop) -> impl Future<Output = Result<(), Declined>> + Send {
        std::future::ready(Ok(()))
    }

    fn destination<'a>(&'a self, _: &'a ()) -> &'a Destination {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::parse_request;

    /// Step 10's view of `raw` and hyper's of the same request answer alike.
    fn same_answers(raw: &str, request: hyper::Request<()>) {
        let mut headers = Vec::new();
        let head = parse_request(raw.as_bytes(), &mut headers)
            .unwrap()
            .unwrap();
        let ours = Head {
            buf: raw.as_bytes(),
            head: &head,
            headers: &headers,
        };
        let (hypers, ()) = request.into_parts();
        assert_eq!(ours.method(), hypers.method());
        assert_eq!(ours.path(), hypers.path(), "{raw}");
        assert_eq!(ours.query(), hypers.query(), "{raw}");
        assert_eq!(ours.authority(), hypers.authority(), "{raw}");
        let key = HeaderName::from_static("x-key");
        assert_eq!(ours.header(&key), hypers.header(&key));
        let absent = HeaderName::from_static("x-absent");
        assert_eq!(ours.header(&absent), None);
    }

    #[test]
    fn the_engines_views_of_a_head_agree() {
        same_answers(
            "POST /api/x?y=1 HTTP/1.1\r\nHost: h.example:81\r\nX-Key: one\r\nx-key: two\r\n\r\n",
            hyper::Request::post("/api/x?y=1")
                .header("host", "h.example:81")
                .header("x-key", "one")
                .header("x-key", "two")
                .body(())
                .unwrap(),
        );
        same_answers(
            "GET http://target.example:8080/a/b?c HTTP/1.1\r\nHost: other\r\n\r\n",
            hyper::Request::get("http://target.example:8080/a/b?c")
                .header("host", "other")
                .body(())
                .unwrap(),
        );
        same_answers(
            "GET http://target.example HTTP/1.1\r\nHost: target.example\r\n\r\n",
            hyper::Request::get("http://target.example")
                .header("host", "target.example")
                .body(())
                .unwrap(),
        );
    }
}
