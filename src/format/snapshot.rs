//! Snapshot documents.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{from_postcard, to_postcard, FormatError};
use crate::id::{SnapshotId, TreeId};

/// What a backup did, stored with its snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub backup_start_ns: i64,
    pub backup_end_ns: i64,
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unchanged: u64,
    pub dirs_new: u64,
    pub dirs_changed: u64,
    pub dirs_unchanged: u64,
    /// Entries that could not be read and were left out.
    pub errors: u64,
    pub data_blobs: u64,
    pub tree_blobs: u64,
    /// Plaintext bytes of blobs added to the repository.
    pub data_added: u64,
    /// Stored (compressed, sealed) bytes of blobs added.
    pub data_added_packed: u64,
    pub total_files_processed: u64,
    pub total_bytes_processed: u64,
}

/// The plaintext of a file under `snapshots/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the backup started, nanoseconds since the Unix epoch (UTC).
    pub time_ns: i64,
    pub tree: TreeId,
    /// What was backed up: absolute paths, stored as raw bytes (a Unix path
    /// need not be UTF-8). On the wire each is a byte string, which encodes
    /// a UTF-8 path exactly as a `String` would.
    #[serde(with = "raw_paths")]
    pub paths: Vec<PathBuf>,
    pub hostname: String,
    pub username: String,
    pub uid: u32,
    pub gid: u32,
    pub tags: Vec<String>,
    pub parent: Option<SnapshotId>,
    /// The snapshot this one was copied or rewritten from (by `copy` or
    /// `repair snapshots`); `None` for a snapshot made by a backup.
    pub original: Option<SnapshotId>,
    pub excludes: Vec<String>,
    pub program_version: String,
    /// Some entries could not be read (see `summary.errors`).
    pub partial: bool,
    pub summary: Summary,
}

impl Snapshot {
    pub fn encode(&self) -> Vec<u8> {
        to_postcard(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        from_postcard("snapshot", bytes)
    }

    /// The paths as text for display and JSON; bytes that are not UTF-8
    /// show as U+FFFD.
    pub fn path_strings(&self) -> Vec<String> {
        self.paths.iter().map(|p| p.to_string_lossy().into_owned()).collect()
    }
}

/// Paths as byte strings: `varint length || bytes`, the same encoding as a
/// `String` has, without requiring UTF-8.
mod raw_paths {
    use std::ffi::OsString;
    use std::fmt;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    use std::path::PathBuf;

    use serde::de::{Deserializer, SeqAccess, Visitor};
    use serde::ser::{SerializeSeq, Serializer};

    struct Raw<'a>(&'a [u8]);

    impl serde::Serialize for Raw<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    pub fn serialize<S: Serializer>(paths: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(paths.len()))?;
        for path in paths {
            seq.serialize_element(&Raw(path.as_os_str().as_bytes()))?;
        }
        seq.end()
    }

    /// One path from a byte string (or, from a text format, a string).
    struct OnePath(PathBuf);

    impl<'de> serde::Deserialize<'de> for OnePath {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = OnePath;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a path as a byte string")
                }
                fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<OnePath, E> {
                    Ok(OnePath(PathBuf::from(OsString::from_vec(v.to_vec()))))
                }
                fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<OnePath, E> {
                    Ok(OnePath(PathBuf::from(OsString::from_vec(v))))
                }
                fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OnePath, E> {
                    Ok(OnePath(PathBuf::from(v)))
                }
            }
            d.deserialize_byte_buf(V)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
        struct Seq;
        impl<'de> Visitor<'de> for Seq {
            type Value = Vec<PathBuf>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence of paths")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<PathBuf>, A::Error> {
                // Capped: the length comes from the input.
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(OnePath(p)) = seq.next_element()? {
                    out.push(p);
                }
                Ok(out)
            }
        }
        d.deserialize_seq(Seq)
    }
}
