//! The blob saver: dedup, seal, pack, upload, index.
//!
//! `save` is called from many CPU threads at once. It names the blob, skips
//! it when the repository or this saver already has it, seals it into a
//! per-thread buffer and appends it to one of several open packs chosen at
//! random (so pack contents do not follow file order). Packs are written
//! to spools, temporary files the storage provides (for a local repository,
//! beside the packs, so that storing one is a link), so a pack being filled
//! or uploaded costs no memory. Full packs go through
//! a bounded channel to an upload task on the I/O runtime that keeps at most
//! `connections` uploads in flight; every `INDEX_BATCH` uploaded packs, or
//! sooner once they hold `INDEX_BLOBS` blobs, it writes an index file, so an interrupted backup leaves indexed packs the
//! next run can reuse. Disk space and open files are bounded by the number
//! of open packs, the channel and the uploads in flight.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::packer::{FinishedPack, PackBytes, Packer};
use super::reserved::Reserved;
use super::{IndexedRepository, RepoError, Result};
use crate::crypto::MasterKey;
use crate::format::index::{IndexFile, IndexPack};
use crate::format::{BlobKind, ObjectKind};
use crate::id::{BlobId, IndexId};
use crate::storage::{DynStorage, FileKind};

/// Packs named per index file written during a backup.
pub const INDEX_BATCH: usize = 32;
/// Blobs an index file names at most (but for one pack's worth more): 32
/// packs of small files would otherwise make an index file of many MiB,
/// held three times over (entries, encoding, sealed copy) while written.
pub const INDEX_BLOBS: usize = 1 << 16;

/// How the saver uses memory and connections.
#[derive(Debug, Clone, Copy)]
pub struct SaverOptions {
    /// Concurrent pack uploads.
    pub connections: usize,
    /// Data packs filled at once (blobs are spread over them at random).
    pub open_packs: usize,
    /// Do all the work but store nothing.
    pub dry_run: bool,
    /// Store blobs even when the index already lists them (prune's repack:
    /// the listed copies are about to go). Blobs are still stored once per
    /// saver.
    pub rewrite_known: bool,
}

impl Default for SaverOptions {
    fn default() -> Self {
        Self {
            connections: 2,
            open_packs: 2,
            dry_run: false,
            rewrite_known: false,
        }
    }
}

/// What the saver added to the repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaverStats {
    pub data_blobs: u64,
    pub tree_blobs: u64,
    /// Plaintext bytes of new blobs.
    pub data_added: u64,
    /// Sealed bytes of new blobs.
    pub data_added_packed: u64,
    pub packs: u64,
    pub index_files: Vec<IndexId>,
}

/// The result of saving one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saved {
    pub id: BlobId,
    /// Whether this call stored it (false: already there).
    pub new: bool,
}

/// A finished pack and the permit that bounds packs waiting to be stored.
type Upload = (FinishedPack, OwnedSemaphorePermit);

/// The upload task: packs uploaded and index files written.
type UploadTask = tokio::task::JoinHandle<Result<(u64, Vec<IndexId>)>>;

struct State {
    data: Vec<Packer>,
    tree: Packer,
    reserved: Reserved,
    rng: u64,
}

#[derive(Default)]
struct Counters {
    data_blobs: AtomicU64,
    tree_blobs: AtomicU64,
    data_added: AtomicU64,
    data_added_packed: AtomicU64,
}

