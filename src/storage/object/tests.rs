//! The object store backend against a real S3 server on 127.0.0.1.

use std::time::Duration;

use bytes::Bytes;

use super::{AccessKeys, ObjectStorage, OpenError};
use crate::storage::decorators::RetryStorage;
use crate::storage::url::{parse_location, Location, ObjectLocation, StorageOptions};
use crate::storage::{conformance, FileKind, Storage, StorageError};

#[path = "../../../tests/s3_support/mod.rs"]
mod s3_support;

#[path = "../../../tests/gcs_support/mod.rs"]
mod gcs_support;

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
