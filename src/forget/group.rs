//! Grouping snapshots before a policy is applied: by default each host and
//! set of paths is a group of its own, so one machine's backups never count
//! towards another's.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::policy::SnapshotInfo;
use super::ForgetError;

/// Which fields make up a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupBy {
    pub host: bool,
    pub paths: bool,
    pub tags: bool,
}

impl Default for GroupBy {
    /// Host and paths.
    fn default() -> Self {
        Self {
            host: true,
            paths: true,
            tags: false,
        }
    }
}

impl GroupBy {
    /// No grouping: all snapshots in one group.
    pub const NONE: Self = Self {
        host: false,
        paths: false,
        tags: false,
    };

    /// The group a snapshot belongs to. Paths and tags are sorted, so their
    /// order in the snapshot does not matter.
    pub fn key(&self, s: &SnapshotInfo) -> GroupKey {
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v.dedup();
            v
        };
        GroupKey {
            hostname: self.host.then(|| s.hostname.clone()),
            paths: self.paths.then(|| sorted(&s.paths)),
            tags: self.tags.then(|| sorted(&s.tags)),
        }
    }

    /// Splits snapshots into groups, ordered by key.
    pub fn group(&self, snapshots: Vec<SnapshotInfo>) -> Vec<(GroupKey, Vec<SnapshotInfo>)> {
        let mut groups: BTreeMap<GroupKey, Vec<SnapshotInfo>> = BTreeMap::new();
        for s in snapshots {
            groups.entry(self.key(&s)).or_default().push(s);
        }
        groups.into_iter().collect()
    }
}

impl FromStr for GroupBy {
    type Err = ForgetError;

    /// `host,paths,tags` in any subset and order; `''` for no grouping.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = Self::NONE;
        for field in s.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            match field {
                "host" | "hosts" => out.host = true,
                "path" | "paths" => out.paths = true,
                "tag" | "tags" => out.tags = true,
                other => {
                    return Err(ForgetError::BadGroupBy {
                        value: s.to_owned(),
                        field: other.to_owned(),
                    })
                }
            }
        }
        Ok(out)
    }
}

/// The fields a group shares; `None` for fields not grouped by.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    pub hostname: Option<String>,
    pub paths: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
}

impl fmt::Display for GroupKey {
    /// `host a, paths [/x, /y], tags [t]`, or `all snapshots` with no grouping.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(h) = &self.hostname {
            parts.push(format!("host {h}"));
        }
        if let Some(p) = &self.paths {
            parts.push(format!("paths [{}]", p.join(", ")));
        }
        if let Some(t) = &self.tags {
            parts.push(format!("tags [{}]", t.join(", ")));
        }
        if parts.is_empty() {
            f.write_str("all snapshots")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}
