//! The packer: blobs in, finished packs and index entries out.
//!
//! A pack's bytes go either to memory or to a [`Spool`] (a temporary file
//! the storage stores with `put_file`), so that a data pack being filled
//! costs no memory; either way the pack id is the hash of the bytes as
//! written, and the bytes are the same.

use bytes::Bytes;

use super::Result;
use crate::crypto::MasterKey;
use crate::format::index::IndexPack;
use crate::format::pack::{PackEntry, PackHeader};
use crate::format::{BlobKind, ObjectKind};
use crate::id::{BlobId, PackId};
use crate::storage::Spool;

/// A pack being filled.
#[derive(Debug)]
pub struct Packer {
    body: Body,
    entries: Vec<PackEntry>,
    target: usize,
}

/// Where the bytes of a pack being filled go.
#[derive(Debug)]
enum Body {
    Memory(Vec<u8>),
    Spooled { spool: Spool, hasher: Box<blake3::Hasher> },
}

/// The bytes of a finished pack.
#[derive(Debug)]
pub enum PackBytes {
    Memory(Bytes),
    Spooled(Spool),
}

/// A complete pack, ready to upload.
#[derive(Debug)]
pub struct FinishedPack {
    pub id: PackId,
    pub bytes: PackBytes,
    pub index: IndexPack,
}

impl Packer {
    /// An empty packer that holds its pack in memory and counts itself full
    /// at `target` bytes.
    pub fn new(target: usize) -> Self {
        Self {
            body: Body::Memory(Vec::new()),
            entries: Vec::new(),
            target,
        }
    }

    /// An empty packer that writes its pack to `spool` (empty).
    pub fn spooled(target: usize, spool: Spool) -> Self {
        Self {
            body: Body::Spooled {
                spool,
                hasher: Box::new(blake3::Hasher::new()),
            },
            entries: Vec::new(),
            target,
        }
    }

    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        match &mut self.body {
            Body::Memory(buf) => {
                if buf.capacity() == 0 {
                    buf.reserve(self.target + self.target / 8);
                }
                buf.extend_from_slice(bytes);
            }
            Body::Spooled { spool, hasher } => {
                spool.append(bytes)?;
                hasher.update(bytes);
            }
        }
        Ok(())
    }

    /// Appends one sealed blob.
    pub fn add(&mut self, kind: BlobKind, id: BlobId, raw_length: u32, sealed: &[u8]) -> Result<()> {
        let offset = self.len() as u32;
        self.append(sealed)?;
        self.entries.push(PackEntry {
            kind,
            id,
            offset,
            length: sealed.len() as u32,
            raw_length,
        });
        Ok(())
    }

    /// Bytes of blobs so far.
    pub fn len(&self) -> usize {
        match &self.body {
            Body::Memory(buf) => buf.len(),
            Body::Spooled { spool, .. } => spool.len() as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.len() >= self.target
    }

    /// Appends the sealed header and the trailer and names the pack.
    pub fn finish(mut self, key: &MasterKey) -> Result<FinishedPack> {
        let header = PackHeader {
            entries: std::mem::take(&mut self.entries),
        };
        let mut sealed = Vec::new();
        key.seal_into(ObjectKind::PackHeader, None, &header.encode(), &mut sealed)?;
        let header_len = sealed.len() as u32;
        sealed.extend_from_slice(&header_len.to_le_bytes());
        self.append(&sealed)?;
        let (id, bytes) = match self.body {
            Body::Memory(buf) => (PackId::hash_of(&buf), PackBytes::Memory(Bytes::from(buf))),
            Body::Spooled { spool, hasher } => (
                PackId::from_bytes(*hasher.finalize().as_bytes()),
                PackBytes::Spooled(spool),
            ),
        };
        let size = match &bytes {
            PackBytes::Memory(b) => b.len() as u64,
            PackBytes::Spooled(spool) => spool.len(),
        };
        Ok(FinishedPack {
            id,
            bytes,
            index: IndexPack {
                id,
                size,
                blobs: header.entries,
            },
        })
    }
}

/// Opens and decodes a sealed pack header found at `offset`, and checks
/// that the blobs it lists end before it. Messages read after a pack id.
pub fn open_header(key: &crate::crypto::MasterKey, sealed: &[u8], offset: u64) -> Result<PackHeader, String> {
    let plain = key
        .open(ObjectKind::PackHeader, sealed, crate::format::limits::MAX_OBJECT, None)
        .map_err(|e| format!("its header cannot be opened: {e}"))?;
    let header = PackHeader::decode(&plain).map_err(|e| format!("its header cannot be decoded: {e}"))?;
    if header.data_end() > offset {
        return Err(format!(
            "its header lists blobs up to offset {} but the header starts at {offset}",
            header.data_end()
        ));
    }
    if header.entries.is_empty() {
        return Err("its header lists no blobs".into());
    }
    Ok(header)
}

