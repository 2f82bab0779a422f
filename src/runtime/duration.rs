//! Durations as people and manifests write them: Go's `time.ParseDuration` grammar plus days,
//! for the flags (`--timeout 90s`, `--revert-after 7d`) and for the apiserver's own duration
//! flags read from its manifest.
use std::time::Duration;

/// The longest duration any flag takes: 100 years. Every duration meets a time somewhere (a
/// deadline, a revert date, a certificate's end), and a longer one would wrap around it; it is
/// refused here, once, with the flag named by clap (a usage error, exit 2).
pub const LONGEST: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Why a duration was refused. clap puts the flag's name before it (a usage error, exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0:?} is not a duration: write e.g. 90s, 5m or 1m30s")]
    Malformed(String),
    #[error("{0:?} is not a duration to wait: it is negative; write e.g. 90s, 5m or 1m30s")]
    Negative(String),
    #[error("{0:?} is out of range: at most 36500d (100 years)")]
    OutOfRange(String),
    #[error("{0:?} is no time to wait: give more than zero, e.g. 90s")]
    Zero(String),
}

/// A duration the way Go's `time.ParseDuration` reads it, plus days: kube-apiserver's own
/// duration flags are Go's, so a value copied from a manifest (`--shutdown-delay-duration`)
/// means the same here.
///
/// The grammar: `[+]` then `0`, or one or more segments with nothing between them. A segment is
/// a decimal number (`5`, `1.5`, `.5`, `5.`) and its unit, one of `ns`, `us` (or `µs`, `μs`),
/// `ms`, `s`, `m`, `h` and, beyond Go, `d` (24 h). Segments add up in any order and may repeat:
/// `300ms`, `1.5s`, `2h45m`, `1m30s`, `7d`, `90m1h`. Fractions are exact to the nanosecond and
/// what is finer is dropped, as Go drops it: `1.9999999999s` is 1.999999999 s, `0.5ns` is zero.
/// Refused: a minus sign (every duration here is a wait), a number without a unit other than
/// `0` alone, spaces, exponents, and more than [`LONGEST`].
///
/// fundu does each segment's arithmetic; the split into segments is Go's own rule (below), since
/// no maintained crate reads exactly Go's grammar: fundu would take a bare `5` as seconds and
/// cannot continue with `.5s` after `1h`. jiff, in the tree already for k8s-openapi, fits worse:
/// even one segment at a time it refuses `.5s`, `1.s`, `μs`, days and sub-nanosecond digits.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let malformed = || DurationError::Malformed(text.to_string());
    if text.starts_with('-') {
        return Err(DurationError::Negative(text.to_string()));
    }
    let rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(malformed());
    }
    let mut total = Duration::ZERO;
    for segment in go_segments(rest) {
        let segment = segment.ok_or_else(malformed)?;
        let part = segment_parser().parse(segment).map_err(|_| malformed())?;
        // fundu saturates instead of overflowing: a saturated part is far past LONGEST too.
        total = Duration::try_from(part)
            .ok()
            .and_then(|part| total.checked_add(part))
            .filter(|t| *t <= LONGEST)
            .ok_or_else(|| DurationError::OutOfRange(text.to_string()))?;
    }
    Ok(total)
}

/// The segments of a duration, where Go's `time.ParseDuration` ends them: a number is digits,
/// then optionally `.` and digits; its unit is every character up to the next digit or `.`.
/// A segment with no unit is `None` (Go refuses it; fundu would read seconds).
fn go_segments(text: &str) -> impl Iterator<Item = Option<&str>> {
    let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut number = digits(rest);
        if rest[number..].starts_with('.') {
            number += 1 + digits(&rest[number + 1..]);
        }
        let unit = rest[number..]
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len() - number);
        let (segment, tail) = rest.split_at(number + unit);
        rest = tail;
        Some((unit > 0).then_some(segment))
    })
}

