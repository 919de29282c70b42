//! What an operator types reaches parsers too: upstream specs (HTTP and
//! TCP), durations,
//! hash keys and status lists must answer with an error, never a panic,
//! and what they accept must be what they promise.

#![no_main]

use libfuzzer_sys::fuzz_target;
use step04_load_balance::{HashKey, parse_duration, parse_weighted};

fuzz_target!(|raw: &str| {
    if let Ok((uri, weight)) = parse_weighted(raw) {
        assert!(weight >= 1, "{raw:?}");
        assert!(uri.scheme().is_some() && uri.authority().is_some(), "{raw:?}");
    }
    if let Ok((uri, weight)) = step08_tcp_proxy::parse_upstream(raw) {
        assert!(weight >= 1, "{raw:?}");
        let authority = uri.authority().expect("HOST:PORT was checked");
        assert!(authority.port_u16().is_some_and(|p| p > 0), "{raw:?}");
    }
    let _ = parse_duration(raw);
    let _ = raw.parse::<HashKey>();
});
