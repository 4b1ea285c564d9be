//! Cron schedules: the five fields of Vixie cron (minute, hour, day of
//! month, month, day of week), the `@hourly`-style macros, and an optional
//! time zone as Kubernetes CronJobs take it (`CRON_TZ=Europe/Berlin 0 3 * * *`
//! or `TZ=...`). Pure: values in, instants out.
//!
//! Rules: `*` and `?` match everything; `a-b`, `a-b/n`, `*/n` and `a/n`
//! (from `a` to the field's end) step through a range; lists join with `,`;
//! months and weekdays take English three-letter names; weekday 7 is Sunday.
//! When both day of month and day of week are restricted, a day matching
//! either runs (as in Vixie cron). Local times that a daylight-saving change
//! skips run at the first instant after the gap; times it repeats run once,
//! at the first of the two.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// Whether day of month / day of week were restricted (not `*`).
    days_restricted: bool,
    weekdays_restricted: bool,
    zone: TimeZone,
    zone_name: String,
}

/// Why a schedule was refused, in words for a status message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cron schedule {schedule:?}: {reason}")]
pub struct CronError {
    pub schedule: String,
    pub reason: String,
}

/// How far ahead [`Cron::next_after`] looks: a schedule with no run in this
/// many years never runs (`0 0 30 2 *`).
const HORIZON_YEARS: i16 = 8;

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY: Field = Field {
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &MONTHS,
};
// 0-7: both 0 and 7 are Sunday.
const WEEKDAY: Field = Field {
    name: "day of week",
    min: 0,
    max: 7,
    names: &WEEKDAYS,
};

impl Field {
    fn value(&self, s: &str) -> Result<u32, String> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = self.names.iter().position(|n| *n == lower) {
            return Ok(i as u32 + self.min);
        }
        let v: u32 = s
            .parse()
            .map_err(|_| format!("{} {s:?} is not a number{}", self.name, self.name_hint()))?;
        if v < self.min || v > self.max {
            return Err(format!("{} {v} is outside {}-{}", self.name, self.min, self.max));
        }
        Ok(v)
    }

    fn name_hint(&self) -> &'static str {
        match self.names.len() {
            12 => " or a month name",
            7 => " or a weekday name",
            _ => "",
        }
    }

    /// The set of values as bits, and whether the field was restricted.
    fn parse(&self, text: &str) -> Result<(u64, bool), String> {
        let mut bits = 0u64;
        for part in text.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => {
                    let step: u32 = s
                        .parse()
                        .map_err(|_| format!("{} step {s:?} is not a number", self.name))?;
                    if step == 0 {
                        return Err(format!("{} step may not be 0", self.name));
                    }
                    (r, Some(step))
                }
                None => (part, None),
            };
            let (lo, hi) = match range {
                "*" | "?" => (self.min, self.max),
                "" => return Err(format!("empty {} in {text:?}", self.name)),
                r => match r.split_once('-') {
                    Some((a, b)) => {
                        let (a, b) = (self.value(a)?, self.value(b)?);
                        if a > b {
                            return Err(format!("{} range {r} runs backwards", self.name));
                        }
                        (a, b)
                    }
                    // `a/n` runs from a to the end of the field.
                    None if step.is_some() => (self.value(r)?, self.max),
                    None => {
                        let v = self.value(r)?;
                        (v, v)
                    }
                },
            };
            let mut v = lo;
            while v <= hi {
                bits |= 1 << v;
                v += step.unwrap_or(1);
            }
        }
        let all = (self.min..=self.max).fold(0u64, |b, v| b | 1 << v);
        Ok((bits, bits & all != all && !matches!(text, "*" | "?")))
    }
}

