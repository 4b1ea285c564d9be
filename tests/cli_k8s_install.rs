//! `cairn k8s crds` and `cairn k8s install` through the binary, against the
//! fake API server (tests/k8s_support), and `deploy/cairn.yaml` kept equal
//! to the command's output.

#![cfg(feature = "k8s")]

mod cli_support;
mod k8s_support;

use std::collections::BTreeMap;

use assert_cmd::Command;
use cli_support::{fails_with, succeeds};
use k8s_support::{FakeCluster, Key};
use serde_json::Value;

fn cairn() -> Command {
    let mut cmd = Command::cargo_bin("cairn").unwrap();
    cmd.env_remove("KUBECONFIG").env_remove("CAIRN_REPOSITORY");
    cmd
}

fn install(cluster: &FakeCluster, extra: &[&str]) -> Command {
    let mut cmd = cairn();
    cmd.args(["k8s", "install"])
        .args(extra)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig());
    cmd
}

fn documents(yaml: &str) -> Vec<Value> {
    yaml.split("\n---\n")
        .map(|d| serde_norway::from_str(d).unwrap_or_else(|e| panic!("not YAML: {e}\n{d}")))
        .collect()
}

/// The store key of a manifest.
fn key(obj: &Value) -> Key {
    let api_version = obj["apiVersion"].as_str().unwrap();
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    let plural = format!("{}s", obj["kind"].as_str().unwrap().to_ascii_lowercase());
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or("");
    let name = obj["metadata"]["name"].as_str().unwrap();
    (group.into(), plural, ns.into(), name.into())
}

fn resource_versions(cluster: &FakeCluster) -> BTreeMap<Key, Value> {
    cluster
        .objects()
        .into_iter()
        .map(|(k, v)| (k, v["metadata"]["resourceVersion"].clone()))
        .collect()
}

#[test]
fn deploy_yaml_is_the_install_output() {
    let out = succeeds(cairn().args(["k8s", "install", "--dry-run", "-o", "yaml"]));
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/cairn.yaml");
    let kept = std::fs::read_to_string(path).unwrap();
    assert!(
        out == kept,
        "deploy/cairn.yaml differs from `cairn k8s install --dry-run -o yaml`; regenerate it with:\n  \
         cargo run -- k8s install --dry-run -o yaml > deploy/cairn.yaml"
    );
}

#[test]
fn crds_print_every_definition() {
    let yaml = succeeds(cairn().args(["k8s", "crds"]));
    let docs = documents(yaml.trim_end());
    let names: Vec<&str> = docs.iter().map(|d| d["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "backuprepositories.backup.cairn.io",
            "backups.backup.cairn.io",
            "restores.backup.cairn.io",
            "schedules.backup.cairn.io",
            "volumebackups.backup.cairn.io",
            "volumerestores.backup.cairn.io"
        ]
    );
    assert!(docs.iter().all(|d| d["kind"] == "CustomResourceDefinition"));
    let json = succeeds(cairn().args(["k8s", "crds", "--output", "json"]));
    let list: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap(), &docs);
}

#[test]
fn install_creates_every_object_then_changes_nothing() {
    let cluster = FakeCluster::empty();
    let out = succeeds(&mut install(&cluster, &["--image", "registry.test/cairn:1"]));
    let want = documents(
        succeeds(cairn().args([
            "k8s",
            "install",
            "--dry-run",
            "--image",
            "registry.test/cairn:1",
            "--cluster-name",
            "fake",
        ]))
        .trim_end(),
    );
    let have = cluster.objects();
    for obj in &want {
        let k = key(obj);
        let stored = have.get(&k).unwrap_or_else(|| panic!("{k:?} was not created"));
        assert_eq!(stored["spec"], obj["spec"], "{k:?}");
        assert_eq!(stored["metadata"]["labels"], obj["metadata"]["labels"], "{k:?}");
    }
    assert_eq!(out.lines().count(), want.len(), "{out}");
    assert!(out.lines().all(|l| l.ends_with(" created")), "{out}");
    assert!(out.contains("deployment.apps/cairn-controller created"), "{out}");
    // The cluster name comes from the kubeconfig.
    let deployment = &have[&key(want.iter().find(|o| o["kind"] == "Deployment").unwrap())];
    let args = &deployment["spec"]["template"]["spec"]["containers"][0]["args"];
    assert_eq!(args[4], "--cluster-name");
    assert_eq!(args[5], "fake");

    // Server-side apply as `cairn`, and nothing applied before the
    // definitions were seen established.
    let log = cluster.log();
    let patches: Vec<_> = log.iter().filter(|l| l.method == "PATCH").collect();
    assert_eq!(patches.len(), want.len());
    assert!(
        patches.iter().all(|l| l.query.contains("fieldManager=cairn")),
        "{patches:?}"
    );
    let last_crd_read = log
        .iter()
        .rposition(|l| l.method == "GET" && l.path.contains("/customresourcedefinitions/"))
        .unwrap();
    let first_namespace = log
        .iter()
        .position(|l| l.method == "PATCH" && l.path == "/api/v1/namespaces/cairn-system")
        .unwrap();
    assert!(last_crd_read < first_namespace, "{log:#?}");
    let crd_reads_after_create = log
        .iter()
        .filter(|l| l.method == "GET" && l.path.ends_with("/volumerestores.backup.cairn.io"))
        .count();
    assert!(crd_reads_after_create >= 2, "waited for Established: {log:#?}");

    // A second install writes nothing.
    let before = resource_versions(&cluster);
    let logged = cluster.log().len();
    let again = succeeds(&mut install(&cluster, &["--image", "registry.test/cairn:1"]));
    assert!(again.lines().all(|l| l.ends_with(" unchanged")), "{again}");
    assert_eq!(resource_versions(&cluster), before);
    let writes: Vec<_> = cluster.log()[logged..]
        .iter()
        .filter(|l| l.method != "GET")
        .cloned()
        .collect();
    assert!(writes.is_empty(), "{writes:?}");

    // A changed option updates what it changes.
    let changed = succeeds(&mut install(&cluster, &["--image", "registry.test/cairn:2"]));
    assert!(
        changed.contains("deployment.apps/cairn-controller configured"),
        "{changed}"
    );
    assert!(changed.contains("daemonset.apps/cairn-agent configured"), "{changed}");
    assert!(changed.contains("namespace/cairn-system unchanged"), "{changed}");
}

