//! One rustls crypto provider for the whole binary. With two providers
//! compiled in (kube's default ring and aws-lc-rs, which the repository's
//! crypto and object storage use), rustls cannot choose one and the first
//! TLS client panics at run time. This test builds the TLS clients the
//! binary has (the object store's HTTP client and the Kubernetes client),
//! in a fresh process, and fails on such a clash.

#![cfg(feature = "k8s")]

use std::panic::catch_unwind;

use cairn::storage::object::ObjectStorage;
use cairn::storage::url::{parse_location, Location, StorageOptions};

#[test]
fn every_tls_client_builds_on_the_one_crypto_provider() {
    // What rustls picks from its compiled-in providers: exactly one must
    // be there, or this panics.
    let from_features = catch_unwind(|| {
        rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    });
    assert!(from_features.is_ok(), "rustls has no single crypto provider to choose");

    cairn::install_crypto_provider();
    let installed = rustls::crypto::CryptoProvider::get_default().expect("a default provider");
    let suites = |p: &rustls::crypto::CryptoProvider| p.cipher_suites.iter().map(|s| s.suite()).collect::<Vec<_>>();
    assert_eq!(
        suites(installed),
        suites(&rustls::crypto::aws_lc_rs::default_provider()),
        "the installed provider is not aws-lc-rs"
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();

    // The object store's HTTP client, as a repository URL builds it, over
    // TLS to a port nobody listens on: an error, not a panic.
    let http = reqwest::Client::builder().build();
    assert!(http.is_ok(), "the object store's HTTP client cannot be built");
    let options = StorageOptions::parse(&[format!("s3.endpoint=https://{closed}")]).unwrap();
    let Ok(Location::Object(loc)) = parse_location("s3://bucket/repo") else {
        panic!("not an object store location")
    };
    let opened = catch_unwind(|| ObjectStorage::open(&loc, &options).map(|_| ()));
    assert!(opened.is_ok(), "opening an object store panicked");

    // The Kubernetes client over TLS: it builds, and a request to a port
    // nobody listens on fails as a connection error, not a panic.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let runtime = cairn::k8s::runtime().unwrap();
    runtime.block_on(async {
        let config = kube::Config::new(format!("https://{closed}").parse().unwrap());
        let client = kube::Client::try_from(config).expect("a kube client over rustls");
        let err = client.apiserver_version().await.unwrap_err();
        assert!(!matches!(err, kube::Error::Api(_)), "{err}");
    });
}
