//! What the servers print into the learner's terminal.
//!
//! A server started with `cargo run -p … &` logs to the terminal the
//! learner types into. Three kinds of line matter to a transcript: the
//! `… listening on …` lines that say the server is ready (`cargo run`
//! compiles first, so the next command must wait for them), the line a
//! server prints when `kill` stops it, and warnings (a retry, an ejected
//! upstream), which land between the outputs of the commands typed while
//! they happen. The checker captures the warnings of its in-process
//! servers, formatted as the binaries format them, and adds them to the
//! output of the command during which they were logged.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::fmt::MakeWriter;

/// A log line as the binaries print it (`serving::init_tracing`); the
/// time, which no transcript can know, is a fixed one.
pub fn line(level: &str, target: &str, message: &str) -> String {
    format!("2026-01-01T00:00:00.000000Z {level:>5} {target}: {message}")
}

/// The line every server logs when a signal stops it.
pub fn shutting_down() -> String {
    line(
        "INFO",
        "serving::launched",
        "shutting down: no new connections, finishing requests in flight",
    )
}

static CAPTURED: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Install the capturing subscriber (once per process).
pub fn capture_warnings() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(serving::log_filter("warn"))
            .with_ansi(false)
            .with_writer(Capture)
            .event_format(serving::RequestIdLines::default())
            .try_init();
    });
}

/// The warnings logged since the last call, one per line.
pub fn take_warnings() -> Vec<String> {
    let bytes = std::mem::take(&mut *CAPTURED.lock().expect("capture lock"));
    String::from_utf8_lossy(&bytes)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[derive(Clone, Copy)]
struct Capture;

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        CAPTURED
            .lock()
            .expect("capture lock")
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}
