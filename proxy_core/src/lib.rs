//! `proxy_core`: the words every proxy in the workbench shares.
//!
//! Seven chapters build seven proxies, and the libraries under them
//! (`middleware`, `upstream_pool`) handle the same things:
//! a response body, a refusal written as text, the headers that belong to
//! one hop, the client on the other end, a way to send a request upstream.
//! They are defined here, once, below every chapter, so a library never
//! reaches up into a chapter to borrow a type and a chapter can change
//! without rippling through the libraries.
//!
//! - [`body`]: [`ProxyBody`], [`text_response`], [`complete_response`],
//!   [`observe`], [`error_chain`];
//! - [`headers`]: the hop-by-hop rules and `X-Forwarded-For`;
//! - [`client`]: [`ClientConn`], the connection a request came in on, and
//!   [`TrustedProxies`], whose forwarded client addresses are believed;
//! - [`client_body`]: the client's request body, failing when it breaks
//!   off or stalls, and the flag that says whose failure that was;
//! - [`transport`]: [`Transport`], Go's `RoundTripper`, and its error;
//! - [`view`]: [`HeadView`], a request head as a policy reads it on either
//!   engine, and [`Refusal`], a policy's answer.
//!
//! Left out on purpose: anything with behaviour of its own (serving,
//! pooling, picking, the proxies themselves). This crate is vocabulary.

pub mod body;
pub mod client;
pub mod client_body;
pub mod headers;
pub mod refusal;
pub mod target;
pub mod transport;
pub mod view;

pub use body::{
    BodyError, IntoRequestBody, Observed, OnFrame, ProxyBody, RequestBody, complete_response,
    error_chain, observe, text_response,
};
pub use client::{ClientConn, TrustedProxies};
pub use client_body::{
    ClientBody, ClientBodyError, ClientBodyFailed, DEFAULT_CLIENT_BODY_TIMEOUT, body_timeout,
};
pub use transport::{RoundTripError, SentBytes, Transport, TransportError};
pub use view::{HeadView, Refusal};
