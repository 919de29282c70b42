//! The defaults against hostile clients, each attack replayed over real
//! sockets against a server with a trivial service.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::Response;
use hyper::body::Frame;
use hyper::service::service_fn;
use serving::{Server, ServerHandle, ServerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// A server answering "ok" to everything, with `options`.
async fn server(options: ServerOptions) -> ServerHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Server::new(listener, "test")
        .options(options)
        .spawn(|_peer| {
            service_fn(|_req| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
            })
        })
        .unwrap()
}

/// Wait (up to `limit`) for the server to close `stream`; how long it took.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

async fn served(addr: SocketAddr) -> bool {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(REQUEST).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    answer.starts_with(b"HTTP/1.1 200")
}

fn options() -> ServerOptions {
    ServerOptions {
        header_read_timeout: Some(Duration::from_secs(1)),
        ..ServerOptions::default()
    }
}

#[tokio::test]
async fn the_header_timeout_counts_from_accept_whatever_the_client_sent() {
    let server = server(options()).await;
    // Nothing at all; one byte (hyper is still deciding between HTTP/1 and
    // HTTP/2); half of the HTTP/2 preface; a complete HTTP/2 preface with
    // no request after it.
    for sent in [
        &b""[..],
        b"P",
        b"PRI * HTTP/2.0\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        stream.write_all(sent).await.unwrap();
        let took = closed_within(&mut stream, Duration::from_secs(8)).await;
        let took = took.unwrap_or_else(|| panic!("{sent:?}: still open after 8 s"));
        assert!(took >= Duration::from_millis(800), "{sent:?}: {took:?}");
    }
    assert!(served(server.addr()).await, "and a real client is served");
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let server = server(ServerOptions {
        header_read_timeout: Some(Duration::from_secs(30)),
        max_connections_per_address: 2,
        ..ServerOptions::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(server.addr()).await.unwrap());
    }
    // Both are accepted before the third arrives: the server closes only a
    // connection beyond the share.
    let mut third = TcpStream::connect(server.addr()).await.unwrap();
    assert!(
        closed_within(&mut third, Duration::from_secs(5))
            .await
            .is_some(),
        "a third silent connection from the same address stayed open"
    );
    drop(held.pop());
    // The freed place is taken by the next connection (it may take the
    // server a moment to notice the close).
    let started = Instant::now();
    while !served(server.addr()).await {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never served again"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn at_the_global_cap_new_connections_wait_for_a_free_place() {
    let server = server(ServerOptions {
        header_read_timeout: Some(Duration::from_secs(30)),
        max_connections: 2,
        ..ServerOptions::default()
    })
    .await;
    let holders = [
        TcpStream::connect(server.addr()).await.unwrap(),
        TcpStream::connect(server.addr()).await.unwrap(),
    ];
    let mut waiting = TcpStream::connect(server.addr()).await.unwrap();
    waiting.write_all(REQUEST).await.unwrap();
    let mut answer = [0u8; 12];
    // Not accepted while the two hold their places (a short look: an
    // answer now would be the bug).
    let early = tokio::time::timeout(Duration::from_millis(500), waiting.read(&mut answer)).await;
    assert!(early.is_err(), "answered at the cap: {early:?}");
    drop(holders);
    waiting.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_its_response_dropped() {
    // A response that never ends, and a signal when the server drops it.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = ServerOptions {
        send_timeout: Some(Duration::from_secs(1)),
        ..ServerOptions::default()
    };
    let (server, mut dropped) = endless(options, listener);
    // A client with a small receive window that never reads.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut client = socket.connect(server.addr()).await.unwrap();
    client.write_all(REQUEST).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), dropped.recv())
        .await
        .expect("the response was still being held 10 s after the client stopped reading");
}

struct DropSignal(mpsc::Sender<()>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.try_send(());
    }
}

/// A server whose every response is an endless body; `dropped` hears of
/// each one the server lets go.
fn endless(options: ServerOptions, listener: TcpListener) -> (ServerHandle, mpsc::Receiver<()>) {
    let (dropped_tx, dropped) = mpsc::channel::<()>(1024);
    let server = Server::new(listener, "test")
        .options(options)
        .spawn(move |_peer| {
            let dropped_tx = dropped_tx.clone();
            service_fn(move |_req| {
                let guard = DropSignal(dropped_tx.clone());
                let chunks = futures_util::stream::repeat_with(move || {
                    let _ = &guard;
                    Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'x'; 16 * 1024])))
                });
                async move { Ok::<_, Infallible>(Response::new(StreamBody::new(chunks).boxed())) }
            })
        })
        .unwrap();
    (server, dropped)
}

/// An HTTP/2 client that grants no flow-control window, ever; and its
/// connection, which ends when the server closes it.
async fn h2_without_window(
    addr: SocketAddr,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, Bytes>(stream)
        .await
        .unwrap();
    // It answers pings and settings, as a live client does.
    let connection = tokio::spawn(connection);
    (sender.ready().await.unwrap(), connection)
}

fn h2_get() -> hyper::Request<()> {
    hyper::Request::get("http://x/").body(()).unwrap()
}

/// The attack: streams whose responses the client never lets through.
/// Before, they were held for as long as the client stayed (each one an
/// upstream connection, in a proxy); the send timeout never saw them,
/// because no write ever blocked.
#[tokio::test]
async fn http2_streams_the_client_never_reads_are_cut_off() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = ServerOptions {
        send_timeout: Some(Duration::from_secs(1)),
        ..ServerOptions::default()
    };
    let (server, mut dropped) = endless(options, listener);
    let (mut client, _connection) = h2_without_window(server.addr()).await;
    let mut responses = Vec::new();
    for _ in 0..10 {
        let (response, _) = client.send_request(h2_get(), true).unwrap();
        responses.push(response);
        client = client.ready().await.unwrap();
    }
    for _ in 0..10 {
        tokio::time::timeout(Duration::from_secs(10), dropped.recv())
            .await
            .expect("every stalled response was let go within 10 s");
    }
}

