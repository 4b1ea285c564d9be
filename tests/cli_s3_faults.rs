//! The `cairn` binary on S3 through a proxy that injects faults (see
//! `s3_support::proxy`): server errors, slow and hanging answers, and
//! connections dropped in the middle of a request or of an answer. What is
//! transient is retried and the command succeeds; what is not ends it with
//! one line; either way the repository stays sound, as `check` run straight
//! against the server shows.

mod cli_support;
mod s3_support;

use std::fs;
use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;
use cli_support::*;
use s3_support::proxy::{Fault, FaultProxy, Rule};
use s3_support::S3Server;

/// Per-request timeout for commands through the proxy: short, so that a
/// held answer becomes a timeout and a retry, yet far above what any real
/// request to the local server takes.
const TIMEOUT: &str = "timeout=5s";

/// A hold longer than [`TIMEOUT`].
const HANG: Duration = Duration::from_secs(8);

/// A slow answer, well inside [`TIMEOUT`].
const SLOW: Duration = Duration::from_millis(1500);

/// `cairn -r URL` with the server's credentials, sending its requests to
/// `endpoint` (the server itself or a proxy in front of it).
fn cairn_via(server: &S3Server, endpoint: &str, url: &str) -> Command {
    let mut cmd = cairn(Path::new(url));
    cmd.env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .envs(server.env())
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("CAIRN_CACHE_DIR", server.cache_dir());
    cmd
}

/// Files of a few MiB in all: several packs of 1 MiB, many small files.
fn build_tree(src: &Path) {
    fs::create_dir_all(src.join("small")).unwrap();
    for i in 0..40u64 {
        fs::write(src.join(format!("small/f{i:02}.bin")), pseudo_random(60 << 10, 200 + i)).unwrap();
    }
    for i in 0..3u64 {
        fs::write(src.join(format!("big{i}.bin")), pseudo_random(1 << 20, 300 + i)).unwrap();
    }
    fs::write(src.join("note.txt"), b"through a faulty network\n").unwrap();
}

fn init_direct(server: &S3Server, url: &str) {
    succeeds(
        cairn_via(server, &server.endpoint, url)
            .arg("init")
            .args(SMALL_UNCOMPRESSED),
    );
}

fn snapshot_count_direct(server: &S3Server, url: &str) -> usize {
    let listed = succeeds(cairn_via(server, &server.endpoint, url).args(["--json", "snapshots"]));
    let snapshots: serde_json::Value = serde_json::from_str(&listed).unwrap();
    snapshots.as_array().map_or(0, Vec::len)
}

/// Asserts that every rule fired at least once.
fn assert_all_fired(proxy: &FaultProxy, names: &[&str]) {
    let fired = proxy.fired();
    for (name, n) in names.iter().zip(&fired) {
        assert!(
            *n > 0,
            "no {name} was injected ({fired:?} over {} requests); injected:\n{}",
            proxy.requests(),
            proxy.log()
        );
    }
}

#[test]
fn a_backup_through_server_errors_slow_answers_and_dropped_connections_succeeds() {
    let server = S3Server::start();
    let url = server.url("cairn-test", "faults");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_tree(&src);
    init_direct(&server, &url);

    let names = [
        "500 answer",
        "503 answer",
        "slow answer",
        "answer held past the timeout",
        "connection dropped mid-request",
        "connection dropped mid-answer",
    ];
    let proxy = FaultProxy::start(
        &server.endpoint,
        vec![
            Rule::new(Fault::Status(500, "InternalError"))
                .first(3)
                .every(7)
                .limit(3),
            Rule::new(Fault::Status(503, "SlowDown")).first(5).every(9).limit(2),
            Rule::new(Fault::Delay(SLOW)).first(2).every(6).limit(3),
            // Packs: a pack upload the client gives up on while the server
            // stores it, one cut off while its body is sent, and one the
            // server stores but whose answer is lost.
            Rule::new(Fault::Delay(HANG))
                .method("PUT")
                .path("/data/")
                .first(1)
                .limit(1),
            Rule::new(Fault::DropRequest)
                .method("PUT")
                .path("/data/")
                .first(0)
                .limit(1),
            Rule::new(Fault::DropResponse)
                .method("PUT")
                .path("/data/")
                .first(3)
                .limit(1),
        ],
    );
    let out = cairn_via(&server, &proxy.endpoint, &url)
        .args(["-o", TIMEOUT, "--json", "backup"])
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the backup failed: {}\ninjected:\n{}",
        String::from_utf8_lossy(&out.stderr),
        proxy.log()
    );
    let summary = json_summary(&out);
    assert_eq!(summary["files_new"], 44, "{summary}");
    assert_all_fired(&proxy, &names);

    // Straight to the server: one snapshot, every byte sound.
    assert_eq!(snapshot_count_direct(&server, &url), 1);
    let checked = succeeds(cairn_via(&server, &server.endpoint, &url).args(["check", "--read-data"]));
    assert!(checked.contains("no errors"), "{checked}");
    let target = tmp.path().join("restored");
    succeeds(
        cairn_via(&server, &server.endpoint, &url)
            .args(["restore", "latest", "--verify", "--target"])
            .arg(&target),
    );
    assert_same_tree(&describe(&src), &describe(&restored(&target, &src)));
}

