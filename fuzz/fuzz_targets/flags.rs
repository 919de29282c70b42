//! What an operator types reaches parsers too: upstream URLs (HTTP and
//! TCP), weights, durations, seconds, sizes, status codes, counts, hash and
//! rate keys, balancing strategies. Each must answer with an error, never
//! a panic or a wrapped number, and what it accepts must be what it
//! promises: a duration or a size is more than zero and within its bound,
//! a weight at least one, a status a status.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use load_balance::{HashKey, Kind};
use middleware::rate_limit::RateKey;
use operator_input::MAX_DURATION;

fuzz_target!(|raw: &str| {
    if let Ok((uri, weight)) = operator_input::weighted_url(raw, &["http", "h2c", "https"]) {
        assert!((1..=operator_input::MAX_WEIGHT).contains(&weight), "{raw:?}");
        assert!(uri.scheme().is_some() && uri.host().is_some_and(|h| !h.is_empty()), "{raw:?}");
    }
    if let Ok((uri, weight)) = operator_input::weighted_tcp_address(raw) {
        assert!(weight >= 1, "{raw:?}");
        let authority = uri.authority().expect("HOST:PORT was checked");
        assert!(authority.port_u16().is_some_and(|p| p > 0), "{raw:?}");
    }
    for parsed in [operator_input::duration(raw), operator_input::seconds(raw)] {
        if let Ok(duration) = parsed {
            assert!(duration > Duration::ZERO && duration <= MAX_DURATION, "{raw:?}");
        }
    }
    if let Ok(bytes) = operator_input::size(raw) {
        assert!((1..=1 << 40).contains(&bytes), "{raw:?}");
    }
    if let Ok(status) = operator_input::status(raw) {
        assert!((100..=599).contains(&status), "{raw:?}");
    }
    if let Ok(count) = operator_input::count(raw) {
        assert!(count >= 1, "{raw:?}");
    }
    let _ = raw.parse::<HashKey>();
    let _ = raw.parse::<RateKey>();
    let _ = raw.parse::<Kind>();
});
