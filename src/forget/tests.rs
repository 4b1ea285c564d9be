//! Table-driven tests of the retention policies, with the calendar edges
//! (year ends, ISO weeks 53 and 1, month lengths, leap days, time zones).

use chrono::{FixedOffset, NaiveDateTime};

use super::*;

/// "YYYY-MM-DD HH:MM" (UTC) as nanoseconds.
fn at(text: &str) -> i64 {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M")
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .and_utc()
        .timestamp_nanos_opt()
        .unwrap()
}

fn show(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

fn id(n: usize) -> SnapshotId {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&(n as u64 + 1).to_be_bytes());
    SnapshotId::from_bytes(bytes)
}

fn info(n: usize, time: &str, host: &str, paths: &[&str], tags: &[&str]) -> SnapshotInfo {
    SnapshotInfo {
        id: id(n),
        time_ns: at(time),
        hostname: host.into(),
        paths: paths.iter().map(|p| p.to_string()).collect(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
    }
}

fn snaps(times: &[&str]) -> Vec<SnapshotInfo> {
    times
        .iter()
        .enumerate()
        .map(|(n, t)| info(n, t, "h", &["/data"], &[]))
        .collect()
}

fn tz(hours: i32) -> FixedOffset {
    FixedOffset::east_opt(hours * 3600).unwrap()
}

fn d(text: &str) -> CalendarDuration {
    text.parse().unwrap()
}

const FAR_FUTURE: &str = "2100-01-01 00:00";

/// Times (newest first) of the snapshots the policy keeps.
fn kept(list: &[SnapshotInfo], policy: &Policy, zone: FixedOffset, now: &str) -> Vec<String> {
    apply_policy(list, policy, &zone, at(now))
        .into_iter()
        .filter(|d| d.keep)
        .map(|d| show(d.snapshot.time_ns))
        .collect()
}

struct Case {
    name: &'static str,
    times: &'static [&'static str],
    policy: Policy,
    zone: i32,
    kept: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    let p = Policy::default;
    vec![
        Case {
            name: "last 2",
            times: &[
                "2024-01-01 10:00",
                "2024-01-02 10:00",
                "2024-01-03 10:00",
                "2024-01-04 10:00",
            ],
            policy: Policy { last: 2, ..p() },
            zone: 0,
            kept: &["2024-01-04 10:00", "2024-01-03 10:00"],
        },
        Case {
            name: "last more than there are",
            times: &["2024-01-01 10:00", "2024-01-02 10:00"],
            policy: Policy { last: 5, ..p() },
            zone: 0,
            kept: &["2024-01-02 10:00", "2024-01-01 10:00"],
        },
        Case {
            name: "daily keeps the newest of each day",
            times: &[
                "2024-01-01 10:00",
                "2024-01-01 20:00",
                "2024-01-02 09:00",
                "2024-01-03 08:00",
                "2024-01-03 23:00",
            ],
            policy: Policy { daily: 2, ..p() },
            zone: 0,
            kept: &["2024-01-03 23:00", "2024-01-02 09:00"],
        },
        Case {
            name: "hourly: several in one hour, newest kept",
            times: &[
                "2024-05-01 10:05",
                "2024-05-01 10:35",
                "2024-05-01 10:55",
                "2024-05-01 11:00",
            ],
            policy: Policy { hourly: 2, ..p() },
            zone: 0,
            kept: &["2024-05-01 11:00", "2024-05-01 10:55"],
        },
        Case {
            name: "daily across the year boundary",
            times: &[
                "2023-12-31 00:10",
                "2023-12-31 23:59",
                "2024-01-01 00:00",
                "2024-01-01 00:01",
            ],
            policy: Policy { daily: 2, ..p() },
            zone: 0,
            kept: &["2024-01-01 00:01", "2023-12-31 23:59"],
        },
        Case {
            name: "yearly across the year boundary",
            times: &["2022-06-01 00:00", "2023-12-31 23:59", "2024-01-01 00:00"],
            policy: Policy { yearly: 2, ..p() },
            zone: 0,
            kept: &["2024-01-01 00:00", "2023-12-31 23:59"],
        },
        Case {
            // 2020-12-28 (Mon) to 2021-01-03 (Sun) is ISO week 53 of 2020.
            name: "ISO week 53 spans two calendar years",
            times: &[
                "2020-12-27 12:00",
                "2020-12-28 12:00",
                "2021-01-03 12:00",
                "2021-01-04 12:00",
            ],
            policy: Policy { weekly: 3, ..p() },
            zone: 0,
            kept: &["2021-01-04 12:00", "2021-01-03 12:00", "2020-12-27 12:00"],
        },
        Case {
            // 2024-12-30 (Mon) is in ISO week 1 of 2025.
            name: "ISO week 1 starts in December",
            times: &["2024-12-29 12:00", "2024-12-30 12:00", "2025-01-05 12:00"],
            policy: Policy { weekly: 2, ..p() },
            zone: 0,
            kept: &["2025-01-05 12:00", "2024-12-29 12:00"],
        },
        Case {
            name: "monthly with the same snapshots splits at the month",
            times: &["2024-12-29 12:00", "2024-12-30 12:00", "2025-01-05 12:00"],
            policy: Policy { monthly: 2, ..p() },
            zone: 0,
            kept: &["2025-01-05 12:00", "2024-12-30 12:00"],
        },
        Case {
            name: "month lengths and the leap day",
            times: &[
                "2024-02-28 12:00",
                "2024-02-29 12:00",
                "2024-03-01 00:00",
                "2024-03-31 23:00",
                "2024-04-30 23:00",
            ],
            policy: Policy { monthly: 3, ..p() },
            zone: 0,
            kept: &["2024-04-30 23:00", "2024-03-31 23:00", "2024-02-29 12:00"],
        },
        Case {
            name: "leap day is its own day",
            times: &[
                "2024-02-28 23:00",
                "2024-02-29 01:00",
                "2024-02-29 23:00",
                "2024-03-01 00:30",
            ],
            policy: Policy { daily: 3, ..p() },
            zone: 0,
            kept: &["2024-03-01 00:30", "2024-02-29 23:00", "2024-02-28 23:00"],
        },
        Case {
            name: "unlimited daily keeps one per day",
            times: &[
                "2019-01-01 01:00",
                "2019-01-01 02:00",
                "2021-07-04 08:00",
                "2024-01-01 01:00",
                "2024-01-01 02:00",
            ],
            policy: Policy {
                daily: UNLIMITED,
                ..p()
            },
            zone: 0,
            // The oldest stays too: an unlimited count is never used up.
            kept: &[
                "2024-01-01 02:00",
                "2021-07-04 08:00",
                "2019-01-01 02:00",
                "2019-01-01 01:00",
            ],
        },
        Case {
            name: "unlimited last keeps all",
            times: &["2024-01-01 01:00", "2024-01-01 01:00", "2024-01-02 01:00"],
            policy: Policy { last: UNLIMITED, ..p() },
            zone: 0,
            kept: &["2024-01-02 01:00", "2024-01-01 01:00", "2024-01-01 01:00"],
        },
        Case {
            // Fewer days with snapshots than asked for: the oldest stays too.
            name: "oldest kept while the count is not used up",
            times: &[
                "2024-01-01 08:00",
                "2024-01-01 09:00",
                "2024-01-02 09:00",
                "2024-01-02 10:00",
            ],
            policy: Policy { daily: 5, ..p() },
            zone: 0,
            kept: &["2024-01-02 10:00", "2024-01-01 09:00", "2024-01-01 08:00"],
        },
        Case {
            name: "within: the exact boundary is outside",
            times: &[
                "2024-01-03 11:59",
                "2024-01-03 12:00",
                "2024-01-03 12:01",
                "2024-01-10 12:00",
            ],
            policy: Policy { within: d("7d"), ..p() },
            zone: 0,
            kept: &["2024-01-10 12:00", "2024-01-03 12:01"],
        },
        Case {
            name: "within with hours crosses the year",
            times: &["2023-12-31 22:59", "2023-12-31 23:01", "2024-01-01 01:00"],
            policy: Policy { within: d("2h"), ..p() },
            zone: 0,
            kept: &["2024-01-01 01:00", "2023-12-31 23:01"],
        },
        Case {
            // One month before 31 March 2024 is 2 March (31 Feb carried over).
            name: "within a month from the 31st",
            times: &[
                "2024-02-29 12:00",
                "2024-03-02 11:00",
                "2024-03-02 13:00",
                "2024-03-31 12:00",
            ],
            policy: Policy { within: d("1m"), ..p() },
            zone: 0,
            kept: &["2024-03-31 12:00", "2024-03-02 13:00"],
        },
        Case {
            name: "within-daily: newest of each day inside the window",
            times: &[
                "2024-01-01 10:00",
                "2024-01-05 10:00",
                "2024-01-05 20:00",
                "2024-01-06 10:00",
                "2024-01-07 09:00",
                "2024-01-07 10:00",
            ],
            policy: Policy {
                within_daily: d("3d"),
                ..p()
            },
            zone: 0,
            kept: &["2024-01-07 10:00", "2024-01-06 10:00", "2024-01-05 20:00"],
        },
        Case {
            name: "within-monthly over a year",
            times: &[
                "2022-12-20 00:00",
                "2023-03-01 00:00",
                "2023-03-15 00:00",
                "2023-07-01 00:00",
                "2024-01-10 00:00",
            ],
            policy: Policy {
                within_monthly: d("1y"),
                ..p()
            },
            zone: 0,
            kept: &["2024-01-10 00:00", "2023-07-01 00:00", "2023-03-15 00:00"],
        },
        Case {
            name: "rules combine as a union",
            times: &[
                "2024-01-01 10:00",
                "2024-01-02 10:00",
                "2024-02-01 10:00",
                "2024-02-10 10:00",
                "2024-02-10 11:00",
            ],
            policy: Policy {
                last: 1,
                daily: 2,
                monthly: 2,
                ..p()
            },
            zone: 0,
            kept: &["2024-02-10 11:00", "2024-02-01 10:00", "2024-01-02 10:00"],
        },
        Case {
            // Local days at +02:00: 01-01 14:00, 01-02 01:30, 01-02 02:30.
            name: "time zone moves a snapshot to the next day",
            times: &["2024-01-01 12:00", "2024-01-01 23:30", "2024-01-02 00:30"],
            policy: Policy { daily: 2, ..p() },
            zone: 2,
            kept: &["2024-01-02 00:30", "2024-01-01 12:00"],
        },
        Case {
            name: "same snapshots in UTC",
            times: &["2024-01-01 12:00", "2024-01-01 23:30", "2024-01-02 00:30"],
            policy: Policy { daily: 2, ..p() },
            zone: 0,
            kept: &["2024-01-02 00:30", "2024-01-01 23:30"],
        },
        Case {
            // At -05:00 the two New Year's snapshots are still in 2023, so
            // 2023 has no newer snapshot and the oldest one stays.
            name: "time zone moves snapshots back into the old year",
            times: &[
                "2023-06-01 12:00",
                "2023-12-31 12:00",
                "2024-01-01 03:00",
                "2024-01-01 04:30",
            ],
            policy: Policy { yearly: 2, ..p() },
            zone: -5,
            kept: &["2024-01-01 04:30", "2023-06-01 12:00"],
        },
        Case {
            name: "same years in UTC",
            times: &[
                "2023-06-01 12:00",
                "2023-12-31 12:00",
                "2024-01-01 03:00",
                "2024-01-01 04:30",
            ],
            policy: Policy { yearly: 2, ..p() },
            zone: 0,
            kept: &["2024-01-01 04:30", "2023-12-31 12:00"],
        },
    ]
}

