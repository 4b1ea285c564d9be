//! The sealed-object envelope and its plaintext framing.
//!
//! ```text
//! envelope  = version:u8 || kind:u8 || nonce:[u8;24] || ciphertext || tag:[u8;16]
//! plaintext = compression:u8 || payload
//! ```
//! The AEAD is XChaCha20-Poly1305 with `version || kind` as associated data.
//! `compression` is 0 (payload is the data) or 1 (payload is one zstd frame
//! whose frame header declares the content size).

use std::cell::RefCell;

use super::{limits, FormatError, ObjectKind, FORMAT_VERSION};

pub const HEADER_LEN: usize = 2;
pub const NONCE_LEN: usize = 24;
pub const TAG_LEN: usize = 16;
/// Bytes an envelope adds to its plaintext.
pub const OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

pub const COMPRESSION_NONE: u8 = 0;
pub const COMPRESSION_ZSTD: u8 = 1;

/// The magic number that opens a regular zstd frame (0xFD2FB528, little-endian).
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The authenticated header of an envelope of `kind`.
pub fn header(kind: ObjectKind) -> [u8; HEADER_LEN] {
    [FORMAT_VERSION, kind as u8]
}

/// The parts of an envelope, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct Parts<'a> {
    pub header: [u8; HEADER_LEN],
    pub kind: ObjectKind,
    pub nonce: &'a [u8; NONCE_LEN],
    /// Ciphertext followed by the tag.
    pub sealed: &'a [u8],
}

/// Splits an envelope and checks its version and kind.
pub fn split(bytes: &[u8], expected: ObjectKind) -> Result<Parts<'_>, FormatError> {
    if bytes.len() < OVERHEAD {
        return Err(FormatError::Truncated {
            what: expected.name(),
            reason: format!("{} bytes, an envelope has at least {OVERHEAD}", bytes.len()),
        });
    }
    if bytes[0] != FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion {
            found: bytes[0],
            supported: FORMAT_VERSION,
        });
    }
    let kind = ObjectKind::from_u8(bytes[1])?;
    if kind != expected {
        return Err(FormatError::WrongKind {
            expected: expected.name(),
            found: kind.name(),
        });
    }
    let nonce: &[u8; NONCE_LEN] =
        bytes[HEADER_LEN..HEADER_LEN + NONCE_LEN]
            .try_into()
            .map_err(|_| FormatError::Truncated {
                what: expected.name(),
                reason: "nonce".into(),
            })?;
    Ok(Parts {
        header: [bytes[0], bytes[1]],
        kind,
        nonce,
        sealed: &bytes[HEADER_LEN + NONCE_LEN..],
    })
}

thread_local! {
    /// Each thread's zstd compression context and its level: creating a
    /// context per blob costs an allocation of about a megabyte.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Compresses `data` into `dst` with this thread's context at `level`.
fn compress_into(level: i32, data: &[u8], dst: &mut [u8]) -> std::io::Result<usize> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if !matches!(&*slot, Some((l, _)) if *l == level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        match slot.as_mut() {
            Some((_, c)) => c.compress_to_buffer(data, dst),
            None => Err(std::io::Error::other("no zstd context")),
        }
    })
}

/// Decompresses one frame of `capacity` bytes with this thread's context.
fn decompress(payload: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        match slot.as_mut() {
            Some(d) => d.decompress(payload, capacity),
            None => Err(std::io::Error::other("no zstd context")),
        }
    })
}

