//! Checks every transcript in NOTES.md by running it.
//!
//! A transcript is a fenced block tagged `console`. Lines starting with `$ `
//! are commands; the lines after a command, up to the next command or the
//! end of the block, are the output it must print (stdout). In expected
//! output, `[..]` matches any text within a line and a line holding only
//! `...` matches any number of lines.
//!
//! Commands of the form `cargo run -p PACKAGE [-- ARGS] &` start servers.
//! They run in-process through the same `launch` function the package's
//! binary calls — on a multi-threaded runtime, as the binary's — but with an
//! ephemeral [`Binder`]: every listener binds a
//! free port instead of the one asked for. The checker remembers which
//! requested address became which actual one, rewrites later commands to
//! reach the actual ports, and rewrites output back to the requested ones,
//! so the transcripts read with the ports a learner will see.
//!
//! Every other command runs in `bash` and must exit 0, as a learner's would
//! when the transcript shows no error; a transcript that teaches a failure
//! prints its status (`…; echo "exit $?"`).
//!
//! The checker is one learner's terminal, typed into from the top of NOTES
//! to the bottom: a server started with `&` keeps running, across chapters,
//! until a `$ kill %N` line stops it (jobs are numbered as bash numbers
//! them). So a chapter must stop what it started, may not start a server on
//! an address still taken, and cannot reach a server it never started —
//! the mistakes that trip a learner who types along.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use serving::{Binder, Launched};
use support::Captured;

mod support;

const NOTES: &str = include_str!("../NOTES.md");

/// One command of a transcript and the output it must produce.
#[derive(Debug)]
struct Step {
    line: usize,
    command: String,
    expected: Vec<String>,
}

/// Transcripts grouped by chapter heading, in document order.
fn transcripts(notes: &str) -> Vec<(String, Vec<Step>)> {
    let mut chapters: Vec<(String, Vec<Step>)> = Vec::new();
    let mut in_console = false;
    let mut in_other_fence = false;
    for (index, line) in notes.lines().enumerate() {
        let number = index + 1;
        if !in_console && !in_other_fence {
            if let Some(heading) = line.strip_prefix("## ") {
                chapters.push((heading.to_owned(), Vec::new()));
            } else if line.trim_end() == "```console" {
                in_console = true;
            } else if line.starts_with("```") {
                in_other_fence = true;
            }
            continue;
        }
        if line.starts_with("```") {
            in_console = false;
            in_other_fence = false;
            continue;
        }
        if in_other_fence {
            continue;
        }
        let (_, steps) = chapters
            .last_mut()
            .unwrap_or_else(|| panic!("NOTES.md:{number}: transcript before any ## heading"));
        if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step {
                line: number,
                command: command.to_owned(),
                expected: Vec::new(),
            });
        } else {
            let step = steps
                .last_mut()
                .unwrap_or_else(|| panic!("NOTES.md:{number}: output before any `$ ` command"));
            step.expected.push(line.to_owned());
        }
    }
    chapters
}

/// `expected` may hold `[..]` (any text) anywhere in the line.
fn line_matches(expected: &str, actual: &str) -> bool {
    let mut parts = expected.split("[..]");
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = actual.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Whole-output match, with `...` lines matching any run of lines.
fn output_matches(expected: &[String], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if first == "..." => {
            (0..=actual.len()).any(|skip| output_matches(rest, &actual[skip..]))
        }
        Some((first, rest)) => match actual.split_first() {
            Some((line, actual_rest)) => {
                line_matches(first, line) && output_matches(rest, actual_rest)
            }
            None => false,
        },
    }
}

