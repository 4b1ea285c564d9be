//! Object store backend: S3 (and S3-compatible stores), Google Cloud Storage
//! and Azure Blob Storage through opendal.
//!
//! Objects live under the URL's prefix in the repository layout. A put is a
//! conditional create (`If-None-Match: *`), which the store refuses when the
//! name is taken, so nothing is ever overwritten, even by two writers racing
//! for one name. A store whose opendal service cannot make conditional writes
//! falls back to looking before writing, which leaves a window in which two
//! writers of one name could both succeed; every store cairn supports today
//! has conditional writes.
//!
//! A put hands the caller's [`Bytes`] to the HTTP body without copying, so a
//! pack is held in memory once while it uploads. Ranged reads fetch only the
//! bytes asked for. Each store has its own HTTP connection pool, used from
//! the runtime that runs its requests, and a timeout on every request and
//! on every step of a transfer; retries are left to
//! [`RetryStorage`](super::decorators::RetryStorage) stacked on top.

use std::error::Error as _;
use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use opendal::layers::TimeoutLayer;
use opendal::{ErrorKind, HttpTransporter, Operator};
use opendal_http_transport_reqwest::ReqwestTransport;

use super::open_error::OpenError;
use super::s3lock::{S3Lock, S3LockConfig};
use super::url::{ObjectLocation, Service, StorageOptions};
use super::{check_name, check_size, FileKind, Keep, ObjectInfo, Result, Retention, Spool, Storage, StorageError};

/// Credentials given directly rather than through the environment: an S3
/// access key id and secret (and session token), or an Azure storage
/// account name and key. GCS ignores them.
#[derive(Clone)]
pub struct AccessKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for AccessKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKeys")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// A repository in a bucket (or container) of an object store.
pub struct ObjectStorage {
    /// Config, keys, indexes, snapshots and locks.
    meta: Operator,
    /// Packs: the same place, but written with the packs' storage class.
    packs: Operator,
    place: ObjectLocation,
    location: String,
    endpoint: String,
    conditional: bool,
    /// Object Lock requests (S3 only).
    lock: Option<S3Lock>,
    /// The retention new objects get, once the repository's config is known.
    retention: OnceLock<Retention>,
}

impl fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("location", &self.location)
            .field("endpoint", &self.endpoint)
            .field("conditional", &self.conditional)
            .finish_non_exhaustive()
    }
}