#[test]
fn a_restore_through_faults_writes_the_same_files() {
    let server = S3Server::start();
    let url = server.url("cairn-test", "restore");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_tree(&src);
    init_direct(&server, &url);
    succeeds(cairn_via(&server, &server.endpoint, &url).arg("backup").arg(&src));

    let names = [
        "500 answer",
        "slow answer",
        "answer held past the timeout",
        "connection dropped mid-request",
        "pack read cut off mid-body",
    ];
    let proxy = FaultProxy::start(
        &server.endpoint,
        vec![
            Rule::new(Fault::Status(500, "InternalError"))
                .first(2)
                .every(5)
                .limit(3),
            Rule::new(Fault::Delay(SLOW)).first(4).every(6).limit(2),
            Rule::new(Fault::Delay(HANG))
                .method("GET")
                .path("/data/")
                .first(1)
                .limit(1),
            Rule::new(Fault::DropRequest).method("GET").first(3).every(8).limit(2),
            Rule::new(Fault::DropResponse)
                .method("GET")
                .path("/data/")
                .first(0)
                .every(3)
                .limit(2),
        ],
    );
    let target = tmp.path().join("restored");
    let out = cairn_via(&server, &proxy.endpoint, &url)
        .args(["--no-cache", "-o", TIMEOUT, "restore", "latest", "--verify", "--target"])
        .arg(&target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the restore failed: {}\ninjected:\n{}",
        String::from_utf8_lossy(&out.stderr),
        proxy.log()
    );
    assert_all_fired(&proxy, &names);
    assert_same_tree(&describe(&src), &describe(&restored(&target, &src)));
}

#[test]
fn a_backup_whose_packs_the_store_refuses_fails_in_one_line_and_leaves_a_sound_repository() {
    let server = S3Server::start();
    let url = server.url("cairn-test", "refused");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_tree(&src);
    init_direct(&server, &url);
    succeeds(cairn_via(&server, &server.endpoint, &url).arg("backup").arg(&src));
    // New data, so that the next backup must upload packs.
    fs::write(src.join("big0.bin"), pseudo_random(1 << 20, 400)).unwrap();
    fs::write(src.join("fresh.bin"), pseudo_random(1 << 20, 401)).unwrap();

    // A permanent refusal ends the backup at once; a server error that
    // never goes away ends it once the retries are spent.
    for (fault, needle) in [
        (Fault::Status(403, "AccessDenied"), "AccessDenied"),
        (Fault::Status(500, "InternalError"), "InternalError"),
    ] {
        let retried = needle == "InternalError";
        let proxy = FaultProxy::start(
            &server.endpoint,
            vec![Rule::new(fault).method("PUT").path("/data/").relentless()],
        );
        let line = fails_with(
            cairn_via(&server, &proxy.endpoint, &url)
                .args(["-o", TIMEOUT, "backup"])
                .arg(&src),
            1,
        );
        assert!(line.contains(needle), "{line}");
        assert_eq!(line.contains("gave up after 5 attempts"), retried, "{line}");
        assert!(
            line.contains("s3://cairn-test/refused"),
            "the line names the repository: {line}"
        );
        assert!(proxy.fired()[0] > 0, "nothing was refused");

        // No snapshot but the first; the repository is sound.
        assert_eq!(snapshot_count_direct(&server, &url), 1, "{needle}");
        let checked = succeeds(cairn_via(&server, &server.endpoint, &url).arg("check"));
        assert!(checked.contains("no errors"), "{needle}: {checked}");
    }
    // Once the store takes packs again, the backup goes through.
    succeeds(cairn_via(&server, &server.endpoint, &url).arg("backup").arg(&src));
    assert_eq!(snapshot_count_direct(&server, &url), 2);
    succeeds(cairn_via(&server, &server.endpoint, &url).args(["check", "--read-data"]));
}