/// Replace whole `ip:port` occurrences (not a prefix of a longer port).
fn replace_addr(text: &str, from: &str, to: &str) -> String {
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
struct Terminal {
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
    fn new() -> Self {
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

    /// `cargo run -p PACKAGE [-- ARGS] &`, launched in-process as the next job.
    async fn launch(&mut self, command: &str, chapter: &str) -> anyhow::Result<()> {
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
        self.jobs.push(job);
        Ok(())
    }

    /// `kill %N [%M ...]`: stop those jobs.
    async fn kill(&mut self, command: &str) -> anyhow::Result<()> {
        let specs: Vec<&str> = command.split_whitespace().skip(1).collect();
        if specs.is_empty() {
            bail!("`kill` names the jobs it stops, e.g. `kill %1 %2`");
        }
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
        }
        Ok(())
    }

    async fn stop(&self, job: Job) {
        let _ = self.servers.handle.spawn(job.launched.shutdown()).await;
    }

    /// The jobs still running, as `jobs` would list them.
    fn running(&self) -> Vec<String> {
        self.jobs
            .iter()
            .map(|job| format!("%{} `{}`", job.number, job.command))
            .collect()
    }

    async fn stop_all(&mut self) {
        for job in std::mem::take(&mut self.jobs) {
            self.stop(job).await;
        }
    }

    async fn run(&self, command: &str) -> anyhow::Result<String> {
        if let Some(args) = command.strip_prefix("cargo run -- ") {
            return self.run_tour(args).await;
        }
        let output = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::process::Command::new("bash")
                .arg("-c")
                .arg(self.to_actual(command))
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
    async fn run_tour(&self, args: &str) -> anyhow::Result<String> {
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

/// Type every transcript of `notes` into one terminal; returns how many
/// commands were checked and what went wrong.
async fn check(notes: &str) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut terminal = Terminal::new();
    for (chapter, steps) in transcripts(notes) {
        for step in steps {
            let where_ = format!("NOTES.md:{} ({chapter})", step.line);
            let command = step.command.trim_end();
            if command.ends_with('&') {
                if let Err(e) = terminal.launch(command, &chapter).await {
                    failures.push(format!("{where_}: cannot start `{command}`: {e:#}"));
                }
                continue;
            }
            if command.starts_with("kill ") {
                if let Err(e) = terminal.kill(command).await {
                    failures.push(format!("{where_}: `{command}`: {e:#}"));
                }
                continue;
            }
            checked += 1;
            match terminal.run(command).await {
                Ok(actual) => {
                    let lines: Vec<&str> = actual.lines().collect();
                    if !output_matches(&step.expected, &lines) {
                        failures.push(format!(
                            "{where_}: `{command}`\n--- expected\n{}\n--- actual\n{}",
                            step.expected.join("\n"),
                            actual
                        ));
                    }
                }
                Err(e) => failures.push(format!("{where_}: `{command}`: {e:#}")),
            }
        }
        let running = terminal.running();
        if !running.is_empty() {
            failures.push(format!(
                "NOTES.md ({chapter}) ends with servers still running: {}; its last transcript should stop them (`$ kill %N`)",
                running.join(", ")
            ));
            terminal.stop_all().await;
        }
    }
    (checked, failures)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_transcript_in_notes_prints_what_notes_says() {
    let (checked, failures) = check(NOTES).await;
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(checked > 0, "NOTES.md has no transcripts to check");
}

/// The mistakes a learner typing along would trip on fail the check: a
/// server started on an address still taken, a chapter that leaves its
/// servers running, a port two chapters share, a server never started,
/// and a kill of a job that does not exist.
#[tokio::test(flavor = "multi_thread")]
async fn the_terminal_model_catches_what_would_trip_a_learner() {
    let notes = "\
## One
```console
$ cargo run -p real_server &
$ cargo run -p real_server &
$ cargo run -p real_server -- --listen 127.0.0.1:2091 &
```
## Two
```console
$ cargo run -p real_server -- --listen 127.0.0.1:2091 &
$ curl -s -o /dev/null http://127.0.0.1:2099/
$ kill %1 %2
```
";
    let (_, failures) = check(notes).await;
    let expect = [
        "NOTES.md:4 (One): cannot start `cargo run -p real_server &`: 127.0.0.1:2003 is still taken by %1",
        "NOTES.md (One) ends with servers still running: %1 `cargo run -p real_server`, %2 `cargo run -p real_server -- --listen 127.0.0.1:2091`",
        "NOTES.md:9 (Two): cannot start `cargo run -p real_server -- --listen 127.0.0.1:2091 &`: 127.0.0.1:2091 was already used in One",
        "NOTES.md:10 (Two): `curl -s -o /dev/null http://127.0.0.1:2099/`: exited with",
        "NOTES.md:11 (Two): `kill %1 %2`: kill: %1: no such job",
    ];
    assert_eq!(failures.len(), expect.len(), "{failures:#?}");
    for (failure, expected) in failures.iter().zip(expect) {
        assert!(
            failure.starts_with(expected),
            "{failure}\n  should start with\n{expected}"
        );
    }
}

#[test]
fn wildcards_match_what_they_should_and_nothing_else() {
    assert!(line_matches(
        "remote: 127.0.0.1:[..]",
        "remote: 127.0.0.1:5555"
    ));
    assert!(line_matches("a[..]c[..]e", "abcde"));
    assert!(!line_matches("a[..]c", "abcd"));
    assert!(!line_matches("exact", "exact plus"));
    let expected = ["first".to_owned(), "...".to_owned(), "last".to_owned()];
    assert!(output_matches(&expected, &["first", "x", "y", "last"]));
    assert!(output_matches(&expected, &["first", "last"]));
    assert!(!output_matches(&expected, &["first", "x"]));
}

#[test]
fn addresses_are_replaced_whole() {
    assert_eq!(
        replace_addr(
            "127.0.0.1:3003 127.0.0.1:30030",
            "127.0.0.1:3003",
            "127.0.0.1:9"
        ),
        "127.0.0.1:9 127.0.0.1:30030"
    );
}

/// A ` ```rust ` block whose first line is `// PATH` shows code from that
/// file: it must appear there, line for line, so the lesson cannot drift
/// from the code it teaches.
#[test]
fn code_shown_in_notes_is_the_code_in_the_files() {
    let mut shown = 0;
    let mut lines = NOTES.lines();
    while let Some(line) = lines.next() {
        if line.trim_end() != "```rust" {
            continue;
        }
        let block: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        let Some(path) = block.first().and_then(|l| l.strip_prefix("// ")) else {
            continue;
        };
        let file = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
            .unwrap_or_else(|e| panic!("NOTES shows code from {path}: {e}"));
        let code = block[1..].join("\n");
        assert!(
            file.contains(&code),
            "NOTES shows code that {path} no longer has:\n{code}"
        );
        shown += 1;
    }
    assert!(shown > 0, "NOTES shows no code from a file");
}

/// Each `cargo test --features mine --test exercise_chNN NAME` that NOTES
/// gives runs something: the test file exists and has a module `NAME`
/// (whose tests the filter selects). The tests themselves run in every
/// `cargo test --workspace`, against the reference answers.
#[test]
fn every_exercise_command_in_notes_names_tests_that_exist() {
    let flat = NOTES.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut commands = 0;
    for (at, _) in flat.match_indices("cargo test --features mine --test ") {
        let words: Vec<&str> = flat[at..].split_whitespace().skip(5).take(2).collect();
        let [target, filter] = words[..] else {
            panic!("NOTES: `{}` names no exercise", &flat[at..at + 60]);
        };
        let filter = filter.trim_end_matches(['`', ')', '.', ';', ',']);
        let path = format!("{}/tests/{target}.rs", env!("CARGO_MANIFEST_DIR"));
        let file = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("NOTES runs `--test {target}`: {path}: {e}"));
        assert!(
            file.contains(&format!("\nmod {filter} {{")),
            "NOTES runs `--test {target} {filter}`, but {path} has no `mod {filter}`"
        );
        commands += 1;
    }
    assert!(
        commands >= 16,
        "two exercises a chapter, 1 to 8: {commands} commands found"
    );
}

/// A ` ```toml ` block is a gateway config a learner may copy: it must be
/// one the gateway accepts.
#[test]
fn every_config_shown_in_notes_is_valid() {
    let mut shown = 0;
    let mut lines = NOTES.lines();
    while let Some(line) = lines.next() {
        if line.trim_end() != "```toml" {
            continue;
        }
        let block: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        if let Err(e) = step11_gateway::config::parse(&block.join("\n"), "NOTES.md") {
            panic!("NOTES shows a config the gateway refuses: {e}");
        }
        shown += 1;
    }
    assert!(shown > 0, "NOTES shows no gateway config");
}
