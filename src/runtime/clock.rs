//! Time, injectable in test builds: with the `test-clock` feature, `KUBEADM_RECOVER_NOW` (Unix
//! seconds) fixes "now". Release builds have no such knob: nobody can make a root-run tool on a
//! real node misjudge certificate expiry through its environment.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-28T17:27:28Z` or with fractional seconds → Unix seconds (UTC only).
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let time = time.split('.').next()?;
    let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
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
    Some(days_from_civil(y, mo as u32, da as u32) * 86_400 + h * 3600 + mi * 60 + s)
}

fn parts(unix: i64) -> (i64, u32, u32, i64, i64, i64) {
    let (y, mo, d) = civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    (y, mo, d, secs / 3600, secs % 3600 / 60, secs % 60)
}

/// RFC 3339 in UTC: `2026-11-28T17:27:28Z`.
pub fn rfc3339(unix: i64) -> String {
    let (y, mo, d, h, mi, s) = parts(unix);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Compact UTC with milliseconds for directory names, sortable by time: `20261128T172728.123Z`.
pub fn compact_ms(unix_ms: i64) -> String {
    let (y, mo, d, h, mi, s) = parts(unix_ms.div_euclid(1000));
    let ms = unix_ms.rem_euclid(1000);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}.{ms:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_duration_after_a_time_never_wraps_around() {
        assert_eq!(after(100, Duration::from_secs(60)), Some(160));
        assert_eq!(after(1_800_000_000, Duration::from_secs(u64::MAX)), None);
        assert_eq!(after(i64::MAX - 1, Duration::from_secs(2)), None);
    }
}