impl Cron {
    /// Parses `[CRON_TZ=zone |TZ=zone ]fields`; `zone` (an IANA name) is
    /// the time zone when the text names none; without either it is UTC.
    pub fn parse(text: &str, zone: Option<&str>) -> Result<Self, CronError> {
        let fail = |reason: String| CronError {
            schedule: text.to_owned(),
            reason,
        };
        let mut rest = text.trim();
        let mut zone_name = zone.map(str::to_owned);
        for prefix in ["CRON_TZ=", "TZ="] {
            if let Some(after) = rest.strip_prefix(prefix) {
                let (name, fields) = after
                    .split_once(char::is_whitespace)
                    .ok_or_else(|| fail("a time zone but no schedule".into()))?;
                zone_name = Some(name.to_owned());
                rest = fields.trim_start();
            }
        }
        let zone_name = zone_name.unwrap_or_else(|| "UTC".to_owned());
        let zone = TimeZone::get(&zone_name).map_err(|_| fail(format!("unknown time zone {zone_name:?}")))?;
        let expanded = match rest {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            m if m.starts_with('@') => return Err(fail(format!("unknown macro {m}"))),
            fields => fields,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(fail(format!(
                "{} fields; a schedule has 5 (minute hour day-of-month month day-of-week)",
                fields.len()
            )));
        }
        let (minutes, _) = MINUTE.parse(fields[0]).map_err(&fail)?;
        let (hours, _) = HOUR.parse(fields[1]).map_err(&fail)?;
        let (days, days_restricted) = DAY.parse(fields[2]).map_err(&fail)?;
        let (months, _) = MONTH.parse(fields[3]).map_err(&fail)?;
        let (mut weekdays, weekdays_restricted) = WEEKDAY.parse(fields[4]).map_err(&fail)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & 0x7f;
        }
        let cron = Cron {
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: weekdays as u8,
            days_restricted,
            weekdays_restricted: weekdays_restricted && weekdays & 0x7f != 0x7f,
            zone,
            zone_name,
        };
        if cron.next_after(Timestamp::UNIX_EPOCH).is_none() && cron.next_after(Timestamp::now()).is_none() {
            return Err(fail("it never runs".into()));
        }
        Ok(cron)
    }

    /// The time zone's name.
    pub fn zone(&self) -> &str {
        &self.zone_name
    }

    fn day_matches(&self, d: Date) -> bool {
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().to_sunday_zero_offset()) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }

    /// The first scheduled instant strictly after `t`, or `None` when there
    /// is none within the next few years.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let start = t.to_zoned(self.zone.clone()).datetime();
        let limit = start.year().checked_add(HORIZON_YEARS)?;
        let mut c = start
            .date()
            .at(start.hour(), start.minute(), 0, 0)
            .checked_add(1_i32.minute())
            .ok()?;
        while c.year() <= limit {
            if self.months & (1 << c.month()) == 0 {
                c = c
                    .date()
                    .first_of_month()
                    .checked_add(1_i32.month())
                    .ok()?
                    .at(0, 0, 0, 0);
                continue;
            }
            if !self.day_matches(c.date()) {
                c = c.date().tomorrow().ok()?.at(0, 0, 0, 0);
                continue;
            }
            if self.hours & (1 << c.hour()) == 0 {
                c = next_hour(c)?;
                continue;
            }
            if self.minutes & (1 << c.minute()) == 0 {
                c = c.checked_add(1_i32.minute()).ok()?;
                continue;
            }
            // Compatible disambiguation: a skipped local time moves past the
            // gap, a repeated one takes its first instant.
            let at = self.zone.to_zoned(c).ok()?.timestamp();
            if at > t {
                return Some(at);
            }
            c = c.checked_add(1_i32.minute()).ok()?;
        }
        None
    }

    /// The last scheduled instant at or before `t`, within the same few
    /// years.
    pub fn last_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        let start = t.to_zoned(self.zone.clone()).datetime();
        let limit = start.year().checked_sub(HORIZON_YEARS)?;
        let minute = 1_i32.minute();
        let mut c = start.date().at(start.hour(), start.minute(), 0, 0);
        while c.year() >= limit {
            if self.months & (1 << c.month()) == 0 {
                c = c.date().first_of_month().at(0, 0, 0, 0).checked_sub(minute).ok()?;
                continue;
            }
            if !self.day_matches(c.date()) {
                c = c.date().at(0, 0, 0, 0).checked_sub(minute).ok()?;
                continue;
            }
            if self.hours & (1 << c.hour()) == 0 {
                c = c.date().at(c.hour(), 0, 0, 0).checked_sub(minute).ok()?;
                continue;
            }
            if self.minutes & (1 << c.minute()) == 0 {
                c = c.checked_sub(minute).ok()?;
                continue;
            }
            let at = self.zone.to_zoned(c).ok()?.timestamp();
            if at <= t {
                return Some(at);
            }
            c = c.checked_sub(minute).ok()?;
        }
        None
    }

    /// The last scheduled instant in `(after, until]`, if any: the one run a
    /// schedule catches up on after missing several.
    pub fn last_between(&self, after: Timestamp, until: Timestamp) -> Option<Timestamp> {
        self.last_at_or_before(until).filter(|at| *at > after)
    }
}

