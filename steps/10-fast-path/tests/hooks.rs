//! The engine with hooks of a test's own, through real sockets: what the
//! hooks decide is what the client and the backend see.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::StatusCode;
use hyper::header::{HeaderName, HeaderValue};
use real_server::Echo;
use serving::{Server, ServerOptions};
use step10_fast_path::buffers::Store;
use step10_fast_path::exchange::{self, FastPath, Settings};
use step10_fast_path::forward::{Edits, Hop, Upstream};
use step10_fast_path::hooks::{Declined, Destination, Head, Hooks, Refusal};
use step10_fast_path::pool::Pool;
use tokio::net::TcpListener;

/// Two destinations, the first of which refuses connections; paths under
/// `/api` lose the prefix; `/private` is refused. Every decision is noted.
struct TwoDestinations {
    destinations: [Destination; 2],
    noted: Mutex<Vec<String>>,
    /// Set on every request, and on every response.
    request_set: [(HeaderName, HeaderValue); 1],
    response_set: [(HeaderName, HeaderValue); 1],
    /// Removed from every request.
    removed: [HeaderName; 1],
}

struct Decided {
    to: usize,
    path: Option<String>,
}

impl TwoDestinations {
    fn note(&self, what: String) {
        self.noted.lock().unwrap().push(what);
    }
}

impl Hooks for TwoDestinations {
    type Request = Decided;

    fn admit(
        &self,
        head: &Head<'_>,
        who: &Hop,
    ) -> impl Future<Output = Result<Decided, Declined>> + Send {
        let target = String::from_utf8_lossy(head.target()).into_owned();
        self.note(format!("admit {target} from {}", who.client));
        let decided = if target.starts_with("/private") {
            Err(Refusal::new(StatusCode::FORBIDDEN, "private").into())
        } else {
            Ok(Decided {
                to: 0,
                path: target
                    .strip_prefix("/api")
                    .map(|rest| rest.split('?').next().unwrap_or("/").to_owned()),
            })
        };
        std::future::ready(decided)
    }

    fn destination<'a>(&'a self, request: &'a Decided) -> &'a Destination {
        &self.destinations[request.to]
    }

    fn path<'a>(&'a self, request: &'a Decided, path: &'a str) -> &'a str {
        request.path.as_deref().unwrap_or(path)
    }

    fn failed(&self, request: &mut Decided, _cause: &str, resendable: bool) -> bool {
        self.note(format!("failed {} resendable {resendable}", request.to));
        if resendable && request.to == 0 {
            request.to = 1;
            return true;
        }
        false
    }

    fn answered(&self, request: &mut Decided, status: u16) {
        self.note(format!("answered {status} by {}", request.to));
    }

    fn request_headers<'a>(&'a self, _: &'a Decided) -> Edits<'a> {
        Edits {
            set: &self.request_set,
            remove: &self.removed,
        }
    }

    fn response_headers<'a>(&'a self, _: &'a Decided) -> Edits<'a> {
        Edits::set(&self.response_set)
    }
}

fn destination(addr: String) -> Destination {
    Destination {
        upstream: Upstream {
            authority: addr.clone(),
            base_path: String::new(),
            base_query: None,
        },
        connect_to: addr,
        pool: Pool::new(16, Duration::from_secs(60)),
    }
}

/// The engine with [`TwoDestinations`] in front of a real server.
struct Engine {
    url: String,
    path: Arc<FastPath<TwoDestinations>>,
    _server: serving::ServerHandle,
    _backend: serving::ServerHandle,
}

async fn engine() -> Engine {
    let backend = real_server::spawn(TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();
    // A port nobody listens on: bound, then let go.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = closed.local_addr().unwrap().to_string();
    drop(closed);
    let path = Arc::new(FastPath {
        settings: Settings {
            connect_timeout: Duration::from_secs(5),
            header_timeout: Duration::from_secs(10),
            response_timeout: None,
            client_body_timeout: Duration::from_secs(60),
            trusted: Default::default(),
        },
        hooks: TwoDestinations {
            destinations: [destination(dead), destination(backend.addr().to_string())],
            noted: Mutex::default(),
            request_set: [(
                HeaderName::from_static("x-request-id"),
                HeaderValue::from_static("from-the-hooks"),
            )],
            response_set: [(
                HeaderName::from_static("x-request-id"),
                HeaderValue::from_static("back-from-the-hooks"),
            )],
            removed: [HeaderName::from_static("x-secret")],
        },
        buffers: Store::default(),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let served = path.clone();
    let server = Server::new(listener, "hooks")
        .options(ServerOptions::default())
        .spawn_streams("http", move |stream, peer, stopping| {
            exchange::serve(served.clone(), stream, peer, stopping)
        })
        .unwrap();
    Engine {
        url: server.url(),
        path,
        _server: server,
        _backend: backend,
    }
}

#[tokio::test]
async fn a_request_goes_where_the_hooks_send_it() {
    let Engine { url, path, .. } = &engine().await;
    let response = reqwest::Client::new()
        .get(format!("{url}/api/items?x=1"))
        .header("x-request-id", "the-clients")
        .header("x-secret", "not for upstreams")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "back-from-the-hooks");
    let seen: Echo = response.json().await.unwrap();
    // The hooks' header went in place of the client's.
    let ids: Vec<&str> = seen
        .headers
        .iter()
        .filter(|(name, _)| name == "x-request-id")
        .map(|(_, value)| value.as_str())
        .collect();
    assert_eq!(ids, ["from-the-hooks"]);
    assert!(!seen.headers.iter().any(|(name, _)| name == "x-secret"));
    // The prefix went, the query stayed.
    assert_eq!(seen.path, "/items");
    assert_eq!(seen.query.as_deref(), Some("x=1"));
    // The dead destination failed before anything left, so the request
    // went to the other, which answered.
    assert_eq!(
        *path.hooks.noted.lock().unwrap(),
        [
            "admit /api/items?x=1 from 127.0.0.1",
            "failed 0 resendable true",
            "answered 200 by 1",
        ]
    );
}

#[tokio::test]
async fn a_refusal_is_answered_by_the_engine() {
    let Engine { url, path, .. } = &engine().await;
    let response = reqwest::get(format!("{url}/private/x")).await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(response.text().await.unwrap(), "private\n");
    assert_eq!(
        *path.hooks.noted.lock().unwrap(),
        ["admit /private/x from 127.0.0.1"]
    );
}