#[test]
fn policy_table() {
    for case in cases() {
        let list = snaps(case.times);
        let got = kept(&list, &case.policy, tz(case.zone), FAR_FUTURE);
        assert_eq!(got, case.kept, "case {:?} ({})", case.name, case.policy);
    }
}

#[test]
fn input_order_does_not_matter() {
    for case in cases() {
        let mut list = snaps(case.times);
        list.reverse();
        let got = kept(&list, &case.policy, tz(case.zone), FAR_FUTURE);
        assert_eq!(got, case.kept, "case {:?} reversed", case.name);
    }
}

/// Reasons of each kept snapshot, by time.
fn reasons(list: &[SnapshotInfo], policy: &Policy, zone: i32) -> Vec<(String, Vec<String>)> {
    apply_policy(list, policy, &tz(zone), at(FAR_FUTURE))
        .into_iter()
        .map(|d| {
            assert_eq!(d.keep, !d.reasons.is_empty(), "kept exactly when there is a reason");
            (
                show(d.snapshot.time_ns),
                d.reasons.iter().map(ToString::to_string).collect(),
            )
        })
        .collect()
}

#[test]
fn reasons_name_every_rule_that_kept_a_snapshot() {
    let list = vec![
        info(0, "2024-01-01 08:00", "h", &["/d"], &["prod"]),
        info(1, "2024-01-01 09:00", "h", &["/d"], &[]),
        info(2, "2024-01-02 09:00", "h", &["/d"], &["prod", "db"]),
        info(3, "2024-01-03 09:00", "h", &["/d"], &[]),
        info(4, "2024-01-03 10:00", "h", &["/d"], &[]),
    ];
    let policy = Policy {
        last: 1,
        daily: 2,
        monthly: 3,
        within: d("1d"),
        within_daily: d("2d"),
        tags: vec![vec!["prod".into()], vec!["prod".into(), "db".into()]],
        ..Policy::default()
    };
    let want: Vec<(String, Vec<String>)> = vec![
        (
            "2024-01-03 10:00",
            vec![
                "within 1d",
                "last snapshot",
                "daily snapshot",
                "monthly snapshot",
                "daily within 2d",
            ],
        ),
        ("2024-01-03 09:00", vec!["within 1d"]),
        (
            "2024-01-02 09:00",
            vec!["tag prod", "tags prod,db", "daily snapshot", "daily within 2d"],
        ),
        ("2024-01-01 09:00", vec![]),
        // Oldest, with monthly count left: kept as the oldest of its month.
        ("2024-01-01 08:00", vec!["tag prod", "oldest monthly snapshot"]),
    ]
    .into_iter()
    .map(|(t, r)| (t.to_string(), r.into_iter().map(str::to_string).collect()))
    .collect();
    assert_eq!(reasons(&list, &policy, 0), want);
}

