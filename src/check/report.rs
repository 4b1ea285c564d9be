//! What a check found: problems, each naming an object, and counters.

use std::fmt;

use serde::Serialize;

/// How bad a problem is. Only errors make a check fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Data is damaged or missing: a restore may fail.
    Error,
    /// Something unexpected that loses no data (e.g. a pack left by an
    /// interrupted backup).
    Warning,
    /// Worth knowing, nothing to repair (unused or duplicate blobs).
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Info => "info",
        })
    }
}

/// The kind of object a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectType {
    Repository,
    Config,
    Key,
    Index,
    Pack,
    Snapshot,
    Tree,
    DataBlob,
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Repository => "repository",
            Self::Config => "config",
            Self::Key => "key",
            Self::Index => "index",
            Self::Pack => "pack",
            Self::Snapshot => "snapshot",
            Self::Tree => "tree",
            Self::DataBlob => "data blob",
        })
    }
}

/// One finding about one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    pub object_kind: ObjectType,
    /// The object's full id (its name for files, its blob id for blobs).
    pub object_id: String,
    /// What is wrong, naming related objects (pack, snapshot, path).
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} {}: {}",
            self.severity, self.object_kind, self.object_id, self.message
        )
    }
}

/// How much was checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Key files that decoded.
    pub keys: u64,
    /// Index files that loaded; superseded ones included.
    pub index_files: u64,
    /// Packs named by the live index.
    pub packs: u64,
    /// Packs found in storage.
    pub packs_in_storage: u64,
    /// Pack headers read and compared with the index.
    pub pack_headers: u64,
    /// Distinct blobs in the live index.
    pub blobs: u64,
    /// Blobs listed in more than one pack.
    pub duplicate_blobs: u64,
    /// Snapshots that loaded.
    pub snapshots: u64,
    /// Distinct trees loaded and decoded.
    pub trees: u64,
    /// Distinct blobs (trees and data) reached from snapshots.
    pub blobs_referenced: u64,
    /// Indexed blobs no snapshot reaches.
    pub unused_blobs: u64,
    /// Packs downloaded in full (`--read-data`).
    pub packs_read: u64,
    /// Blobs opened and verified against their ids (`--read-data`).
    pub blobs_verified: u64,
    /// Bytes read from storage.
    pub bytes_read: u64,
}

/// The outcome of a check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub errors: u64,
    pub warnings: u64,
    pub problems: Vec<Problem>,
    pub counters: Counters,
}

impl CheckReport {
    /// Records a problem.
    pub fn add(
        &mut self,
        severity: Severity,
        object_kind: ObjectType,
        object_id: impl fmt::Display,
        message: impl Into<String>,
    ) {
        match severity {
            Severity::Error => self.errors += 1,
            Severity::Warning => self.warnings += 1,
            Severity::Info => {}
        }
        self.problems.push(Problem {
            severity,
            object_kind,
            object_id: object_id.to_string(),
            message: message.into(),
        });
    }

    pub fn error(&mut self, kind: ObjectType, id: impl fmt::Display, message: impl Into<String>) {
        self.add(Severity::Error, kind, id, message);
    }

    pub fn warning(&mut self, kind: ObjectType, id: impl fmt::Display, message: impl Into<String>) {
        self.add(Severity::Warning, kind, id, message);
    }

    pub fn info(&mut self, kind: ObjectType, id: impl fmt::Display, message: impl Into<String>) {
        self.add(Severity::Info, kind, id, message);
    }

    /// Whether the repository has damage (any error).
    pub fn has_errors(&self) -> bool {
        self.errors > 0
    }

    /// The problems about the object with this id.
    pub fn about(&self, id: &str) -> Vec<&Problem> {
        self.problems.iter().filter(|p| p.object_id == id).collect()
    }

    /// Orders problems by severity, then object kind and id, so that output
    /// does not depend on the order concurrent reads finished in.
    pub(super) fn sort(&mut self) {
        self.problems.sort_by(|a, b| {
            (a.severity, a.object_kind, &a.object_id, &a.message).cmp(&(
                b.severity,
                b.object_kind,
                &b.object_id,
                &b.message,
            ))
        });
    }
}