#[test]
fn install_json_summary() {
    let cluster = FakeCluster::empty();
    let out = install(&cluster, &["--namespace", "backup", "--cluster-name", "eu-1"])
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary = cli_support::json_summary(&out);
    let objects = summary["objects"].as_array().unwrap();
    assert!(objects.iter().all(|o| o["change"] == "created"));
    assert!(objects
        .iter()
        .any(|o| o["object"] == "daemonset.apps/cairn-agent" && o["namespace"] == "backup"));
    assert!(cluster.objects().contains_key(&(
        "".into(),
        "serviceaccounts".into(),
        "backup".into(),
        "cairn-agent".into()
    )));
}

#[test]
fn dry_run_touches_nothing() {
    let cluster = FakeCluster::empty();
    let yaml = succeeds(&mut install(&cluster, &["--dry-run"]));
    assert!(yaml.contains("kind: DaemonSet"));
    let json = succeeds(&mut install(&cluster, &["--dry-run", "-o", "json"]));
    let list: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        documents(yaml.trim_end()).len()
    );
    assert!(cluster.log().is_empty(), "{:?}", cluster.log());
    assert!(cluster.objects().is_empty());
}

#[test]
fn bad_options_are_named_in_one_line() {
    let cluster = FakeCluster::empty();
    for (args, named) in [
        (&["--namespace", "Not_A_Name"][..], "--namespace"),
        (&["--kubelet-root-dir", "var/lib/kubelet"][..], "--kubelet-root-dir"),
        (&["--image", ""][..], "--image"),
        (&["--cluster-name", "a b"][..], "--cluster-name"),
        (&["--dry-run", "-o", "xml"][..], "xml"),
        (&["-o", "yaml"][..], "--dry-run"),
        (&["--agent-read-rate-limit", "fast"][..], "--agent-read-rate-limit"),
    ] {
        let err = fails_with(&mut install(&cluster, args), 2);
        assert!(err.contains(named), "{args:?}: {err}");
    }
    // The agent's own flags likewise, before it talks to any server.
    for (args, named) in [
        (&["--read-rate-limit", "12X"][..], "--read-rate-limit"),
        (&["--read-rate-limit", "0"][..], "--read-rate-limit"),
        (&["--io-priority", "realtime"][..], "--io-priority"),
    ] {
        let mut agent = cairn();
        agent
            .args(["k8s", "agent", "--node", "n"])
            .args(args)
            .arg("--kubeconfig")
            .arg(cluster.kubeconfig());
        let err = fails_with(&mut agent, 2);
        assert!(err.contains(named), "{args:?}: {err}");
    }
    assert!(cluster.log().is_empty(), "{:?}", cluster.log());
    // An unreachable cluster is an error naming the server.
    let gone = cluster.kubeconfig_for("http://127.0.0.1:9", "gone");
    let err = fails_with(
        cairn()
            .args(["k8s", "install", "--crd-timeout", "1", "--kubeconfig"])
            .arg(gone),
        1,
    );
    assert!(err.contains("127.0.0.1:9"), "{err}");
}
