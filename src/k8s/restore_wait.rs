//! `cairn k8s restore-wait`: the command of a restore's helper pod. The pod
//! mounts a restored claim; the node agent writes the volume's data into it
//! and then a marker file at the volume's root. The helper waits for that
//! marker, removes it and exits, so that the controller knows the data is
//! in place before it creates the workloads.
//!
//! The directory is opened once; the marker is looked for and removed
//! relative to that descriptor, never followed if it is a symlink.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::unistd::UnlinkatFlags;

use crate::source::open::{open_dir_path, stat_at};

/// What every marker's name starts with. Top-level entries of a volume
/// with this prefix are never part of its data: a volume backup skips
/// them and a volume restore does not write them.
pub const MARKER_PREFIX: &str = ".cairn";

/// The marker the agent leaves when the data of Restore `restore_uid` is
/// written.
pub fn marker_name(restore_uid: &str) -> String {
    format!("{MARKER_PREFIX}-restore-{restore_uid}")
}

/// How often the marker is looked for.
pub const POLL: Duration = Duration::from_millis(500);

/// Why the wait ended without the marker.
#[derive(Debug, thiserror::Error)]
pub enum RestoreWaitError {
    #[error("--marker {0:?}: must start with {MARKER_PREFIX:?} and contain no '/'")]
    BadMarker(String),
    #[error("--dir {}: {source}", .dir.display())]
    Dir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}/{marker}: {reason}", .dir.display())]
    Marker {
        dir: PathBuf,
        marker: String,
        reason: String,
    },
    #[error("{}/{marker}: not there after {}s", .dir.display(), .waited.as_secs())]
    Timeout {
        dir: PathBuf,
        marker: String,
        waited: Duration,
    },
}

/// Whether `name` can be a marker: one path component starting with
/// [`MARKER_PREFIX`].
pub fn valid_marker(name: &str) -> bool {
    name.starts_with(MARKER_PREFIX) && !name.contains('/') && !name.contains('\0')
}

/// Waits until the regular file `marker` exists at the root of `dir`,
/// removes it and returns; `timeout` None waits for ever.
pub fn wait_for_marker(
    dir: &Path,
    marker: &str,
    timeout: Option<Duration>,
    poll: Duration,
) -> Result<(), RestoreWaitError> {
    if !valid_marker(marker) {
        return Err(RestoreWaitError::BadMarker(marker.to_owned()));
    }
    let fd = open_dir_path(dir).map_err(|source| RestoreWaitError::Dir {
        dir: dir.to_owned(),
        source,
    })?;
    let started = Instant::now();
    let fail = |reason: String| RestoreWaitError::Marker {
        dir: dir.to_owned(),
        marker: marker.to_owned(),
        reason,
    };
    loop {
        if take_marker(&fd, marker).map_err(|e| fail(e.to_string()))? {
            return Ok(());
        }
        if let Some(limit) = timeout {
            if started.elapsed() >= limit {
                return Err(RestoreWaitError::Timeout {
                    dir: dir.to_owned(),
                    marker: marker.to_owned(),
                    waited: limit,
                });
            }
        }
        // A command of its own (the helper pod's), not a reconciler: it
        // blocks its one thread on purpose.
        std::thread::sleep(poll);
    }
}

/// Removes the marker if it is there: true when it was. Anything but a
/// regular file of that name is an error.
fn take_marker(dir: &OwnedFd, marker: &str) -> io::Result<bool> {
    let name = OsStr::new(marker);
    let st = match stat_at(dir.as_fd(), name) {
        Ok(st) => st,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if !st.is_file() {
        return Err(io::Error::other("is not a regular file; not removed"));
    }
    match nix::unistd::unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(true),
        Err(e) => Err(e.into()),
    }
}
