//! No number an operator types panics a step or turns into a value it did
//! not say: every duration, timeout, size, weight and count flag refuses
//! negative, not-a-number, infinite, zero (where zero means nothing) and
//! overflowing input, and the error names the flag. (Before these parsers
//! were one library, `step10-fast-path --timeout=-1` panicked and
//! `step04-load-balance --fail-cooldown 3333333333333333333s` started with
//! a wrapped cooldown.)

use clap::Parser;

/// The error clap prints for `argv`, or a panic naming the flags it took.
fn refusal<T: Parser>(argv: &[&str]) -> String {
    match T::try_parse_from(argv) {
        Ok(_) => panic!("{argv:?} was accepted"),
        Err(e) => e.to_string(),
    }
}

/// Each bad value of `flag` is refused by the command line `T`, naming it.
fn refuses<T: Parser>(binary: &str, flag: &str, values: &[&str]) {
    for value in values {
        let argv = [binary, &format!("{flag}={value}")];
        let error = refusal::<T>(&argv);
        assert!(error.contains(flag), "{argv:?}: {error}");
    }
}

const BAD_SECONDS: &[&str] = &["-1", "0", "NaN", "inf", "-inf", "1e400", "x", "31536001"];
const BAD_DURATIONS: &[&str] = &[
    "0s",
    "3333333333333333333s",
    "18446744073709551615h",
    "5",
    "-5s",
    "soon",
];
const BAD_COUNTS: &[&str] = &["0", "-1", "99999999999999999999999", "x"];

#[test]
fn step03_refuses_bad_timeouts_and_counts() {
    type Args = step03_reverse_proxy::Args;
    let step = "step03-reverse-proxy";
    refuses::<Args>(step, "--timeout", BAD_SECONDS);
    refuses::<Args>(
        step,
        "--pool-idle-timeout",
        &["0", "-1", "31536001", "99999999999999999999"],
    );
    refuses::<Args>(step, "--header-read-timeout", &["0", "-1", "31536001"]);
    refuses::<Args>(step, "--send-timeout", &["-1", "31536001"]);
    refuses::<Args>(step, "--threads", BAD_COUNTS);
    refuses::<Args>(step, "--max-connections", BAD_COUNTS);
    refuses::<Args>(step, "--max-connections-per-ip", BAD_COUNTS);
}

#[test]
fn step04_refuses_bad_durations_weights_and_statuses() {
    type Args = step04_load_balance::Args;
    let step = "step04-load-balance";
    refuses::<Args>(step, "--fail-cooldown", BAD_DURATIONS);
    refuses::<Args>(step, "--health-interval", BAD_DURATIONS);
    refuses::<Args>(step, "--max-fails", &["0", "-1"]);
    refuses::<Args>(step, "--fail-status", &["99", "600", "x"]);
    refuses::<Args>(step, "--health-path", &["health"]);
    refuses::<Args>(
        step,
        "--upstream",
        &[
            "http://a:1,weight=0",
            "http://a:1,weight=4294967296",
            "http://a:0",
            "ftp://a:1",
        ],
    );
}

#[test]
fn step05_refuses_bad_breaker_and_limit_settings() {
    type Args = step05_middleware::Args;
    let step = "step05-middleware";
    refuses::<Args>(step, "--breaker-open", BAD_DURATIONS);
    refuses::<Args>(step, "--breaker-min-requests", &["0"]);
    refuses::<Args>(step, "--max-concurrent", BAD_COUNTS);
    refuses::<Args>(step, "--rate-limit-keys", BAD_COUNTS);
    refuses::<Args>(step, "--rate-limit", &["0", "-1", "4294967296"]);
}

#[test]
fn step08_refuses_bad_timeouts() {
    type Args = step08_tcp_proxy::Args;
    let step = "step08-tcp-proxy";
    refuses::<Args>(step, "--send-timeout", BAD_SECONDS);
    refuses::<Args>(step, "--idle-timeout", BAD_DURATIONS);
    refuses::<Args>(step, "--connect-timeout", BAD_DURATIONS);
    refuses::<Args>(step, "--max-connections", BAD_COUNTS);
    refuses::<Args>(step, "--max-fails", &["0"]);
}

#[test]
fn step10_refuses_what_step03_refuses() {
    type Args = step10_fast_path::Args;
    let step = "step10-fast-path";
    refuses::<Args>(step, "--timeout", BAD_SECONDS);
    refuses::<Args>(step, "--pool-idle-timeout", BAD_SECONDS);
    refuses::<Args>(step, "--threads", BAD_COUNTS);
}

#[test]
fn good_values_are_taken_as_written() {
    let args = step10_fast_path::Args::try_parse_from(["step10", "--timeout", "2.5"]).unwrap();
    assert_eq!(args.timeout, Some(std::time::Duration::from_millis(2500)));
    let args =
        step04_load_balance::Args::try_parse_from(["step04", "--fail-cooldown", "90s"]).unwrap();
    assert_eq!(
        args.balance.fail_cooldown,
        std::time::Duration::from_secs(90)
    );
}
