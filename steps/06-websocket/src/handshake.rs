//! A websocket conversation with every handshake byte shown: the client
//! behind `cargo run -- --websocket URL` and NOTES chapter 6.
//!
//! The opening handshake is plain HTTP/1.1, so it is written and read here
//! by hand — the request a browser sends, the 101 that comes back, and the
//! check that makes the 101 trustworthy: `Sec-WebSocket-Accept` must be
//! base64(SHA-1(key + the RFC's GUID)), which only a server that understood
//! the websocket request can produce (a cache or a confused HTTP server
//! replaying an old answer cannot). After that, tokio-tungstenite speaks
//! frames on the same socket, and each frame is printed as one line.
//!
//! Left out on purpose: `wss://` (step 07's transcripts use curl for TLS),
//! extensions and subprotocols.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Message, Role};

/// The largest response head we wait for.
const MAX_HEAD: usize = 16 * 1024;

/// Open `url` (ws://host:port/path), send each of `messages` and wait for
/// its echo, then close; print everything to `out`. With `quiet`, stay
/// silent that long first and show whatever the other side does meanwhile
/// (an idle timeout closing the connection, say).
pub async fn talk(
    url: &str,
    messages: &[String],
    quiet: Option<Duration>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let limit = Duration::from_secs(10) + quiet.unwrap_or_default();
    tokio::time::timeout(limit, conversation(url, messages, quiet, out))
        .await
        .with_context(|| format!("the conversation did not finish within {limit:?}"))?
}

async fn conversation(
    url: &str,
    messages: &[String],
    quiet: Option<Duration>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let rest = url
        .strip_prefix("ws://")
        .with_context(|| format!("{url}: only ws:// URLs are spoken here"))?;
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    // ws:// without a port means port 80, as http:// does.
    let address = if authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.contains(']'))
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let mut stream = TcpStream::connect(&address)
        .await
        .with_context(|| format!("cannot connect to {address}"))?;

    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
    );
    show(out, "> ", &request)?;
    stream.write_all(request.as_bytes()).await?;

    // Read up to the blank line; what follows it is already websocket frames.
    let mut received = Vec::new();
    let head_end = loop {
        if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if received.len() > MAX_HEAD {
            bail!("no end of the response head within {MAX_HEAD} bytes");
        }
        let mut chunk = [0; 1024];
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            bail!("the connection closed before the response head ended");
        }
        received.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    show(out, "< ", &head)?;
    if !head.starts_with("HTTP/1.1 101") {
        bail!("no upgrade: {}", head.lines().next().unwrap_or(""));
    }
    let accept = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-accept")
                .then(|| value.trim().to_owned())
        })
        .context("the 101 has no Sec-WebSocket-Accept")?;
    let expected = derive_accept_key(key.as_bytes());
    if accept != expected {
        bail!("Sec-WebSocket-Accept is {accept}, but the key gives {expected}");
    }
    writeln!(
        out,
        "accept checks out: base64(sha1(key + GUID)) = {accept}"
    )?;

    let leftover = received[head_end..].to_vec();
    let mut ws = WebSocketStream::from_partially_read(stream, leftover, Role::Client, None).await;
    for message in messages {
        writeln!(out, "> text: {message}")?;
        ws.send(Message::text(message.as_str())).await?;
        loop {
            let frame = ws.next().await.context("closed before the echo came")??;
            let done = matches!(&frame, Message::Text(t) if t.as_str() == message);
            describe(out, "< ", &frame)?;
            if done {
                break;
            }
        }
    }
    if let Some(quiet) = quiet {
        writeln!(out, "(quiet for up to {quiet:?})")?;
        let closed = tokio::time::timeout(quiet, async {
            while let Some(frame) = ws.next().await {
                let frame = frame?;
                describe(out, "< ", &frame)?;
                if frame.is_close() {
                    // tungstenite has already sent our answering close.
                    return Ok::<_, anyhow::Error>(true);
                }
            }
            Ok(true)
        })
        .await;
        if let Ok(closed) = closed
            && closed?
        {
            return Ok(());
        }
    }
    let bye = Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }));
    describe(out, "> ", &bye)?;
    ws.send(bye).await?;
    while let Some(frame) = ws.next().await {
        let frame = frame?;
        describe(out, "< ", &frame)?;
        if frame.is_close() {
            break;
        }
    }
    Ok(())
}

/// Print an HTTP head line by line, CRLFs as line ends.
fn show(out: &mut impl Write, prefix: &str, head: &str) -> std::io::Result<()> {
    for line in head.trim_end_matches("\r\n").split("\r\n") {
        writeln!(out, "{prefix}{line}")?;
    }
    writeln!(out, "{}", prefix.trim_end())
}

fn describe(out: &mut impl Write, prefix: &str, frame: &Message) -> std::io::Result<()> {
    match frame {
        Message::Text(text) => writeln!(out, "{prefix}text: {}", text.as_str()),
        Message::Binary(bytes) => writeln!(out, "{prefix}binary: {} bytes", bytes.len()),
        Message::Ping(_) => writeln!(out, "{prefix}ping"),
        Message::Pong(_) => writeln!(out, "{prefix}pong"),
        Message::Close(Some(close)) => writeln!(
            out,
            "{prefix}close: {} {}",
            u16::from(close.code),
            close.reason.as_str()
        ),
        Message::Close(None) => writeln!(out, "{prefix}close"),
        Message::Frame(_) => writeln!(out, "{prefix}raw frame"),
    }
}
