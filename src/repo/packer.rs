//! The packer: blobs in, finished pack bytes and index entries out. Pure.

use bytes::Bytes;

use crate::crypto::{CryptoError, MasterKey};
use crate::format::index::IndexPack;
use crate::format::pack::{PackEntry, PackHeader};
use crate::format::{BlobKind, ObjectKind};
use crate::id::{BlobId, PackId};

/// A pack being filled.
#[derive(Debug)]
pub struct Packer {
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
    target: usize,
}

/// A complete pack, ready to upload.
#[derive(Debug, Clone)]
pub struct FinishedPack {
    pub id: PackId,
    pub bytes: Bytes,
    pub index: IndexPack,
}

impl Packer {
    /// An empty packer that counts itself full at `target` bytes.
    pub fn new(target: usize) -> Self {
        Self::with_buffer(target, Vec::new())
    }

    /// An empty packer that fills `buf` (cleared first), so pack buffers
    /// can be reused rather than allocated for every pack.
    pub fn with_buffer(target: usize, mut buf: Vec<u8>) -> Self {
        buf.clear();
        Self {
            buf,
            entries: Vec::new(),
            target,
        }
    }

    /// Appends one sealed blob.
    pub fn add(&mut self, kind: BlobKind, id: BlobId, raw_length: u32, sealed: &[u8]) {
        if self.buf.capacity() == 0 {
            self.buf.reserve(self.target + self.target / 8);
        }
        let offset = self.buf.len() as u32;
        self.buf.extend_from_slice(sealed);
        self.entries.push(PackEntry {
            kind,
            id,
            offset,
            length: sealed.len() as u32,
            raw_length,
        });
    }

    /// Bytes of blobs so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.buf.len() >= self.target
    }

    /// Appends the sealed header and the trailer and names the pack.
    pub fn finish(mut self, key: &MasterKey) -> Result<FinishedPack, CryptoError> {
        let header = PackHeader { entries: self.entries };
        let start = self.buf.len();
        key.seal_into(ObjectKind::PackHeader, None, &header.encode(), &mut self.buf)?;
        let header_len = (self.buf.len() - start) as u32;
        self.buf.extend_from_slice(&header_len.to_le_bytes());
        let id = PackId::hash_of(&self.buf);
        let size = self.buf.len() as u64;
        Ok(FinishedPack {
            id,
            bytes: Bytes::from(self.buf),
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
            p.add(BlobKind::Data, id, data.len() as u32, &sealed);
            ids.push((id, data));
        }
        assert!(!p.is_full());
        let pack = p.finish(&key).unwrap();
        assert_eq!(pack.id, PackId::hash_of(&pack.bytes));
        let n = pack.bytes.len();
        let trailer: [u8; 4] = pack.bytes[n - 4..].try_into().unwrap();
        let (off, len) = header_location(n as u64, trailer).unwrap();
        let sealed_header = &pack.bytes[off as usize..off as usize + len as usize];
        let plain = key
            .open(ObjectKind::PackHeader, sealed_header, limits::MAX_OBJECT, None)
            .unwrap();
        let header = PackHeader::decode(&plain).unwrap();
        assert_eq!(header.entries, pack.index.blobs);
        for (entry, (id, data)) in header.entries.iter().zip(&ids) {
            assert_eq!(entry.id, *id);
            let sealed = &pack.bytes[entry.offset as usize..entry.end() as usize];
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
}
