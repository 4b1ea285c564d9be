//! Opening a planned volume's directory on the node, one component at a
//! time below the directory descriptors the agent holds (the kubelet's pods
//! directory, the hostPath root), never following a symlink: a pod that
//! can write its volume cannot lead the agent anywhere else.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use super::volumes::HostLocation;
use crate::source::open::{open_subdir, stat_at};

/// Why a volume's directory could not be opened. Each says what was
/// looked for, below which directory.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error("{looked_for} below {root}: {reason}")]
    NotFound {
        root: String,
        looked_for: String,
        reason: String,
    },
    #[error("{looked_for} below {root}: expected one matching directory, found {found}: {}", .matches.join(", "))]
    Ambiguous {
        root: String,
        looked_for: String,
        found: usize,
        matches: Vec<String>,
    },
    #[error("{looked_for} below {root}: {source}")]
    Io {
        root: String,
        looked_for: String,
        #[source]
        source: io::Error,
    },
    #[error("{what} {name:?} is not a single path component")]
    BadName { what: &'static str, name: String },
}

/// The directories the agent reads volumes below, open.
pub struct Roots<'a> {
    /// The kubelet's pods directory (`--host-pods`), and how to name it.
    pub pods: BorrowedFd<'a>,
    pub pods_name: &'a str,
    /// `--host-path-root`, when given.
    pub host_path: Option<(BorrowedFd<'a>, &'a str)>,
}

fn component<'n>(what: &'static str, name: &'n str) -> Result<&'n OsStr, LocateError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(LocateError::BadName {
            what,
            name: name.to_owned(),
        });
    }
    Ok(OsStr::new(name))
}

/// Opens the directory of `location`.
pub fn open_volume(roots: &Roots<'_>, location: &HostLocation) -> Result<OwnedFd, LocateError> {
    match location {
        HostLocation::PodVolume {
            pod_uid,
            plugin,
            dir,
            csi,
        } => {
            let plugin_text = plugin.as_deref().unwrap_or("*");
            let mut looked_for = format!("{pod_uid}/volumes/{plugin_text}/{dir}");
            if *csi {
                looked_for.push_str("/mount");
            }
            let io_error = |source: io::Error| {
                if source.kind() == io::ErrorKind::NotFound {
                    LocateError::NotFound {
                        root: roots.pods_name.to_owned(),
                        looked_for: looked_for.clone(),
                        reason: "no such directory (is the pod running on this node, and is the agent's \
                                 --host-pods the kubelet's pods directory?)"
                            .into(),
                    }
                } else {
                    LocateError::Io {
                        root: roots.pods_name.to_owned(),
                        looked_for: looked_for.clone(),
                        source,
                    }
                }
            };
            let pod = open_subdir(roots.pods, component("pod uid", pod_uid)?).map_err(io_error)?;
            let volumes = open_subdir(pod.as_fd(), OsStr::new("volumes")).map_err(io_error)?;
            let dir_name = component("volume directory", dir)?;
            let plugin_dir = match plugin {
                Some(p) => open_subdir(volumes.as_fd(), component("volume plugin", p)?).map_err(io_error)?,
                None => {
                    let matches = plugins_holding(&volumes, dir_name).map_err(io_error)?;
                    match matches.as_slice() {
                        [one] => open_subdir(volumes.as_fd(), OsStr::from_bytes(one)).map_err(io_error)?,
                        [] => {
                            return Err(LocateError::NotFound {
                                root: roots.pods_name.to_owned(),
                                looked_for,
                                reason: "no plugin directory holds it".into(),
                            })
                        }
                        many => {
                            return Err(LocateError::Ambiguous {
                                root: roots.pods_name.to_owned(),
                                looked_for,
                                found: many.len(),
                                matches: many.iter().map(|m| String::from_utf8_lossy(m).into_owned()).collect(),
                            })
                        }
                    }
                }
            };
            let volume = open_subdir(plugin_dir.as_fd(), dir_name).map_err(io_error)?;
            if *csi {
                open_subdir(volume.as_fd(), OsStr::new("mount")).map_err(io_error)
            } else {
                Ok(volume)
            }
        }
        HostLocation::HostPath { relative } => {
            let Some((root, root_name)) = roots.host_path else {
                return Err(LocateError::NotFound {
                    root: "--host-path-root".into(),
                    looked_for: relative.clone(),
                    reason: "the agent was started without --host-path-root".into(),
                });
            };
            let io_error = |source: io::Error| LocateError::Io {
                root: root_name.to_owned(),
                looked_for: relative.clone(),
                source,
            };
            let parts = relative
                .split('/')
                .filter(|p| !p.is_empty())
                .map(|p| component("hostPath component", p))
                .collect::<Result<Vec<_>, _>>()?;
            let Some((first, rest)) = parts.split_first() else {
                return Err(LocateError::BadName {
                    what: "hostPath below the root",
                    name: relative.clone(),
                });
            };
            let mut current = open_subdir(root, first).map_err(io_error)?;
            for part in rest {
                current = open_subdir(current.as_fd(), part).map_err(io_error)?;
            }
            Ok(current)
        }
    }
}

