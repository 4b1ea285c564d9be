//! Fault injection for tests: failures by rule, corrupted reads, counters.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};

use crate::storage::{FileKind, ObjectInfo, Result, Spool, Storage, StorageError};

/// The requests a backend serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Create,
    Put,
    Get,
    GetRange,
    Size,
    List,
    Delete,
}

impl Operation {
    pub const ALL: [Operation; 7] = [
        Self::Create,
        Self::Put,
        Self::Get,
        Self::GetRange,
        Self::Size,
        Self::List,
        Self::Delete,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Create => "create",
            Self::Put => "put",
            Self::Get => "get",
            Self::GetRange => "get_range",
            Self::Size => "size",
            Self::List => "list",
            Self::Delete => "delete",
        })
    }
}

/// When and how requests fail. Built from [`FaultRule::on`] or
/// [`FaultRule::on_any`] and narrowed with the other methods; by default a
/// rule fails every matching request with a transient error.
///
/// - the third put of a pack: `FaultRule::on(Operation::Put).kind(FileKind::Pack).after(2).times(1)`
/// - every put once 100 requests were made: `FaultRule::on(Operation::Put).after_requests(100)`
#[derive(Debug, Clone)]
pub struct FaultRule {
    op: Option<Operation>,
    kind: Option<FileKind>,
    name: Option<String>,
    after_requests: u64,
    skip: u64,
    every: u64,
    times: Option<u64>,
    permanent: bool,
    not_found: bool,
    after_effect: bool,
}

impl FaultRule {
    /// Matches requests of one operation.
    pub fn on(op: Operation) -> Self {
        Self {
            op: Some(op),
            ..Self::on_any()
        }
    }

    /// Matches every request.
    pub fn on_any() -> Self {
        Self {
            op: None,
            kind: None,
            name: None,
            after_requests: 0,
            skip: 0,
            every: 1,
            times: None,
            permanent: false,
            not_found: false,
            after_effect: false,
        }
    }

    /// Only requests for objects of `kind` (and lists of it).
    pub fn kind(mut self, kind: FileKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Only requests naming this object.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Lets the first `n` matching requests through.
    pub fn after(mut self, n: u64) -> Self {
        self.skip = n;
        self
    }

    /// Applies only once the storage has served `n` requests of any kind.
    pub fn after_requests(mut self, n: u64) -> Self {
        self.after_requests = n;
        self
    }

    /// Fails one matching request in `n` (the first, the (n+1)th, …).
    pub fn every(mut self, n: u64) -> Self {
        self.every = n.max(1);
        self
    }

    /// Fails at most `n` requests.
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    /// Fails with a permanent error instead of a transient one.
    pub fn permanent(mut self) -> Self {
        self.permanent = true;
        self
    }

    /// Fails as if the object did not exist (it was deleted just before),
    /// for requests that name one.
    pub fn not_found(mut self) -> Self {
        self.not_found = true;
        self
    }

    /// Lets the request reach the backend, then reports the failure anyway,
    /// as when a reply is lost after the work was done.
    pub fn after_effect(mut self) -> Self {
        self.after_effect = true;
        self
    }

    fn matches(&self, op: Operation, kind: Option<FileKind>, name: Option<&str>) -> bool {
        self.op.is_none_or(|o| o == op)
            && self.kind.is_none_or(|k| Some(k) == kind)
            && self.name.as_deref().is_none_or(|n| Some(n) == name)
    }
}

#[derive(Debug)]
struct RuleState {
    rule: FaultRule,
    seen: u64,
    fired: u64,
}

/// A fault decided for one request.
struct Fault {
    error: StorageError,
    after_effect: bool,
}

/// Wraps a backend and makes it fail on purpose, by rules that can be
/// changed while it is in use.
#[derive(Debug)]
pub struct FaultStorage<S> {
    inner: S,
    rules: Mutex<Vec<RuleState>>,
    corrupted: Mutex<HashSet<(FileKind, String)>>,
    counts: [AtomicU64; 7],
    total: AtomicU64,
    injected: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are updated in single steps; a panic while the
    // lock was held cannot leave them half changed.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Flips the middle byte of a non-empty read.
fn flip(data: Bytes) -> Bytes {
    if data.is_empty() {
        return data;
    }
    let mut copy = BytesMut::from(&data[..]);
    let mid = copy.len() / 2;
    copy[mid] ^= 0x01;
    copy.freeze()
}

impl<S: Storage> FaultStorage<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            rules: Mutex::new(Vec::new()),
            corrupted: Mutex::new(HashSet::new()),
            counts: Default::default(),
            total: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Adds a rule; rules are checked in the order they were added and the
    /// first that fires decides.
    pub fn add_rule(&self, rule: FaultRule) {
        lock(&self.rules).push(RuleState {
            rule,
            seen: 0,
            fired: 0,
        });
    }

    /// Makes every `get` and `get_range` of the object return its bytes
    /// with the middle byte of the returned range flipped.
    pub fn corrupt(&self, kind: FileKind, name: &str) {
        lock(&self.corrupted).insert((kind, name.to_owned()));
    }

    /// Removes all rules and corruptions; counters are kept.
    pub fn heal(&self) {
        lock(&self.rules).clear();
        lock(&self.corrupted).clear();
    }

    /// Requests of `op` seen so far, failed ones included.
    pub fn count(&self, op: Operation) -> u64 {
        self.counts[op.index()].load(Ordering::Relaxed)
    }

