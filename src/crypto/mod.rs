//! Key derivation, sealing and keyed hashing.
//!
//! The master key holds three independent 32-byte keys: one for
//! XChaCha20-Poly1305, one for the keyed BLAKE3 that names blobs, and one from
//! which the chunker's gear table is derived. Key material is zeroized on drop.

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

mod aead;
mod kdf;

pub use kdf::{derive_key, KdfBudget};

use crate::format::envelope::{self, NONCE_LEN};
use crate::format::keyfile::{KdfParams, KeyFile};
use crate::format::{FormatError, ObjectKind};

/// Errors of the crypto layer.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("wrong password: no key file could be opened with it")]
    WrongPassword,
    #[error("{kind} failed authentication: the data is corrupt or was sealed with another key")]
    Authentication { kind: &'static str },
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("key derivation failed: {0}")]
    Kdf(String),
    #[error("{}", kdf_too_costly(*needed_mib, *limit_mib, *available_mib))]
    KdfTooCostly {
        needed_mib: u64,
        limit_mib: u64,
        available_mib: Option<u64>,
    },
    #[error("cannot seal a {0}: the cipher refused its input")]
    Seal(&'static str),
    #[error("the system random source failed: {0}")]
    Random(String),
}

fn kdf_too_costly(needed: u64, limit: u64, available: Option<u64>) -> String {
    match available {
        Some(a) => format!(
            "its Argon2id memory cost of {needed} MiB is more than this machine can spare \
             ({limit} MiB: half of the {a} MiB available)"
        ),
        None => format!("its Argon2id memory cost of {needed} MiB is more than the maximum of {limit} MiB"),
    }
}

/// Length of the serialized master key.
pub const MASTER_KEY_LEN: usize = 96;

/// Context string of the gear-table derivation.
const GEAR_CONTEXT: &[u8] = b"cairn v1 fastcdc gear table";

/// Context string of the key that authenticates the local index table.
const INDEX_TABLE_CONTEXT: &str = "cairn v1 local index table MAC";

/// Fills `buf` from the operating system's random source.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), CryptoError> {
    getrandom::fill(buf).map_err(|e| CryptoError::Random(e.to_string()))
}

/// The repository's master key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    encryption: [u8; 32],
    id_key: [u8; 32],
    chunker_key: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A fresh random master key.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        random_bytes(bytes.as_mut())?;
        Ok(Self::from_bytes(&bytes))
    }

    /// A fresh master key whose id and chunker keys are copied from `other`,
    /// so that two repositories chunk and name data alike and copies between
    /// them deduplicate.
    pub fn generate_sharing_chunker(other: &MasterKey) -> Result<Self, CryptoError> {
        let mut key = Self::generate()?;
        key.id_key = other.id_key;
        key.chunker_key = other.chunker_key;
        Ok(key)
    }

    /// Whether `other` names blobs with the same id key, so that a blob has
    /// the same id in both repositories.
    pub fn shares_id_key(&self, other: &MasterKey) -> bool {
        self.id_key == other.id_key
    }

    /// Whether `other` derives the same chunker gear table.
    pub fn shares_chunker_key(&self, other: &MasterKey) -> bool {
        self.chunker_key == other.chunker_key
    }

    pub fn from_bytes(bytes: &[u8; MASTER_KEY_LEN]) -> Self {
        let mut k = Self {
            encryption: [0; 32],
            id_key: [0; 32],
            chunker_key: [0; 32],
        };
        k.encryption.copy_from_slice(&bytes[..32]);
        k.id_key.copy_from_slice(&bytes[32..64]);
        k.chunker_key.copy_from_slice(&bytes[64..]);
        k
    }

    pub fn to_bytes(&self) -> Zeroizing<[u8; MASTER_KEY_LEN]> {
        let mut out = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        out[..32].copy_from_slice(&self.encryption);
        out[32..64].copy_from_slice(&self.id_key);
        out[64..].copy_from_slice(&self.chunker_key);
        out
    }

    /// Keyed BLAKE3 of a blob's plaintext: its id.
    pub fn blob_id(&self, plaintext: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.id_key, plaintext).as_bytes()
    }

    /// The 256-entry gear table of the chunker, derived from the chunker key
    /// with BLAKE3's keyed XOF.
    pub fn gear_table(&self) -> Box<[u64; 256]> {
        let mut hasher = blake3::Hasher::new_keyed(&self.chunker_key);
        hasher.update(GEAR_CONTEXT);
        let mut bytes = [0u8; 256 * 8];
        hasher.finalize_xof().fill(&mut bytes);
        let mut table = Box::new([0u64; 256]);
        for (slot, b) in table.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(b);
            *slot = u64::from_le_bytes(w);
        }
        table
    }

    /// The key of the keyed BLAKE3 that authenticates a local index table
    /// (`format-spec/format.md`, "The local index table"): derived from the
    /// encryption and id keys, so only holders of the master key can write a
    /// table that verifies.
    pub fn index_table_key(&self) -> Zeroizing<[u8; 32]> {
        let mut hasher = blake3::Hasher::new_derive_key(INDEX_TABLE_CONTEXT);
        hasher.update(&self.encryption);
        hasher.update(&self.id_key);
        Zeroizing::new(*hasher.finalize().as_bytes())
    }

    /// Appends the envelope of `plaintext` (compressed at `level` when that
    /// pays) to `out`, under a random nonce.
    pub fn seal_into(
        &self,
        kind: ObjectKind,
        level: Option<i32>,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        random_bytes(&mut nonce)?;
        seal_with_nonce(&self.encryption, kind, level, plaintext, &nonce, out)?;
        Ok(())
    }

    /// Seals into a new buffer.
    pub fn seal(&self, kind: ObjectKind, level: Option<i32>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::with_capacity(plaintext.len() + envelope::OVERHEAD + 1);
        self.seal_into(kind, level, plaintext, &mut out)?;
        Ok(out)
    }

    /// Opens an envelope of `kind` and returns its decompressed plaintext.
    /// `exact`, when known, is the plaintext length the index promises.
    pub fn open(
        &self,
        kind: ObjectKind,
        sealed: &[u8],
        limit: usize,
        exact: Option<usize>,
    ) -> Result<Vec<u8>, CryptoError> {
        open_with_key(&self.encryption, kind, sealed, limit, exact)
    }
}

