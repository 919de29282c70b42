//! The learner's terminal, as the NOTES checker models it: one shell typed
//! into from the top of NOTES to the bottom. `cargo run -p … &` starts a
//! job in-process on free ports (through the package's own `launch`),
//! `kill %N` stops it, and every other command runs in bash with the
//! addresses rewritten to where the servers really listen.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use serving::{Binder, Launched};

use crate::log;
use crate::support::Captured;

/// Replace whole `ip:port` occurrences (not a prefix of a longer port).
pub fn replace_addr(text: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(from) {
        let after = &rest[at + from.len()..];
        out.push_str(&rest[..at]);
        if after.starts_with(|c: char| c.is_ascii_digit()) {
            out.push_str(from);
        } else {
            out.push_str(to);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The learner's terminal: one shell, typed into in order. A server started
/// with `&` is a job (`%1`, `%2`, … numbered as bash numbers them) and stays
/// up until a `$ kill %N` line stops it, across headings, so a chapter that
/// forgets to stop its servers, starts one on an address still taken, or
/// reaches a server nobody started fails here as it would for a learner.
pub struct Terminal {
    binder: Binder,
    jobs: Vec<Job>,
    servers: ServerThread,
    /// Which chapter first asked for each address, so that no two chapters
    /// share one (the defaults every step listens on excepted).
    owners: Vec<(SocketAddr, String)>,
}

/// A server running in the background.
struct Job {
    number: usize,
    command: String,
    launched: Launched,
    /// The addresses it asked for and the free ports it got instead.
    addresses: Vec<(SocketAddr, SocketAddr)>,
}

/// Addresses the steps listen on when no flag says otherwise: every chapter
/// may use them, one after the other, because each stops its servers.
const DEFAULT_ADDRESSES: [&str; 5] = [
    "127.0.0.1:2002",
    "127.0.0.1:2003",
    "127.0.0.1:2004",
    "127.0.0.1:2005",
    "127.0.0.1:8080",
];

/// Where the learner's servers run: a runtime of their own with two worker
/// threads, as a learner's `cargo run -p …` has on this machine, so a
/// transcript that shows an order (a round-robin cycle) is checked the way
/// a learner sees it, with requests landing on either thread.
struct ServerThread {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    fn start() -> Self {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a multi-threaded runtime");
            handle_tx
                .send(runtime.handle().clone())
                .expect("the checker waits");
            runtime.block_on(async {
                let _ = stopped.await;
            });
        });
        Self {
            handle: handle_rx.recv().expect("the server thread starts"),
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Terminal {
    pub fn new() -> Self {
        Self {
            binder: Binder::ephemeral(),
            jobs: Vec::new(),
            servers: ServerThread::start(),
            owners: Vec::new(),
        }
    }

    /// The address mapping of the servers still running; later jobs win.
    fn mapping(&self) -> impl Iterator<Item = &(SocketAddr, SocketAddr)> {
        self.jobs.iter().flat_map(|job| job.addresses.iter())
    }

    fn to_actual(&self, text: &str) -> String {
        let mapping: Vec<_> = self.mapping().collect();
        mapping
            .iter()
            .rev()
            .fold(text.to_owned(), |t, (requested, actual)| {
                replace_addr(&t, &requested.to_string(), &actual.to_string())
            })
    }

    fn to_requested(&self, text: &str) -> String {
        self.mapping()
            .fold(text.to_owned(), |t, (requested, actual)| {
                replace_addr(&t, &actual.to_string(), &requested.to_string())
            })
    }

    /// `cargo run -p PACKAGE [-- ARGS] &`, launched in-process as the next
    /// job; the lines its servers print when they are ready, as the
    /// learner sees them.
    pub async fn launch(&mut self, command: &str, chapter: &str) -> anyhow::Result<Vec<String>> {
        let line = command.trim_end_matches('&').trim();
        let words = shell_words::split(line)?;
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let ["cargo", "run", "-p", package, rest @ ..] = words.as_slice() else {
            bail!("a background command must be `cargo run -p PACKAGE [-- ARGS] &`");
        };
        let args = match rest {
            [] => Vec::new(),
            ["--", args @ ..] => args.iter().map(|a| self.to_actual(a)).collect(),
            _ => bail!("arguments go after `--`"),
        };
        let argv: Vec<String> = std::iter::once(package.to_string()).chain(args).collect();
        let (package, binder) = (package.to_string(), self.binder.clone());
        let already_bound = self.binder.bound().len();
        let launched = self
            .servers
            .handle
            .spawn(async move { launch(&package, argv, &binder).await })
            .await??;
        let addresses = self.binder.bound()[already_bound..].to_vec();
        let number = self.jobs.iter().map(|job| job.number).max().unwrap_or(0) + 1;
        let job = Job {
            number,
            command: line.to_owned(),
            launched,
            addresses,
        };
        // Here the learner's server would have died with "Address already in
        // use"; the checker's got a free port, so it asks.
        for (requested, _) in &job.addresses {
            let holder = self
                .jobs
                .iter()
                .find(|old| old.addresses.iter().any(|(a, _)| a == requested));
            if let Some(holder) = holder {
                let message = format!(
                    "{requested} is still taken by %{} (`{}`): stop it first with `$ kill %{}`",
                    holder.number, holder.command, holder.number
                );
                self.stop(job).await;
                bail!(message);
            }
            let shared = !DEFAULT_ADDRESSES.contains(&requested.to_string().as_str());
            match self.owners.iter().find(|(a, _)| a == requested) {
                Some((_, owner)) if shared && owner != chapter => {
                    let message = format!(
                        "{requested} was already used in {owner}: give each chapter ports of its own"
                    );
                    self.stop(job).await;
                    bail!(message);
                }
                Some(_) => {}
                None => self.owners.push((*requested, chapter.to_owned())),
            }
        }
        let ready = job
            .launched
            .servers
            .iter()
            .map(|server| {
                let message = format!("{} listening on {}", server.name(), server.url());
                let line = log::line("INFO", "serving::server", &message);
                self.to_requested_by(&job.addresses, &line)
            })
            .collect();
        self.jobs.push(job);
        Ok(ready)
    }

    /// `text` with the actual addresses of `addresses` replaced by the
    /// requested ones (a job not yet among `jobs`).
    fn to_requested_by(&self, addresses: &[(SocketAddr, SocketAddr)], text: &str) -> String {
        let text = addresses
            .iter()
            .fold(text.to_owned(), |t, (requested, actual)| {
                replace_addr(&t, &actual.to_string(), &requested.to_string())
            });
        self.to_requested(&text)
    }

    /// `kill %N [%M ...]`: stop those jobs.
    /// Each stopped job prints the line its servers log on SIGTERM.
    pub async fn kill(&mut self, command: &str) -> anyhow::Result<Vec<String>> {
        let specs: Vec<&str> = command.split_whitespace().skip(1).collect();
        if specs.is_empty() {
            bail!("`kill` names the jobs it stops, e.g. `kill %1 %2`");
        }
        let mut printed = Vec::new();
        for spec in specs {
            let number: usize = spec
                .strip_prefix('%')
                .and_then(|n| n.parse().ok())
                .with_context(|| format!("`{spec}`: jobs are named %1, %2, …"))?;
            let Some(at) = self.jobs.iter().position(|job| job.number == number) else {
                bail!("kill: %{number}: no such job");
            };
            let job = self.jobs.remove(at);
            self.stop(job).await;
            printed.push(log::shutting_down());
        }
        Ok(printed)
    }

    async fn stop(&self, job: Job) {
        let _ = self.servers.handle.spawn(job.launched.shutdown()).await;
    }

    /// The warnings the servers logged since the last command, with the
    /// addresses the learner would see.
    pub fn warnings(&self) -> Vec<String> {
        log::take_warnings()
            .iter()
            .map(|line| self.to_requested(line))
            .collect()
    }

    /// The jobs still running, as `jobs` would list them.
    pub fn running(&self) -> Vec<String> {
        self.jobs
            .iter()
            .map(|job| format!("%{} `{}`", job.number, job.command))
            .collect()
    }

    pub async fn stop_all(&mut self) {
        for job in std::mem::take(&mut self.jobs) {
            self.stop(job).await;
        }
    }

    pub async fn run(&self, command: &str) -> anyhow::Result<String> {
        if let Some(args) = command.strip_prefix("cargo run -- ") {
            return self.run_tour(args).await;
        }
        let command = built_example(command)?;
        let output = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::process::Command::new("bash")
                .arg("-c")
                .arg(self.to_actual(&command))
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .context("command did not finish within 30 s")??;
        // A command that fails where the transcript shows it succeeding is
        // a failed transcript, whatever it printed. A transcript that
        // teaches a failure says so in its output (`…; echo "exit $?"`).
        if !output.status.success() {
            bail!(
                "exited with {}; stderr: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            );
        }
        Ok(self.to_requested(&String::from_utf8_lossy(&output.stdout)))
    }

    /// `cargo run -- ARGS`: the root binary's tools (`--target`,
    /// `--websocket`), in-process. The tour itself is checked by tests/tour.rs.
    pub async fn run_tour(&self, args: &str) -> anyhow::Result<String> {
        let words = shell_words::split(&self.to_actual(args))?;
        let cli = proxy_workbench::Cli::try_parse_from(
            std::iter::once("proxy-workbench".to_owned()).chain(words),
        )?;
        if cli.target.is_none() && cli.websocket.is_none() {
            bail!("the checker runs `cargo run -- --target URL` or `--websocket URL` only");
        }
        let output = Captured::default();
        cli.run(output.clone()).await?;
        let text = output.text();
        Ok(self.to_requested(&text))
    }
}

/// `cargo run -q --example NAME -- ARGS …` becomes the example binary
/// `cargo test` built beside this test (a nested cargo would wait for the
/// lock the running `cargo test` holds, or build again for other
/// features); any other command is left as it is.
fn built_example(command: &str) -> anyhow::Result<String> {
    let Some(rest) = command.strip_prefix("cargo run -q --example ") else {
        return Ok(command.to_owned());
    };
    let (name, args) = rest.split_once(" -- ").unwrap_or((rest, ""));
    // target/debug/deps/notes-… → target/debug/examples/NAME
    let examples = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .context("the test binary is not in a cargo target directory")?
        .join("examples");
    let binary = examples.join(name);
    if !binary.exists() {
        bail!(
            "{} is not built: run the tests with `cargo test` (which builds the examples), or `cargo build --examples` first",
            binary.display()
        );
    }
    Ok(format!("{} {args}", binary.display()))
}

/// `cargo run -p PACKAGE -- ARGS`: the package's own `launch`, in-process.
async fn launch(package: &str, argv: Vec<String>, binder: &Binder) -> anyhow::Result<Launched> {
    let launched = match package {
        "real_server" => {
            real_server::launch(real_server::Args::try_parse_from(argv)?, binder).await?
        }
        "step01-forward-proxy" => {
            step01_forward_proxy::launch(step01_forward_proxy::Args::try_parse_from(argv)?, binder)
                .await?
        }
        "step02-reverse-proxy-minimal" => {
            let args = step02_reverse_proxy_minimal::Args::try_parse_from(argv)?;
            step02_reverse_proxy_minimal::launch(args, binder).await?
        }
        "step05-middleware" => {
            step05_middleware::launch(step05_middleware::Args::try_parse_from(argv)?, binder)
                .await?
        }
        "step06-websocket" => {
            let args = step06_websocket::Args::try_parse_from(argv)?;
            step06_websocket::launch(args, binder).await?
        }
        "step07-https" => {
            step07_https::launch(step07_https::Args::try_parse_from(argv)?, binder).await?
        }
        "step04-load-balance" => {
            let args = step04_load_balance::Args::try_parse_from(argv)?;
            step04_load_balance::launch(args, binder).await?
        }
        "step11-gateway" => {
            step11_gateway::launch(step11_gateway::Args::try_parse_from(argv)?, binder).await?
        }
        "step08-tcp-proxy" => {
            step08_tcp_proxy::launch(step08_tcp_proxy::Args::try_parse_from(argv)?, binder).await?
        }
        "step09-cache" => {
            step09_cache::launch(step09_cache::Args::try_parse_from(argv)?, binder).await?
        }
        "step03-reverse-proxy" => {
            step03_reverse_proxy::launch(step03_reverse_proxy::Args::try_parse_from(argv)?, binder)
                .await?
        }
        "step10-fast-path" => {
            step10_fast_path::launch(step10_fast_path::Args::try_parse_from(argv)?, binder).await?
        }
        other => bail!("the checker does not know how to launch {other}"),
    };
    Ok(launched)
}