    /// Requests of any operation seen so far.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Failures injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// Counts a request and decides whether it fails.
    fn check(&self, op: Operation, kind: Option<FileKind>, name: Option<&str>) -> Option<Fault> {
        self.counts[op.index()].fetch_add(1, Ordering::Relaxed);
        let before = self.total.fetch_add(1, Ordering::Relaxed);
        let mut rules = lock(&self.rules);
        for state in rules.iter_mut() {
            if before < state.rule.after_requests || !state.rule.matches(op, kind, name) {
                continue;
            }
            state.seen += 1;
            let fires = state.seen > state.rule.skip
                && (state.seen - state.rule.skip - 1) % state.rule.every == 0
                && state.rule.times.is_none_or(|t| state.fired < t);
            if !fires {
                continue;
            }
            state.fired += 1;
            self.injected.fetch_add(1, Ordering::Relaxed);
            let what = match (kind, name) {
                (Some(k), Some(n)) => format!("{op} {k} {n}"),
                (Some(k), None) => format!("{op} {k}"),
                _ => op.to_string(),
            };
            let error = if let (true, Some(kind), Some(name)) = (state.rule.not_found, kind, name) {
                StorageError::NotFound {
                    kind,
                    name: name.to_owned(),
                }
            } else if state.rule.permanent {
                StorageError::Backend {
                    message: format!("injected permanent fault: {what}"),
                    transient: false,
                }
            } else {
                StorageError::Injected(what)
            };
            return Some(Fault {
                error,
                after_effect: state.rule.after_effect,
            });
        }
        None
    }

    async fn run<T>(
        &self,
        op: Operation,
        kind: Option<FileKind>,
        name: Option<&str>,
        request: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        match self.check(op, kind, name) {
            None => request.await,
            Some(Fault {
                error,
                after_effect: false,
            }) => Err(error),
            Some(Fault { error, .. }) => {
                // The outcome of the request is lost, as its reply would be.
                let _ = request.await;
                Err(error)
            }
        }
    }

    fn is_corrupted(&self, kind: FileKind, name: &str) -> bool {
        lock(&self.corrupted).contains(&(kind, name.to_owned()))
    }
}

#[async_trait]
impl<S: Storage> Storage for FaultStorage<S> {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn create(&self) -> Result<()> {
        self.run(Operation::Create, None, None, self.inner.create()).await
    }

    async fn put(&self, kind: FileKind, name: &str, data: Bytes) -> Result<()> {
        let request = self.inner.put(kind, name, data);
        self.run(Operation::Put, Some(kind), Some(name), request).await
    }

    fn spool(&self, kind: FileKind) -> Result<Spool> {
        self.inner.spool(kind)
    }

    /// Faults of `Operation::Put` apply to it as to `put`.
    async fn put_file(&self, kind: FileKind, name: &str, spool: &Spool, keep: bool) -> Result<()> {
        let request = self.inner.put_file(kind, name, spool, keep);
        self.run(Operation::Put, Some(kind), Some(name), request).await
    }

    async fn get(&self, kind: FileKind, name: &str) -> Result<Bytes> {
        let data = self
            .run(Operation::Get, Some(kind), Some(name), self.inner.get(kind, name))
            .await?;
        Ok(if self.is_corrupted(kind, name) {
            flip(data)
        } else {
            data
        })
    }

    async fn get_range(&self, kind: FileKind, name: &str, offset: u64, len: u64) -> Result<Bytes> {
        let request = self.inner.get_range(kind, name, offset, len);
        let data = self.run(Operation::GetRange, Some(kind), Some(name), request).await?;
        Ok(if self.is_corrupted(kind, name) {
            flip(data)
        } else {
            data
        })
    }

    async fn size(&self, kind: FileKind, name: &str) -> Result<u64> {
        self.run(Operation::Size, Some(kind), Some(name), self.inner.size(kind, name))
            .await
    }

    async fn list(&self, kind: FileKind) -> Result<Vec<ObjectInfo>> {
        self.run(Operation::List, Some(kind), None, self.inner.list(kind)).await
    }

    async fn delete(&self, kind: FileKind, name: &str) -> Result<()> {
        self.run(Operation::Delete, Some(kind), Some(name), self.inner.delete(kind, name))
            .await
    }

    async fn check_object_lock(&self) -> Result<()> {
        self.inner.check_object_lock().await
    }

    fn set_retention(&self, retention: crate::storage::Retention) -> Result<()> {
        self.inner.set_retention(retention)
    }

    async fn locked_until(&self, kind: FileKind, name: &str) -> Result<Option<i64>> {
        self.inner.locked_until(kind, name).await
    }

    async fn extend_lock(&self, kind: FileKind, name: &str, until: i64) -> Result<()> {
        self.inner.extend_lock(kind, name, until).await
    }

    async fn get_range_keep(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        len: u64,
        keep: crate::storage::Keep,
    ) -> Result<Bytes> {
        let request = self.inner.get_range_keep(kind, name, offset, len, keep);
        let data = self.run(Operation::GetRange, Some(kind), Some(name), request).await?;
        Ok(if self.is_corrupted(kind, name) {
            flip(data)
        } else {
            data
        })
    }

    async fn put_keep(&self, kind: FileKind, name: &str, data: Bytes) -> Result<()> {
        let request = self.inner.put_keep(kind, name, data);
        self.run(Operation::Put, Some(kind), Some(name), request).await
    }

    async fn preferred(&self, kind: FileKind) -> Option<String> {
        self.inner.preferred(kind).await
    }

    async fn set_preferred(&self, kind: FileKind, name: &str) {
        self.inner.set_preferred(kind, name).await;
    }
}
