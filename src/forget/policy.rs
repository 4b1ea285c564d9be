//! Retention policies: which snapshots of one group to keep, and why.
//!
//! Pure: snapshots and a policy in, one decision per snapshot out. The time
//! zone that decides where an hour, day, week, month or year begins is a
//! parameter, so the result does not depend on the machine it runs on.
//!
//! The rules (all of them apply; a snapshot is kept if any rule keeps it):
//!
//! - `last N`: the N newest snapshots.
//! - `hourly/daily/weekly/monthly/yearly N`: walking from the newest, the
//!   first snapshot seen in each hour (day, ISO week, month, year), for the
//!   N newest such periods that have a snapshot. If fewer than N periods
//!   have one, the oldest snapshot is kept as well ("oldest daily
//!   snapshot"), so the history reaches as far back as it can.
//! - `-1` for any count: no limit.
//! - `within D`: every snapshot newer than D before the newest snapshot
//!   (strictly newer: one exactly D older is not kept).
//! - `within-hourly/.../yearly D`: the newest snapshot of each period, for
//!   the snapshots newer than D before the newest one.
//! - `tags`: every snapshot that has all tags of one of the given sets.
//!
//! "The newest snapshot" is the newest one not later than `now`, so a
//! snapshot with a clock far in the future cannot push every other one out of
//! a `within` window.

use std::cmp::Reverse;
use std::fmt;

use chrono::{DateTime, Datelike, TimeZone, Timelike};

use super::duration::CalendarDuration;
use super::ForgetError;
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;

/// A count meaning "no limit".
pub const UNLIMITED: i32 = -1;

/// What the policy looks at in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub id: SnapshotId,
    /// Nanoseconds since the Unix epoch.
    pub time_ns: i64,
    pub hostname: String,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
}

impl SnapshotInfo {
    pub fn from_snapshot(id: SnapshotId, s: &Snapshot) -> Self {
        Self {
            id,
            time_ns: s.time_ns,
            hostname: s.hostname.clone(),
            paths: s.path_strings(),
            tags: s.tags.clone(),
        }
    }

    /// Whether this snapshot has every tag of `set`.
    pub fn has_tags(&self, set: &[String]) -> bool {
        set.iter().all(|t| self.tags.contains(t))
    }
}

/// A calendar period, or "each snapshot" for `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Bucket {
    pub fn name(self) -> &'static str {
        match self {
            Self::Last => "last",
            Self::Hourly => "hourly",
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
            Self::Yearly => "yearly",
        }
    }

    /// A number that is equal for two snapshots in the same period.
    /// `position` (the snapshot's place, newest first) makes every snapshot
    /// its own period for `Last`.
    fn key<Tz: TimeZone>(self, t: &DateTime<Tz>, position: usize) -> i64 {
        let year = i64::from(t.year());
        let ymd = year * 10_000 + i64::from(t.month()) * 100 + i64::from(t.day());
        match self {
            Self::Last => i64::try_from(position).unwrap_or(i64::MAX),
            Self::Hourly => ymd * 100 + i64::from(t.hour()),
            Self::Daily => ymd,
            Self::Weekly => {
                let week = t.iso_week();
                i64::from(week.year()) * 100 + i64::from(week.week())
            }
            Self::Monthly => year * 100 + i64::from(t.month()),
            Self::Yearly => year,
        }
    }
}

/// Why a snapshot was kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// One of the newest N of its period (`oldest`: kept as the oldest
    /// snapshot while the count was not used up).
    Bucket { bucket: Bucket, oldest: bool },
    /// Newer than the duration before the newest snapshot.
    Within(CalendarDuration),
    /// The newest of its period, within the duration.
    WithinBucket {
        bucket: Bucket,
        within: CalendarDuration,
        oldest: bool,
    },
    /// Has all of these tags.
    Tags(Vec<String>),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let oldest = |o: bool| if o { "oldest " } else { "" };
        match self {
            Self::Bucket { bucket, oldest: o } => write!(f, "{}{} snapshot", oldest(*o), bucket.name()),
            Self::Within(d) => write!(f, "within {d}"),
            Self::WithinBucket {
                bucket,
                within,
                oldest: o,
            } => write!(f, "{}{} within {within}", oldest(*o), bucket.name()),
            Self::Tags(set) if set.len() == 1 => write!(f, "tag {}", set[0]),
            Self::Tags(set) => write!(f, "tags {}", set.join(",")),
        }
    }
}

/// Which snapshots to keep. Counts: 0 off, N > 0 that many, -1 no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub last: i32,
    pub hourly: i32,
    pub daily: i32,
    pub weekly: i32,
    pub monthly: i32,
    pub yearly: i32,
    pub within: CalendarDuration,
    pub within_hourly: CalendarDuration,
    pub within_daily: CalendarDuration,
    pub within_weekly: CalendarDuration,
    pub within_monthly: CalendarDuration,
    pub within_yearly: CalendarDuration,
    /// Keep snapshots that have all tags of any one of these sets.
    pub tags: Vec<Vec<String>>,
}

impl Policy {
    /// Whether no rule is set (such a policy keeps everything).
    pub fn is_empty(&self) -> bool {
        self.counts().iter().all(|(_, n)| *n == 0)
            && self.within.is_zero()
            && self.withins().iter().all(|(_, d)| d.is_zero())
            && self.tags.iter().all(Vec::is_empty)
    }

    /// Refuses counts below -1, naming the option.
    pub fn validate(&self) -> Result<(), ForgetError> {
        for (bucket, n) in self.counts() {
            if n < UNLIMITED {
                return Err(ForgetError::BadCount {
                    option: format!("--keep-{}", bucket.name()),
                    value: n,
                });
            }
        }
        Ok(())
    }