/// Concurrent blob writer for one backup (or any other writer of blobs).
pub struct BlobSaver {
    repo: IndexedRepository,
    state: Mutex<State>,
    tx: Mutex<Option<mpsc::Sender<Upload>>>,
    /// One permit per finished pack until it is stored.
    inflight: Arc<Semaphore>,
    uploader: Mutex<Option<UploadTask>>,
    failure: Arc<Mutex<Option<String>>>,
    counters: Counters,
    pack_size: usize,
    rewrite_known: bool,
}

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl BlobSaver {
    pub fn new(repo: &IndexedRepository, opts: SaverOptions) -> Result<Self> {
        let pack_size = repo.config().pack_size as usize;
        let mut seed = [0u8; 8];
        crate::crypto::random_bytes(&mut seed)?;
        let connections = opts.connections.max(1);
        let (tx, rx) = mpsc::channel(connections);
        let failure = Arc::new(Mutex::new(None));
        let open_packs = opts.open_packs.max(1);
        let data = (0..open_packs).map(|_| new_packer(repo, pack_size)).collect();
        let uploader = repo.runtime().spawn(upload_loop(
            Uploader {
                storage: repo.storage().clone(),
                key: repo.key_arc(),
                connections,
                dry_run: opts.dry_run,
                failure: failure.clone(),
            },
            rx,
        ));
        Ok(Self {
            repo: repo.clone(),
            state: Mutex::new(State {
                data,
                tree: new_packer(repo, pack_size),
                reserved: Reserved::default(),
                rng: u64::from_le_bytes(seed) | 1,
            }),
            tx: Mutex::new(Some(tx)),
            inflight: Arc::new(Semaphore::new(connections)),
            uploader: Mutex::new(Some(uploader)),
            failure,
            counters: Counters::default(),
            pack_size,
            rewrite_known: opts.rewrite_known,
        })
    }

    fn failed(&self) -> RepoError {
        let msg = lock(&self.failure)
            .clone()
            .unwrap_or_else(|| "the upload task stopped".into());
        RepoError::Upload(msg)
    }

    /// Stores a blob unless the repository already has it.
    pub fn save(&self, kind: BlobKind, plaintext: &[u8]) -> Result<Saved> {
        let id = BlobId(self.repo.key().blob_id(plaintext));
        if (!self.rewrite_known && self.repo.known(kind, &id)) || !lock(&self.state).reserved.insert(kind, &id) {
            return Ok(Saved { id, new: false });
        }
        let full = SCRATCH.with(|cell| -> Result<Option<Packer>> {
            let mut scratch = cell.borrow_mut();
            scratch.clear();
            self.repo.key().seal_into(
                kind.object_kind(),
                self.repo.config().compression,
                plaintext,
                &mut scratch,
            )?;
            let sealed_len = scratch.len() as u64;
            let counter = match kind {
                BlobKind::Data => &self.counters.data_blobs,
                BlobKind::Tree => &self.counters.tree_blobs,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            self.counters
                .data_added
                .fetch_add(plaintext.len() as u64, Ordering::Relaxed);
            self.counters.data_added_packed.fetch_add(sealed_len, Ordering::Relaxed);
            let mut st = lock(&self.state);
            let packer = match kind {
                BlobKind::Tree => &mut st.tree,
                BlobKind::Data => {
                    // xorshift64: which open pack takes the blob.
                    st.rng ^= st.rng << 13;
                    st.rng ^= st.rng >> 7;
                    st.rng ^= st.rng << 17;
                    let i = (st.rng % st.data.len() as u64) as usize;
                    &mut st.data[i]
                }
            };
            packer.add(kind, id, plaintext.len() as u32, &scratch)?;
            if scratch.capacity() > 2 * crate::format::limits::MAX_BLOB {
                *scratch = Vec::new();
            }
            if !packer.is_full() {
                return Ok(None);
            }
            let next = new_packer(&self.repo, self.pack_size);
            Ok(Some(std::mem::replace(packer, next)))
        })?;
        if let Some(packer) = full {
            self.send(packer)?;
        }
        Ok(Saved { id, new: true })
    }

    /// Finishes a full pack and queues it for upload, waiting while
    /// `connections` packs are already queued or uploading.
    fn send(&self, packer: Packer) -> Result<()> {
        let permit = self
            .repo
            .runtime()
            .block_on(self.inflight.clone().acquire_owned())
            .map_err(|_| self.failed())?;
        let pack = packer.finish(self.repo.key())?;
        let tx = lock(&self.tx).clone().ok_or_else(|| self.failed())?;
        tx.blocking_send((pack, permit)).map_err(|_| self.failed())
    }

    /// Counts so far.
    pub fn stats(&self) -> SaverStats {
        SaverStats {
            data_blobs: self.counters.data_blobs.load(Ordering::Relaxed),
            tree_blobs: self.counters.tree_blobs.load(Ordering::Relaxed),
            data_added: self.counters.data_added.load(Ordering::Relaxed),
            data_added_packed: self.counters.data_added_packed.load(Ordering::Relaxed),
            packs: 0,
            index_files: Vec::new(),
        }
    }

    /// Uploads the partly filled packs, waits for every upload and writes
    /// the last index file. When this returns Ok, everything saved is
    /// durable and indexed.
    pub fn finish(self) -> Result<SaverStats> {
        let packers = {
            let mut st = lock(&self.state);
            let mut all: Vec<Packer> = st.data.drain(..).collect();
            all.push(std::mem::replace(&mut st.tree, Packer::new(0)));
            all
        };
        // Empty packers drop their spools, which leaves nothing behind.
        for packer in packers.into_iter().filter(|p| !p.is_empty()) {
            self.send(packer)?;
        }
        drop(lock(&self.tx).take());
        let handle = lock(&self.uploader).take().ok_or_else(|| self.failed())?;
        let (packs, index_files) = self
            .repo
            .block_on(handle)
            .map_err(|e| RepoError::Upload(format!("the upload task failed: {e}")))??;
        Ok(SaverStats {
            packs,
            index_files,
            ..self.stats()
        })
    }
}

/// A packer writing to a spool of the storage. Where the storage can make
/// none (a read-only view in a dry run, no writable temporary directory),
/// the pack is filled in memory instead, as it was before spools.
fn new_packer(repo: &IndexedRepository, pack_size: usize) -> Packer {
    match repo.storage().spool(FileKind::Pack) {
        Ok(spool) => Packer::spooled(pack_size, spool),
        Err(_) => Packer::new(pack_size),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind;
    // continuing is sound.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the upload task works with.
struct Uploader {
    storage: DynStorage,
    key: Arc<MasterKey>,
    /// Uploads in flight at most.
    connections: usize,
    dry_run: bool,
    failure: Arc<Mutex<Option<String>>>,
}

async fn upload_loop(up: Uploader, mut rx: mpsc::Receiver<Upload>) -> Result<(u64, Vec<IndexId>)> {
    let Uploader {
        storage,
        key,
        connections,
        dry_run,
        failure,
    } = up;
    let mut uploads = tokio::task::JoinSet::new();
    let mut done: Vec<IndexPack> = Vec::new();
    let mut index_files = Vec::new();
    let mut packs = 0u64;
    let result: Result<()> = async {
        loop {
            // Keep at most `connections` uploads in flight; take new packs
            // only when a slot is free, so the channel pushes back.
            while uploads.len() >= connections {
                if let Some(r) = uploads.join_next().await {
                    done.push(upload_result(r)?);
                    packs += 1;
                }
            }
            let Some((pack, permit)) = rx.recv().await else {
                break;
            };
            let target = storage.clone();
            uploads.spawn(async move {
                let name = pack.id.to_hex();
                // The next backup and listing read trees: a local cache may
                // keep a pack of them.
                let keep = pack.index.blobs.iter().all(|b| b.kind == BlobKind::Tree);
                let stored = match &pack.bytes {
                    _ if dry_run => Ok(()),
                    PackBytes::Spooled(spool) => target.put_file(FileKind::Pack, &name, spool, keep).await,
                    PackBytes::Memory(bytes) if keep => target.put_keep(FileKind::Pack, &name, bytes.clone()).await,
                    PackBytes::Memory(bytes) => target.put(FileKind::Pack, &name, bytes.clone()).await,
                };
                // The spool (stored or not) goes with the pack here.
                drop(pack.bytes);
                drop(permit);
                stored?;
                Ok::<_, RepoError>(pack.index)
            });
            while let Some(r) = uploads.try_join_next() {
                done.push(upload_result(r)?);
                packs += 1;
            }
            let blobs: usize = done.iter().map(|p| p.blobs.len()).sum();
            if done.len() >= INDEX_BATCH || blobs >= INDEX_BLOBS {
                let batch = std::mem::take(&mut done);
                if !dry_run {
                    index_files.push(write_index(&storage, &key, batch).await?);
                }
            }
        }
        while let Some(r) = uploads.join_next().await {
            done.push(upload_result(r)?);
            packs += 1;
        }
        if !done.is_empty() && !dry_run {
            index_files.push(write_index(&storage, &key, std::mem::take(&mut done)).await?);
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        *lock(&failure) = Some(e.to_string());
        rx.close();
        uploads.abort_all();
        return Err(e);
    }
    Ok((packs, index_files))
}

fn upload_result(r: std::result::Result<Result<IndexPack>, tokio::task::JoinError>) -> Result<IndexPack> {
    r.map_err(|e| RepoError::Upload(format!("an upload task failed: {e}")))?
}

/// Seals and stores an index file naming `packs`.
pub async fn write_index(storage: &DynStorage, key: &MasterKey, packs: Vec<IndexPack>) -> Result<IndexId> {
    let file = IndexFile {
        supersedes: Vec::new(),
        packs,
        marked: Vec::new(),
    };
    let sealed = key.seal(ObjectKind::Index, Some(super::DEFAULT_COMPRESSION), &file.encode())?;
    let id = IndexId::hash_of(&sealed);
    storage.put(FileKind::Index, &id.to_hex(), Bytes::from(sealed)).await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::index::MarkedPack;
    use crate::repo::{test_options, Repository};
    use crate::storage::memory::MemoryStorage;

    /// Stores an index file that marks `pack` for deletion.
    fn mark(repo: &Repository, pack: crate::id::PackId) {
        let file = IndexFile {
            supersedes: Vec::new(),
            packs: Vec::new(),
            marked: vec![MarkedPack { id: pack, marked_ns: 1 }],
        };
        let sealed = repo.key().seal(ObjectKind::Index, None, &file.encode()).unwrap();
        let name = IndexId::hash_of(&sealed).to_hex();
        repo.block_on(repo.storage().put(FileKind::Index, &name, Bytes::from(sealed)))
            .unwrap();
    }

    fn save_once(repo: &Repository, plaintext: &[u8]) -> (Saved, SaverStats) {
        let indexed = repo.clone().load_index().unwrap();
        let saver = BlobSaver::new(&indexed, SaverOptions::default()).unwrap();
        let saved = saver.save(BlobKind::Data, plaintext).unwrap();
        (saved, saver.finish().unwrap())
    }

    #[test]
    fn a_blob_only_in_a_marked_pack_is_written_again() {
        let storage: DynStorage = Arc::new(MemoryStorage::new());
        let repo = Repository::init(storage, b"pw", test_options()).unwrap();
        let content = b"a blob that prune will find unused";
        let (first, stats) = save_once(&repo, content);
        assert!(first.new);
        assert_eq!(stats.packs, 1);
        let (again, stats) = save_once(&repo, content);
        assert_eq!(
            again,
            Saved {
                id: first.id,
                new: false
            }
        );
        assert_eq!(stats.packs, 0);

        let indexed = repo.clone().load_index().unwrap();
        let marked = indexed.index().get(BlobKind::Data, &first.id).unwrap().pack;
        mark(&repo, marked);
        let indexed = repo.clone().load_index().unwrap();
        assert!(indexed.index().is_marked(&marked));
        assert!(!indexed.known(BlobKind::Data, &first.id));
        let (rewritten, stats) = save_once(&repo, content);
        assert_eq!(
            rewritten,
            Saved {
                id: first.id,
                new: true
            }
        );
        assert_eq!(stats.packs, 1);

        // Now in an unmarked pack too: known again, and reads use that copy.
        let indexed = repo.load_index().unwrap();
        assert!(indexed.known(BlobKind::Data, &first.id));
        assert_ne!(indexed.index().get(BlobKind::Data, &first.id).unwrap().pack, marked);
        assert_eq!(indexed.index().duplicates(), 1);
        assert_eq!(indexed.read_blob(BlobKind::Data, &first.id).unwrap(), content);
    }
}
