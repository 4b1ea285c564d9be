//! Backup hooks end to end: the controller runs each pod's pre hooks over
//! exec before the pod's VolumeBackups exist and its post hooks after they
//! ended, records every hook in the Backup's status once, and the fake API
//! server answers exec over WebSocket with scripted results.
#![cfg(feature = "k8s")]

mod controller_support;
mod k8s_support;

use std::fs;
use std::time::Duration;

use controller_support::{
    cluster, create, events_of, init_repository, key, repository, set_status, wait_event, wait_phase, Agent,
    Controller, NS, WAIT,
};
use k8s_support::exec::{ExecCall, ExecResult};
use k8s_support::kubelet::Kubelet;
use k8s_support::FakeCluster;
use serde_json::{json, Value};

/// A cluster with namespace `shop`, a kubelet for node-1 and the default
/// BackupRepository.
struct Setup {
    cluster: FakeCluster,
    kubelet: Kubelet,
    work: tempfile::TempDir,
}

fn setup() -> Setup {
    let cluster = cluster();
    cluster
        .state()
        .seed("", "namespaces", json!({"metadata": {"name": "shop"}}));
    let kubelet = cluster.start_kubelet(&["node-1"]);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    init_repository(&repo);
    repository(&cluster, "default", &repo, json!({}));
    Setup { cluster, kubelet, work }
}

