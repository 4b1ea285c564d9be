//! Calendar durations for `--keep-within*`: years, months, days and hours,
//! written like `1y2m3d4h`.
//!
//! A calendar duration is not a fixed number of seconds: one month before
//! 31 March is 3 March (31 February carried into March), the way a calendar
//! date with an overflowing day is normalised. The hours are then taken off
//! as real elapsed time.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone};

use super::ForgetError;

/// Years, months, days and hours; all zero means "not set".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CalendarDuration {
    pub years: u32,
    pub months: u32,
    pub days: u32,
    pub hours: u32,
}

impl CalendarDuration {
    pub const fn new(years: u32, months: u32, days: u32, hours: u32) -> Self {
        Self {
            years,
            months,
            days,
            hours,
        }
    }

    /// Whether every part is zero (the rule is off).
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    /// The instant (ns since the epoch) this duration before `from_ns`,
    /// counting years, months and days on the calendar of `tz`. `None` when
    /// the result is outside the representable range.
    pub fn before<Tz: TimeZone>(&self, from_ns: i64, tz: &Tz) -> Option<i64> {
        let from = chrono::DateTime::from_timestamp_nanos(from_ns).with_timezone(tz);
        let local = from.naive_local();
        let months_total = i64::from(local.year()) * 12 + i64::from(local.month0())
            - i64::from(self.years) * 12
            - i64::from(self.months);
        let year = i32::try_from(months_total.div_euclid(12)).ok()?;
        let month0 = u32::try_from(months_total.rem_euclid(12)).ok()?;
        // The first of the target month, then the day of month carried over
        // as an offset, so that a day past the month's end spills forward.
        let first = NaiveDate::from_ymd_opt(year, month0 + 1, 1)?;
        let day_offset = i64::from(local.day()) - 1 - i64::from(self.days);
        let date = first.checked_add_signed(chrono::TimeDelta::try_days(day_offset)?)?;
        let shifted = NaiveDateTime::new(date, local.time());
        let instant = match tz.from_local_datetime(&shifted) {
            LocalResult::Single(t) => t,
            LocalResult::Ambiguous(earliest, _) => earliest,
            // A local time skipped by a clock change: use the offset the
            // starting time had.
            LocalResult::None => {
                let offset = from.offset().fix();
                offset.from_local_datetime(&shifted).single()?.with_timezone(tz)
            }
        };
        let ns = instant.timestamp_nanos_opt()?;
        ns.checked_sub(i64::from(self.hours).checked_mul(3_600_000_000_000)?)
    }
}

impl fmt::Display for CalendarDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0h");
        }
        for (n, unit) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n != 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for CalendarDuration {
    type Err = ForgetError;

    /// Parses `1y2m3d4h`: each part a number and a unit (y, m, d or h), in
    /// any order, each unit at most once.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| ForgetError::BadDuration {
            value: s.to_owned(),
            reason: why,
        };
        let text = s.trim();
        if text.is_empty() {
            return Err(bad("it is empty".into()));
        }
        let mut out = Self::default();
        let mut seen = [false; 4];
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad(format!(
                    "expected a number at {rest:?} (units: y, m, d, h; e.g. 1y2m3d4h)"
                )));
            }
            let (number, tail) = rest.split_at(digits);
            let n: u32 = number.parse().map_err(|_| bad(format!("{number} is too large")))?;
            let Some(unit) = tail.chars().next() else {
                return Err(bad(format!("no unit after {number} (use y, m, d or h)")));
            };
            let slot = match unit {
                'y' => 0,
                'm' => 1,
                'd' => 2,
                'h' => 3,
                other => return Err(bad(format!("unknown unit {other:?} (use y, m, d or h)"))),
            };
            if seen[slot] {
                return Err(bad(format!("unit {unit:?} given twice")));
            }
            seen[slot] = true;
            match slot {
                0 => out.years = n,
                1 => out.months = n,
                2 => out.days = n,
                _ => out.hours = n,
            }
            rest = &tail[unit.len_utf8()..];
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    fn ns(rfc3339: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_nanos_opt()
            .unwrap()
    }

    #[test]
    fn parses_and_prints() {
        let cases = [
            ("1y2m3d4h", CalendarDuration::new(1, 2, 3, 4), "1y2m3d4h"),
            ("7d", CalendarDuration::new(0, 0, 7, 0), "7d"),
            ("4h1y", CalendarDuration::new(1, 0, 0, 4), "1y4h"),
            (" 30d ", CalendarDuration::new(0, 0, 30, 0), "30d"),
            ("0d", CalendarDuration::default(), "0h"),
        ];
        for (text, want, shown) in cases {
            let got: CalendarDuration = text.parse().unwrap();
            assert_eq!(got, want, "{text}");
            assert_eq!(got.to_string(), shown, "{text}");
        }
    }

    #[test]
    fn rejects_bad_durations_naming_the_value() {
        for (text, why) in [
            ("", "empty"),
            ("7", "no unit"),
            ("d", "expected a number"),
            ("-1d", "expected a number"),
            ("3w", "unknown unit"),
            ("1d2d", "twice"),
            ("99999999999d", "too large"),
            ("1dx", "expected a number"),
        ] {
            let err = text.parse::<CalendarDuration>().unwrap_err().to_string();
            assert!(err.contains(why), "{text:?}: {err}");
            assert!(err.contains(&format!("{:?}", text)), "{text:?}: {err}");
        }
    }

    #[test]
    fn subtracts_on_the_calendar() {
        let utc = FixedOffset::east_opt(0).unwrap();
        let cases = [
            // Month arithmetic carries an overflowing day forward.
            (
                "2024-03-31T12:00:00Z",
                CalendarDuration::new(0, 1, 0, 0),
                "2024-03-02T12:00:00Z",
            ),
            (
                "2023-03-31T12:00:00Z",
                CalendarDuration::new(0, 1, 0, 0),
                "2023-03-03T12:00:00Z",
            ),
            // Across a year boundary.
            (
                "2024-01-01T00:30:00Z",
                CalendarDuration::new(0, 0, 1, 1),
                "2023-12-30T23:30:00Z",
            ),
            (
                "2024-02-29T00:00:00Z",
                CalendarDuration::new(1, 0, 0, 0),
                "2023-03-01T00:00:00Z",
            ),
            (
                "2024-01-15T00:00:00Z",
                CalendarDuration::new(0, 13, 0, 0),
                "2022-12-15T00:00:00Z",
            ),
            (
                "2024-03-01T00:00:00Z",
                CalendarDuration::new(0, 0, 1, 0),
                "2024-02-29T00:00:00Z",
            ),
        ];
        for (from, d, want) in cases {
            assert_eq!(d.before(ns(from), &utc), Some(ns(want)), "{from} - {d}");
        }
    }

    #[test]
    fn days_follow_the_local_calendar() {
        // 00:30 on 1 March at +02:00 is 22:30 UTC on 29 February; one day
        // before is 00:30 on 29 February local time.
        let plus2 = FixedOffset::east_opt(2 * 3600).unwrap();
        let from = ns("2024-03-01T00:30:00+02:00");
        let got = CalendarDuration::new(0, 0, 1, 0).before(from, &plus2);
        assert_eq!(got, Some(ns("2024-02-29T00:30:00+02:00")));
        let got = CalendarDuration::new(0, 1, 0, 0).before(from, &plus2);
        assert_eq!(got, Some(ns("2024-02-01T00:30:00+02:00")));
    }
}
