//! What the gateway's in-process tests share: a config file, the gateway
//! launched on it, a backend, and a client.

#![allow(dead_code)] // each test file uses a different subset

pub mod running;

use std::path::PathBuf;

use clap::Parser;
use serving::{Binder, Launched, ServerHandle};
use tokio::net::TcpListener;

/// A test of each case (an `async fn(engine: &str)`) on each of the
/// gateway's engines: hyper's and step 10's.
#[allow(unused_macros)]
macro_rules! on_both_engines {
    ($($case:ident),* $(,)?) => {
        mod hyper_engine {
            $(#[tokio::test]
            async fn $case() {
                super::$case("hyper").await
            })*
        }
        mod fast_engine {
            $(#[tokio::test]
            async fn $case() {
                super::$case("fast").await
            })*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_engines;

/// `config` served by `engine` (`hyper` or `fast`).
pub fn on_engine(engine: &str, config: &str) -> String {
    format!("engine = \"{engine}\"\n{config}")
}

/// The gateway on `engine`, configured by `config` (without its engine).
pub async fn gateway_on(engine: &str, config: &str) -> Launched {
    gateway_on_with(engine, config, &[]).await
}

/// The same, with more command-line flags.
pub async fn gateway_on_with(engine: &str, config: &str, flags: &[&str]) -> Launched {
    let file = write_config(&on_engine(engine, config));
    let file = file.display().to_string();
    let argv = ["step11-gateway", "--config", &file]
        .into_iter()
        .chain(flags.iter().copied());
    step11_gateway::launch(step11_gateway::Args::parse_from(argv), &Binder::ephemeral())
        .await
        .unwrap()
}

/// `text` in a file of its own, for `--config`.
pub fn write_config(text: &str) -> PathBuf {
    use std::hash::{BuildHasher, RandomState};
    let path = std::env::temp_dir().join(format!(
        "gateway-test-{}-{}.toml",
        std::process::id(),
        RandomState::new().hash_one(text)
    ));
    std::fs::write(&path, text).unwrap();
    path
}

/// The gateway's own launch code on free ports, with `--config path`
/// (none: the example).
pub async fn gateway_with_path(path: Option<&str>) -> anyhow::Result<Launched> {
    let mut argv = vec!["step11-gateway"];
    argv.extend(path.map(|path| ["--config", path]).into_iter().flatten());
    step11_gateway::launch(step11_gateway::Args::parse_from(argv), &Binder::ephemeral()).await
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub async fn backend() -> ServerHandle {
    real_server::spawn(TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap()
}

/// GET `path` from the gateway's plain listener, with `Host: host`.
pub async fn get(launched: &Launched, host: &str, path: &str) -> reqwest::Response {
    let url = format!("{}{path}", launched.get("gateway").unwrap().url());
    client().get(url).header("host", host).send().await.unwrap()
}

/// The admin listener's `/metrics`, asked with the tests' token.
pub async fn admin_metrics(launched: &Launched) -> String {
    client()
        .get(format!("{}/metrics", launched.get("admin").unwrap().url()))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A self-signed certificate for `localhost`, and its key, in files.
pub fn localhost_certificate() -> (PathBuf, PathBuf) {
    let dir = write_config("").with_extension("pki");
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

/// A backend that answers `ok` to everything and counts what it saw: its
/// URL and the count.
pub async fn counting_backend() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let count = count.clone();
            let answer = hyper::service::service_fn(move |_| {
                count.fetch_add(1, Ordering::SeqCst);
                let ok = http_body_util::Full::new(hyper::body::Bytes::from_static(b"ok"));
                async move { Ok::<_, std::convert::Infallible>(hyper::Response::new(ok)) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(io, answer));
        }
    });
    (url, seen)
}
