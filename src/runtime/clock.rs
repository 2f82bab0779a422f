//! Time, injectable in test builds: with the `test-clock` feature, `KUBEADM_RECOVER_NOW` (Unix
//! seconds) fixes "now". Release builds have no such knob: nobody can make a root-run tool on a
//! real node misjudge certificate expiry through its environment.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::macros::format_description;
use time::{Date, Month, OffsetDateTime};

/// `unix` plus `duration`, in checked arithmetic: `None` when it does not fit (never a time
/// that wrapped around into the past).
pub fn after(unix: i64, duration: Duration) -> Option<i64> {
    i64::try_from(duration.as_secs())
        .ok()
        .and_then(|secs| unix.checked_add(secs))
}

pub fn now_unix() -> i64 {
    now_unix_ms().div_euclid(1000)
}

pub fn now_unix_ms() -> i64 {
    #[cfg(feature = "test-clock")]
    if let Some(fixed) = std::env::var("KUBEADM_RECOVER_NOW")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
    {
        return fixed.saturating_mul(1000);
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// 400 Gregorian years, to the second: the calendar repeats after them exactly.
const CYCLE: i64 = 146_097 * 86_400;

/// `unix` in UTC: the year, and the rest of the date and time (its year is not `unix`'s).
/// `time` covers the years ±9999, and the times printed here are anyone's: a token's `exp` or
/// a lease's end can be any i64. Shifting by whole 400-year cycles into 1970..2370 lets `time`
/// do the calendar for every one of them, its year set right again afterwards.
fn utc(unix: i64) -> (i64, OffsetDateTime) {
    let (cycles, within) = (unix.div_euclid(CYCLE), unix.rem_euclid(CYCLE));
    let at = OffsetDateTime::from_unix_timestamp(within).expect("1970..2370 is in range");
    (i64::from(at.year()) + 400 * cycles, at)
}

/// `2026-11-28T17:27:28Z` or with fractional seconds → Unix seconds (UTC only).
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let (date, hms) = text.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let hms = hms.split('.').next()?;
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, s) = (t.next()??, t.next()??, t.next()??);
    // The text is someone else's (an apiserver's answer, a kubeconfig): a year or an hour that
    // does not fit is no time at all, never one that wrapped around.
    let valid = (1..=12).contains(&mo)
        && (1..=31).contains(&da)
        && (0..24).contains(&h)
        && (0..60).contains(&mi)
        && (0..=60).contains(&s)
        && (-1_000_000..=1_000_000).contains(&y);
    if !valid {
        return None;
    }
    let (cycles, year) = (y.div_euclid(400), y.rem_euclid(400));
    let month = Month::try_from(u8::try_from(mo).ok()?).ok()?;
    let first = Date::from_calendar_date(i32::try_from(year).ok()?, month, 1).ok()?;
    // Counted from the first of the month, as this parser always has: a 31st of a shorter
    // month (and second 60) runs on into the next one instead of being refused.
    let date = first.checked_add(time::Duration::days(da - 1))?;
    let midnight = date.midnight().assume_utc().unix_timestamp();
    Some(midnight + cycles * CYCLE + h * 3600 + mi * 60 + s)
}

/// As [`parse_rfc3339`], in milliseconds: a Kubernetes MicroTime (`renewTime`) keeps its
/// fraction of a second.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let seconds = parse_rfc3339(text)?;
    let fraction = text
        .strip_suffix('Z')?
        .split_once('.')
        .map_or("", |(_, f)| f);
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis: i64 = format!("{fraction:0<3}")[..3].parse().ok()?;
    Some(seconds * 1000 + millis)
}