    fn counts(&self) -> [(Bucket, i32); 6] {
        [
            (Bucket::Last, self.last),
            (Bucket::Hourly, self.hourly),
            (Bucket::Daily, self.daily),
            (Bucket::Weekly, self.weekly),
            (Bucket::Monthly, self.monthly),
            (Bucket::Yearly, self.yearly),
        ]
    }

    fn withins(&self) -> [(Bucket, CalendarDuration); 5] {
        [
            (Bucket::Hourly, self.within_hourly),
            (Bucket::Daily, self.within_daily),
            (Bucket::Weekly, self.within_weekly),
            (Bucket::Monthly, self.within_monthly),
            (Bucket::Yearly, self.within_yearly),
        ]
    }
}

impl fmt::Display for Policy {
    /// One line for humans: "keep 3 last, 7 daily snapshots, ...".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        let counts: Vec<String> = self
            .counts()
            .iter()
            .filter(|(_, n)| *n != 0)
            .map(|(b, n)| match *n {
                UNLIMITED => format!("all {}", b.name()),
                n => format!("{n} {}", b.name()),
            })
            .collect();
        if !counts.is_empty() {
            parts.push(format!("{} snapshots", counts.join(", ")));
        }
        for (b, d) in self.withins() {
            if !d.is_zero() {
                parts.push(format!("{} snapshots within {d}", b.name()));
            }
        }
        for set in self.tags.iter().filter(|s| !s.is_empty()) {
            parts.push(format!("snapshots tagged {}", set.join(",")));
        }
        if !self.within.is_zero() {
            parts.push(format!("snapshots within {} of the newest", self.within));
        }
        if parts.is_empty() {
            return f.write_str("keep everything (no policy)");
        }
        write!(f, "keep {}", parts.join(", "))
    }
}

/// The verdict on one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub snapshot: SnapshotInfo,
    pub keep: bool,
    /// Every rule that kept it (empty when removed).
    pub reasons: Vec<Reason>,
}

/// Applies `policy` to the snapshots of one group; returns one decision per
/// snapshot, newest first (equal times: larger id first). `tz` decides the
/// calendar of the periods; `now_ns` bounds which snapshot counts as the
/// newest for the `within` rules. An empty policy keeps everything.
pub fn apply_policy<Tz: TimeZone>(snapshots: &[SnapshotInfo], policy: &Policy, tz: &Tz, now_ns: i64) -> Vec<Decision> {
    let mut order: Vec<&SnapshotInfo> = snapshots.iter().collect();
    order.sort_by_key(|s| Reverse((s.time_ns, s.id)));
    if policy.is_empty() {
        return order
            .into_iter()
            .map(|s| Decision {
                snapshot: s.clone(),
                keep: true,
                reasons: Vec::new(),
            })
            .collect();
    }
    // The newest snapshot not in the future; with none, every snapshot is
    // "within" any duration.
    let newest = order.iter().map(|s| s.time_ns).find(|t| *t <= now_ns);
    let cutoff = |d: &CalendarDuration| -> Option<i64> { newest.map(|t| d.before(t, tz).unwrap_or(i64::MIN)) };
    let is_within = |t: i64, cutoff: Option<i64>| cutoff.is_none_or(|c| t > c);

    let mut counted: Vec<(Bucket, i32, Option<i64>)> = policy
        .counts()
        .into_iter()
        .filter(|(_, n)| *n != 0)
        .map(|(b, n)| (b, n, None))
        .collect();
    let mut within: Vec<(Bucket, CalendarDuration, Option<i64>, Option<i64>)> = policy
        .withins()
        .into_iter()
        .filter(|(_, d)| !d.is_zero())
        .map(|(b, d)| (b, d, cutoff(&d), None))
        .collect();
    let within_all = (!policy.within.is_zero()).then(|| (policy.within, cutoff(&policy.within)));
    let last_position = order.len().saturating_sub(1);

    let mut out = Vec::with_capacity(order.len());
    for (position, snap) in order.into_iter().enumerate() {
        let time = DateTime::from_timestamp_nanos(snap.time_ns).with_timezone(tz);
        let is_oldest = position == last_position;
        let mut reasons = Vec::new();
        for set in policy.tags.iter().filter(|s| !s.is_empty()) {
            if snap.has_tags(set) {
                reasons.push(Reason::Tags(set.clone()));
            }
        }
        if let Some((d, cut)) = within_all {
            if is_within(snap.time_ns, cut) {
                reasons.push(Reason::Within(d));
            }
        }
        for (bucket, left, seen) in counted.iter_mut() {
            if *left == 0 {
                continue;
            }
            let key = bucket.key(&time, position);
            let new_period = *seen != Some(key);
            if new_period || is_oldest {
                *seen = Some(key);
                if *left > 0 {
                    *left -= 1;
                }
                reasons.push(Reason::Bucket {
                    bucket: *bucket,
                    oldest: !new_period,
                });
            }
        }
        for (bucket, d, cut, seen) in within.iter_mut() {
            if !is_within(snap.time_ns, *cut) {
                continue;
            }
            let key = bucket.key(&time, position);
            let new_period = *seen != Some(key);
            if new_period || is_oldest {
                *seen = Some(key);
                reasons.push(Reason::WithinBucket {
                    bucket: *bucket,
                    within: *d,
                    oldest: !new_period,
                });
            }
        }
        out.push(Decision {
            snapshot: snap.clone(),
            keep: !reasons.is_empty(),
            reasons,
        });
    }
    out
}
