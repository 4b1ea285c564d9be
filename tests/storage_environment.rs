//! One process can open several object-store repositories, each with the
//! credentials of its own environment (a BackupRepository's credentials
//! Secret) rather than the process's.

mod s3_support;

use std::collections::BTreeMap;

use bytes::Bytes;
use cairn::storage::object::ObjectStorage;
use cairn::storage::url::{parse_location, Environment, Location, StorageOptions};
use cairn::storage::{FileKind, Storage};
use s3_support::S3Server;

fn storage(server: &S3Server, secret: &str) -> ObjectStorage {
    let Location::Object(loc) = parse_location(&server.url("cairn-test", "env")).unwrap() else {
        panic!("not an object store URL");
    };
    let mut vars: BTreeMap<String, String> = server.env().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    vars.insert("AWS_SECRET_ACCESS_KEY".into(), secret.into());
    let options = StorageOptions::default().with_environment(Environment::new(vars));
    ObjectStorage::open(&loc, &options).unwrap()
}

#[test]
fn credentials_come_from_the_given_environment_not_the_process() {
    // The test process has no AWS variables of its own: a store that works
    // got its endpoint and keys from the given environment.
    let server = S3Server::start();
    for (name, _) in server.env() {
        assert!(
            std::env::var_os(name).is_none(),
            "{name} is set in the test's environment"
        );
    }
    let secret = server
        .env()
        .into_iter()
        .find(|(k, _)| *k == "AWS_SECRET_ACCESS_KEY")
        .unwrap()
        .1;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let good = storage(&server, &secret);
    rt.block_on(good.probe()).unwrap();
    rt.block_on(good.put(FileKind::Key, &"ab".repeat(32), Bytes::from_static(b"x")))
        .unwrap();

    let wrong = storage(&server, "not-the-secret");
    let err = rt.block_on(wrong.probe()).unwrap_err().to_string();
    assert!(
        err.to_ascii_lowercase().contains("signature") || err.to_ascii_lowercase().contains("denied"),
        "{err}"
    );
    // The options' Debug output names the variables, never their values.
    let options = StorageOptions::default().with_environment(Environment::new(BTreeMap::from([(
        "AWS_SECRET_ACCESS_KEY".to_owned(),
        "hunter2".to_owned(),
    )])));
    let shown = format!("{options:?}");
    assert!(
        shown.contains("AWS_SECRET_ACCESS_KEY") && !shown.contains("hunter2"),
        "{shown}"
    );
}