/// One segment, `1.5h`: exactly Go's units and `d`, no exponent, no `inf`, no spaces, no sign.
fn segment_parser() -> &'static fundu::CustomDurationParser<'static> {
    use fundu::{CustomDurationParser, CustomTimeUnit, TimeUnit};
    static PARSER: std::sync::LazyLock<CustomDurationParser<'static>> =
        std::sync::LazyLock::new(|| {
            CustomDurationParser::builder()
                .time_units(&[
                    CustomTimeUnit::with_default(TimeUnit::NanoSecond, &["ns"]),
                    // Go takes both: U+00B5 MICRO SIGN and U+03BC GREEK SMALL LETTER MU.
                    CustomTimeUnit::with_default(
                        TimeUnit::MicroSecond,
                        &["us", "\u{b5}s", "\u{3bc}s"],
                    ),
                    CustomTimeUnit::with_default(TimeUnit::MilliSecond, &["ms"]),
                    CustomTimeUnit::with_default(TimeUnit::Second, &["s"]),
                    CustomTimeUnit::with_default(TimeUnit::Minute, &["m"]),
                    CustomTimeUnit::with_default(TimeUnit::Hour, &["h"]),
                    CustomTimeUnit::with_default(TimeUnit::Day, &["d"]),
                ])
                .disable_exponent()
                .disable_infinity()
                .build()
        });
    &PARSER
}

/// A duration that must be more than zero: a zero wait would fail every change.
pub fn parse_positive_duration(text: &str) -> Result<Duration, DurationError> {
    match parse_duration(text)? {
        Duration::ZERO => Err(DurationError::Zero(text.to_string())),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go_durations() {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        for (text, expected) in [
            ("90s", s(90)),
            ("5m", s(300)),
            ("1m30s", s(90)),
            ("250ms", ms(250)),
            ("300ms", ms(300)),
            ("1.5s", ms(1500)),
            (".5s", ms(500)),
            ("1.s", s(1)),
            ("2h45m", s(2 * 3600 + 45 * 60)),
            ("1.5h", s(5400)),
            ("1.5h30m", s(2 * 3600)),
            ("90m1h", s(150 * 60)),
            ("1h1h", s(7200)),
            ("1h.5s", ms(3_600_500)),
            ("+5m", s(300)),
            ("0", Duration::ZERO),
            ("+0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("1ns", Duration::from_nanos(1)),
            ("1us", Duration::from_micros(1)),
            ("1\u{b5}s", Duration::from_micros(1)),
            ("1\u{3bc}s", Duration::from_micros(1)),
            ("0.5\u{b5}s", Duration::from_nanos(500)),
            // Finer than a nanosecond is dropped, as Go drops it.
            ("1.5ns", Duration::from_nanos(1)),
            ("0.5ns", Duration::ZERO),
            ("1.9999999999s", Duration::from_nanos(1_999_999_999)),
            // Beyond Go: days of 24 hours.
            ("7d", s(7 * 86_400)),
            ("1.5d", s(36 * 3600)),
            ("1d12h", s(36 * 3600)),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text:?}");
        }
        for bad in [
            "", "5", "00", "m", "5x", "1.5", ".s", ".", "+", "++5s", "1.2.3s", "1h+5s", "1e3s",
            "inf", "1S", "1H", "1 s", " 5m", "5m ", "1sec", "1hour", "1h 30m",
        ] {
            assert_eq!(
                parse_duration(bad),
                Err(DurationError::Malformed(bad.into())),
                "{bad:?}"
            );
        }
        for negative in ["-1s", "-0", "-1.5h"] {
            assert_eq!(
                parse_duration(negative),
                Err(DurationError::Negative(negative.into()))
            );
        }
        for zero in ["0", "0s", "0m0s", "0.5ns"] {
            assert_eq!(
                parse_positive_duration(zero),
                Err(DurationError::Zero(zero.into()))
            );
        }
        assert_eq!(parse_positive_duration("1s"), Ok(s(1)));
        assert_eq!(
            parse_duration("5x").unwrap_err().to_string(),
            r#""5x" is not a duration: write e.g. 90s, 5m or 1m30s"#
        );
    }

    #[test]
    fn durations_that_would_wrap_around_a_time_are_out_of_range() {
        assert_eq!(parse_duration("36500d"), Ok(super::LONGEST));
        assert_eq!(parse_duration("876000h"), Ok(super::LONGEST));
        for huge in [
            "36500d1ms",
            "36500.000000001d",
            "213503982334601d",
            "18446744073709551615s",
            "18446744073709551616s",
            "99999999999999999999ms",
            "18446744073709551615ms18446744073709551615ms",
            "5124095576030431h",
        ] {
            let err = parse_duration(huge).unwrap_err();
            assert_eq!(err, DurationError::OutOfRange(huge.into()));
            assert!(err.to_string().contains("out of range"), "{huge}: {err}");
        }
    }
}
