//! What an operator types reaches parsers too: upstream specs, durations,
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
    let _ = parse_duration(raw);
    let _ = raw.parse::<HashKey>();
});