#[test]
fn keep_tag_needs_every_tag_of_one_set() {
    let list = vec![
        info(0, "2024-01-01 00:00", "h", &["/d"], &["a"]),
        info(1, "2024-01-02 00:00", "h", &["/d"], &["b"]),
        info(2, "2024-01-03 00:00", "h", &["/d"], &["a", "b"]),
        info(3, "2024-01-04 00:00", "h", &["/d"], &["c"]),
    ];
    let both = Policy {
        tags: vec![vec!["a".into(), "b".into()]],
        ..Policy::default()
    };
    assert_eq!(kept(&list, &both, tz(0), FAR_FUTURE), ["2024-01-03 00:00"]);
    let either = Policy {
        tags: vec![vec!["a".into()], vec!["b".into()]],
        ..Policy::default()
    };
    assert_eq!(
        kept(&list, &either, tz(0), FAR_FUTURE),
        ["2024-01-03 00:00", "2024-01-02 00:00", "2024-01-01 00:00"]
    );
}

#[test]
fn within_is_measured_from_the_newest_snapshot_not_in_the_future() {
    let list = snaps(&[
        "2024-01-01 00:00",
        "2024-01-05 00:00",
        "2024-01-09 00:00",
        "2030-01-01 00:00",
    ]);
    let policy = Policy {
        within: d("5d"),
        ..Policy::default()
    };
    // Now is 2024-01-10: the 2030 snapshot is in the future and is not the
    // reference; it is still newer than the cutoff and kept.
    assert_eq!(
        kept(&list, &policy, tz(0), "2024-01-10 00:00"),
        ["2030-01-01 00:00", "2024-01-09 00:00", "2024-01-05 00:00"]
    );
    // With every snapshot in the future there is no reference: all are kept.
    assert_eq!(kept(&list, &policy, tz(0), "2000-01-01 00:00").len(), 4);
    // Seen from 2031 the 2030 snapshot is the reference.
    assert_eq!(kept(&list, &policy, tz(0), "2031-01-01 00:00"), ["2030-01-01 00:00"]);
}