/// Seals with an explicit nonce. Only golden vectors and key wrapping call it
/// directly; everything else uses a random nonce.
pub fn seal_with_nonce(
    key: &[u8; 32],
    kind: ObjectKind,
    level: Option<i32>,
    plaintext: &[u8],
    nonce: &[u8; NONCE_LEN],
    out: &mut Vec<u8>,
) -> Result<(), CryptoError> {
    let header = envelope::header(kind);
    out.extend_from_slice(&header);
    out.extend_from_slice(nonce);
    let start = out.len();
    envelope::frame(level, plaintext, out);
    match aead::seal(key, nonce, &header, &mut out[start..]) {
        Some(tag) => {
            out.extend_from_slice(&tag);
            Ok(())
        }
        None => {
            out.truncate(start - envelope::HEADER_LEN - NONCE_LEN);
            Err(CryptoError::Seal(kind.name()))
        }
    }
}

/// Opens an envelope under `key`.
pub fn open_with_key(
    key: &[u8; 32],
    kind: ObjectKind,
    sealed: &[u8],
    limit: usize,
    exact: Option<usize>,
) -> Result<Vec<u8>, CryptoError> {
    let parts = envelope::split(sealed, kind)?;
    let mut buf = parts.sealed.to_vec();
    let len = aead::open(key, parts.nonce, &parts.header, &mut buf)
        .ok_or(CryptoError::Authentication { kind: kind.name() })?;
    buf.truncate(len);
    // Stored data keeps the buffer (key files are stored uncompressed, so a
    // master key stays in the one buffer its caller zeroizes).
    Ok(envelope::unframe_owned(buf, limit, exact)?)
}

/// Wraps `master` under `password` into a new key file, with a random salt
/// and nonce.
pub fn wrap_master_key(
    master: &MasterKey,
    password: &[u8],
    kdf: KdfParams,
    hostname: String,
    username: String,
    created_ns: i64,
) -> Result<KeyFile, CryptoError> {
    let mut salt = [0u8; 32];
    random_bytes(&mut salt)?;
    let mut nonce = [0u8; NONCE_LEN];
    random_bytes(&mut nonce)?;
    let mut file = wrap_master_key_with(master, password, kdf, &salt, &nonce)?;
    file.created_ns = created_ns;
    file.hostname = hostname;
    file.username = username;
    Ok(file)
}