/// Appends `compression || payload` for `data` to `out`.
///
/// With `level` set, the data is compressed with zstd and the compressed form
/// is kept only when it is smaller; otherwise the data is stored as is.
pub fn frame(level: Option<i32>, data: &[u8], out: &mut Vec<u8>) {
    // Room for the largest outcome and the tag that follows, reserved
    // exactly: a buffer reused for many blobs (a sealing scratch) then stays
    // at the size of the largest one rather than doubling past it.
    let bound = match level {
        Some(_) => zstd::zstd_safe::compress_bound(data.len()),
        None => data.len(),
    };
    out.reserve_exact(1 + bound + 64);
    if let Some(level) = level {
        let start = out.len();
        out.push(COMPRESSION_ZSTD);
        out.resize(start + 1 + zstd::zstd_safe::compress_bound(data.len()), 0);
        match compress_into(level, data, &mut out[start + 1..]) {
            Ok(n) if n < data.len() => {
                out.truncate(start + 1 + n);
                return;
            }
            _ => out.truncate(start),
        }
    }
    out.push(COMPRESSION_NONE);
    out.extend_from_slice(data);
}

/// Undoes [`frame`]. `limit` bounds the decompressed size; `exact`, when
/// known (a blob's raw length from the index), must match it.
pub fn unframe(framed: &[u8], limit: usize, exact: Option<usize>) -> Result<Vec<u8>, FormatError> {
    let (&flag, payload) = framed.split_first().ok_or_else(|| FormatError::Truncated {
        what: "plaintext",
        reason: "no compression byte".into(),
    })?;
    let data = match flag {
        COMPRESSION_NONE => {
            if payload.len() > limit {
                return Err(FormatError::Limit {
                    what: "plaintext",
                    reason: format!("{} bytes > {limit}", payload.len()),
                });
            }
            payload.to_vec()
        }
        COMPRESSION_ZSTD => {
            // Exactly one regular frame: no skippable frames, nothing after it.
            if !payload.starts_with(&ZSTD_MAGIC) {
                return Err(FormatError::Decompress("not a zstd frame".into()));
            }
            match zstd::zstd_safe::find_frame_compressed_size(payload) {
                Ok(n) if n == payload.len() => {}
                _ => return Err(FormatError::Decompress("payload is not exactly one zstd frame".into())),
            }
            let declared = zstd::zstd_safe::get_frame_content_size(payload)
                .map_err(|_| FormatError::Decompress("not a zstd frame".into()))?
                .ok_or_else(|| FormatError::Decompress("zstd frame without content size".into()))?;
            let declared = usize::try_from(declared).unwrap_or(usize::MAX);
            if declared > limit {
                return Err(FormatError::Limit {
                    what: "plaintext",
                    reason: format!("{declared} bytes > {limit}"),
                });
            }
            let out = decompress(payload, declared).map_err(|e| FormatError::Decompress(e.to_string()))?;
            if out.len() != declared {
                return Err(FormatError::Decompress(format!(
                    "frame declared {declared} bytes, produced {}",
                    out.len()
                )));
            }
            out
        }
        other => {
            return Err(FormatError::Decode {
                what: "plaintext",
                reason: format!("unknown compression byte {other}"),
            })
        }
    };
    check_exact(data.len(), exact)?;
    Ok(data)
}

fn check_exact(len: usize, exact: Option<usize>) -> Result<(), FormatError> {
    match exact {
        Some(exact) if len != exact => Err(FormatError::Decode {
            what: "blob",
            reason: format!("length {len} differs from indexed {exact}"),
        }),
        _ => Ok(()),
    }
}

/// [`unframe`] for a buffer the caller gives up: stored (uncompressed)
/// data is moved to the front of the same buffer instead of copied.
pub fn unframe_owned(mut framed: Vec<u8>, limit: usize, exact: Option<usize>) -> Result<Vec<u8>, FormatError> {
    if framed.first() != Some(&COMPRESSION_NONE) {
        return unframe(&framed, limit, exact);
    }
    let len = framed.len() - 1;
    if len > limit {
        return Err(FormatError::Limit {
            what: "plaintext",
            reason: format!("{len} bytes > {limit}"),
        });
    }
    check_exact(len, exact)?;
    framed.copy_within(1.., 0);
    framed.truncate(len);
    Ok(framed)
}

/// Default limit for objects other than data blobs.
pub const DEFAULT_LIMIT: usize = limits::MAX_OBJECT;