#[test]
fn within_months_follow_the_local_calendar() {
    // Newest: 2024-03-01 00:30 at +02:00 (29 Feb 22:30 UTC). One month
    // before, local: 2024-02-01 00:30 +02:00 = 2024-01-31 22:30 UTC.
    let list = snaps(&["2024-01-31 22:29", "2024-01-31 22:31", "2024-02-29 22:30"]);
    let policy = Policy {
        within: d("1m"),
        ..Policy::default()
    };
    assert_eq!(
        kept(&list, &policy, tz(2), FAR_FUTURE),
        ["2024-02-29 22:30", "2024-01-31 22:31"]
    );
    // In UTC the month before 29 Feb 22:30 is 29 Jan 22:30: all three kept.
    assert_eq!(kept(&list, &policy, tz(0), FAR_FUTURE).len(), 3);
}

#[test]
fn empty_policy_keeps_all_but_plan_refuses_it() {
    let list = snaps(&["2024-01-01 00:00", "2024-01-02 00:00"]);
    assert!(Policy::default().is_empty());
    let decisions = apply_policy(&list, &Policy::default(), &tz(0), at(FAR_FUTURE));
    assert!(decisions.iter().all(|d| d.keep));
    let err = Plan::by_policy(list.clone(), &Policy::default(), GroupBy::default(), &tz(0), 0).unwrap_err();
    assert!(matches!(err, ForgetError::NoPolicy));
    assert!(err.is_usage());
    assert!(err.to_string().contains("no policy given"), "{err}");
    // Empty tag sets and zero durations are not a policy either.
    let hollow = Policy {
        tags: vec![vec![]],
        within: d("0d"),
        ..Policy::default()
    };
    assert!(hollow.is_empty());
}