impl Setup {
    /// A pod shop/NAME with containers `app` and `sidecar`, an emptyDir
    /// `data` (opted in when `with_volume`), the given annotations and
    /// labels; waits until it runs and writes a file into its volume.
    fn pod(&self, name: &str, with_volume: bool, annotations: Value, labels: Value) {
        let mut annotations = annotations;
        if with_volume {
            annotations["backup.cairn.io/volumes"] = json!("data");
        }
        self.cluster.state().seed(
            "",
            "pods",
            json!({"metadata": {"name": name, "namespace": "shop", "annotations": annotations, "labels": labels},
                   "spec": {"containers": [{"name": "app", "image": "x",
                                            "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                                           {"name": "sidecar", "image": "y"}],
                            "volumes": [{"name": "data", "emptyDir": {}}]}}),
        );
        let running = self.cluster.wait_for(
            |o| {
                o.get(&(String::new(), "pods".into(), "shop".into(), name.into()))
                    .is_some_and(|p| p.pointer("/status/phase").and_then(Value::as_str) == Some("Running"))
            },
            WAIT,
        );
        assert!(running, "pod {name} never ran");
        let dir = self.kubelet.pod_volume_dir("shop", name, "data");
        fs::write(dir.join("file.txt"), format!("data of {name}")).unwrap();
    }

    fn agent(&self) -> Agent {
        Agent::start(
            &self.cluster,
            "node-1",
            &self.kubelet.pods_dir("node-1"),
            &self.work.path().join("agent.log"),
        )
    }

    fn backup(&self, name: &str, spec: Value) {
        create(&self.cluster, "backups", "Backup", name, spec);
    }

    fn volume_backups(&self) -> Vec<Value> {
        controller_support::objects_of(&self.cluster, "volumebackups")
    }

    fn volume_backups_of(&self, pod: &str) -> Vec<Value> {
        self.volume_backups()
            .into_iter()
            .filter(|v| v["spec"]["pod"]["name"] == pod)
            .collect()
    }
}

fn words(command: &[&str]) -> Vec<String> {
    command.iter().map(|w| (*w).to_owned()).collect()
}

fn ok(stdout: &str) -> ExecResult {
    ExecResult {
        stdout: stdout.to_owned(),
        ..ExecResult::default()
    }
}

fn exit(code: i32, stderr: &str) -> ExecResult {
    ExecResult {
        stderr: stderr.to_owned(),
        exit_code: code,
        ..ExecResult::default()
    }
}

/// The VolumeBackups of `pod` an exec saw (phase of each).
fn seen_for(volumes: &[(String, String, String)], pod: &str) -> Vec<String> {
    volumes.iter().filter(|v| v.1 == pod).map(|v| v.2.clone()).collect()
}

fn hooks_of(backup: &Value) -> Vec<Value> {
    backup
        .pointer("/status/hooks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn freeze_annotations(on_error: &str) -> Value {
    json!({"pre.hook.backup.cairn.io/container": "sidecar",
           "pre.hook.backup.cairn.io/command": "[\"/bin/freeze\", \"--all\", \"a b\"]",
           "pre.hook.backup.cairn.io/on-error": on_error,
           "post.hook.backup.cairn.io/command": "[\"/bin/thaw\"]"})
}

#[test]
fn annotation_hooks_run_once_around_the_pods_volumes() {
    let s = setup();
    s.pod("web-0", true, freeze_annotations("Fail"), json!({}));
    s.pod("web-1", true, json!({}), json!({}));
    s.cluster.script_exec(
        "shop",
        "web-0",
        "sidecar",
        &["/bin/freeze"],
        ExecResult {
            stdout: "frozen\n".into(),
            stderr: "note\n".into(),
            delay: Duration::from_millis(300),
            ..ExecResult::default()
        },
    );
    s.cluster
        .script_exec("shop", "web-0", "app", &["/bin/thaw"], ok("thawed\n"));
    s.backup("nightly", json!({"includedNamespaces": ["shop"]}));
    let controller = Controller::start(&s.cluster, &[]);
    let _agent = s.agent();
    let done = wait_phase(&s.cluster, &controller, "backups", "nightly", "Completed");

    let execs = s.cluster.execs();
    assert_eq!(execs.len(), 2, "{execs:#?}");
    let (pre, post) = (&execs[0], &execs[1]);
    assert_eq!(pre.command, words(&["/bin/freeze", "--all", "a b"]));
    assert_eq!(pre.container, "sidecar");
    assert!(pre.query.contains("container=sidecar"), "{}", pre.query);
    // The pre hook ended before any VolumeBackup of the pod existed.
    assert!(seen_for(&pre.volumes_at_end, "web-0").is_empty(), "{pre:#?}");
    assert_eq!(post.command, words(&["/bin/thaw"]));
    assert_eq!(post.container, "app", "the first container by default");
    // The post hook started after the pod's VolumeBackups all ended.
    let at_post = seen_for(&post.volumes_at_start, "web-0");
    assert_eq!(at_post, vec!["Completed".to_owned()], "{post:#?}");
    assert!(pre.ended.unwrap() <= post.started);

    let hooks = hooks_of(&done);
    assert_eq!(hooks.len(), 2, "{hooks:#?}");
    assert_eq!(hooks[0]["phase"], "pre");
    assert_eq!(hooks[0]["pod"], "web-0");
    assert_eq!(hooks[0]["container"], "sidecar");
    assert_eq!(hooks[0]["exitCode"], 0);
    assert_eq!(hooks[0]["output"], "frozen\nnote\n");
    assert!(hooks[0]["completionTimestamp"].is_string());
    assert_eq!(hooks[1]["phase"], "post");
    assert_eq!(hooks[1]["output"], "thawed\n");
    assert_eq!(done["status"]["volumeBackups"]["completed"], 2);
    // Still once each after the Backup ended.
    assert_eq!(s.cluster.execs().len(), 2);
}

#[test]
fn a_failing_pre_hook_with_fail_leaves_the_pod_without_volume_backups() {
    let s = setup();
    s.pod("web-0", true, freeze_annotations("Fail"), json!({}));
    s.pod("web-1", true, json!({}), json!({}));
    s.cluster
        .script_exec("shop", "web-0", "sidecar", &["/bin/freeze"], exit(2, "cannot freeze\n"));
    s.backup("nightly", json!({"includedNamespaces": ["shop"]}));
    let controller = Controller::start(&s.cluster, &[]);
    let _agent = s.agent();
    let done = wait_phase(&s.cluster, &controller, "backups", "nightly", "PartiallyFailed");

    assert!(s.volume_backups_of("web-0").is_empty());
    let other = s.volume_backups_of("web-1");
    assert_eq!(other.len(), 1);
    assert_eq!(other[0]["status"]["phase"], "Completed");
    // No post hook after a failed pre hook.
    let execs = s.cluster.execs();
    assert_eq!(execs.len(), 1, "{execs:#?}");
    let errors = strings(&done["status"]["errors"]).join("\n");
    assert!(
        errors.contains("pre hook 0 in pod shop/web-0 container sidecar") && errors.contains("exited with code 2"),
        "{errors}"
    );
    let hooks = hooks_of(&done);
    assert_eq!(hooks[0]["exitCode"], 2);
    assert_eq!(hooks[0]["output"], "cannot freeze\n");
    wait_event(&s.cluster, &controller, "nightly", "HookFailed");
}

#[test]
fn a_failing_pre_hook_with_continue_is_a_warning() {
    let s = setup();
    s.pod("web-0", true, freeze_annotations("Continue"), json!({}));
    s.cluster
        .script_exec("shop", "web-0", "", &["/bin/freeze"], exit(1, "busy\n"));
    s.backup("nightly", json!({"includedNamespaces": ["shop"]}));
    let controller = Controller::start(&s.cluster, &[]);
    let _agent = s.agent();
    let done = wait_phase(&s.cluster, &controller, "backups", "nightly", "Completed");
    assert_eq!(s.volume_backups_of("web-0").len(), 1);
    let warnings = strings(&done["status"]["warnings"]).join("\n");
    assert!(warnings.contains("pre hook 0 in pod shop/web-0"), "{warnings}");
    // The post hook still ran, after the volume.
    let execs = s.cluster.execs();
    assert_eq!(execs.len(), 2, "{execs:#?}");
    assert_eq!(
        seen_for(&execs[1].volumes_at_start, "web-0"),
        vec!["Completed".to_owned()]
    );
}

#[test]
fn post_hooks_run_after_a_failed_volume_backup_and_their_failure_counts() {
    let s = setup();
    s.pod("web-0", true, freeze_annotations("Fail"), json!({}));
    s.cluster
        .script_exec("shop", "web-0", "app", &["/bin/thaw"], exit(7, "no thaw\n"));
    s.backup("nightly", json!({"includedNamespaces": ["shop"]}));
    // No agent: the test fails the VolumeBackup itself.
    let controller = Controller::start(&s.cluster, &[]);
    let created = s
        .cluster
        .wait_for(|o| o.iter().any(|(k, _)| k.1 == "volumebackups"), WAIT);
    assert!(created, "no VolumeBackup\n{}", controller.log());
    assert_eq!(s.cluster.execs().len(), 1, "only the pre hook so far");
    let vb = s.volume_backups_of("web-0").remove(0);
    let name = vb["metadata"]["name"].as_str().unwrap().to_owned();
    set_status(
        &s.cluster,
        "backup.cairn.io",
        "volumebackups",
        NS,
        &name,
        json!({"phase": "Failed", "message": "disk on fire"}),
    );
    let done = wait_phase(&s.cluster, &controller, "backups", "nightly", "PartiallyFailed");
    let execs = s.cluster.execs();
    assert_eq!(execs.len(), 2, "{execs:#?}");
    assert_eq!(execs[1].command, words(&["/bin/thaw"]));
    assert_eq!(seen_for(&execs[1].volumes_at_start, "web-0"), vec!["Failed".to_owned()]);
    let errors = strings(&done["status"]["errors"]).join("\n");
    assert!(errors.contains("post hook 0 in pod shop/web-0"), "{errors}");
    assert!(errors.contains("exited with code 7"), "{errors}");
    assert!(errors.contains("volume backup(s) failed"), "{errors}");
}

#[test]
fn spec_hooks_run_in_the_pods_they_select() {
    let s = setup();
    // db-0 has no volume: its post hook follows its pre hook at once.
    s.pod("db-0", false, json!({}), json!({"role": "db"}));
    s.pod("web-0", true, json!({}), json!({"role": "web"}));
    s.backup(
        "nightly",
        json!({"includedNamespaces": ["shop"],
               "hooks": {"resources": [
                   {"name": "databases", "includedNamespaces": ["shop"], "labelSelector": "role=db",
                    "pre": [{"command": ["psql", "-c", "CHECKPOINT"]}],
                    "post": [{"command": ["resume"], "container": "sidecar", "onError": "Continue"}]},
                   {"name": "other-namespaces", "excludedNamespaces": ["shop"],
                    "pre": [{"command": ["never"]}]}]}}),
    );
    let controller = Controller::start(&s.cluster, &[]);
    let _agent = s.agent();
    let done = wait_phase(&s.cluster, &controller, "backups", "nightly", "Completed");
    let execs = s.cluster.execs();
    let seen: Vec<(String, String, Vec<String>)> = execs
        .iter()
        .map(|e| (e.pod.clone(), e.container.clone(), e.command.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("db-0".into(), "app".into(), words(&["psql", "-c", "CHECKPOINT"])),
            ("db-0".into(), "sidecar".into(), words(&["resume"])),
        ]
    );
    assert_eq!(hooks_of(&done).len(), 2);
    assert_eq!(s.volume_backups_of("web-0").len(), 1);
}

#[test]
fn a_controller_restart_runs_no_hook_twice() {
    let s = setup();
    s.pod("web-0", true, freeze_annotations("Fail"), json!({}));
    s.backup("nightly", json!({"includedNamespaces": ["shop"]}));
    let mut controller = Controller::start(&s.cluster, &[]);
    // Pre hook done, the VolumeBackup waiting for an agent.
    let waiting = s.cluster.wait_for(
        |o| {
            o.get(&key("backups", "nightly"))
                .is_some_and(|b| b.pointer("/status/volumeBackups/total") == Some(&json!(1)))
        },
        WAIT,
    );
    assert!(waiting, "{}", controller.log());
    // The post hook is planned, not started.
    let hooks = hooks_of(&s.cluster.get("backup.cairn.io", "backups", NS, "nightly").unwrap());
    assert_eq!(hooks.len(), 2, "{hooks:#?}");
    assert_eq!(hooks[1]["phase"], "post");
    assert!(hooks[1]["startTimestamp"].is_null(), "{hooks:#?}");
    controller.kill();
    controller.restart();
    let _agent = s.agent();
    let done = wait_phase(&s.cluster, &controller, "backups", "nightly", "Completed");
    let commands: Vec<Vec<String>> = s.cluster.execs().into_iter().map(|e| e.command).collect();
    assert_eq!(
        commands,
        vec![words(&["/bin/freeze", "--all", "a b"]), words(&["/bin/thaw"])]
    );
    assert_eq!(hooks_of(&done).len(), 2);
}

#[test]
fn a_hook_interrupted_by_a_restart_is_not_run_again() {
    let s = setup();
    s.pod("web-0", true, freeze_annotations("Fail"), json!({}));
    s.cluster.script_exec(
        "shop",
        "web-0",
        "sidecar",
        &["/bin/freeze"],
        ExecResult {
            delay: Duration::from_secs(20),
            ..ExecResult::default()
        },
    );
    s.backup("nightly", json!({"includedNamespaces": ["shop"]}));
    let mut controller = Controller::start(&s.cluster, &[]);
    // The exec has started (it answers after 20 s).
    let deadline = std::time::Instant::now() + WAIT;
    while s.cluster.execs().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = !s.cluster.execs().is_empty();
    assert!(started, "{}", controller.log());
    controller.kill();
    controller.restart();
    let done = wait_phase(&s.cluster, &controller, "backups", "nightly", "PartiallyFailed");
    let execs: Vec<ExecCall> = s.cluster.execs();
    assert_eq!(execs.len(), 1, "{execs:#?}");
    assert!(s.volume_backups_of("web-0").is_empty());
    let hooks = hooks_of(&done);
    assert!(
        hooks[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("restarted while this hook ran"),
        "{hooks:#?}"
    );
}

#[test]
fn bad_hook_annotations_fail_with_a_clear_message() {
    let s = setup();
    s.pod(
        "web-0",
        true,
        json!({"pre.hook.backup.cairn.io/command": "/bin/freeze --all"}),
        json!({}),
    );
    s.pod(
        "web-1",
        false,
        json!({"pre.hook.backup.cairn.io/command": "[\"x\"]", "pre.hook.backup.cairn.io/container": "db"}),
        json!({}),
    );
    s.backup("nightly", json!({"includedNamespaces": ["shop"]}));
    let controller = Controller::start(&s.cluster, &[]);
    let done = wait_phase(&s.cluster, &controller, "backups", "nightly", "PartiallyFailed");
    assert!(s.cluster.execs().is_empty());
    assert!(s.volume_backups_of("web-0").is_empty());
    let errors = strings(&done["status"]["errors"]).join("\n");
    assert!(
        errors.contains("pod shop/web-0: annotation pre.hook.backup.cairn.io/command is not a JSON array"),
        "{errors}"
    );
    assert!(
        errors.contains("pod shop/web-1: annotation pre.hook.backup.cairn.io/container: no container \"db\""),
        "{errors}"
    );
    let events = events_of(&s.cluster, "nightly");
    assert!(events.iter().any(|e| e.1 == "HookFailed"), "{events:?}");
}

// ---- Exec over the wire ----

fn exec(
    cluster: &FakeCluster,
    pod: &str,
    container: &str,
    command: &[&str],
    timeout: Duration,
) -> Result<cairn::k8s::hooks::ExecOutcome, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(async {
            let client = cluster.client();
            cairn::k8s::hooks::exec(client, "shop", pod, container, &words(command), timeout).await
        })
        .map_err(|e| e.to_string())
}

#[test]
fn exec_sends_the_command_words_and_container_and_reads_the_status() {
    let s = setup();
    s.pod("web-0", false, json!({}), json!({}));
    s.cluster.script_exec(
        "shop",
        "web-0",
        "sidecar",
        &["sh", "-c"],
        ExecResult {
            stdout: "out\n".into(),
            stderr: "err\n".into(),
            exit_code: 3,
            ..ExecResult::default()
        },
    );
    let command = ["sh", "-c", "echo 'a&b' > /tmp/x; exit 3", "ü=?&+%"];
    let o = exec(&s.cluster, "web-0", "sidecar", &command, Duration::from_secs(10)).unwrap();
    assert_eq!(o.exit_code, Some(3));
    assert_eq!(o.output, "out\nerr\n");
    assert_eq!(o.failure.as_deref(), Some("exited with code 3"));
    let call = s.cluster.execs().remove(0);
    assert_eq!(call.command, words(&command), "no shell added, words as given");
    assert_eq!(call.container, "sidecar");
    assert!(call.query.contains("container=sidecar"));
    assert!(call.query.contains("stdout=true") && call.query.contains("stderr=true"));
    assert!(!call.query.contains("stdin=true") && !call.query.contains("tty=true"));
    assert_eq!(call.protocol, "v5.channel.k8s.io");

    let o = exec(&s.cluster, "web-0", "app", &["true"], Duration::from_secs(10)).unwrap();
    assert_eq!((o.exit_code, o.failure), (Some(0), None));
}

#[test]
fn exec_is_refused_as_the_api_server_refuses_it() {
    let s = setup();
    s.pod("web-0", false, json!({}), json!({}));
    let e = exec(&s.cluster, "nope", "app", &["true"], Duration::from_secs(10)).unwrap_err();
    assert!(e.contains("not found"), "{e}");
    let e = exec(&s.cluster, "web-0", "db", &["true"], Duration::from_secs(10)).unwrap_err();
    assert!(e.contains("container db is not valid for pod web-0"), "{e}");
    let e = exec(&s.cluster, "web-0", "app", &[], Duration::from_secs(10)).unwrap_err();
    assert!(e.contains("at least 1 command"), "{e}");
    s.cluster.state().seed(
        "",
        "pods",
        json!({"metadata": {"name": "done", "namespace": "shop"},
               "spec": {"nodeName": "node-2", "containers": [{"name": "app", "image": "x"}]},
               "status": {"phase": "Succeeded"}}),
    );
    let e = exec(&s.cluster, "done", "app", &["true"], Duration::from_secs(10)).unwrap_err();
    assert!(e.contains("completed pod"), "{e}");
    // A command that outlives its timeout: the wait ends.
    s.cluster.script_exec(
        "shop",
        "web-0",
        "",
        &["sleep"],
        ExecResult {
            delay: Duration::from_secs(30),
            ..ExecResult::default()
        },
    );
    let e = exec(&s.cluster, "web-0", "app", &["sleep", "30"], Duration::from_millis(500)).unwrap_err();
    assert!(e.contains("no answer within"), "{e}");
}

#[test]
fn a_hook_that_outlives_its_timeout_fails_and_the_backup_goes_on() {
    let s = setup();
    s.pod(
        "web-0",
        true,
        json!({"pre.hook.backup.cairn.io/command": "[\"/bin/slow\"]",
               "pre.hook.backup.cairn.io/timeout": "1s",
               "pre.hook.backup.cairn.io/on-error": "Continue"}),
        json!({}),
    );
    s.cluster.script_exec(
        "shop",
        "web-0",
        "",
        &["/bin/slow"],
        ExecResult {
            delay: Duration::from_secs(60),
            ..ExecResult::default()
        },
    );
    s.backup("nightly", json!({"includedNamespaces": ["shop"]}));
    let controller = Controller::start(&s.cluster, &[]);
    let _agent = s.agent();
    let done = wait_phase(&s.cluster, &controller, "backups", "nightly", "Completed");
    let warnings = strings(&done["status"]["warnings"]).join("\n");
    assert!(warnings.contains("no answer within 1s"), "{warnings}");
    assert_eq!(s.volume_backups_of("web-0").len(), 1);
    assert_eq!(s.cluster.execs().len(), 1);
}

/// Pods web-0 and web-1 sharing the claim `shared`; web-1 has a pre and a
/// post hook.
fn shared_claim() -> Setup {
    let s = setup();
    s.cluster.state().seed(
        "",
        "persistentvolumeclaims",
        json!({"metadata": {"name": "shared", "namespace": "shop"},
               "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}}),
    );
    for (name, annotations) in [
        ("web-0", json!({"backup.cairn.io/volumes": "data"})),
        (
            "web-1",
            json!({"backup.cairn.io/volumes": "data",
                   "pre.hook.backup.cairn.io/command": "[\"/bin/freeze\"]",
                   "post.hook.backup.cairn.io/command": "[\"/bin/thaw\"]"}),
        ),
    ] {
        s.cluster.state().seed(
            "",
            "pods",
            json!({"metadata": {"name": name, "namespace": "shop", "annotations": annotations},
                   "spec": {"containers": [{"name": "app", "image": "x",
                                            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "shared"}}]}}),
        );
    }
    let running = s.cluster.wait_for(
        |o| {
            ["web-0", "web-1"].iter().all(|n| {
                o.get(&(String::new(), "pods".into(), "shop".into(), (*n).into()))
                    .is_some_and(|p| p.pointer("/status/phase").and_then(Value::as_str) == Some("Running"))
            })
        },
        WAIT,
    );
    assert!(running);
    s
}

#[test]
fn post_hooks_wait_for_a_claim_backed_up_through_another_pod() {
    let s = shared_claim();
    s.backup("nightly", json!({"includedNamespaces": ["shop"]}));
    let controller = Controller::start(&s.cluster, &[]);
    let waiting = s.cluster.wait_for(
        |o| {
            o.get(&key("backups", "nightly"))
                .is_some_and(|b| b.pointer("/status/volumeBackups/total") == Some(&json!(1)))
        },
        WAIT,
    );
    assert!(waiting, "{}", controller.log());
    // The claim is taken once, through web-0; web-1's post hook waits for it.
    let vbs = s.volume_backups();
    assert_eq!(vbs.len(), 1);
    assert_eq!(vbs[0]["spec"]["pod"]["name"], "web-0");
    assert_eq!(s.cluster.execs().len(), 1, "only the pre hook so far");
    let name = vbs[0]["metadata"]["name"].as_str().unwrap().to_owned();
    set_status(
        &s.cluster,
        "backup.cairn.io",
        "volumebackups",
        NS,
        &name,
        json!({"phase": "Completed"}),
    );
    wait_phase(&s.cluster, &controller, "backups", "nightly", "Completed");
    let execs = s.cluster.execs();
    assert_eq!(execs.len(), 2, "{execs:#?}");
    assert_eq!(execs[1].command, words(&["/bin/thaw"]));
    assert_eq!(
        seen_for(&execs[1].volumes_at_start, "web-0"),
        vec!["Completed".to_owned()]
    );
}

#[test]
fn a_failed_pre_hook_keeps_a_shared_claim_out_whichever_pod_would_read_it() {
    let s = shared_claim();
    s.cluster
        .script_exec("shop", "web-1", "", &["/bin/freeze"], exit(1, "no\n"));
    s.backup("nightly", json!({"includedNamespaces": ["shop"]}));
    let controller = Controller::start(&s.cluster, &[]);
    let done = wait_phase(&s.cluster, &controller, "backups", "nightly", "PartiallyFailed");
    assert!(s.volume_backups().is_empty(), "{:#?}", s.volume_backups());
    assert_eq!(s.cluster.execs().len(), 1);
    let errors = strings(&done["status"]["errors"]).join("\n");
    assert!(errors.contains("pre hook 0 in pod shop/web-1"), "{errors}");
}
