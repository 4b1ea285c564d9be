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

/// Largest stored `config` file a reader accepts (a few hundred bytes in practice).
pub const MAX_CONFIG_FILE: u64 = 1 << 20;
/// Largest stored key file (about 300 bytes in practice).
pub const MAX_KEY_FILE: u64 = 1 << 20;
/// Largest stored lock file (about 200 bytes in practice).
pub const MAX_LOCK_FILE: u64 = 1 << 20;
/// Largest stored snapshot file (a few KiB in practice).
pub const MAX_SNAPSHOT_FILE: u64 = 64 << 20;
/// Largest stored index file: a sealed object of at most [`MAX_OBJECT`]
/// bytes of plaintext, with room for the envelope.
pub const MAX_INDEX_FILE: u64 = (MAX_OBJECT as u64) + (1 << 20);
/// Largest sealed pack header a reader reads (its plaintext is at most
/// [`MAX_OBJECT`] bytes).
pub const MAX_PACK_HEADER: u64 = (MAX_OBJECT as u64) + (1 << 20);
/// Deepest directory nesting a reader follows below a snapshot's root tree.
pub const MAX_TREE_DEPTH: usize = 4096;
/// Most entries a single walk of a snapshot's trees visits; a subtree that
/// several directories share counts once for each of them.
pub const MAX_TREE_ENTRIES: u64 = 1 << 30;
