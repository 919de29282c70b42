//! What consistent hashing hashes: the request URL (the seed's choice), the
//! client's IP, or a header.
//!
//! The URL keeps each resource on one upstream (good for caches); the
//! client IP keeps each client on one upstream (sticky sessions, websockets);
//! a header such as `X-User-Id` keeps each user on one, across addresses.

use std::net::IpAddr;
use std::str::FromStr;

use hyper::header::HeaderName;
use proxy_core::HeadView;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    Url,
    ClientIp,
    Header(HeaderName),
}

impl FromStr for HashKey {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        match raw {
            "url" => Ok(HashKey::Url),
            "client-ip" => Ok(HashKey::ClientIp),
            _ => match raw.strip_prefix("header:") {
                Some(name) => HeaderName::from_bytes(name.as_bytes())
                    .map(HashKey::Header)
                    .map_err(|_| format!("{name:?} is not a header name")),
                None => Err(format!("{raw:?}: expected url, client-ip or header:NAME")),
            },
        }
    }
}

impl HashKey {
    /// The key bytes of one request, `head`, forwarded with `path` (the
    /// URL's path as it goes upstream, on either engine), from `client`.
    pub fn of(&self, head: &impl HeadView, path: &[u8], client: IpAddr) -> Vec<u8> {
        match self {
            HashKey::Url => {
                let mut url = path.to_vec();
                if let Some(query) = head.query() {
                    url.push(b'?');
                    url.extend_from_slice(query);
                }
                url
            }
            HashKey::ClientIp => match client {
                IpAddr::V4(ip) => ip.octets().to_vec(),
                IpAddr::V6(ip) => ip.octets().to_vec(),
            },
            HashKey::Header(name) => head.header(name).map_or_else(Vec::new, <[u8]>::to_vec),
        }
    }
}