/// RFC 3339 in UTC: `2026-11-28T17:27:28Z`.
pub fn rfc3339(unix: i64) -> String {
    let (year, at) = utc(unix);
    let rest = at
        .format(format_description!(
            "-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .expect("a UTC time has every component");
    format!("{year:04}{rest}")
}

/// Compact UTC with milliseconds for directory names, sortable by time: `20261128T172728.123Z`.
pub fn compact_ms(unix_ms: i64) -> String {
    let (year, at) = utc(unix_ms.div_euclid(1000));
    let at = at + time::Duration::milliseconds(unix_ms.rem_euclid(1000));
    let rest = at
        .format(format_description!(
            "[month][day]T[hour][minute][second].[subsecond digits:3]Z"
        ))
        .expect("a UTC time has every component");
    format!("{year:04}{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microtime_keeps_its_milliseconds() {
        assert_eq!(
            parse_rfc3339_ms("2026-11-28T17:34:08.123456Z"),
            parse_rfc3339("2026-11-28T17:34:08Z").map(|s| s * 1000 + 123)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-28T17:34:08Z"),
            parse_rfc3339("2026-11-28T17:34:08Z").map(|s| s * 1000)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-28T17:34:08.5Z"),
            parse_rfc3339("2026-11-28T17:34:08Z").map(|s| s * 1000 + 500)
        );
        assert_eq!(parse_rfc3339_ms("2026-11-28T17:34:08.x1Z"), None);
    }

    #[test]
    fn formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_887_248), "2026-11-28T17:34:08Z");
        assert_eq!(compact_ms(951_782_400_007), "20000229T000000.007Z");
        for t in [0, 951_782_400, 1_795_887_248] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
        assert_eq!(
            parse_rfc3339("2026-11-28T17:34:08.123456Z"),
            Some(1_795_887_248)
        );
        for hostile in [
            "9223372036854775807-01-01T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-01T99999999999999:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(hostile), None, "{hostile}");
        }
    }

    /// What the hand-written calendar before `time` printed and read, for the times `time`
    /// cannot hold and for the lenient spellings: the same bytes, the same seconds.
    #[test]
    fn every_i64_formats_and_every_accepted_text_parses_as_before() {
        for (unix, text) in [
            (i64::MAX, "292277026596-12-04T15:30:07Z"),
            (i64::MIN, "-292277022657-01-27T08:29:52Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
            (253_402_300_800, "10000-01-01T00:00:00Z"),
            (-62_167_219_200, "0000-01-01T00:00:00Z"),
            (-62_167_219_201, "-001-12-31T23:59:59Z"),
            (-1, "1969-12-31T23:59:59Z"),
            (31_556_889_864_403_200, "1000000001-01-01T00:00:00Z"),
        ] {
            assert_eq!(rfc3339(unix), text, "{unix}");
        }
        for (unix_ms, text) in [
            (i64::MAX, "2922789940817T071255.807Z"),
            (i64::MIN, "-2922750550516T164704.192Z"),
            (-1, "19691231T235959.999Z"),
            (253_402_300_800_000, "100000101T000000.000Z"),
        ] {
            assert_eq!(compact_ms(unix_ms), text, "{unix_ms}");
        }
        for (text, unix) in [
            ("2026-02-31T00:00:00Z", Some(1_772_496_000)),
            ("2026-04-31T00:00:00Z", Some(1_777_593_600)),
            ("2023-02-29T00:00:00Z", Some(1_677_628_800)),
            ("2024-02-29T00:00:00Z", Some(1_709_164_800)),
            ("2026-11-28T17:34:60Z", Some(1_795_887_300)),
            ("10000-01-01T00:00:00Z", Some(253_402_300_800)),
            ("1000000-12-31T23:59:60Z", Some(31_494_816_403_200)),
            ("0399-12-31T23:59:59Z", Some(-49_544_438_401)),
            ("0000-01-01T00:00:00Z", Some(-62_167_219_200)),
            ("+2026-1-1T1:2:3Z", Some(1_767_229_323)),
            ("2026-11-28T17:34:08.garbageZ", Some(1_795_887_248)),
            ("1000001-01-01T00:00:00Z", None),
            ("-2026-01-01T00:00:00Z", None),
            ("2026-11-28t17:34:08Z", None),
            ("2026-11-28T17:34:08z", None),
        ] {
            assert_eq!(parse_rfc3339(text), unix, "{text}");
        }
    }

    #[test]
    fn a_duration_after_a_time_never_wraps_around() {
        assert_eq!(after(100, Duration::from_secs(60)), Some(160));
        assert_eq!(after(1_800_000_000, Duration::from_secs(u64::MAX)), None);
        assert_eq!(after(i64::MAX - 1, Duration::from_secs(2)), None);
    }
}
