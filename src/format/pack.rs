//! Pack files: sealed blobs, then the sealed header, then its length.
//!
//! ```text
//! pack    = blob_1 || ... || blob_n || sealed_header || header_len:u32le
//! blob_i  = envelope(kind Data|Tree, framed plaintext)
//! sealed_header = envelope(kind PackHeader, framed postcard(PackHeader))
//! ```

use serde::{Deserialize, Serialize};

use super::{envelope, from_postcard, limits, to_postcard, BlobKind, FormatError};
use crate::id::BlobId;

/// Length of the trailer that stores the sealed header's length.
pub const TRAILER_LEN: usize = 4;

/// Where one blob sits inside a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackEntry {
    pub kind: BlobKind,
    pub id: BlobId,
    /// Offset of the blob's envelope from the start of the pack.
    pub offset: u32,
    /// Length of the blob's envelope.
    pub length: u32,
    /// Length of the blob's plaintext after decompression.
    pub raw_length: u32,
}

impl PackEntry {
    /// End offset of the envelope within the pack.
    pub fn end(&self) -> u64 {
        u64::from(self.offset) + u64::from(self.length)
    }
}

/// The plaintext of a pack header: its blobs in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackHeader {
    pub entries: Vec<PackEntry>,
}

impl PackHeader {
    pub fn encode(&self) -> Vec<u8> {
        to_postcard(self)
    }

    /// Decodes and checks that entries are in order, do not overlap and are
    /// at least as long as an envelope.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let header: Self = from_postcard("pack header", bytes)?;
        let mut end = 0u64;
        for e in &header.entries {
            if u64::from(e.offset) < end {
                return Err(FormatError::Decode {
                    what: "pack header",
                    reason: format!("blob {} overlaps the one before it", e.id),
                });
            }
            if (e.length as usize) < envelope::OVERHEAD + 1 {
                return Err(FormatError::Decode {
                    what: "pack header",
                    reason: format!("blob {} is shorter than an envelope", e.id),
                });
            }
            if e.raw_length as usize > limits::MAX_OBJECT {
                return Err(FormatError::Limit {
                    what: "pack header",
                    reason: format!("blob {} raw length {}", e.id, e.raw_length),
                });
            }
            end = e.end();
        }
        Ok(header)
    }

    /// Where the blobs end (the sealed header starts here).
    pub fn data_end(&self) -> u64 {
        self.entries.last().map_or(0, PackEntry::end)
    }
}

/// Reads the trailer of a pack of `pack_len` bytes and returns the offset and
/// length of its sealed header.
pub fn header_location(pack_len: u64, trailer: [u8; TRAILER_LEN]) -> Result<(u64, u32), FormatError> {
    let len = u32::from_le_bytes(trailer);
    let min = (TRAILER_LEN + envelope::OVERHEAD) as u64;
    if pack_len > limits::MAX_PACK {
        return Err(FormatError::Limit {
            what: "pack",
            reason: format!("{pack_len} bytes > {}", limits::MAX_PACK),
        });
    }
    if pack_len < min {
        return Err(FormatError::Truncated {
            what: "pack",
            reason: format!("{pack_len} bytes"),
        });
    }
    if u64::from(len) > limits::MAX_PACK_HEADER {
        return Err(FormatError::Limit {
            what: "pack header",
            reason: format!("{len} bytes > {}", limits::MAX_PACK_HEADER),
        });
    }
    if u64::from(len) + TRAILER_LEN as u64 > pack_len || (len as usize) < envelope::OVERHEAD {
        return Err(FormatError::Decode {
            what: "pack",
            reason: format!("header length {len} does not fit a pack of {pack_len} bytes"),
        });
    }
    Ok((pack_len - TRAILER_LEN as u64 - u64::from(len), len))
}
