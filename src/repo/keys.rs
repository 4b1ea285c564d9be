//! Key files: several passwords for one master key.

use bytes::Bytes;

use super::{hostname, now_ns, username, RepoError, Repository, Result};
use crate::crypto::{self, CryptoError, KdfBudget, MasterKey};
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
    /// Why the key file cannot be used (it does not decode), if so.
    pub problem: Option<String>,
}

fn decode_key(name: &str, bytes: &[u8]) -> Result<KeyFile> {
    super::verify_name(FileKind::Key, name, bytes)?;
    KeyFile::decode(bytes).map_err(|source| RepoError::Format {
        kind: FileKind::Key,
        name: name.to_owned(),
        source,
    })
}

/// A key file that was passed over while opening the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// The key file's name.
    pub id: String,
    /// Why: it does not decode, its Argon2id parameters are out of bounds or
    /// more than this machine can spare, or its wrapped key is malformed.
    pub reason: String,
}

impl std::fmt::Display for SkippedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "key {} skipped: {}", self.id, self.reason)
    }
}

/// The key that opened the repository, and what was learnt on the way.
pub(super) struct Found {
    pub name: String,
    pub key: MasterKey,
    pub skipped: Vec<SkippedKey>,
}

/// What trying one key file gave.
enum Attempt {
    Opened(MasterKey),
    Wrong,
    Skipped(String),
}

/// Reads one key file; `None` when it vanished since the listing.
fn fetch(rt: &tokio::runtime::Runtime, storage: &DynStorage, name: &str) -> Result<Option<Bytes>> {
    match rt.block_on(storage.get(FileKind::Key, name)) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Tries one key file's bytes. Damage of any kind skips it.
fn attempt(name: &str, bytes: Option<&[u8]>, password: &[u8], budget: &KdfBudget) -> Attempt {
    let Some(bytes) = bytes else {
        return Attempt::Skipped("it was removed while the repository was being opened".into());
    };
    let file = match decode_key(name, bytes) {
        Ok(f) => f,
        Err(RepoError::Format { source, .. }) => return Attempt::Skipped(source.to_string()),
        Err(RepoError::NameMismatch { actual, .. }) => {
            return Attempt::Skipped(format!("its contents hash to {actual}"))
        }
        Err(e) => return Attempt::Skipped(e.to_string()),
    };
    if let Err(e) = budget.check(&file.kdf) {
        return Attempt::Skipped(e.to_string());
    }
    match crypto::unwrap_master_key(&file, password) {
        Ok(key) => Attempt::Opened(key),
        Err(CryptoError::WrongPassword) => Attempt::Wrong,
        Err(e) => Attempt::Skipped(e.to_string()),
    }
}

/// Finds the key file that opens with `password`. The one a local cache
/// remembers is tried first; the others follow from the cheapest Argon2id
/// cost up, so that an expensive key file (planted or not) costs time only
/// when every cheaper one failed. A key file that cannot be used is
/// skipped, never fatal: one damaged or planted file must not lock out the
/// other passwords.
pub(super) fn find_key(rt: &tokio::runtime::Runtime, storage: &DynStorage, password: &[u8]) -> Result<Found> {
    let mut names: Vec<String> = rt
        .block_on(storage.list(FileKind::Key))?
        .into_iter()
        .map(|info| info.name)
        .collect();
    if names.is_empty() {
        return Err(RepoError::NoKeys {
            location: storage.location(),
        });
    }
    names.sort();
    let budget = KdfBudget::this_machine();
    let mut tried = 0;
    let mut skipped = Vec::new();
    let mut outcome = |name: &str, bytes: Option<&[u8]>, skipped: &mut Vec<SkippedKey>| {
        match attempt(name, bytes, password, &budget) {
            Attempt::Opened(key) => return Some(key),
            Attempt::Wrong => tried += 1,
            Attempt::Skipped(reason) => skipped.push(SkippedKey {
                id: name.to_owned(),
                reason,
            }),
        }
        None
    };
    let preferred = rt
        .block_on(storage.preferred(FileKind::Key))
        .filter(|p| names.binary_search(p).is_ok());
    if let Some(name) = preferred {
        let bytes = fetch(rt, storage, &name)?;
        if let Some(key) = outcome(&name, bytes.as_deref(), &mut skipped) {
            return Ok(Found { name, key, skipped });
        }
        names.retain(|n| *n != name);
    }
    // Unusable files cost nothing to reject and come first.
    let mut costed = Vec::with_capacity(names.len());
    for name in names {
        let bytes = fetch(rt, storage, &name)?;
        let work = bytes
            .as_deref()
            .and_then(|b| decode_key(&name, b).ok())
            .map_or(0, |f| f.kdf.work_kib());
        costed.push((work, name, bytes));
    }
    costed.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    for (_, name, bytes) in costed {
        if let Some(key) = outcome(&name, bytes.as_deref(), &mut skipped) {
            rt.block_on(storage.set_preferred(FileKind::Key, &name));
            return Ok(Found { name, key, skipped });
        }
    }
    Err(RepoError::WrongPassword {
        location: storage.location(),
        tried,
        skipped,
    })
}

impl Repository {
    /// Wraps the master key under `password` in a new key file; returns its name.
    /// Parameters below the format's floor, above its caps or above what
    /// this machine can spare are refused before Argon2id runs.
    pub fn write_key(&self, password: &[u8], kdf: KdfParams) -> Result<String> {
        kdf.validate()
            .map_err(|e| RepoError::InvalidOption(format!("new key: {e}")))?;
        KdfBudget::this_machine()
            .check(&kdf)
            .map_err(|e| RepoError::InvalidOption(format!("new key: {e}")))?;
        let file = crypto::wrap_master_key(&self.key, password, kdf, hostname(), username(), now_ns())?;
        let bytes = file.encode();
        let name = blake3::hash(&bytes).to_hex().to_string();
        self.block_on(self.storage.put(FileKind::Key, &name, Bytes::from(bytes)))?;
        Ok(name)
    }

    /// Every key file, the one in use marked; a damaged one is listed with
    /// its problem, so that it can be found and removed.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for info in self.block_on(self.storage.list(FileKind::Key))? {
            let bytes = match self.block_on(self.storage.get(FileKind::Key, &info.name)) {
                Ok(b) => b,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            let key = match decode_key(&info.name, &bytes) {
                Ok(file) => KeyInfo {
                    current: info.name == self.key_name,
                    id: info.name,
                    created_ns: file.created_ns,
                    hostname: file.hostname,
                    username: file.username,
                    problem: self.budget_problem(&file.kdf),
                },
                Err(RepoError::Storage(e)) => return Err(e.into()),
                Err(e) => KeyInfo {
                    current: false,
                    problem: Some(e.to_string()),
                    id: info.name,
                    created_ns: 0,
                    hostname: String::new(),
                    username: String::new(),
                },
            };
            out.push(key);
        }
        out.sort_by(|a, b| a.created_ns.cmp(&b.created_ns).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    fn budget_problem(&self, kdf: &KdfParams) -> Option<String> {
        KdfBudget::this_machine().check(kdf).err().map(|e| e.to_string())
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

#[cfg(test)]
mod tests;