/// Wraps `master` under `password` with an explicit salt and nonce. The
/// returned key file has empty host and user names and time 0. Only golden
/// vectors call it directly; new key files use [`wrap_master_key`].
pub fn wrap_master_key_with(
    master: &MasterKey,
    password: &[u8],
    kdf: KdfParams,
    salt: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
) -> Result<KeyFile, CryptoError> {
    let wrapping = derive_key(password, salt, &kdf)?;
    let mut wrapped = Vec::new();
    seal_with_nonce(
        &wrapping,
        ObjectKind::Key,
        None,
        master.to_bytes().as_ref(),
        nonce,
        &mut wrapped,
    )?;
    Ok(KeyFile {
        created_ns: 0,
        hostname: String::new(),
        username: String::new(),
        kdf,
        salt: *salt,
        wrapped,
    })
}

/// Opens a key file with `password`. A failed authentication means a wrong
/// password (or a damaged key file, which cannot be told apart).
pub fn unwrap_master_key(key: &KeyFile, password: &[u8]) -> Result<MasterKey, CryptoError> {
    let wrapping = derive_key(password, &key.salt, &key.kdf)?;
    let plain = match open_with_key(
        &wrapping,
        ObjectKind::Key,
        &key.wrapped,
        MASTER_KEY_LEN,
        Some(MASTER_KEY_LEN),
    ) {
        Ok(p) => Zeroizing::new(p),
        Err(CryptoError::Authentication { .. }) => return Err(CryptoError::WrongPassword),
        Err(e) => return Err(e),
    };
    let bytes: &[u8; MASTER_KEY_LEN] = plain.as_slice().try_into().map_err(|_| CryptoError::WrongPassword)?;
    Ok(MasterKey::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast_kdf() -> KdfParams {
        KdfParams {
            memory_kib: crate::format::keyfile::MIN_KDF_MEMORY_KIB,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn seal_open_round_trip_with_and_without_compression() {
        let key = MasterKey::generate().unwrap();
        let data = vec![7u8; 10_000];
        for level in [None, Some(3)] {
            let sealed = key.seal(ObjectKind::Data, level, &data).unwrap();
            assert_eq!(
                key.open(ObjectKind::Data, &sealed, 1 << 20, Some(data.len())).unwrap(),
                data
            );
        }
        let compressed = key.seal(ObjectKind::Data, Some(3), &data).unwrap();
        assert!(compressed.len() < 1000, "repetitive data must shrink");
    }

    #[test]
    fn open_rejects_flipped_byte_and_wrong_kind() {
        let key = MasterKey::generate().unwrap();
        let mut sealed = key.seal(ObjectKind::Tree, None, b"hello tree").unwrap();
        assert!(matches!(
            key.open(ObjectKind::Data, &sealed, 100, None),
            Err(CryptoError::Format(FormatError::WrongKind { .. }))
        ));
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(matches!(
            key.open(ObjectKind::Tree, &sealed, 100, None),
            Err(CryptoError::Authentication { .. })
        ));
    }

    #[test]
    fn wrap_and_unwrap_master_key() {
        let key = MasterKey::generate().unwrap();
        let file = wrap_master_key(&key, b"secret", fast_kdf(), "h".into(), "u".into(), 0).unwrap();
        let back = unwrap_master_key(&file, b"secret").unwrap();
        assert_eq!(back.to_bytes().as_ref(), key.to_bytes().as_ref());
        assert!(matches!(
            unwrap_master_key(&file, b"wrong"),
            Err(CryptoError::WrongPassword)
        ));
    }

    #[test]
    fn gear_table_depends_on_key() {
        let a = MasterKey::generate().unwrap();
        let b = MasterKey::generate().unwrap();
        assert_ne!(a.gear_table()[..], b.gear_table()[..]);
        assert_eq!(a.gear_table()[..], a.gear_table()[..]);
        let shared = MasterKey::generate_sharing_chunker(&a).unwrap();
        assert_eq!(shared.gear_table()[..], a.gear_table()[..]);
        assert_eq!(shared.blob_id(b"x"), a.blob_id(b"x"));
        assert!(shared.shares_id_key(&a) && shared.shares_chunker_key(&a));
        assert!(!b.shares_id_key(&a) && !b.shares_chunker_key(&a));
        assert_ne!(shared.to_bytes()[..32], a.to_bytes()[..32]);
    }
}
