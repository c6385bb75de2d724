//! The `time` attribute: RFC 3339 timestamps, written in UTC and checked on the way in.

use std::time::SystemTime;

/// Now, in UTC with microseconds (`2026-12-01T10:00:00.123456Z`).
pub(crate) fn now() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
}

/// Whether `text` is an RFC 3339 `date-time` (section 5.6): `YYYY-MM-DDTHH:MM:SS`, an optional
/// fraction, then `Z` or a `±HH:MM` offset; `T` and `Z` in either case. Ranges are checked per
/// field (month 1–12, day 1–31, hour 0–23, minute 0–59, second 0–60 for a leap second).
pub(crate) fn is_rfc3339(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = bytes.get(range)?;
        if part.iter().all(u8::is_ascii_digit) {
            part.iter()
                .try_fold(0u32, |n, d| Some(n * 10 + u32::from(d - b'0')))
        } else {
            None
        }
    };
    let at = |index: usize, expected: &[u8]| bytes.get(index).is_some_and(|b| expected.contains(b));
    let fields = (
        digits(0..4),
        digits(5..7),
        digits(8..10),
        digits(11..13),
        digits(14..16),
        digits(17..19),
    );
    let (Some(_), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = fields else {
        return false;
    };
    let separators = at(4, b"-") && at(7, b"-") && at(10, b"Tt") && at(13, b":") && at(16, b":");
    let ranges = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour <= 23
        && minute <= 59
        && second <= 60;
    if !(separators && ranges) {
        return false;
    }
    let mut rest = &bytes[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let count = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if count == 0 {
            return false;
        }
        rest = &fraction[count..];
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            let hours = [*h1, *h2];
            let minutes = [*m1, *m2];
            hours.iter().chain(&minutes).all(u8::is_ascii_digit)
                && (hours[0] - b'0') * 10 + (hours[1] - b'0') <= 23
                && (minutes[0] - b'0') * 10 + (minutes[1] - b'0') <= 59
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_rfc3339_date_times() {
        for valid in [
            "2026-12-01T10:00:00Z",
            "2026-12-01t10:00:00z",
            "1985-04-12T23:20:50.52Z",
            "1996-12-19T16:39:57-08:00",
            "1990-12-31T23:59:60Z",
            "2026-12-01T10:00:00.123456789+05:30",
        ] {
            assert!(is_rfc3339(valid), "{valid}");
        }
        assert!(is_rfc3339(&now()), "{}", now());
    }

    #[test]
    fn rejects_everything_else() {
        for invalid in [
            "",
            "2026-12-01",
            "2026-12-01 10:00:00Z",
            "2026-13-01T10:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T10:00:00",
            "2026-12-01T10:00:00.Z",
            "2026-12-01T10:00:00+0100",
            "2026-12-01T10:00:00+24:00",
            "２０２６-12-01T10:00:00Z",
            "2026-12-01T10:00:00Zjunk",
        ] {
            assert!(!is_rfc3339(invalid), "{invalid}");
        }
    }
}
