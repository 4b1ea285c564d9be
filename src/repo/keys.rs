//! Key files: several passwords for one master key.

use bytes::Bytes;

use super::{hostname, now_ns, username, RepoError, Repository, Result};
use crate::crypto::{self, CryptoError, MasterKey};
use crate::format::keyfile::{KdfParams, KeyFile};
use crate::storage::{DynStorage, FileKind};

/// What `key list` shows of a key file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub current: bool,
    pub created_ns: i64,
    pub hostname: String,
    pub username: String,
}

fn decode_key(name: &str, bytes: &[u8]) -> Result<KeyFile> {
    super::verify_name(FileKind::Key, name, bytes)?;
    KeyFile::decode(bytes).map_err(|source| RepoError::Format {
        kind: FileKind::Key,
        name: name.to_owned(),
        source,
    })
}

/// Tries every key file with `password`; returns the first that opens.
pub(super) fn find_key(
    rt: &tokio::runtime::Runtime,
    storage: &DynStorage,
    password: &[u8],
) -> Result<(String, MasterKey)> {
    let mut names = rt.block_on(storage.list(FileKind::Key))?;
    if names.is_empty() {
        return Err(RepoError::NoKeys {
            location: storage.location(),
        });
    }
    names.sort();
    let mut tried = 0;
    for info in &names {
        let bytes = rt.block_on(storage.get(FileKind::Key, &info.name))?;
        let file = decode_key(&info.name, &bytes)?;
        tried += 1;
        match crypto::unwrap_master_key(&file, password) {
            Ok(key) => return Ok((info.name.clone(), key)),
            Err(CryptoError::WrongPassword) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(RepoError::WrongPassword {
        location: storage.location(),
        tried,
    })
}

impl Repository {
    /// Wraps the master key under `password` in a new key file; returns its name.
    pub fn write_key(&self, password: &[u8], kdf: KdfParams) -> Result<String> {
        let file = crypto::wrap_master_key(&self.key, password, kdf, hostname(), username(), now_ns())?;
        let bytes = file.encode();
        let name = blake3::hash(&bytes).to_hex().to_string();
        self.block_on(self.storage.put(FileKind::Key, &name, Bytes::from(bytes)))?;
        Ok(name)
    }

    /// Every key file, the one in use marked.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for info in self.block_on(self.storage.list(FileKind::Key))? {
            let bytes = self.block_on(self.storage.get(FileKind::Key, &info.name))?;
            let file = decode_key(&info.name, &bytes)?;
            out.push(KeyInfo {
                current: info.name == self.key_name,
                id: info.name,
                created_ns: file.created_ns,
                hostname: file.hostname,
                username: file.username,
            });
        }
        out.sort_by(|a, b| a.created_ns.cmp(&b.created_ns).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Resolves a key id or unique prefix.
    pub fn resolve_key(&self, prefix: &str) -> Result<String> {
        let keys = self.block_on(self.storage.list(FileKind::Key))?;
        let matches: Vec<_> = keys.into_iter().filter(|k| k.name.starts_with(prefix)).collect();
        match matches.len() {
            1 => Ok(matches[0].name.clone()),
            0 => Err(RepoError::KeyNotFound(prefix.to_owned())),
            _ => Err(RepoError::KeyRemoval(
                prefix.to_owned(),
                "the prefix matches several keys",
            )),
        }
    }

    /// Removes a key file other than the one in use.
    pub fn remove_key(&self, name: &str) -> Result<()> {
        if name == self.key_name {
            return Err(RepoError::KeyRemoval(
                name.to_owned(),
                "it is the key in use; use `key passwd` or open with another key",
            ));
        }
        self.block_on(self.storage.size(FileKind::Key, name)).map_err(|e| {
            if e.is_not_found() {
                RepoError::KeyNotFound(name.to_owned())
            } else {
                e.into()
            }
        })?;
        self.block_on(self.storage.delete(FileKind::Key, name))?;
        Ok(())
    }

    /// Replaces the key in use by one for `new_password`; returns the new key's name.
    /// The new key is durable before the old one is removed.
    pub fn change_password(&mut self, new_password: &[u8], kdf: KdfParams) -> Result<String> {
        let new_name = self.write_key(new_password, kdf)?;
        let old = std::mem::replace(&mut self.key_name, new_name.clone());
        self.block_on(self.storage.delete(FileKind::Key, &old))?;
        Ok(new_name)
    }
}
