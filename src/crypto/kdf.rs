//! Argon2id key derivation, and what this machine can spend on it.
//!
//! A key file's parameters are checked twice before Argon2id runs: against
//! the fixed bounds of format.md §5 ([`KdfParams::validate`]), and against
//! the memory this machine can spare ([`KdfBudget`]), so that a planted key
//! file cannot make every open cost gigabytes or exhaust a small container.

use zeroize::Zeroizing;

use super::CryptoError;
use crate::format::keyfile::{KdfParams, MAX_KDF_MEMORY_KIB};

/// Derives a 32-byte key from a password with Argon2id, after checking the
/// parameters against the bounds of the format.
pub fn derive_key(password: &[u8], salt: &[u8; 32], params: &KdfParams) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    params.validate()?;
    let p = argon2::Params::new(params.memory_kib, params.iterations, params.parallelism, Some(32))
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(password, salt, out.as_mut())
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    Ok(out)
}

/// The most memory one key derivation may use on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfBudget {
    /// The limit, in KiB.
    pub max_memory_kib: u64,
    /// The memory available when the limit was set, in KiB, if known.
    pub available_kib: Option<u64>,
}

impl KdfBudget {
    /// Half of the memory available now (the lesser of the system's
    /// `MemAvailable` and what the cgroup limit leaves), and never more than
    /// the format's maximum. Where the available memory cannot be read, the
    /// format's maximum alone applies.
    pub fn this_machine() -> Self {
        Self::with_available(available_memory_kib())
    }

    /// The budget for `available_kib` of free memory.
    pub fn with_available(available_kib: Option<u64>) -> Self {
        let cap = u64::from(MAX_KDF_MEMORY_KIB);
        Self {
            max_memory_kib: available_kib.map_or(cap, |a| (a / 2).min(cap)),
            available_kib,
        }
    }

    /// Whether a derivation with `params` fits; the error says how much it
    /// needs and how much there is.
    pub fn check(&self, params: &KdfParams) -> Result<(), CryptoError> {
        if u64::from(params.memory_kib) <= self.max_memory_kib {
            return Ok(());
        }
        Err(CryptoError::KdfTooCostly {
            needed_mib: u64::from(params.memory_kib) >> 10,
            limit_mib: self.max_memory_kib >> 10,
            available_mib: self.available_kib.map(|a| a >> 10),
        })
    }
}

/// Memory available to this process in KiB: `MemAvailable` of
/// `/proc/meminfo`, lowered to what the cgroup v2 limit leaves.
fn available_memory_kib() -> Option<u64> {
    let system = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| {
        text.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    });
    let read_bytes = |name: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{name}"))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
    };
    // "max" does not parse: no limit.
    let cgroup = match (read_bytes("memory.max"), read_bytes("memory.current")) {
        (Some(max), Some(current)) => Some(max.saturating_sub(current) >> 10),
        _ => None,
    };
    match (system, cgroup) {
        (Some(s), Some(c)) => Some(s.min(c)),
        (s, c) => s.or(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::keyfile::MIN_KDF_MEMORY_KIB;

    fn params(memory_kib: u32) -> KdfParams {
        KdfParams {
            memory_kib,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn budget_is_half_the_available_memory_and_at_most_the_format_maximum() {
        let small = KdfBudget::with_available(Some(256 << 10));
        assert_eq!(small.max_memory_kib, 128 << 10);
        assert!(small.check(&params(128 << 10)).is_ok());
        let err = small.check(&params(512 << 10)).unwrap_err().to_string();
        assert!(
            err.contains("512 MiB") && err.contains("128 MiB") && err.contains("256 MiB"),
            "{err}"
        );
        let big = KdfBudget::with_available(Some(64 << 20));
        assert_eq!(big.max_memory_kib, u64::from(MAX_KDF_MEMORY_KIB));
        assert_eq!(
            KdfBudget::with_available(None).max_memory_kib,
            u64::from(MAX_KDF_MEMORY_KIB)
        );
        let here = KdfBudget::this_machine();
        assert!(here.max_memory_kib <= u64::from(MAX_KDF_MEMORY_KIB));
        assert!(here.available_kib.is_some(), "Linux reports MemAvailable");
    }

    #[test]
    fn derivation_refuses_parameters_out_of_bounds() {
        for memory in [8, MIN_KDF_MEMORY_KIB - 1, MAX_KDF_MEMORY_KIB + 1] {
            assert!(
                matches!(
                    derive_key(b"pw", &[0; 32], &params(memory)),
                    Err(CryptoError::Format(_))
                ),
                "{memory} KiB"
            );
        }
        assert!(derive_key(b"pw", &[0; 32], &params(MIN_KDF_MEMORY_KIB)).is_ok());
    }
}