/// Finds, opens and checks the header of a whole pack held in memory (see
/// [`open_header`]). Messages read after a pack id.
pub fn header_of_pack(key: &crate::crypto::MasterKey, bytes: &[u8]) -> Result<PackHeader, String> {
    use crate::format::pack::{header_location, TRAILER_LEN};
    let size = bytes.len() as u64;
    let trailer: [u8; TRAILER_LEN] = bytes
        .get(bytes.len().saturating_sub(TRAILER_LEN)..)
        .and_then(|t| t.try_into().ok())
        .ok_or_else(|| format!("it is only {size} bytes long"))?;
    let (offset, len) = header_location(size, trailer).map_err(|e| e.to_string())?;
    let start = usize::try_from(offset).map_err(|_| format!("its header offset {offset} is too large"))?;
    let sealed = bytes
        .get(start..start.saturating_add(len as usize))
        .ok_or_else(|| "its header runs past its end".to_owned())?;
    open_header(key, sealed, offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::header_location;
    use crate::format::{envelope, limits};

    #[test]
    fn a_whole_pack_too_short_or_with_a_bad_trailer_is_named_as_such() {
        let key = MasterKey::generate().unwrap();
        let short = header_of_pack(&key, b"ab").unwrap_err();
        assert!(short.contains("only 2 bytes long"), "{short}");
        // A trailer claiming a header longer than the pack.
        let mut bogus = vec![0u8; 200];
        bogus[196..].copy_from_slice(&1000u32.to_le_bytes());
        assert!(header_of_pack(&key, &bogus).is_err());
        // A trailer pointing at bytes that are no sealed header.
        bogus[196..].copy_from_slice(&100u32.to_le_bytes());
        let unsealed = header_of_pack(&key, &bogus).unwrap_err();
        assert!(unsealed.contains("header cannot be opened"), "{unsealed}");
    }

    #[test]
    fn finished_pack_parses_back() {
        let key = MasterKey::generate().unwrap();
        let mut p = Packer::new(1 << 20);
        let mut ids = Vec::new();
        for i in 0..3u8 {
            let data = vec![i; 1000 + i as usize];
            let id = BlobId(key.blob_id(&data));
            let sealed = key.seal(ObjectKind::Data, Some(3), &data).unwrap();
            p.add(BlobKind::Data, id, data.len() as u32, &sealed).unwrap();
            ids.push((id, data));
        }
        assert!(!p.is_full());
        let pack = p.finish(&key).unwrap();
        let PackBytes::Memory(bytes) = &pack.bytes else {
            panic!("a memory packer made a spooled pack")
        };
        let pack = (pack.id, bytes.clone(), pack.index);
        let (id, bytes, index) = pack;
        assert_eq!(id, PackId::hash_of(&bytes));
        let n = bytes.len();
        let trailer: [u8; 4] = bytes[n - 4..].try_into().unwrap();
        let (off, len) = header_location(n as u64, trailer).unwrap();
        let sealed_header = &bytes[off as usize..off as usize + len as usize];
        let plain = key
            .open(ObjectKind::PackHeader, sealed_header, limits::MAX_OBJECT, None)
            .unwrap();
        let header = PackHeader::decode(&plain).unwrap();
        assert_eq!(header.entries, index.blobs);
        for (entry, (id, data)) in header.entries.iter().zip(&ids) {
            assert_eq!(entry.id, *id);
            let sealed = &bytes[entry.offset as usize..entry.end() as usize];
            let got = key
                .open(
                    ObjectKind::Data,
                    sealed,
                    limits::MAX_BLOB,
                    Some(entry.raw_length as usize),
                )
                .unwrap();
            assert_eq!(&got, data);
        }
        assert!(header.data_end() as usize + envelope::OVERHEAD < n);
    }

    /// Fills a packer in memory and one through a spool with the same blobs.
    fn fill_both(key: &MasterKey, dir: &std::path::Path) -> (FinishedPack, FinishedPack) {
        let mut memory = Packer::new(1 << 20);
        let mut spooled = Packer::spooled(1 << 20, Spool::create_in(dir).unwrap());
        let mut i = 0u32;
        while !memory.is_full() {
            let data: Vec<u8> = (0..70_000u32).map(|j| (j.wrapping_mul(i + 7) >> 3) as u8).collect();
            let id = BlobId(key.blob_id(&data));
            let sealed = key.seal(ObjectKind::Data, Some(3), &data).unwrap();
            memory.add(BlobKind::Data, id, data.len() as u32, &sealed).unwrap();
            spooled.add(BlobKind::Data, id, data.len() as u32, &sealed).unwrap();
            assert_eq!(memory.len(), spooled.len());
            assert_eq!(memory.is_full(), spooled.is_full());
            i += 1;
        }
        (memory.finish(key).unwrap(), spooled.finish(key).unwrap())
    }

    #[test]
    fn a_pack_written_through_a_spool_is_byte_identical_to_one_in_memory() {
        let key = MasterKey::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (memory, spooled) = fill_both(&key, dir.path());
        let (PackBytes::Memory(bytes), PackBytes::Spooled(spool)) = (&memory.bytes, &spooled.bytes) else {
            panic!("packs of the wrong kind")
        };
        assert!(memory.index.blobs.len() > 10);
        let written = spool.read_all(crate::storage::FileKind::Pack, "p").unwrap();
        // The blobs are the same bytes; the headers differ only in their
        // nonce, so they have the same length and open to the same entries.
        let data_end = memory.index.blobs.last().unwrap().end() as usize;
        assert!(written[..data_end] == bytes[..data_end], "the spooled blobs differ");
        assert_eq!(written.len(), bytes.len());
        assert_eq!(spooled.id, PackId::hash_of(&written));
        assert_eq!(memory.id, PackId::hash_of(bytes));
        assert_eq!(spooled.index.size, written.len() as u64);
        assert_eq!(spooled.index.blobs, memory.index.blobs);
        assert_eq!(header_of_pack(&key, &written).unwrap().entries, memory.index.blobs);
    }
}
