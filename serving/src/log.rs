//! Logging: the `tracing` subscriber every binary installs, and the request
//! id on every line written on a request's behalf.
//!
//! The textbook way to tag lines with a request id is a `tracing` span
//! around the request. We measured it: with tracing-subscriber's fmt layer,
//! a span costs about 3,500 instructions per request — its fields are
//! formatted into a string and it is registered, entered, exited and closed
//! — whether or not a single line is ever logged inside it. That was a
//! quarter of what step 05's whole middleware chain cost. So the id rides
//! in a task-local instead (setting one is a thread-local swap), and the
//! line formatter, which runs only when something is actually logged,
//! appends ` request_id=…`.
//!
//! Left out on purpose: structured (JSON) output and log shipping; a
//! subscriber for those would read the same task-local.

use std::fmt;
use std::future::Future;

use hyper::header::HeaderValue;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

tokio::task_local! {
    static REQUEST_ID: HeaderValue;
}

/// Run `start`, then the future it returns, with `id` on every line they
/// log. `start` runs inside too: a middleware may log (or refuse) before
/// its future is first polled.
pub fn with_request_id<F: Future>(
    id: HeaderValue,
    start: impl FnOnce() -> F,
) -> impl Future<Output = F::Output> {
    let future = REQUEST_ID.sync_scope(id.clone(), start);
    REQUEST_ID.scope(id, future)
}

/// tracing-subscriber's default line format, plus ` request_id=…` on lines
/// logged for a request.
pub struct RequestIdLines {
    plain: Format<Full>,
    coloured: Format<Full>,
}

impl Default for RequestIdLines {
    fn default() -> Self {
        Self {
            plain: Format::default(),
            coloured: Format::default().with_ansi(true),
        }
    }
}

impl<S, N> FormatEvent<S, N> for RequestIdLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Ok(id) = REQUEST_ID.try_with(HeaderValue::clone) else {
            return self.plain.format_event(ctx, writer, event);
        };
        // Format the line into a buffer, then put the id before its newline.
        let format = if writer.has_ansi_escapes() {
            &self.coloured
        } else {
            &self.plain
        };
        let mut line = String::new();
        format.format_event(ctx, Writer::new(&mut line), event)?;
        let line = line.strip_suffix('\n').unwrap_or(&line);
        // Ids are checked to be printable ASCII before they get here.
        let id = String::from_utf8_lossy(id.as_bytes());
        writer.write_str(line)?;
        writeln!(writer, " request_id={id}")
    }
}

/// What is logged at `level` and above when `RUST_LOG` does not say.
pub fn log_filter(level: &str) -> tracing_subscriber::EnvFilter {
    // The ZooKeeper client warns at every failed attempt, once a second
    // while ZooKeeper is away; the discovery library says what matters,
    // once an outage. `RUST_LOG=zookeeper_client=debug` brings it back.
    tracing_subscriber::EnvFilter::new(format!("{level},zookeeper_client=off"))
}

/// Install the `tracing` subscriber every binary uses: `RUST_LOG` decides,
/// `info` when unset.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| log_filter("info"));
    // Logs go to stderr so they never mix with what a program prints as
    // output; colours only when a person is watching.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .event_format(RequestIdLines::default())
        .try_init();
    // A panic while serving ends that connection's task only (tokio catches
    // it at the task's edge, the release profile unwinds); it goes to the
    // log, beside everything else an operator reads, not to bare stderr.
    std::panic::set_hook(Box::new(|info| tracing::error!("{info}")));
}
