//! Durations (`500ms`, `2s`, `5m`, `1h`) and numbers of seconds (`2.5`).

use std::time::Duration;

/// The longest duration any setting takes: a year. Longer is a typo, and
/// `Instant::now() + d` must never overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// A whole number and a unit: `500ms`, `2s`, `5m`, `1h`. Zero is refused:
/// no setting here means anything by a zero interval, cooldown or timeout
/// (those that can be switched off say how).
pub fn duration(raw: &str) -> Result<Duration, String> {
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let expected = || format!("{raw:?}: expected a whole number and a unit, e.g. 500ms or 2s");
    let millis_per = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ if number.is_empty() => return Err(expected()),
        _ => return Err(format!("{raw:?}: the unit must be ms, s, m or h")),
    };
    let number: u64 = number.parse().map_err(|_| too_long_or(raw, expected))?;
    let millis = number
        .checked_mul(millis_per)
        .ok_or_else(|| too_long(raw))?;
    checked(raw, Duration::from_millis(millis))
}

/// A number of seconds, fractions allowed (`30`, `2.5`): positive and
/// finite — not `-1`, `0`, `NaN`, `inf` or `1e400`.
pub fn seconds(raw: &str) -> Result<Duration, String> {
    let secs: f64 = raw
        .trim()
        .parse()
        .map_err(|_| format!("{raw:?}: expected a number of seconds, e.g. 30 or 2.5"))?;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!(
            "{raw:?}: expected a positive number of seconds, e.g. 30 or 2.5"
        ));
    }
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(too_long(raw));
    }
    checked(raw, Duration::from_secs_f64(secs))
}

fn checked(raw: &str, duration: Duration) -> Result<Duration, String> {
    if duration.is_zero() {
        Err(format!("{raw:?}: must be more than zero"))
    } else if duration > MAX_DURATION {
        Err(too_long(raw))
    } else {
        Ok(duration)
    }
}

fn too_long(raw: &str) -> String {
    format!("{raw:?}: longer than the limit of a year (8760h)")
}

/// A string of digits too long for a u64 is a duration too long, not a
/// malformed one.
fn too_long_or(raw: &str, otherwise: impl Fn() -> String) -> String {
    let digits = raw.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && digits == raw.trim_end_matches(char::is_alphabetic).len() {
        too_long(raw)
    } else {
        otherwise()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_numbers() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(duration("8760h"), Ok(MAX_DURATION));
    }

    #[test]
    fn overflow_zero_and_nonsense_are_refused_never_wrapped() {
        // 3333333333333333333 s × 1000 wraps a u64 to a short duration.
        for bad in [
            "3333333333333333333s",
            "18446744073709551615h",
            "99999999999999999999999s",
            "8761h",
        ] {
            let error = duration(bad).unwrap_err();
            assert!(error.contains("longer than"), "{bad}: {error}");
        }
        for bad in [
            "0s", "0ms", "", "s", "5", "-5s", "5 s", "5sec", "1.5s", "5d",
        ] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seconds_are_positive_and_finite() {
        assert_eq!(seconds("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(seconds("30"), Ok(Duration::from_secs(30)));
        for bad in [
            "-1", "0", "0.0", "NaN", "inf", "-inf", "1e400", "1e300", "", "x",
        ] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
        // Below a nanosecond rounds to zero: refused, not a zero timeout.
        assert!(seconds("1e-12").is_err());
    }
}
