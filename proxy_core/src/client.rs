//! Who is on the other end of a connection.
//!
//! Every proxy here needs the client's address: to append it to
//! `X-Forwarded-For`, to key a rate limit, to check an allow list, to pick
//! an upstream by hashing it. The accept loop knows it once per connection,
//! so it is captured once, with its header form made once too.

use std::net::SocketAddr;

use hyper::header::HeaderValue;

use crate::headers::ip_header_value;

/// The connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ClientConn {
    pub peer: SocketAddr,
    /// `"http"` or `"https"`.
    pub scheme: &'static str,
    /// The peer's IP, formatted once for all the connection's requests.
    ip: HeaderValue,
}

impl ClientConn {
    pub fn new(peer: SocketAddr, scheme: &'static str) -> Self {
        Self {
            peer,
            scheme,
            ip: ip_header_value(peer.ip()),
        }
    }

    /// The peer's IP as a header value (formatted once per connection).
    pub fn ip(&self) -> &HeaderValue {
        &self.ip
    }
}