#[test]
fn counts_below_minus_one_are_refused_by_name() {
    let policy = Policy {
        weekly: -2,
        ..Policy::default()
    };
    let err = Plan::by_policy(snaps(&["2024-01-01 00:00"]), &policy, GroupBy::default(), &tz(0), 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--keep-weekly -2: a count must be 0 or more, or -1 (unlimited)"
    );
}

#[test]
fn empty_input_gives_no_decisions() {
    let policy = Policy {
        last: 3,
        within: d("1d"),
        ..Policy::default()
    };
    assert!(apply_policy(&[], &policy, &tz(0), 0).is_empty());
}

#[test]
fn groups_by_host_and_paths_by_default() {
    let list = vec![
        info(0, "2024-01-01 00:00", "a", &["/x", "/y"], &["t1"]),
        info(1, "2024-01-02 00:00", "a", &["/y", "/x"], &["t2"]),
        info(2, "2024-01-03 00:00", "b", &["/x", "/y"], &["t1"]),
        info(3, "2024-01-04 00:00", "a", &["/z"], &["t1"]),
    ];
    let policy = Policy {
        last: 1,
        ..Policy::default()
    };
    let summary = |group_by: GroupBy| -> Vec<(String, Vec<(usize, bool)>)> {
        Plan::by_policy(list.clone(), &policy, group_by, &tz(0), at(FAR_FUTURE))
            .unwrap()
            .groups
            .into_iter()
            .map(|g| {
                let ids = g
                    .decisions
                    .iter()
                    .map(|d| (list.iter().position(|s| s.id == d.snapshot.id).unwrap(), d.keep))
                    .collect();
                (g.key.to_string(), ids)
            })
            .collect()
    };
    assert_eq!(
        summary(GroupBy::default()),
        vec![
            ("host a, paths [/x, /y]".to_string(), vec![(1, true), (0, false)]),
            ("host a, paths [/z]".to_string(), vec![(3, true)]),
            ("host b, paths [/x, /y]".to_string(), vec![(2, true)]),
        ]
    );
    assert_eq!(
        summary("".parse().unwrap()),
        vec![(
            "all snapshots".to_string(),
            vec![(3, true), (2, false), (1, false), (0, false)]
        )]
    );
    assert_eq!(
        summary("tags".parse().unwrap()),
        vec![
            ("tags [t1]".to_string(), vec![(3, true), (2, false), (0, false)]),
            ("tags [t2]".to_string(), vec![(1, true)]),
        ]
    );
    assert_eq!(
        summary("host,tags".parse().unwrap()),
        vec![
            ("host a, tags [t1]".to_string(), vec![(3, true), (0, false)]),
            ("host a, tags [t2]".to_string(), vec![(1, true)]),
            ("host b, tags [t1]".to_string(), vec![(2, true)]),
        ]
    );
}

