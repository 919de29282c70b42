//! What the cache's tests need: an origin whose answers each test writes
//! ([`Origin`]), recording every request it was sent, and the real
//! `step09-cache` binary in front of it ([`CacheProcess`]).

#![allow(dead_code)] // each test file uses a different subset

use std::convert::Infallible;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response};
use serving::{Server, ServerHandle};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A request the origin was sent.
#[derive(Debug, Clone)]
pub struct Asked {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
}

impl Asked {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An origin's answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send no length (chunked).
    pub chunked: bool,
    /// Send the first half of the body, then wait until this turns true.
    pub hold: Option<watch::Receiver<bool>>,
}

impl Answer {
    pub fn ok(body: &str, headers: &[(&str, &str)]) -> Self {
        Self::status(200, body, headers)
    }

    pub fn status(status: u16, body: &str, headers: &[(&str, &str)]) -> Self {
        Self {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.as_bytes().to_vec(),
            chunked: false,
            hold: None,
        }
    }
}

type Script = dyn Fn(&Asked, usize) -> Answer + Send + Sync;

/// An origin answering each request as `script` says (given the request
/// and how many the origin had been sent before it).
pub struct Origin {
    pub url: String,
    asked: Arc<Mutex<Vec<Asked>>>,
    _server: ServerHandle,
}

impl Origin {
    pub async fn start(script: impl Fn(&Asked, usize) -> Answer + Send + Sync + 'static) -> Self {
        let script: Arc<Script> = Arc::new(script);
        let asked = Arc::new(Mutex::new(Vec::new()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let recorded = asked.clone();
        let server = Server::new(listener, "origin")
            .spawn(move |_| {
                let (script, recorded) = (script.clone(), recorded.clone());
                service_fn(move |req: Request<Incoming>| {
                    let request = Asked {
                        method: req.method().to_string(),
                        path: req.uri().path_and_query().unwrap().to_string(),
                        headers: req.headers().clone(),
                    };
                    let before = {
                        let mut asked = recorded.lock().unwrap();
                        asked.push(request.clone());
                        asked.len() - 1
                    };
                    let answer = script(&request, before);
                    async move { Ok::<_, Infallible>(respond(answer)) }
                })
            })
            .unwrap();
        Self {
            url: server.url(),
            asked,
            _server: server,
        }
    }

    /// Every request so far.
    pub fn asked(&self) -> Vec<Asked> {
        self.asked.lock().unwrap().clone()
    }

    /// How many requests it was sent.
    pub fn count(&self) -> usize {
        self.asked.lock().unwrap().len()
    }
}

fn respond(answer: Answer) -> Response<http_body_util::combinators::BoxBody<Bytes, Infallible>> {
    let length = answer.body.len();
    let body = Bytes::from(answer.body);
    let body = match answer.hold {
        None if !answer.chunked => http_body_util::Full::new(body).boxed(),
        hold => {
            let (first, rest) = (body.slice(..length / 2), body.slice(length / 2..));
            let frames = stream::unfold(
                (Some(first), Some(rest), hold),
                |(first, rest, mut hold)| async move {
                    if let Some(first) = first {
                        return Some((Ok(Frame::data(first)), (None, rest, hold)));
                    }
                    let rest = rest?;
                    if let Some(hold) = hold.as_mut() {
                        let _ = hold.wait_for(|released| *released).await;
                    }
                    Some((Ok(Frame::data(rest)), (None, None, hold)))
                },
            );
            StreamBody::new(frames).boxed()
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = hyper::StatusCode::from_u16(answer.status).unwrap();
    for (name, value) in answer.headers {
        response.headers_mut().append(
            hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    response
}

/// The `step09-cache` binary in front of an origin, killed when dropped.
pub struct CacheProcess {
    child: Child,
    pub url: String,
}

impl CacheProcess {
    /// `step09-cache --upstream ORIGIN` (no retries: each request the
    /// origin sees is one the cache decided to send) with `extra` flags.
    pub fn start(origin: &Origin, extra: &[&str]) -> Self {
        Self::start_for(&origin.url, extra)
    }

    /// The same in front of the origin at `url`.
    pub fn start_for(url: &str, extra: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_step09-cache"));
        command
            .args(["--listen", "127.0.0.1:0", "--upstream", url])
            .args(["--retries", "0"])
            .args(extra);
        let (child, urls, _log) = real_server::start_binary_logged(command, &["cache"]).unwrap();
        Self {
            child,
            url: urls[0].clone(),
        }
    }

    /// GET `path` with `headers`.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Got {
        self.send("GET", path, headers).await
    }

    pub async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Got {
        let mut request = client().request(method.parse().unwrap(), format!("{}{path}", self.url));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap().to_vec();
        let body = String::from_utf8_lossy(&bytes).into_owned();
        Got {
            status,
            headers,
            body,
            bytes,
        }
    }
}

impl Drop for CacheProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An answer the cache gave.
#[derive(Debug)]
pub struct Got {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    /// The body as text (lossily).
    pub body: String,
    pub bytes: Vec<u8>,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Its `Cache-Status` (the last member: this cache's).
    pub fn cache_status(&self) -> &str {
        self.headers
            .get_all("cache-status")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn age(&self) -> Option<u64> {
        self.header("age").and_then(|age| age.parse().ok())
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}