/// The cause at the bottom of an error's chain, for messages.
pub(super) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// One line about an opendal error: its kind, the store's error code and
/// message when it sent one, and the underlying cause.
fn describe(e: &opendal::Error) -> String {
    let raw = e.message();
    // S3-style services report `S3Error { code: "...", message: "...", ... }`.
    let field = |name: &str| {
        let start = raw.find(&format!("{name}: \""))? + name.len() + 3;
        let end = raw[start..].find('"')? + start;
        Some(&raw[start..end]).filter(|s| !s.is_empty())
    };
    let mut text = match (field("code"), field("message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        (None, Some(message)) => message.to_owned(),
        _ => raw.lines().next().unwrap_or_default().to_owned(),
    };
    if e.source().is_some() {
        let cause = root_cause(e);
        if !cause.is_empty() && cause != text {
            text = format!("{text}: {cause}");
        }
    }
    format!("{} ({})", text, e.kind())
}

fn is_transient(e: &opendal::Error) -> bool {
    e.is_temporary() || e.kind() == ErrorKind::RateLimited
}

/// Whether the request never got an answer: no connection, a reset, a
/// timeout. Answers with an error status are not this.
fn is_unanswered(e: &opendal::Error) -> bool {
    let msg = e.message();
    msg == "send http request" || msg.contains("timeout reached")
}

/// Whether the request could not be signed (no credentials found).
fn is_unsigned(e: &opendal::Error) -> bool {
    let msg = e.message();
    msg.contains("credential") || msg.contains("signing")
}

struct Built {
    meta: Operator,
    packs: Operator,
    endpoint: String,
    lock: Option<LockParts>,
}

/// What the Object Lock client needs beyond the HTTP client.
struct LockParts {
    endpoint: Option<String>,
    region: String,
    path_style: bool,
    keys: Option<AccessKeys>,
    no_imds: bool,
    pack_class: Option<String>,
}

impl ObjectStorage {
    /// Builds the backend for `loc`: credentials and endpoints from the
    /// service's usual environment, overridden by `options`. Makes no
    /// request; [`ObjectStorage::probe`] checks that the place is usable.
    pub fn open(loc: &ObjectLocation, options: &StorageOptions) -> Result<Self, OpenError> {
        Self::open_with_keys(loc, options, None)
    }

    /// Like [`ObjectStorage::open`], with credentials given here rather
    /// than found in the environment.
    pub fn open_with_keys(
        loc: &ObjectLocation,
        options: &StorageOptions,
        keys: Option<&AccessKeys>,
    ) -> Result<Self, OpenError> {
        options.validate(Some(loc.service))?;
        let location = loc.to_string();
        let config = |message: String| OpenError::Config {
            location: location.clone(),
            message,
        };
        let timeout = options.timeout();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10).min(timeout))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| config(format!("cannot set up the HTTP client: {}", root_cause(&e))))?;
        let Built {
            meta,
            packs,
            endpoint,
            lock,
        } = match loc.service {
            Service::S3 => build_s3(loc, options, keys),
            Service::Gcs => build_gcs(loc, options),
            Service::Azblob => build_azblob(loc, options, keys),
        }
        .map_err(|e| match e {
            BuildError::Message(m) => config(m),
            BuildError::Opendal(e) => config(describe(&e)),
        })?;
        let layer = || TimeoutLayer::new().with_timeout(timeout).with_io_timeout(timeout);
        let finish = |op: Operator| {
            let transport = HttpTransporter::new(ReqwestTransport::new(client.clone()));
            let context = op.context().with_http_transport(transport);
            op.layer(layer()).with_context(context)
        };
        let meta = finish(meta);
        let packs = finish(packs);
        let conditional = meta.info().capability().write_with_if_not_exists;
        let lock = lock.map(|p| {
            let cfg = S3LockConfig {
                endpoint: p.endpoint.as_deref(),
                region: &p.region,
                bucket: &loc.bucket,
                prefix: &loc.prefix,
                path_style: p.path_style,
                keys: p.keys.as_ref(),
                no_imds: p.no_imds,
                pack_class: p.pack_class.as_deref(),
            };
            S3Lock::new(client.clone(), &cfg, timeout)
        });
        Ok(Self {
            meta,
            packs,
            place: loc.clone(),
            location,
            endpoint,
            conditional,
            lock,
            retention: OnceLock::new(),
        })
    }

    /// The endpoint requests go to, for messages.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether puts are conditional creates (otherwise look, then write).
    pub fn conditional_writes(&self) -> bool {
        self.conditional
    }

    /// Checks, with one listing request, that the bucket exists, the
    /// credentials are accepted and the endpoint answers. Requests that get
    /// no answer are tried three times before the endpoint counts as
    /// unreachable; other transient failures likewise.
    pub async fn probe(&self) -> Result<(), OpenError> {
        let dir = format!("{}/", FileKind::Key.dir());
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let e = match self.meta.list_with(&dir).limit(1).await {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if is_transient(&e) && attempt < 3 {
                tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
                continue;
            }
            let detail = describe(&e);
            let location = self.location.clone();
            return Err(match e.kind() {
                _ if is_unanswered(&e) => OpenError::Unreachable {
                    location,
                    endpoint: self.endpoint.clone(),
                    detail,
                },
                ErrorKind::NotFound | ErrorKind::ConfigInvalid => OpenError::NoBucket {
                    word: self.place.service.bucket_word(),
                    bucket: self.place.bucket.clone(),
                    location,
                    detail,
                },
                ErrorKind::PermissionDenied => OpenError::AccessDenied { location, detail },
                _ if is_unsigned(&e) => OpenError::NoCredentials {
                    hint: self.credentials_hint(),
                    location,
                    detail,
                },
                _ => OpenError::Storage(StorageError::Backend {
                    message: format!("{location}: listing {dir}: {detail}"),
                    transient: is_transient(&e),
                }),
            });
        }
    }

    fn credentials_hint(&self) -> &'static str {
        match self.place.service {
            Service::Gcs => "set GOOGLE_APPLICATION_CREDENTIALS or -o gs.credentials-file=PATH",
            Service::Azblob => "set AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY",
            Service::S3 => "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
        }
    }

    fn op(&self, kind: FileKind) -> &Operator {
        if kind == FileKind::Pack {
            &self.packs
        } else {
            &self.meta
        }
    }

    fn error(&self, doing: &str, kind: FileKind, name: &str, e: opendal::Error) -> StorageError {
        if e.kind() == ErrorKind::NotFound {
            return StorageError::NotFound {
                kind,
                name: name.to_owned(),
            };
        }
        StorageError::Backend {
            message: format!("{doing} {kind} {name} in {}: {}", self.location, describe(&e)),
            transient: is_transient(&e),
        }
    }

    fn already_exists(kind: FileKind, name: &str) -> StorageError {
        StorageError::AlreadyExists {
            kind,
            name: name.to_owned(),
        }
    }

    async fn stat_size(&self, kind: FileKind, name: &str) -> Result<u64> {
        let path = kind.path(name);
        match self.op(kind).stat(&path).await {
            Ok(meta) => Ok(meta.content_length()),
            Err(e) => Err(self.error("reading the size of", kind, name, e)),
        }
    }

    /// The size, asked up to three times: after a refused range some
    /// servers drop the connection the next request would reuse.
    async fn stat_size_settled(&self, kind: FileKind, name: &str) -> Result<u64> {
        let mut last = self.stat_size(kind, name).await;
        for pause in [50u64, 200] {
            match &last {
                Err(e) if !e.is_not_found() => {
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                    last = self.stat_size(kind, name).await;
                }
                _ => break,
            }
        }
        last
    }

    async fn out_of_range(&self, kind: FileKind, name: &str, offset: u64, len: u64) -> StorageError {
        match self.stat_size(kind, name).await {
            Ok(size) => StorageError::OutOfRange {
                kind,
                name: name.to_owned(),
                offset,
                len,
                size,
            },
            Err(e) => e,
        }
    }
}

