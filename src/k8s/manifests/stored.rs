//! Reading a manifest snapshot back: every object file below `resources/`.

use std::path::Path;

use serde_json::Value;

use super::normalise::{parse_path, ObjectPath};
use crate::format::tree::{Content, NodeKind};
use crate::format::BlobKind;
use crate::id::{SnapshotId, TreeId};
use crate::k8s::{K8sError, ROOT};
use crate::repo::snapshots::SnapshotFilter;
use crate::repo::{IndexedRepository, TreeBudget, TreeLimits};

/// Deepest nesting a walk of a manifest snapshot follows, far beyond the
/// six levels a manifest backup writes.
const MANIFEST_DEPTH: usize = 32;
use crate::restore::walk::{resolve_source, subtree};

/// An object read from a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredObject {
    /// Its path inside the snapshot.
    pub path: String,
    pub at: ObjectPath,
    pub object: Value,
}

/// A file's bytes, read through the index.
fn read_file(repo: &IndexedRepository, content: &[Content], size: u64) -> Result<Vec<u8>, K8sError> {
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 26));
    for part in content {
        match part {
            Content::Blob(id) => bytes.extend_from_slice(&repo.read_blob(BlobKind::Data, id)?),
            Content::Hole(n) => bytes.resize(bytes.len() + usize::try_from(*n).unwrap_or(0), 0),
        }
    }
    Ok(bytes)
}

/// Decodes one stored object: its path must be one a manifest backup
/// writes, its bytes a JSON object whose name is the file's.
pub fn decode_object(path: &str, bytes: &[u8]) -> Result<StoredObject, K8sError> {
    let invalid = |reason: String| K8sError::InvalidObject {
        path: path.to_owned(),
        reason,
    };
    let at = parse_path(path).ok_or_else(|| {
        invalid(format!(
            "not where a manifest backup stores objects ({ROOT}/<group>/<resource>/namespaces/<ns>/<name>.json)"
        ))
    })?;
    let object: Value = serde_json::from_slice(bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
    if !object.is_object() || object.pointer("/metadata/name").and_then(Value::as_str) != Some(at.name.as_str()) {
        return Err(invalid("not an object named as its file".into()));
    }
    Ok(StoredObject {
        path: path.to_owned(),
        at,
        object,
    })
}

/// Reads the objects below `tree`, whose entries lie `depth` deep. A
/// manifest backup nests six directories at most
/// (`resources/<group>/<resource>/namespaces/<ns>/<name>.json`), so the
/// recursion is held to [`MANIFEST_DEPTH`].
fn walk(
    repo: &IndexedRepository,
    tree: TreeId,
    dir: &str,
    depth: usize,
    budget: &mut TreeBudget,
    out: &mut Vec<StoredObject>,
) -> Result<(), K8sError> {
    let listing = repo.load_tree(&tree)?;
    budget.visit(&tree, depth, listing.nodes.len())?;
    for node in listing.nodes {
        let path = format!("{dir}/{}", node.name_lossy());
        match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(sub)) => walk(repo, sub, &path, depth + 1, budget, out)?,
            (NodeKind::File, _) => {
                let bytes = read_file(repo, &node.content, node.size)?;
                out.push(decode_object(&path, &bytes)?);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Reads every object of a snapshot (`ID` or `ID:subpath`, ID being
/// `latest`, an id or a unique prefix). Returns the snapshot's id too.
pub fn load_objects(
    repo: &IndexedRepository,
    spec: &str,
    filter: &SnapshotFilter,
) -> Result<(SnapshotId, Vec<StoredObject>), K8sError> {
    let source = resolve_source(repo, spec, filter)?;
    let mut base = source.subpath.to_string_lossy().trim_end_matches('/').to_owned();
    let mut tree = source.tree;
    if base.is_empty() {
        let root = repo.load_tree(&tree)?;
        if root.find(ROOT.as_bytes()).is_none() {
            return Err(K8sError::InvalidObject {
                path: format!("{}:/{ROOT}", source.snapshot.short()),
                reason: "missing: the snapshot is not a manifest backup".into(),
            });
        }
        tree = subtree(repo, tree, Path::new(ROOT))?;
        base = format!("/{ROOT}");
    }
    let mut out = Vec::new();
    let mut budget = TreeBudget::new(TreeLimits {
        max_depth: MANIFEST_DEPTH,
        ..TreeLimits::default()
    });
    walk(repo, tree, &base, 1, &mut budget, &mut out)?;
    Ok((source.snapshot, out))
}

/// The bytes of one file of a snapshot: `path` (`cairn/backup.json`)
/// below the snapshot's root tree `root`. A file larger than `max` bytes
/// is refused before any of it is read, as is anything but a regular file.
pub fn read_stored_file(repo: &IndexedRepository, root: TreeId, path: &str, max: u64) -> Result<Vec<u8>, K8sError> {
    let invalid = |reason: String| K8sError::InvalidObject {
        path: format!("/{}", path.trim_start_matches('/')),
        reason,
    };
    let relative = Path::new(path.trim_start_matches('/'));
    let (Some(dir), Some(name)) = (relative.parent(), relative.file_name()) else {
        return Err(invalid("not a file path".into()));
    };
    let tree = subtree(repo, root, dir)?;
    let listing = repo.load_tree(&tree)?;
    let node = listing
        .find(name.as_encoded_bytes())
        .ok_or_else(|| invalid("missing".into()))?;
    if node.kind != NodeKind::File {
        return Err(invalid("not a regular file".into()));
    }
    if node.size > max {
        return Err(invalid(format!("{} bytes, more than the {max} allowed", node.size)));
    }
    let holes = node.content.iter().fold(0u64, |sum, part| match part {
        Content::Hole(n) => sum.saturating_add(*n),
        Content::Blob(_) => sum,
    });
    if holes > max {
        return Err(invalid(format!("{holes} bytes of holes, more than the {max} allowed")));
    }
    let bytes = read_file(repo, &node.content, node.size)?;
    if bytes.len() as u64 != node.size {
        return Err(invalid(format!(
            "holds {} bytes, its entry says {}",
            bytes.len(),
            node.size
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_objects_and_names_what_is_wrong() {
        let path = "/resources/core/configmaps/namespaces/web/a.json";
        let ok = decode_object(path, br#"{"metadata": {"name": "a"}, "data": {}}"#).unwrap();
        assert_eq!(ok.at.namespace.as_deref(), Some("web"));
        for (p, bytes) in [
            (path, &b"{"[..]),
            (path, br#"{"metadata": {"name": "b"}}"#),
            (path, b"[1]"),
            ("/resources/core/configmaps/a.json", br#"{"metadata": {"name": "a"}}"#),
        ] {
            let err = decode_object(p, bytes).unwrap_err().to_string();
            assert!(err.starts_with(&format!("snapshot file {p}: ")), "{err}");
        }
    }
}
