//! The real `step11-gateway` binary, started on a config file with its
//! listeners on free ports and an admin API behind [`TOKEN`].

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};

use real_server::Log;

use super::{client, on_engine};

/// The admin token every config here is given.
pub const TOKEN: &str = "test-token";

/// A running `step11-gateway --config FILE`, killed when dropped.
pub struct Gateway {
    /// `hyper` or `fast`: the plain listener's engine.
    pub engine: &'static str,
    pub child: Child,
    pub url: String,
    pub admin: String,
    log: Log,
    file: PathBuf,
}

impl Gateway {
    /// Start the binary on `config` (its listeners on port 0, an admin API
    /// behind TOKEN are added), with `extra` flags.
    pub fn start(services: &str, extra: &[&str]) -> Self {
        Self::start_on("hyper", services, extra)
    }

    /// [`Self::start`] with the plain listener on `engine`.
    pub fn start_on(engine: &'static str, services: &str, extra: &[&str]) -> Self {
        let file = config_file();
        std::fs::write(&file, on_engine(engine, &config(services))).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_step11-gateway"));
        command.arg("--config").arg(&file).args(extra);
        let (child, urls, log) =
            real_server::start_binary_logged(command, &["gateway", "admin"]).unwrap();
        let [url, admin] = <[String; 2]>::try_from(urls).unwrap();
        Self {
            engine,
            child,
            url,
            admin,
            log,
            file,
        }
    }

    pub fn rewrite(&self, services: &str) {
        std::fs::write(&self.file, on_engine(self.engine, &config(services))).unwrap();
    }

    pub async fn post(&self, path: &str) -> reqwest::Response {
        client()
            .post(format!("{}{path}", self.admin))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        client()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    /// A token for the app `id`, from `POST /oauth/tokens`.
    pub async fn app_token(&self, id: &str, secret: &str) -> String {
        let answer = client()
            .post(format!("{}/oauth/tokens", self.url))
            .basic_auth(id, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let json: serde_json::Value = answer.json().await.unwrap();
        json["access_token"].as_str().unwrap().to_owned()
    }

    /// The admin API's answer at `path`, asked with [`TOKEN`].
    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        client()
            .get(format!("{}{path}", self.admin))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
    }

    /// The admin API's `/metrics`, as text.
    pub async fn metrics(&self) -> String {
        self.admin_get("/metrics").await.text().await.unwrap()
    }

    /// The admin API's JSON at `path`, asked with [`TOKEN`].
    pub async fn admin_json(&self, path: &str) -> serde_json::Value {
        let answer = self.admin_get(path).await;
        assert_eq!(answer.status(), 200, "{path}");
        answer.json().await.unwrap()
    }

    /// Log lines containing `text`.
    pub fn logged(&self, text: &str) -> usize {
        let log = self.log.lock().unwrap();
        log.iter().filter(|line| line.contains(text)).count()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.file);
    }
}

/// `[tokens]` and two apps, `app-a` (secret `a-secret`, with `first_app`'s
/// keys) and `app-b` (`b-secret`).
pub fn two_apps(first_app: &str) -> String {
    format!(
        "[tokens]\nsecret = \"signing-secret\"\nttl = \"10m\"\n\
         [[apps]]\nid = \"app-a\"\nsecret = \"a-secret\"\n{first_app}\n\
         [[apps]]\nid = \"app-b\"\nsecret = \"b-secret\"\n"
    )
}

pub fn config(services: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n{services}"
    )
}

fn config_file() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "gateway-binary-{}-{}.toml",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// The value of the series `series` (name and labels) in the `/metrics`
/// text `metrics`, if it is there.
pub fn series(metrics: &str, series: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}