fn next_hour(c: DateTime) -> Option<DateTime> {
    c.date().at(c.hour(), 0, 0, 0).checked_add(1_i32.hour()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next(expr: &str, after: &str) -> String {
        Cron::parse(expr, None)
            .unwrap()
            .next_after(ts(after))
            .unwrap()
            .to_string()
    }

    #[test]
    fn fields_ranges_steps_lists_and_names() {
        assert_eq!(next("*/15 * * * *", "2026-01-01T00:00:00Z"), "2026-01-01T00:15:00Z");
        assert_eq!(next("*/15 * * * *", "2026-01-01T00:14:59Z"), "2026-01-01T00:15:00Z");
        assert_eq!(next("0 */6 * * *", "2026-01-01T06:00:00Z"), "2026-01-01T12:00:00Z");
        assert_eq!(next("5,35 1-2 * * *", "2026-01-01T01:35:00Z"), "2026-01-01T02:05:00Z");
        assert_eq!(
            next("0 3 * jan-feb mon", "2026-02-28T00:00:00Z"),
            "2027-01-04T03:00:00Z"
        );
        assert_eq!(next("30 2 * * 7", "2026-03-02T00:00:00Z"), "2026-03-08T02:30:00Z");
        assert_eq!(next("10/20 * * * *", "2026-01-01T00:31:00Z"), "2026-01-01T00:50:00Z");
        assert_eq!(next("@hourly", "2026-01-01T00:00:00Z"), "2026-01-01T01:00:00Z");
        assert_eq!(next("@daily", "2026-01-01T00:00:00Z"), "2026-01-02T00:00:00Z");
        assert_eq!(next("@weekly", "2026-12-05T12:00:00Z"), "2026-12-06T00:00:00Z");
        assert_eq!(next("0 0 29 2 *", "2026-01-01T00:00:00Z"), "2028-02-29T00:00:00Z");
    }

    #[test]
    fn day_of_month_and_weekday_either_match_when_both_restricted() {
        // The 13th, or any Friday: 2026-03-06 is a Friday, before the 13th.
        assert_eq!(next("0 0 13 * fri", "2026-03-01T00:00:00Z"), "2026-03-06T00:00:00Z");
        // Only the weekday restricted: Fridays alone.
        assert_eq!(next("0 0 * * fri", "2026-03-07T00:00:00Z"), "2026-03-13T00:00:00Z");
        // Only the day restricted.
        assert_eq!(next("0 0 13 * *", "2026-03-14T00:00:00Z"), "2026-04-13T00:00:00Z");
    }

    #[test]
    fn time_zones_and_daylight_saving() {
        // 03:00 in Berlin is 02:00 UTC in winter, 01:00 UTC in summer.
        let c = Cron::parse("CRON_TZ=Europe/Berlin 0 3 * * *", None).unwrap();
        assert_eq!(c.zone(), "Europe/Berlin");
        assert_eq!(
            c.next_after(ts("2026-01-10T00:00:00Z")).unwrap(),
            ts("2026-01-10T02:00:00Z")
        );
        assert_eq!(
            c.next_after(ts("2026-07-10T00:00:00Z")).unwrap(),
            ts("2026-07-10T01:00:00Z")
        );
        let c = Cron::parse("0 3 * * *", Some("America/New_York")).unwrap();
        assert_eq!(
            c.next_after(ts("2026-01-10T00:00:00Z")).unwrap(),
            ts("2026-01-10T08:00:00Z")
        );
        // 02:30 does not exist in Berlin on 2026-03-29: it runs after the gap,
        // at 03:00 local (01:00 UTC), once.
        let c = Cron::parse("TZ=Europe/Berlin 30 2 * * *", None).unwrap();
        assert_eq!(
            c.next_after(ts("2026-03-28T12:00:00Z")).unwrap(),
            ts("2026-03-29T01:30:00Z")
        );
        // 02:30 happens twice on 2026-10-25: the run takes the first.
        let first = c.next_after(ts("2026-10-24T12:00:00Z")).unwrap();
        assert_eq!(first, ts("2026-10-25T00:30:00Z"));
        assert_eq!(c.next_after(first).unwrap(), ts("2026-10-26T01:30:00Z"));
    }

    #[test]
    fn the_last_missed_run_is_found_without_stepping_through_all() {
        let c = Cron::parse("* * * * *", None).unwrap();
        let after = ts("2025-01-01T00:00:00Z");
        let until = ts("2026-06-01T12:34:56Z");
        assert_eq!(c.last_between(after, until).unwrap(), ts("2026-06-01T12:34:00Z"));
        assert_eq!(c.last_between(ts("2026-06-01T12:34:00Z"), until), None);
        let c = Cron::parse("0 0 1 1 *", None).unwrap();
        assert_eq!(c.last_between(after, until).unwrap(), ts("2026-01-01T00:00:00Z"));
        assert_eq!(
            c.last_at_or_before(ts("2026-01-01T00:00:00Z")).unwrap(),
            ts("2026-01-01T00:00:00Z")
        );
    }

    #[test]
    fn bad_schedules_say_why() {
        let why = |s: &str| Cron::parse(s, None).unwrap_err().to_string();
        assert!(why("* * * *").contains("4 fields"), "{}", why("* * * *"));
        assert!(why("60 * * * *").contains("minute 60 is outside 0-59"));
        assert!(why("* * * foo *").contains("month \"foo\" is not a number or a month name"));
        assert!(why("*/0 * * * *").contains("step may not be 0"));
        assert!(why("5-1 * * * *").contains("runs backwards"));
        assert!(why("0 0 30 2 *").contains("never runs"));
        assert!(why("CRON_TZ=Mars/Olympus 0 0 * * *").contains("unknown time zone"));
        assert!(why("@fortnightly").contains("unknown macro"));
        assert!(why("1,,2 * * * *").contains("empty minute"));
    }
}