#[test]
fn group_by_parses_fields_and_names_a_bad_one() {
    let cases = [
        ("host,paths", GroupBy::default()),
        ("", GroupBy::NONE),
        (
            "tags, host",
            GroupBy {
                host: true,
                paths: false,
                tags: true,
            },
        ),
        (
            "path",
            GroupBy {
                host: false,
                paths: true,
                tags: false,
            },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(text.parse::<GroupBy>().unwrap(), want, "{text:?}");
    }
    let err = "host,colour".parse::<GroupBy>().unwrap_err().to_string();
    assert!(err.contains("\"colour\"") && err.contains("--group-by"), "{err}");
}

#[test]
fn plan_by_ids_removes_exactly_those() {
    let list = vec![
        info(0, "2024-01-01 00:00", "a", &["/x"], &[]),
        info(1, "2024-01-02 00:00", "b", &["/x"], &[]),
    ];
    let plan = Plan::by_ids(list.clone(), GroupBy::default());
    assert_eq!(plan.groups.len(), 2);
    assert_eq!(plan.kept(), 0);
    assert_eq!(plan.removed(), 2);
    let mut removed = plan.to_remove();
    removed.sort();
    assert_eq!(removed, vec![list[0].id, list[1].id]);
}

#[test]
fn policy_describes_itself() {
    let policy = Policy {
        last: 3,
        daily: 7,
        monthly: UNLIMITED,
        within_weekly: d("1y"),
        within: d("2d"),
        tags: vec![vec!["a".into(), "b".into()]],
        ..Policy::default()
    };
    assert_eq!(
        policy.to_string(),
        "keep 3 last, 7 daily, all monthly snapshots, weekly snapshots within 1y, \
         snapshots tagged a,b, snapshots within 2d of the newest"
    );
}

mod properties {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    /// Up to 40 snapshots at whole minutes from 2023, spread over three
    /// days, two months or three years (so periods hold several snapshots,
    /// or few periods hold any).
    fn snapshot_times() -> impl Strategy<Value = Vec<i64>> {
        prop_oneof![Just(3 * 24 * 60), Just(60 * 24 * 60), Just(3 * 366 * 24 * 60)]
            .prop_flat_map(|span: i64| proptest::collection::vec(0..span, 1..40))
            .prop_map(|minutes| {
                minutes
                    .into_iter()
                    .map(|m| at("2023-01-01 00:00") + m * 60_000_000_000)
                    .collect()
            })
    }

    fn infos(times: &[i64]) -> Vec<SnapshotInfo> {
        times
            .iter()
            .enumerate()
            .map(|(n, t)| SnapshotInfo {
                id: id(n),
                time_ns: *t,
                hostname: "h".into(),
                paths: vec![],
                tags: vec![],
            })
            .collect()
    }

    proptest! {
        #[test]
        fn daily_keeps_the_newest_of_the_newest_days(times in snapshot_times(), n in 1i32..10, zone in -12i32..14) {
            let list = infos(&times);
            let policy = Policy { daily: n, ..Policy::default() };
            let decisions = apply_policy(&list, &policy, &tz(zone), i64::MAX);
            prop_assert_eq!(decisions.len(), list.len());
            // The newest snapshot of each local day, newest day first.
            let mut newest_per_day: BTreeMap<chrono::NaiveDate, (i64, SnapshotId)> = BTreeMap::new();
            for s in &list {
                let day = chrono::DateTime::from_timestamp_nanos(s.time_ns).with_timezone(&tz(zone)).date_naive();
                let e = newest_per_day.entry(day).or_insert((s.time_ns, s.id));
                if (s.time_ns, s.id) > *e {
                    *e = (s.time_ns, s.id);
                }
            }
            let mut want: Vec<SnapshotId> =
                newest_per_day.values().rev().take(n as usize).map(|(_, id)| *id).collect();
            if newest_per_day.len() < n as usize {
                // Count left over: the oldest snapshot stays as well.
                let oldest = decisions.last().map(|d| d.snapshot.id);
                if let Some(oldest) = oldest {
                    if !want.contains(&oldest) {
                        want.push(oldest);
                    }
                }
            }
            let got: Vec<SnapshotId> = decisions.iter().filter(|d| d.keep).map(|d| d.snapshot.id).collect();
            prop_assert_eq!(got, want);
            for d in &decisions {
                prop_assert_eq!(d.keep, !d.reasons.is_empty());
            }
        }

        #[test]
        fn rules_combine_as_a_union(times in snapshot_times(), last in 0i32..5, weekly in 0i32..5, within_days in 0u32..60) {
            let list = infos(&times);
            let single = |p: Policy| -> BTreeSet<SnapshotId> {
                apply_policy(&list, &p, &tz(0), i64::MAX)
                    .into_iter()
                    .filter(|d| d.keep && !p.is_empty())
                    .map(|d| d.snapshot.id)
                    .collect()
            };
            let within = CalendarDuration::new(0, 0, within_days, 0);
            let parts = [
                Policy { last, ..Policy::default() },
                Policy { weekly, ..Policy::default() },
                Policy { within, ..Policy::default() },
            ];
            let union: BTreeSet<SnapshotId> = parts.iter().cloned().flat_map(single).collect();
            let all = single(Policy { last, weekly, within, ..Policy::default() });
            prop_assert_eq!(all, union);
        }
    }
}
