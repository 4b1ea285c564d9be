//! Limits a reader enforces before it allocates.

/// Largest plaintext of a data blob (the chunker's max size may not exceed it).
pub const MAX_BLOB: usize = 64 << 20;
/// Largest plaintext of any other sealed object (trees, indexes, snapshots).
pub const MAX_OBJECT: usize = 1 << 30;
/// Largest pack a writer produces and a reader accepts.
pub const MAX_PACK: u64 = 4 << 30;
/// Largest name of a tree node, in bytes.
pub const MAX_NAME: usize = 4096;
/// Chunk size bounds accepted in a config.
pub const MIN_CHUNK: u32 = 4 << 10;
pub const MAX_CHUNK: u32 = 64 << 20;
