//! cairn: a content-addressed, deduplicating, encrypted backup repository.
//!
//! Layers, in dependency order (each may use only those above it):
//!
//! - [`id`], [`format`]: typed ids; pure encode/decode of stored structures
//! - [`crypto`]: Argon2id, master keys, seal/open, keyed BLAKE3
//! - [`chunker`]: content-defined chunking with the repository's gear table
//! - [`storage`]: the Storage trait, local and memory backends, decorators
//! - [`repo`]: open/init, keys, index, packer, blobs, snapshots
//! - [`source`]: what a backup reads (local trees, stdin)
//! - [`backup`], [`restore`]: the archiver and the restorer
//! - [`check`]: structural and data verification
//! - [`prune`]: removing what no snapshot needs
//! - [`forget`]: retention policies and removing snapshots
//! - [`maintenance`]: copy between repositories, repair of index and snapshots
//! - `k8s` (feature `k8s`): Kubernetes manifest backup and restore
//! - [`cli`]: argument parsing and output

pub mod backup;
pub mod check;
pub mod chunker;
pub mod cli;
pub mod crypto;
pub mod forget;
pub mod format;
pub mod id;
#[cfg(feature = "k8s")]
pub mod k8s;
pub mod maintenance;
pub mod prune;
pub mod repo;
pub mod restore;
pub mod source;
pub mod storage;

/// Installs aws-lc-rs as the process's one rustls crypto provider, so that
/// every TLS client (object storage, Kubernetes) agrees on it. A second
/// provider compiled in would leave rustls unable to choose one at run
/// time. Calling it again is harmless.
pub fn install_crypto_provider() {
    // Err only means a provider is installed already.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