enum BuildError {
    Message(String),
    Opendal(opendal::Error),
}

impl From<opendal::Error> for BuildError {
    fn from(e: opendal::Error) -> Self {
        Self::Opendal(e)
    }
}

fn root_of(loc: &ObjectLocation) -> String {
    if loc.prefix.is_empty() {
        "/".to_owned()
    } else {
        format!("/{}/", loc.prefix)
    }
}

fn build_s3(loc: &ObjectLocation, o: &StorageOptions, keys: Option<&AccessKeys>) -> Result<Built, BuildError> {
    let from_env = env_keys(o);
    let keys = keys.or(from_env.as_ref());
    let endpoint = o
        .get("s3.endpoint")
        .map(str::to_owned)
        .or_else(|| o.env("AWS_ENDPOINT_URL"));
    let region = o
        .get("s3.region")
        .map(str::to_owned)
        .or_else(|| o.env("AWS_REGION"))
        .or_else(|| o.env("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".to_owned());
    // Path-style addressing suits self-hosted stores; AWS prefers
    // virtual-hosted buckets.
    let path_style = o.get_bool("s3.path-style").unwrap_or(endpoint.is_some());
    let no_imds = o
        .env("AWS_EC2_METADATA_DISABLED")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let builder = |class: Option<&str>| {
        let mut b = opendal::services::S3::default()
            .bucket(&loc.bucket)
            .root(&root_of(loc))
            .region(&region);
        if let Some(e) = &endpoint {
            b = b.endpoint(e);
        }
        if !path_style {
            b = b.enable_virtual_host_style();
        }
        if no_imds {
            b = b.disable_ec2_metadata();
        }
        if let Some(k) = keys {
            b = b
                .access_key_id(&k.access_key_id)
                .secret_access_key(&k.secret_access_key);
            if let Some(token) = &k.session_token {
                b = b.session_token(token);
            }
        }
        if let Some(class) = class {
            b = b.default_storage_class(class);
        }
        b
    };
    let shown = endpoint.clone().unwrap_or_else(|| format!("s3.{region}.amazonaws.com"));
    Ok(Built {
        meta: Operator::new(builder(None))?,
        packs: Operator::new(builder(o.get("s3.storage-class")))?,
        endpoint: shown,
        lock: Some(LockParts {
            endpoint: endpoint.clone(),
            region: region.clone(),
            path_style,
            keys: keys.cloned(),
            no_imds,
            pack_class: o.get("s3.storage-class").map(str::to_owned),
        }),
    })
}

/// S3 keys from the options' environment, when it is not the process's
/// (the process's is read by the credential chain itself).
fn env_keys(o: &StorageOptions) -> Option<AccessKeys> {
    if !o.has_environment() {
        return None;
    }
    Some(AccessKeys {
        access_key_id: o.env("AWS_ACCESS_KEY_ID")?,
        secret_access_key: o.env("AWS_SECRET_ACCESS_KEY")?,
        session_token: o.env("AWS_SESSION_TOKEN"),
    })
}

fn build_gcs(loc: &ObjectLocation, o: &StorageOptions) -> Result<Built, BuildError> {
    let endpoint = o.get("gs.endpoint").map(str::to_owned);
    let credentials = o
        .get("gs.credentials-file")
        .map(str::to_owned)
        .or_else(|| o.env("GOOGLE_APPLICATION_CREDENTIALS"));
    let anonymous = o.get_bool("gs.anonymous").unwrap_or(false);
    let builder = |class: Option<&str>| {
        let mut b = opendal::services::Gcs::default()
            .bucket(&loc.bucket)
            .root(&root_of(loc));
        if let Some(e) = &endpoint {
            b = b.endpoint(e);
        }
        if anonymous {
            b = b.skip_signature();
        } else if let Some(c) = &credentials {
            // A credentials variable given as the key file's JSON itself
            // (from a Secret) rather than its path.
            if c.trim_start().starts_with('{') {
                use base64::Engine as _;
                b = b.credential(&base64::engine::general_purpose::STANDARD.encode(c));
            } else {
                b = b.credential_path(c);
            }
        }
        if let Some(class) = class {
            b = b.default_storage_class(class);
        }
        b
    };
    Ok(Built {
        meta: Operator::new(builder(None))?,
        packs: Operator::new(builder(o.get("gs.storage-class")))?,
        endpoint: endpoint.unwrap_or_else(|| "storage.googleapis.com".to_owned()),
        lock: None,
    })
}

fn build_azblob(loc: &ObjectLocation, o: &StorageOptions, keys: Option<&AccessKeys>) -> Result<Built, BuildError> {
    let account = keys
        .map(|k| k.access_key_id.clone())
        .or_else(|| o.get("azblob.account").map(str::to_owned))
        .or_else(|| o.env("AZURE_STORAGE_ACCOUNT"));
    let endpoint = match (o.get("azblob.endpoint"), &account) {
        (Some(e), _) => e.to_owned(),
        (None, Some(account)) => format!("https://{account}.blob.core.windows.net"),
        (None, None) => {
            return Err(BuildError::Message(
                "no Azure storage account: set AZURE_STORAGE_ACCOUNT or -o azblob.account=NAME".into(),
            ))
        }
    };
    let mut b = opendal::services::Azblob::default()
        .container(&loc.bucket)
        .root(&root_of(loc))
        .endpoint(&endpoint);
    if let Some(account) = &account {
        b = b.account_name(account);
    }
    if let Some(key) = keys
        .map(|k| k.secret_access_key.clone())
        .or_else(|| o.env("AZURE_STORAGE_KEY"))
    {
        b = b.account_key(&key);
    }
    if let Some(sas) = o.env("AZURE_STORAGE_SAS_TOKEN") {
        b = b.sas_token(&sas);
    }
    let op = Operator::new(b)?;
    Ok(Built {
        meta: op.clone(),
        packs: op,
        endpoint,
        lock: None,
    })
}

#[async_trait]
impl Storage for ObjectStorage {
    fn location(&self) -> String {
        self.location.clone()
    }

    /// Object stores have no directories to make: this only checks that no
    /// repository is there yet.
    async fn create(&self) -> Result<()> {
        match self.stat_size(FileKind::Config, "config").await {
            Ok(_) => Err(Self::already_exists(FileKind::Config, "config")),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn spool(&self, _kind: FileKind) -> Result<Spool> {
        Spool::temporary()
    }

    /// Reads the spool whole and stores it as `put` does: the bytes are in
    /// memory only while they are uploaded.
    async fn put_file(&self, kind: FileKind, name: &str, spool: &Spool, _keep: bool) -> Result<()> {
        check_name(kind, name)?;
        let data = spool.read_all_async(kind, name).await?;
        self.put(kind, name, data).await
    }

    async fn put(&self, kind: FileKind, name: &str, data: Bytes) -> Result<()> {
        check_name(kind, name)?;
        if let (Some(lock), Some(&retention)) = (&self.lock, self.retention.get()) {
            if Retention::applies_to(kind) {
                let until = unix_now() + retention.period_secs();
                return lock.put(kind, name, data, retention, until).await;
            }
        }
        let path = kind.path(name);
        if !self.conditional {
            match self.stat_size(kind, name).await {
                Ok(_) => return Err(Self::already_exists(kind, name)),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        match self
            .op(kind)
            .write_with(&path, data)
            .if_not_exists(self.conditional)
            .await
        {
            Ok(_) => Ok(()),
            // A store reports a lost race as a failed precondition (412);
            // a 409 (a conflicting write still in flight) is transient.
            Err(e)
                if matches!(e.kind(), ErrorKind::ConditionNotMatch | ErrorKind::AlreadyExists) && !e.is_temporary() =>
            {
                Err(Self::already_exists(kind, name))
            }
            Err(e) => Err(self.error("storing", kind, name, e)),
        }
    }

    async fn get(&self, kind: FileKind, name: &str) -> Result<Bytes> {
        check_name(kind, name)?;
        // The size first, so a huge object is refused before it is read;
        // then exactly that many bytes (objects are never rewritten).
        let size = match self.stat_size(kind, name).await {
            Ok(size) => size,
            Err(e) if e.is_not_found() => return Err(e),
            // An answer to HEAD has no body to say what went wrong; one to
            // GET has. Never more than the cap and one byte is asked for.
            Err(head) => {
                let cap = kind.max_size();
                return match self.op(kind).read_with(&kind.path(name)).range(0..cap + 1).await {
                    Ok(buf) => {
                        check_size(kind, name, buf.len() as u64)?;
                        Ok(buf.to_bytes())
                    }
                    // The object is shorter than the range, so GET works:
                    // what failed was HEAD, and its error (transient or
                    // not) stands.
                    Err(e) if e.kind() == ErrorKind::Unexpected && e.to_string().contains("too little data") => {
                        Err(head)
                    }
                    Err(e) => Err(self.error("reading", kind, name, e)),
                };
            }
        };
        check_size(kind, name, size)?;
        self.get_range(kind, name, 0, size).await
    }

    async fn get_range(&self, kind: FileKind, name: &str, offset: u64, len: u64) -> Result<Bytes> {
        check_name(kind, name)?;
        let Some(end) = offset.checked_add(len) else {
            return Err(self.out_of_range(kind, name, offset, len).await);
        };
        if len == 0 {
            // No byte range is empty: the size alone answers.
            let size = self.stat_size(kind, name).await?;
            return if offset <= size {
                Ok(Bytes::new())
            } else {
                Err(StorageError::OutOfRange {
                    kind,
                    name: name.to_owned(),
                    offset,
                    len,
                    size,
                })
            };
        }
        match self.op(kind).read_with(&kind.path(name)).range(offset..end).await {
            Ok(buf) if buf.len() as u64 == len => Ok(buf.to_bytes()),
            // A range that runs past the end comes back short.
            Ok(buf) => Err(StorageError::OutOfRange {
                kind,
                name: name.to_owned(),
                offset,
                len,
                size: offset + buf.len() as u64,
            }),
            Err(e) if e.kind() == ErrorKind::NotFound || is_transient(&e) => Err(self.error("reading", kind, name, e)),
            // A range past the end is refused (416) or comes back short,
            // which opendal reports as an error: the size tells which.
            Err(e) => match self.stat_size_settled(kind, name).await {
                Ok(size) if end > size => Err(StorageError::OutOfRange {
                    kind,
                    name: name.to_owned(),
                    offset,
                    len,
                    size,
                }),
                _ => Err(self.error("reading", kind, name, e)),
            },
        }
    }

    async fn size(&self, kind: FileKind, name: &str) -> Result<u64> {
        check_name(kind, name)?;
        self.stat_size(kind, name).await
    }

    async fn list(&self, kind: FileKind) -> Result<Vec<ObjectInfo>> {
        if kind == FileKind::Config {
            return match self.stat_size(kind, "config").await {
                Ok(size) => Ok(vec![ObjectInfo {
                    name: "config".into(),
                    size,
                }]),
                Err(e) if e.is_not_found() => Ok(Vec::new()),
                Err(e) => Err(e),
            };
        }
        let dir = format!("{}/", kind.dir());
        let entries = match self.op(kind).list_with(&dir).recursive(true).await {
            Ok(entries) => entries,
            // Some stores answer a listing of nothing with NotFound.
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(StorageError::Backend {
                    message: format!("listing {dir} in {}: {}", self.location, describe(&e)),
                    transient: is_transient(&e),
                })
            }
        };
        Ok(entries
            .into_iter()
            .filter(|entry| entry.metadata().is_file())
            // Only what a put could have written under this kind.
            .filter(|entry| check_name(kind, entry.name()).is_ok() && entry.path() == kind.path(entry.name()))
            .map(|entry| ObjectInfo {
                name: entry.name().to_owned(),
                size: entry.metadata().content_length(),
            })
            .collect())
    }

    async fn delete(&self, kind: FileKind, name: &str) -> Result<()> {
        check_name(kind, name)?;
        match self.op(kind).delete(&kind.path(name)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.error("deleting", kind, name, e)),
        }
    }

    async fn check_object_lock(&self) -> Result<()> {
        match &self.lock {
            Some(lock) => lock.check_enabled(&self.location).await,
            None => Err(StorageError::NoObjectLock {
                location: self.location.clone(),
                reason: "object lock is supported on S3 only".into(),
            }),
        }
    }

    fn set_retention(&self, retention: Retention) -> Result<()> {
        if self.lock.is_none() {
            return Err(StorageError::NoObjectLock {
                location: self.location.clone(),
                reason: "object lock is supported on S3 only".into(),
            });
        }
        match self.retention.get() {
            Some(set) if *set != retention => Err(StorageError::Backend {
                message: format!("{}: object lock already set to {} days", self.location, set.days),
                transient: false,
            }),
            Some(_) => Ok(()),
            None => {
                let _ = self.retention.set(retention);
                Ok(())
            }
        }
    }

    async fn locked_until(&self, kind: FileKind, name: &str) -> Result<Option<i64>> {
        check_name(kind, name)?;
        match &self.lock {
            Some(lock) => Ok(lock.state(kind, name).await?.until),
            None => Ok(None),
        }
    }

    async fn extend_lock(&self, kind: FileKind, name: &str, until: i64) -> Result<()> {
        check_name(kind, name)?;
        match (&self.lock, self.retention.get()) {
            (Some(lock), Some(&retention)) => lock.extend(kind, name, retention, until).await,
            _ => Err(StorageError::NoObjectLock {
                location: self.location.clone(),
                reason: "the repository was not created with an object lock".into(),
            }),
        }
    }

    async fn get_range_keep(&self, kind: FileKind, name: &str, offset: u64, len: u64, _keep: Keep) -> Result<Bytes> {
        self.get_range(kind, name, offset, len).await
    }

    async fn put_keep(&self, kind: FileKind, name: &str, data: Bytes) -> Result<()> {
        self.put(kind, name, data).await
    }

    async fn preferred(&self, _kind: FileKind) -> Option<String> {
        None
    }

    async fn set_preferred(&self, _kind: FileKind, _name: &str) {}
}

fn unix_now() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
