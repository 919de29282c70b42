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
//! ephemeral `Binder`: every listener binds a
//! free port instead of the one asked for. The checker remembers which
//! requested address became which actual one, rewrites later commands to
//! reach the actual ports, and rewrites output back to the requested ones,
//! so the transcripts read with the ports a learner will see.
//!
//! A start prints what the learner's terminal shows when the server is
//! ready — its `… listening on …` lines, which the transcript must show
//! (`cargo run` compiles first: the next command waits for them); `kill`
//! prints each server's shutdown line; and warnings the servers log while
//! a command runs are part of that command's output ([`log`]).
//! `NOTES_PRINTED=FILE` appends what each command printed to FILE, for
//! whoever edits NOTES.
//!
//! `cargo run -q --example NAME -- ARGS` runs the example binary that
//! `cargo test` built. Every other command runs in `bash` and must exit 0, as a learner's would
//! when the transcript shows no error; a transcript that teaches a failure
//! prints its status (`…; echo "exit $?"`).
//!
//! The checker is one learner's terminal, typed into from the top of NOTES
//! to the bottom: a server started with `&` keeps running, across chapters,
//! until a `$ kill %N` line stops it (jobs are numbered as bash numbers
//! them). So a chapter must stop what it started, may not start a server on
//! an address still taken, and cannot reach a server it never started —
//! the mistakes that trip a learner who types along.

mod log;
#[path = "../support/mod.rs"]
mod support;
mod terminal;

use terminal::{Terminal, replace_addr};

const NOTES: &str = include_str!("../../NOTES.md");

/// One command of a transcript and the output it must produce.
#[derive(Debug)]
struct Step {
    line: usize,
    command: String,
    expected: Vec<String>,
    /// A program its block needs (` ```console needs=redis-server `).
    needs: Option<String>,
}

/// Is `program`, which a transcript needs, here? Its block is skipped if
/// not — unless CI requires it, and then the block fails without it (the
/// build script decides, as for the tests that need it).
fn available(program: &str) -> bool {
    match program {
        "redis-server" => cfg!(has_redis_server),
        "zookeeper" => cfg!(has_zookeeper),
        other => panic!("NOTES: needs={other}: the checker knows redis-server and zookeeper"),
    }
}

/// Transcripts grouped by chapter heading, in document order.
fn transcripts(notes: &str) -> Vec<(String, Vec<Step>)> {
    let mut chapters: Vec<(String, Vec<Step>)> = Vec::new();
    let mut in_console = false;
    let mut in_other_fence = false;
    let mut needs: Option<String> = None;
    for (index, line) in notes.lines().enumerate() {
        let number = index + 1;
        if !in_console && !in_other_fence {
            if let Some(heading) = line.strip_prefix("## ") {
                chapters.push((heading.to_owned(), Vec::new()));
            } else if let Some(info) = line
                .trim_end()
                .strip_prefix("```console")
                .filter(|info| info.is_empty() || info.starts_with(' '))
            {
                in_console = true;
                needs = info.trim().strip_prefix("needs=").map(str::to_owned);
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
                needs: needs.clone(),
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

/// Type every transcript of `notes` into one terminal; returns how many
/// commands were checked and what went wrong.
async fn check(notes: &str) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut terminal = Terminal::new();
    log::capture_warnings();
    for (chapter, steps) in transcripts(notes) {
        for step in steps {
            let where_ = format!("NOTES.md:{} ({chapter})", step.line);
            if let Some(program) = &step.needs
                && !available(program)
            {
                eprintln!("{where_}: skipped: it needs {program}, which is not installed");
                continue;
            }
            let command = step.command.trim_end();
            let printed = if command.ends_with('&') {
                terminal
                    .launch(command, &chapter)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot start `{command}`: {e:#}"))
            } else if command.starts_with("kill ") {
                terminal.kill(command).await
            } else {
                checked += 1;
                terminal
                    .run(command)
                    .await
                    .map(|out| out.lines().map(str::to_owned).collect())
            };
            match printed {
                Ok(mut lines) => {
                    // What the servers logged meanwhile lands in the same
                    // terminal, after the command's own output here.
                    lines.extend(terminal.warnings());
                    if let Some(path) = std::env::var_os("NOTES_PRINTED") {
                        // For whoever edits NOTES: what each command printed.
                        let record = format!("{}\t{}\n", step.line, lines.join("\u{1f}"));
                        let _ = std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(path)
                            .and_then(|mut f| std::io::Write::write_all(&mut f, record.as_bytes()));
                    }
                    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
                    if command.ends_with('&') && step.expected.is_empty() {
                        failures.push(format!(
                            "{where_}: `{command}`: show the lines to wait for before typing on:\n{}",
                            lines.join("\n")
                        ));
                    } else if !output_matches(&step.expected, &lines) {
                        failures.push(format!(
                            "{where_}: `{command}`\n--- expected\n{}\n--- actual\n{}",
                            step.expected.join("\n"),
                            lines.join("\n")
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
/// start that shows no line to wait for (the next command would run while
/// cargo still compiles), a server started on an address still taken, a
/// chapter that leaves its servers running, a port two chapters share, a
/// server never started, and a kill of a job that does not exist.
#[tokio::test(flavor = "multi_thread")]
async fn the_terminal_model_catches_what_would_trip_a_learner() {
    let notes = "\
## One
```console
$ cargo run -p real_server &
$ cargo run -p real_server &
$ cargo run -p real_server -- --listen 127.0.0.1:2091 &
[..] real server listening on http://127.0.0.1:2091
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
        "NOTES.md:3 (One): `cargo run -p real_server &`: show the lines to wait for before typing on:",
        "NOTES.md:4 (One): `cargo run -p real_server &`: cannot start `cargo run -p real_server &`: 127.0.0.1:2003 is still taken by %1",
        "NOTES.md (One) ends with servers still running: %1 `cargo run -p real_server`, %2 `cargo run -p real_server -- --listen 127.0.0.1:2091`",
        "NOTES.md:10 (Two): `cargo run -p real_server -- --listen 127.0.0.1:2091 &`: cannot start `cargo run -p real_server -- --listen 127.0.0.1:2091 &`: 127.0.0.1:2091 was already used in One",
        "NOTES.md:11 (Two): `curl -s -o /dev/null http://127.0.0.1:2099/`: exited with",
        "NOTES.md:12 (Two): `kill %1 %2`: kill: %1: no such job",
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
        commands >= 20,
        "two exercises a chapter, 1 to 8, 10 and 11: {commands} commands found"
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
