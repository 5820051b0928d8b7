// SPDX-License-Identifier: MIT OR Apache-2.0
//! Durations on the command line: a decimal number with an optional unit, `500ms`, `2s`,
//! `1.5s`, `1m`; a bare number means seconds.

use std::time::Duration;

/// Units accepted after the number, with their length in seconds. Longer suffixes first, so
/// that `ms` is not read as `m` followed by garbage.
const UNITS: [(&str, f64); 7] = [
    ("ns", 1e-9),
    ("us", 1e-6),
    ("µs", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
];

/// Parses a duration such as `500ms`, `2s`, `1.5s`, `1m` or `3` (seconds).
///
/// A negative duration gets its own message: it is a plausible thing to type (`-1` for
/// "forever" elsewhere), and "not a duration" would not say what is wrong with it.
pub fn parse(text: &str) -> Result<Duration, String> {
    let invalid = || format!("`{text}` is not a duration such as 500ms, 2s, 1.5s, 1m or 3");
    let text = text.trim();
    if let Some(magnitude) = text.strip_prefix('-') {
        return Err(match parse(magnitude) {
            Ok(_) => format!(
                "`{text}` is negative; a duration is 0 or more, such as 500ms, 2s, 1.5s, 1m or 3"
            ),
            Err(_) => invalid(),
        });
    }
    let (number, scale) = UNITS
        .iter()
        .find_map(|&(suffix, scale)| Some((text.strip_suffix(suffix)?, scale)))
        .unwrap_or((text, 1.0));
    // `f64::from_str` also takes "inf", "NaN" and exponents; only plain decimals are durations.
    let plain_decimal = !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit() || c == '.')
        && number.chars().filter(|&c| c == '.').count() <= 1
        && number != ".";
    if !plain_decimal {
        return Err(invalid());
    }
    let value: f64 = number.parse().map_err(|_| invalid())?;
    Duration::try_from_secs_f64(value * scale).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::parse;
    use std::time::Duration;

    #[test]
    fn every_unit_scales_its_number() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse("250µs"), Ok(Duration::from_micros(250)));
        assert_eq!(parse("100ns"), Ok(Duration::from_nanos(100)));
    }

    #[test]
    fn fractions_and_bare_numbers_are_seconds() {
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn malformed_durations_are_rejected() {
        for bad in [
            "", "s", "ms", ".", "1.2.3s", "abc", "1x", "inf", "NaN", "1e3", "1 s", "s1", "1sm",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn negative_durations_are_rejected_as_negative() {
        for negative in ["-1", "-1s", "-0.5", "-500ms", " -2m", "-0"] {
            let message = parse(negative).unwrap_err();
            assert!(message.contains("is negative"), "{negative:?}: {message}");
        }
        for garbage in ["-x", "--count", "-", "--1"] {
            let message = parse(garbage).unwrap_err();
            assert!(
                message.contains("is not a duration"),
                "{garbage:?}: {message}"
            );
        }
    }

    #[test]
    fn huge_durations_are_rejected_not_overflowed() {
        assert!(parse("1e400").is_err());
        assert!(parse(&"9".repeat(40)).is_err());
    }
}