/// The plugin directories of `volumes` that hold a directory `name`
/// (symlinks are not directories here).
fn plugins_holding(volumes: &OwnedFd, name: &OsStr) -> io::Result<Vec<Vec<u8>>> {
    let listing = nix::dir::Dir::from(volumes.try_clone()?).map_err(io::Error::from)?;
    let mut plugins: Vec<Vec<u8>> = Vec::new();
    let mut listing = listing;
    for entry in listing.iter() {
        let entry = entry.map_err(io::Error::from)?;
        let plugin = entry.file_name().to_bytes();
        if plugin == b"." || plugin == b".." {
            continue;
        }
        let Ok(plugin_dir) = open_subdir(volumes.as_fd(), OsStr::from_bytes(plugin)) else {
            continue;
        };
        if stat_at(plugin_dir.as_fd(), name).is_ok_and(|s| s.is_dir()) {
            plugins.push(plugin.to_vec());
        }
    }
    plugins.sort();
    Ok(plugins)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;

    fn open(path: &std::path::Path) -> OwnedFd {
        crate::source::open::open_dir_path(path).unwrap()
    }

    fn pod_volume(plugin: Option<&str>, dir: &str, csi: bool) -> HostLocation {
        HostLocation::PodVolume {
            pod_uid: "u-1".into(),
            plugin: plugin.map(str::to_owned),
            dir: dir.into(),
            csi,
        }
    }

    fn files(fd: &OwnedFd) -> Vec<String> {
        let mut names: Vec<String> = nix::dir::Dir::from(fd.try_clone().unwrap())
            .unwrap()
            .iter()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "." && n != "..")
            .collect();
        names.sort();
        names
    }

    #[test]
    fn pod_volumes_are_found_by_plugin_or_by_the_one_match() {
        let pods = tempfile::tempdir().unwrap();
        let v = pods.path().join("u-1/volumes");
        fs::create_dir_all(v.join("kubernetes.io~csi/pvc-1/mount")).unwrap();
        fs::write(v.join("kubernetes.io~csi/pvc-1/mount/data"), b"x").unwrap();
        fs::create_dir_all(v.join("kubernetes.io~nfs/share")).unwrap();
        fs::write(v.join("kubernetes.io~nfs/share/nfs-file"), b"x").unwrap();
        fs::create_dir_all(v.join("kubernetes.io~empty-dir/twice")).unwrap();
        fs::create_dir_all(v.join("kubernetes.io~nfs/twice")).unwrap();
        let fd = open(pods.path());
        let roots = Roots {
            pods: fd.as_fd(),
            pods_name: "/host_pods",
            host_path: None,
        };
        let csi = open_volume(&roots, &pod_volume(Some("kubernetes.io~csi"), "pvc-1", true)).unwrap();
        assert_eq!(files(&csi), ["data"]);
        let nfs = open_volume(&roots, &pod_volume(None, "share", false)).unwrap();
        assert_eq!(files(&nfs), ["nfs-file"]);
        let err = open_volume(&roots, &pod_volume(None, "twice", false))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "u-1/volumes/*/twice below /host_pods: expected one matching directory, found 2: \
             kubernetes.io~empty-dir, kubernetes.io~nfs"
        );
        let err = open_volume(&roots, &pod_volume(None, "gone", false))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "u-1/volumes/*/gone below /host_pods: no plugin directory holds it");
        let err = open_volume(&roots, &pod_volume(Some("kubernetes.io~csi"), "pvc-2", true))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("u-1/volumes/kubernetes.io~csi/pvc-2/mount below /host_pods: no such directory"),
            "{err}"
        );
    }

    #[test]
    fn symlinks_and_odd_names_are_never_followed() {
        let pods = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let v = pods.path().join("u-1/volumes/kubernetes.io~csi/pvc-1");
        fs::create_dir_all(&v).unwrap();
        // The pod made its mount point a link to the node's files.
        symlink(elsewhere.path(), v.join("mount")).unwrap();
        let fd = open(pods.path());
        let roots = Roots {
            pods: fd.as_fd(),
            pods_name: "/host_pods",
            host_path: None,
        };
        let err = open_volume(&roots, &pod_volume(Some("kubernetes.io~csi"), "pvc-1", true)).unwrap_err();
        assert!(matches!(err, LocateError::Io { .. }), "{err}");
        for bad in ["..", "a/b", ""] {
            let err = open_volume(&roots, &pod_volume(Some("kubernetes.io~csi"), bad, false)).unwrap_err();
            assert!(matches!(err, LocateError::BadName { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn host_paths_open_below_the_root_only() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("pvc-9_shop_db")).unwrap();
        fs::write(root.path().join("pvc-9_shop_db/table"), b"x").unwrap();
        symlink("/etc", root.path().join("escape")).unwrap();
        let pods = tempfile::tempdir().unwrap();
        let (pods_fd, root_fd) = (open(pods.path()), open(root.path()));
        let mut roots = Roots {
            pods: pods_fd.as_fd(),
            pods_name: "/host_pods",
            host_path: None,
        };
        let loc = |r: &str| HostLocation::HostPath { relative: r.into() };
        let err = open_volume(&roots, &loc("pvc-9_shop_db")).unwrap_err().to_string();
        assert!(err.contains("without --host-path-root"), "{err}");
        roots.host_path = Some((root_fd.as_fd(), "/host_path"));
        assert_eq!(files(&open_volume(&roots, &loc("pvc-9_shop_db")).unwrap()), ["table"]);
        assert!(open_volume(&roots, &loc("escape")).is_err());
        assert!(matches!(
            open_volume(&roots, &loc("a/../..")),
            Err(LocateError::BadName { .. })
        ));
    }
}
