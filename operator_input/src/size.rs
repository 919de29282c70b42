//! Sizes in bytes: `65536`, `512KiB`, `64MiB`, `1GiB` (and `kB`, `MB`, `GB`
//! in powers of ten, as disks are sold).

/// A size in bytes, at least one and at most 1 TiB.
pub fn size(raw: &str) -> Result<u64, String> {
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let multiplier: u64 = match unit.trim_start() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => {
            return Err(format!(
                "{raw:?}: expected a size such as 65536, 512KiB, 64MiB or 1GiB"
            ));
        }
    };
    let too_big = || format!("{raw:?}: larger than the limit of 1TiB");
    let number: u64 = number.parse().map_err(|_| {
        if number.is_empty() {
            format!("{raw:?}: expected a size such as 65536, 512KiB, 64MiB or 1GiB")
        } else {
            too_big()
        }
    })?;
    let bytes = number.checked_mul(multiplier).ok_or_else(too_big)?;
    match bytes {
        0 => Err(format!("{raw:?}: must be more than zero")),
        b if b > MAX_SIZE => Err(too_big()),
        b => Ok(b),
    }
}

/// 1 TiB: no memory bound here can be larger than a machine.
const MAX_SIZE: u64 = 1 << 40;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(size("65536"), Ok(65536));
        assert_eq!(size("512KiB"), Ok(512 * 1024));
        assert_eq!(size("64MiB"), Ok(64 << 20));
        assert_eq!(size("64 MiB"), Ok(64 << 20));
        assert_eq!(size("1GB"), Ok(1_000_000_000));
    }

    #[test]
    fn zero_overflow_and_nonsense_are_refused() {
        for bad in [
            "0",
            "0MiB",
            "18446744073709551615GiB",
            "99999999999999999999999",
            "2TiB",
            "1025GiB",
            "MiB",
            "-1",
            "1.5MiB",
            "64mb",
            "",
        ] {
            assert!(size(bad).is_err(), "{bad}");
        }
    }
}