/// A client that reads slowly but steadily is not a stalled one, however
/// large the chunks its answer comes in: it is never asked to take more than
/// 16 KiB within the send timeout.
#[tokio::test]
async fn a_slow_http2_reader_of_large_chunks_is_served_to_the_end() {
    const CHUNK: usize = 160 * 1024;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener, "test")
        .options(ServerOptions {
            send_timeout: Some(Duration::from_secs(1)),
            ..ServerOptions::default()
        })
        .spawn(|_peer| {
            service_fn(|_req| async {
                let chunks =
                    futures_util::stream::iter([b'a', b'b'].map(|byte| {
                        Ok::<_, Infallible>(Frame::data(Bytes::from(vec![byte; CHUNK])))
                    }));
                Ok::<_, Infallible>(Response::new(StreamBody::new(chunks)))
            })
        })
        .unwrap();
    let stream = TcpStream::connect(server.addr()).await.unwrap();
    let (sender, connection) = h2::client::Builder::new()
        .initial_window_size(16 * 1024)
        .handshake::<_, Bytes>(stream)
        .await
        .unwrap();
    tokio::spawn(connection);
    let (response, _) = sender
        .ready()
        .await
        .unwrap()
        .send_request(h2_get(), true)
        .unwrap();
    let mut body = response.await.unwrap().into_body();
    let mut received = 0;
    // 16 KiB every 150 ms: each 160 KiB chunk takes 1.5 s, longer than the
    // send timeout.
    while let Some(data) = body.data().await {
        let data = data.expect("the stream is not cut off");
        received += data.len();
        tokio::time::sleep(Duration::from_millis(150)).await;
        body.flow_control().release_capacity(data.len()).unwrap();
    }
    assert_eq!(received, 2 * CHUNK);
}

/// One stream's body that nobody reads does not hold up the bodies of the
/// connection's other streams.
#[tokio::test]
async fn an_unread_http2_upload_leaves_room_for_the_other_streams() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (unread_tx, mut unread) = mpsc::unbounded_channel();
    let server = Server::new(listener, "test")
        .spawn(move |_peer| {
            let unread_tx = unread_tx.clone();
            service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let unread_tx = unread_tx.clone();
                async move {
                    if req.uri().path() == "/unread" {
                        // Kept, never read: as an upstream that stopped
                        // taking the body would leave it.
                        unread_tx.send(req).unwrap();
                        return Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())));
                    }
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    Ok(Response::new(Full::new(body)))
                }
            })
        })
        .unwrap();
    let stream = TcpStream::connect(server.addr()).await.unwrap();
    let (sender, connection) = h2::client::handshake(stream).await.unwrap();
    tokio::spawn(connection);
    let mut sender = sender.ready().await.unwrap();
    let post = |path: &str| {
        hyper::Request::post(format!("http://x{path}"))
            .body(())
            .unwrap()
    };
    let (_, mut upload) = sender.send_request(post("/unread"), false).unwrap();
    upload
        .send_data(Bytes::from(vec![0u8; 4 << 20]), false)
        .unwrap();
    let _kept = unread.recv().await.unwrap();
    let mut sender = sender.ready().await.unwrap();
    let (response, mut small) = sender.send_request(post("/echo"), false).unwrap();
    small.send_data(Bytes::from_static(b"hello"), true).unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        let mut body = response.await.unwrap().into_body();
        body.data().await.unwrap().unwrap()
    })
    .await
    .expect("the small body got through beside the unread one");
    assert_eq!(answer, "hello");
}

/// However an address multiplexes, its streams count against its share:
/// past it, a stream is answered 503 at once — and another address is
/// still served.
#[tokio::test]
async fn http2_streams_take_places_under_the_per_address_cap() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = ServerOptions {
        max_connections: 40,
        max_connections_per_address: 8,
        ..ServerOptions::default()
    };
    let (server, _dropped) = endless(options, listener);
    let (mut client, _connection) = h2_without_window(server.addr()).await;
    let (mut statuses, mut open) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        let (response, _) = client.send_request(h2_get(), true).unwrap();
        let response = tokio::time::timeout(Duration::from_secs(10), response)
            .await
            .expect("a response head")
            .unwrap();
        statuses.push(response.status().as_u16());
        // Kept: a dropped response would cancel its stream.
        open.push(response);
        client = client.ready().await.unwrap();
    }
    // One place is the connection's own; seven streams fit beside it.
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 200, 503, 503, 503]);
    let other = TcpSocket::new_v4().unwrap();
    other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = other.connect(server.addr()).await.unwrap();
    other.write_all(REQUEST).await.unwrap();
    let mut head = [0u8; 12];
    other.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
}

/// A panic while serving one request ends that request's connection, and
/// nothing else: the process (and with it every other client) goes on.
#[tokio::test]
async fn a_panic_while_serving_one_connection_ends_only_that_one() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener, "test")
        .spawn(|_peer| {
            service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                assert_ne!(req.uri().path(), "/panic", "a bug, reached by a request");
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
            })
        })
        .unwrap();
    // Another client, mid-way: its connection is open when the panic comes.
    let mut other = TcpStream::connect(server.addr()).await.unwrap();
    let mut panicking = TcpStream::connect(server.addr()).await.unwrap();
    panicking
        .write_all(b"GET /panic HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut panicking, Duration::from_secs(10))
            .await
            .is_some()
    );
    other.write_all(REQUEST).await.unwrap();
    let mut answer = Vec::new();
    other.read_to_end(&mut answer).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    assert!(served(server.addr()).await);
}
