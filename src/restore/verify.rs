//! Checking restored files against the snapshot, blob by blob.

use std::os::unix::fs::FileExt;

use rayon::prelude::*;

use super::target_dir::{Access, TargetDir};
use super::{RestoreError, VerifyFailure};
use crate::format::tree::Content;
use crate::format::BlobKind;
use crate::id::BlobId;
use crate::repo::IndexedRepository;

/// Re-reads each file (an entry of `target` this restore created, reopened
/// without following symlinks and checked to be that file) and checks that
/// every blob's bytes hash to its id and that the file has the expected
/// length. Holes are not read. Returns the number of files checked, or every
/// mismatch found.
pub(crate) fn verify_files(
    repo: &IndexedRepository,
    target: &TargetDir<'_>,
    files: &[(usize, &[Content])],
) -> Result<u64, RestoreError> {
    let mut failures: Vec<VerifyFailure> = files
        .par_iter()
        .filter_map(|&(entry, content)| verify_file(repo, target, entry, content).err())
        .collect();
    if failures.is_empty() {
        return Ok(files.len() as u64);
    }
    failures.sort_by(|a, b| a.path.cmp(&b.path));
    Err(RestoreError::Verify { failures })
}

fn verify_file(
    repo: &IndexedRepository,
    target: &TargetDir<'_>,
    entry: usize,
    content: &[Content],
) -> Result<(), VerifyFailure> {
    let fail = |offset: u64, blob: Option<BlobId>, reason: String| VerifyFailure {
        path: target.path(entry),
        offset,
        blob,
        reason,
    };
    let file = target.open_file(entry, Access::Read).map_err(|e| {
        let reason = match e {
            RestoreError::Blocked { reason, .. } => reason.to_owned(),
            RestoreError::Io { source, .. } => format!("cannot open: {source}"),
            other => other.to_string(),
        };
        fail(0, None, reason)
    })?;
    let mut buf = Vec::new();
    let mut pos = 0u64;
    for piece in content {
        match piece {
            Content::Hole(len) => pos = pos.saturating_add(*len),
            Content::Blob(id) => {
                let loc = repo
                    .index()
                    .get(BlobKind::Data, id)
                    .ok_or_else(|| fail(pos, Some(*id), "the blob is not in the index".into()))?;
                buf.resize(loc.raw_length as usize, 0);
                file.read_exact_at(&mut buf, pos)
                    .map_err(|e| fail(pos, Some(*id), format!("cannot read: {e}")))?;
                if repo.key().blob_id(&buf) != id.0 {
                    return Err(fail(pos, Some(*id), "the bytes do not match the blob".into()));
                }
                pos += u64::from(loc.raw_length);
            }
        }
    }
    let len = file
        .metadata()
        .map_err(|e| fail(0, None, format!("cannot stat: {e}")))?
        .len();
    if len != pos {
        return Err(fail(0, None, format!("length is {len}, expected {pos}")));
    }
    Ok(())
}
