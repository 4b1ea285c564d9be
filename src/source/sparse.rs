//! Data regions of sparse files.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::unistd::{lseek, Whence};

/// The data regions of `file`, as `(offset, len)` pairs in increasing order,
/// covering the first `size` bytes; everything between them is a hole.
///
/// Uses `lseek` with `SEEK_DATA`/`SEEK_HOLE`. A file system that does not
/// support them gets one region covering the whole file. A file of only holes
/// has no regions. Regions never reach past `size`, even if the file grew
/// meanwhile. The file's read position is restored before returning.
pub fn data_segments(file: &File, size: u64) -> io::Result<Vec<(u64, u64)>> {
    if size == 0 {
        return Ok(Vec::new());
    }
    let fd = file.as_raw_fd();
    let saved = lseek(fd, 0, Whence::SeekCur)?;
    let result = scan(fd, size);
    lseek(fd, saved, Whence::SeekSet)?;
    result
}

fn scan(fd: std::os::fd::RawFd, size: u64) -> io::Result<Vec<(u64, u64)>> {
    let end = i64::try_from(size).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file size too large"))?;
    let mut segments = Vec::new();
    let mut pos: i64 = 0;
    while pos < end {
        let data = match lseek(fd, pos, Whence::SeekData) {
            Ok(data) => data,
            // No data at or after `pos`: the rest is a hole.
            Err(Errno::ENXIO) => break,
            Err(Errno::EINVAL | Errno::EOPNOTSUPP) if segments.is_empty() && pos == 0 => {
                return Ok(vec![(0, size)]);
            }
            Err(e) => return Err(e.into()),
        };
        if data >= end {
            break;
        }
        let hole = match lseek(fd, data, Whence::SeekHole) {
            Ok(hole) => hole.min(end),
            // The file shrank under us: it ends here.
            Err(Errno::ENXIO) => end,
            Err(e) => return Err(e.into()),
        };
        if hole <= data {
            break;
        }
        // Both are non-negative offsets below `end`, so the casts are exact.
        segments.push((data as u64, (hole - data) as u64));
        pos = hole;
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::FileExt;

    const MIB: u64 = 1024 * 1024;

    fn total(segments: &[(u64, u64)]) -> u64 {
        segments.iter().map(|s| s.1).sum()
    }

    /// Segments must be in order, non-overlapping and inside the file.
    fn assert_well_formed(segments: &[(u64, u64)], size: u64) {
        let mut prev_end = 0;
        for &(off, len) in segments {
            assert!(len > 0, "empty segment in {segments:?}");
            assert!(off >= prev_end, "overlap or disorder in {segments:?}");
            prev_end = off + len;
        }
        assert!(prev_end <= size, "segment past end in {segments:?}");
    }

    #[test]
    fn finds_holes_in_sparse_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("sparse"))
            .unwrap();
        let size = 8 * MIB;
        file.set_len(size).unwrap();
        let probe = data_segments(&file, size).unwrap();
        if probe.is_empty() {
            // The file system reports holes: place data and check it is found.
            file.write_all_at(b"start", 0).unwrap();
            file.write_all_at(b"middle", 4 * MIB).unwrap();
            let segments = data_segments(&file, size).unwrap();
            assert_well_formed(&segments, size);
            assert!(segments.len() >= 2, "expected two data regions: {segments:?}");
            assert_eq!(segments[0].0, 0);
            let covers = |at: u64| segments.iter().any(|&(o, l)| o <= at && at < o + l);
            assert!(covers(0) && covers(4 * MIB) && covers(4 * MIB + 5));
            assert!(!covers(2 * MIB), "hole at 2 MiB not found: {segments:?}");
            assert!(!covers(size - 1), "trailing hole not found: {segments:?}");
            assert!(total(&segments) < size);
        } else {
            // No hole support: the fallback is one segment over the whole file.
            assert_eq!(probe, vec![(0, size)]);
        }
    }

    #[test]
    fn dense_file_is_one_segment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dense");
        std::fs::write(&path, vec![7u8; 100_000]).unwrap();
        let file = File::open(&path).unwrap();
        let segments = data_segments(&file, 100_000).unwrap();
        assert_eq!(segments, vec![(0, 100_000)]);
    }

    #[test]
    fn clamps_to_given_size_and_keeps_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![1u8; 10_000]).unwrap();
        let mut file = File::open(&path).unwrap();
        file.seek(SeekFrom::Start(3)).unwrap();
        let segments = data_segments(&file, 4_000).unwrap();
        assert_eq!(segments, vec![(0, 4_000)]);
        let mut buf = [0u8; 1];
        file.read_exact(&mut buf).unwrap();
        assert_eq!(file.stream_position().unwrap(), 4);
    }

    #[test]
    fn empty_file_has_no_segments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        std::fs::write(&path, b"").unwrap();
        let file = File::open(&path).unwrap();
        assert!(data_segments(&file, 0).unwrap().is_empty());
    }
}
