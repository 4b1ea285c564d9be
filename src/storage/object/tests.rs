//! The object store backend against a real S3 server on 127.0.0.1.

use std::time::Duration;

use bytes::Bytes;

use super::{AccessKeys, ObjectStorage};
use crate::storage::decorators::RetryStorage;
use crate::storage::open::OpenError;
use crate::storage::url::{parse_location, Location, ObjectLocation, StorageOptions};
use crate::storage::{conformance, FileKind, Storage, StorageError};

#[path = "../../../tests/s3_support/mod.rs"]
mod s3_support;

#[path = "../../../tests/azure_support/mod.rs"]
mod azure_support;

#[path = "../../../tests/gcs_support/mod.rs"]
mod gcs_support;

use azure_support::AzuriteServer;
use gcs_support::GcsServer;
use s3_support::S3Server;

fn location(url: &str) -> ObjectLocation {
    match parse_location(url) {
        Ok(Location::Object(o)) => o,
        other => panic!("{url}: {other:?}"),
    }
}

fn keys(secret: &str) -> AccessKeys {
    AccessKeys {
        access_key_id: s3_support::ACCESS_KEY.to_owned(),
        secret_access_key: secret.to_owned(),
        session_token: None,
    }
}

fn open(server: &S3Server, url: &str, secret: &str, extra: &[&str]) -> ObjectStorage {
    let mut pairs = vec![
        format!("s3.endpoint={}", server.endpoint),
        "s3.region=us-east-1".to_owned(),
    ];
    pairs.extend(extra.iter().map(|s| (*s).to_owned()));
    let options = StorageOptions::parse(&pairs).unwrap();
    ObjectStorage::open_with_keys(&location(url), &options, Some(&keys(secret))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_passes_the_conformance_suite() {
    let server = S3Server::start();
    let s = open(&server, "s3://cairn-test/repo/a", s3_support::SECRET_KEY, &[]);
    assert!(s.conditional_writes(), "S3 puts must be conditional creates");
    s.probe().await.unwrap();
    // The store itself: conditional creates, ranges, listings.
    conformance::run_all(&s).await;
    assert_eq!(s.location(), "s3://cairn-test/repo/a");

    // As the command line stacks it: retries over the store.
    let retrying = RetryStorage::new(open(&server, "s3://cairn-test/repo/retry", s3_support::SECRET_KEY, &[]))
        .with_base_delay(Duration::from_millis(20));
    conformance::run_all(&retrying).await;

    // A second repository under another prefix of the same bucket sees none
    // of the first one's objects.
    let other = open(&server, "s3://cairn-test/repo/b", s3_support::SECRET_KEY, &[]);
    conformance::starts_empty(&other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_refuses_what_it_cannot_serve() {
    let mut server = S3Server::start();
    let good = open(&server, "s3://cairn-test/r", s3_support::SECRET_KEY, &[]);
    good.probe().await.unwrap();

    // The server checks signatures: a wrong secret is refused.
    let wrong = open(&server, "s3://cairn-test/r", "not-the-secret", &[]);
    let err = wrong.probe().await.unwrap_err();
    assert!(matches!(err, OpenError::AccessDenied { .. }), "{err}");
    let put = wrong.put(FileKind::Snapshot, "abcd", Bytes::from_static(b"x")).await;
    assert!(
        matches!(&put, Err(e @ StorageError::Backend { .. }) if !e.is_transient()),
        "{put:?}"
    );

    let missing = open(&server, "s3://no-such-bucket/r", s3_support::SECRET_KEY, &[]);
    let err = missing.probe().await.unwrap_err();
    assert!(matches!(err, OpenError::NoBucket { .. }), "{err}");
    assert!(
        err.to_string().contains("bucket no-such-bucket does not exist"),
        "{err}"
    );

    // With the server gone, requests are transient failures and the probe
    // calls the endpoint unreachable.
    server.kill();
    let err = good.probe().await.unwrap_err();
    assert!(matches!(err, OpenError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains(&server.endpoint), "{err}");
    let get = good.get(FileKind::Snapshot, "abcd").await;
    assert!(matches!(&get, Err(e) if e.is_transient()), "{get:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packs_take_their_storage_class_and_metadata_does_not() {
    let server = S3Server::start();
    let s = open(
        &server,
        "s3://cairn-test/cls",
        s3_support::SECRET_KEY,
        &["s3.storage-class=STANDARD_IA"],
    );
    s.put(FileKind::Pack, "aabb", Bytes::from_static(b"pack"))
        .await
        .unwrap();
    s.put(FileKind::Index, "ccdd", Bytes::from_static(b"index"))
        .await
        .unwrap();
    assert_eq!(
        s.get(FileKind::Pack, "aabb").await.unwrap(),
        Bytes::from_static(b"pack")
    );
    // The store keeps the class as an S3 header (base64 in the filer's view).
    let class = "\"X-Amz-Storage-Class\":\"U1RBTkRBUkRfSUE=\"";
    let pack = server.stored_entry("cairn-test", "cls/data/aa/aabb");
    assert!(pack.contains(class), "pack stored without its class: {pack}");
    let index = server.stored_entry("cairn-test", "cls/index/ccdd");
    assert!(index.contains("\"FileSize\":5"), "index not found: {index}");
    assert!(!index.contains("Storage-Class"), "index stored with a class: {index}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_lock_puts_with_retention_extends_it_and_never_shortens_it() {
    let server = S3Server::start();
    let lock = crate::storage::Retention {
        days: 1,
        compliance: true,
    };
    // A bucket without Object Lock is named as such.
    let plain = open(&server, "s3://cairn-test/nolock", s3_support::SECRET_KEY, &[]);
    let err = plain.check_object_lock().await.unwrap_err();
    assert!(matches!(err, StorageError::NoObjectLock { .. }), "{err}");
    assert!(err.to_string().contains("s3://cairn-test/nolock"), "{err}");

    server.create_locked_bucket("cairn-locked");
    let s = open(
        &server,
        "s3://cairn-locked/r",
        s3_support::SECRET_KEY,
        &["s3.storage-class=STANDARD_IA"],
    );
    s.check_object_lock().await.unwrap();
    s.set_retention(lock).unwrap();
    let now = chrono::Utc::now().timestamp();
    s.put(FileKind::Pack, "aabb", Bytes::from_static(b"pack"))
        .await
        .unwrap();
    s.put(FileKind::Lock, "eeff", Bytes::from_static(b"lock"))
        .await
        .unwrap();
    // Write-once holds under lock too.
    let again = s.put(FileKind::Pack, "aabb", Bytes::from_static(b"other")).await;
    assert!(matches!(again, Err(StorageError::AlreadyExists { .. })), "{again:?}");
    assert_eq!(
        s.get(FileKind::Pack, "aabb").await.unwrap(),
        Bytes::from_static(b"pack")
    );
    let head = server.signed("HEAD", "/cairn-locked/r/data/aa/aabb", &[], b"");
    let class = head
        .headers
        .get("x-amz-storage-class")
        .map(|v| v.to_str().unwrap_or_default());
    assert_eq!(class, Some("STANDARD_IA"), "the pack lost its storage class");

    let until = s.locked_until(FileKind::Pack, "aabb").await.unwrap().unwrap();
    assert!((until - (now + 86_400)).abs() < 120, "locked until {until}, now {now}");
    assert_eq!(
        s.locked_until(FileKind::Lock, "eeff").await.unwrap(),
        None,
        "lock files are not locked"
    );
    let later = now + 3 * 86_400;
    s.extend_lock(FileKind::Pack, "aabb", later).await.unwrap();
    assert_eq!(s.locked_until(FileKind::Pack, "aabb").await.unwrap(), Some(later));
    let shorter = s.extend_lock(FileKind::Pack, "aabb", now + 86_400).await;
    assert!(shorter.is_err(), "a compliance lock was shortened");
    assert_eq!(s.locked_until(FileKind::Pack, "aabb").await.unwrap(), Some(later));
    let missing = s.locked_until(FileKind::Pack, "ccdd").await.unwrap_err();
    assert!(missing.is_not_found(), "{missing}");

    // Deleting a locked object hides it behind a delete marker; the
    // locked version stays.
    s.delete(FileKind::Pack, "aabb").await.unwrap();
    assert!(s.get(FileKind::Pack, "aabb").await.unwrap_err().is_not_found());
    let versions = server.signed("GET", "/cairn-locked?versions&prefix=r/data/", &[], b"");
    assert!(versions.body.contains("<DeleteMarker>"), "{}", versions.body);
    assert!(versions.body.contains("<Version>"), "{}", versions.body);
}

/// GCS through fake-gcs-server. The emulator ignores `ifGenerationMatch=0`
/// on the media uploads opendal makes (GCS itself honours it), so the two
/// write-once checks cannot run against it; every other check does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_passes_the_conformance_suite_but_for_write_once() {
    let server = GcsServer::with_buckets(&["cairn-gcs"]);
    let options =
        StorageOptions::parse(&[format!("gs.endpoint={}", server.endpoint), "gs.anonymous=true".into()]).unwrap();
    let s = ObjectStorage::open(&location("gs://cairn-gcs/repo"), &options).unwrap();
    assert!(s.conditional_writes(), "GCS puts must be conditional creates");
    s.probe().await.unwrap();
    conformance::starts_empty(&s).await;
    conformance::create_and_config(&s).await;
    conformance::put_and_get(&s).await;
    conformance::missing_objects(&s).await;
    conformance::ranges(&s).await;
    conformance::list_every_kind(&s).await;
    conformance::delete(&s).await;
    conformance::empty_object(&s).await;
    conformance::large_object(&s).await;
    conformance::invalid_names(&s).await;

    let missing = ObjectStorage::open(&location("gs://no-such-bucket/repo"), &options).unwrap();
    let err = missing.probe().await.unwrap_err();
    assert!(matches!(err, OpenError::NoBucket { .. }), "{err}");
    assert!(
        err.to_string().contains("bucket no-such-bucket does not exist"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azblob_passes_the_conformance_suite() {
    let server = AzuriteServer::with_containers(&["cairn-az"]);
    let options = StorageOptions::parse(&[format!("azblob.endpoint={}", server.endpoint)]).unwrap();
    let account = |key: &str| AccessKeys {
        access_key_id: azure_support::ACCOUNT.to_owned(),
        secret_access_key: key.to_owned(),
        session_token: None,
    };
    let open =
        |url: &str, key: &str| ObjectStorage::open_with_keys(&location(url), &options, Some(&account(key))).unwrap();
    let s = open("azblob://cairn-az/repo", azure_support::KEY);
    assert!(s.conditional_writes(), "Azure puts must be conditional creates");
    s.probe().await.unwrap();
    conformance::run_all(&s).await;

    let err = open("azblob://no-such-container/repo", azure_support::KEY)
        .probe()
        .await
        .unwrap_err();
    assert!(matches!(err, OpenError::NoBucket { .. }), "{err}");
    assert!(
        err.to_string().contains("container no-such-container does not exist"),
        "{err}"
    );
    // Azurite checks signatures: another key is refused.
    let err = open("azblob://cairn-az/repo", "d3Jvbmcta2V5LXdyb25nLWtleQ==")
        .probe()
        .await
        .unwrap_err();
    assert!(matches!(err, OpenError::AccessDenied { .. }), "{err}");
}

/// How the fake store answers.
#[derive(Clone)]
enum Answer {
    Status(u16, &'static str),
    /// Reads the request and never answers.
    Hang,
    /// Closes the connection without answering.
    Drop,
}

/// A loopback HTTP server that answers every request the same way, to see
/// how the store's answers map to errors. Stops when dropped.
struct FakeStore {
    endpoint: String,
    answer: std::sync::Arc<std::sync::Mutex<Answer>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    port: u16,
}

impl FakeStore {
    fn start(answer: Answer) -> Self {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let answer = std::sync::Arc::new(std::sync::Mutex::new(answer));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (a, s) = (answer.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                // Read the whole request: closing a socket with unread
                // bytes would reset the connection before the answer.
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                let length = String::from_utf8_lossy(&head)
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<u64>().ok())?
                    })
                    .unwrap_or(0);
                let _ = std::io::copy(&mut (&conn).take(length), &mut std::io::sink());
                let answer = a.lock().unwrap().clone();
                match answer {
                    Answer::Status(code, body) => {
                        let _ = write!(
                            conn,
                            "HTTP/1.1 {code} X\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    Answer::Hang => held.push(conn),
                    Answer::Drop => drop(conn),
                }
            }
        });
        Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            answer,
            stop,
            port,
        }
    }

    fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }
}

impl Drop for FakeStore {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn s3_error(code: &str) -> &'static str {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{code} from the fake store</Message></Error>"
    );
    Box::leak(body.into_boxed_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_answers_map_to_transient_or_permanent_errors() {
    let fake = FakeStore::start(Answer::Status(500, s3_error("InternalError")));
    // Answers get a generous timeout, so that a loaded machine does not
    // turn them into timeouts; the hanging store gets a short one.
    let with_timeout = |timeout: &str| {
        let options = StorageOptions::parse(&[
            format!("s3.endpoint={}", fake.endpoint),
            "s3.region=us-east-1".to_owned(),
            format!("timeout={timeout}"),
        ])
        .unwrap();
        ObjectStorage::open_with_keys(&location("s3://fake-bucket/r"), &options, Some(&keys("secret"))).unwrap()
    };
    let patient = with_timeout("60s");
    let hasty = with_timeout("1s");
    let name = "0123abcd";
    for (answer, transient, needle) in [
        (Answer::Status(500, s3_error("InternalError")), true, "InternalError"),
        (Answer::Status(503, s3_error("SlowDown")), true, "SlowDown"),
        (Answer::Status(502, "bad gateway"), true, "bad gateway"),
        (Answer::Status(429, "too many"), true, "too many"),
        (Answer::Status(400, s3_error("InvalidRequest")), false, "InvalidRequest"),
        (Answer::Status(403, s3_error("AccessDenied")), false, "AccessDenied"),
        (Answer::Hang, true, "timeout"),
        (Answer::Drop, true, "send http request"),
    ] {
        let s = if matches!(answer, Answer::Hang) {
            &hasty
        } else {
            &patient
        };
        fake.set(answer);
        for result in [
            s.get(FileKind::Pack, name).await.map(|_| ()),
            s.put(FileKind::Snapshot, name, Bytes::from_static(b"x")).await,
            s.list(FileKind::Index).await.map(|_| ()),
        ] {
            match result {
                Err(e @ StorageError::Backend { .. }) => {
                    assert_eq!(e.is_transient(), transient, "{needle}: {e}");
                    let message = e.to_string();
                    assert!(message.contains(needle), "{needle}: {message}");
                    assert!(message.contains("s3://fake-bucket/r"), "{message}");
                    assert_eq!(message.lines().count(), 1, "{message}");
                }
                other => panic!("{needle}: {other:?}"),
            }
        }
    }
    // Retried, an answer that stays transient ends in an error saying how
    // often it was tried, whether the store answered or the connection
    // dropped; a permanent one is not retried and says nothing of attempts.
    let retrying = RetryStorage::new(with_timeout("60s"))
        .with_attempts(3)
        .with_base_delay(Duration::from_millis(1));
    for (answer, retries) in [(Answer::Status(503, s3_error("SlowDown")), 2), (Answer::Drop, 4)] {
        fake.set(answer);
        let err = retrying.get(FileKind::Pack, name).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(err.to_string().ends_with("; gave up after 3 attempts"), "{err}");
        assert_eq!(retrying.retries(), retries, "{err}");
    }
    fake.set(Answer::Status(403, s3_error("AccessDenied")));
    let err = retrying.get(FileKind::Pack, name).await.unwrap_err();
    assert!(!err.to_string().contains("gave up"), "{err}");
    assert_eq!(retrying.retries(), 4, "{err}");

    let s = &patient;
    // A missing object is NotFound, never a backend error.
    fake.set(Answer::Status(404, s3_error("NoSuchKey")));
    let got = s.get(FileKind::Pack, name).await;
    assert!(matches!(&got, Err(e) if e.is_not_found()), "{got:?}");

    // The probe sorts the answers into the command line's cases.
    fake.set(Answer::Status(404, s3_error("NoSuchBucket")));
    assert!(matches!(s.probe().await, Err(OpenError::NoBucket { .. })));
    fake.set(Answer::Status(403, s3_error("InvalidAccessKeyId")));
    assert!(matches!(s.probe().await, Err(OpenError::AccessDenied { .. })));
    fake.set(Answer::Hang);
    assert!(matches!(hasty.probe().await, Err(OpenError::Unreachable { .. })));
    fake.set(Answer::Status(500, s3_error("InternalError")));
    let err = s.probe().await.unwrap_err();
    assert!(matches!(&err, OpenError::Storage(e) if e.is_transient()), "{err}");
}
