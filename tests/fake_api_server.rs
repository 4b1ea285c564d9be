//! The tests' fake API server speaks the protocol a kube-runtime controller
//! relies on, checked with kube's own client: watch (order, bookmarks, 410
//! and relist, selectors, streaming lists), the status subresource,
//! patches, conflicts, field selectors, finalizers and deletion, generateName,
//! generation, garbage collection, injected failures and an outage.
#![cfg(feature = "k8s")]

mod k8s_support;

use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use serde_json::{json, Value};

use k8s_support::FakeCluster;

const WAIT: Duration = Duration::from_secs(10);

fn cluster() -> FakeCluster {
    let cluster = FakeCluster::empty();
    k8s_support::seed::volume_backups(&mut cluster.state());
    cluster
}

fn client(cluster: &FakeCluster) -> Client {
    cluster.client()
}

fn volume_backups(client: &Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("backup.cairn.io", "v1alpha1", "VolumeBackup");
    Api::namespaced_with(client.clone(), "cairn-system", &ApiResource::from_gvk(&gvk))
}

fn volume_backup(name: &str, node: &str) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "backup.cairn.io/v1alpha1", "kind": "VolumeBackup",
        "metadata": {"name": name}, "spec": {"node": node, "volume": "data"}}))
    .unwrap()
}

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

fn api_status(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other}"),
    }
}

/// The next item of a stream, or a panic after `WAIT`.
async fn next<S: Stream + Unpin>(s: &mut S) -> S::Item {
    tokio::time::timeout(WAIT, s.next())
        .await
        .expect("no event in time")
        .expect("stream ended")
}

/// Watch events, skipping bookmarks, as (type, name).
async fn next_change<K: kube::Resource, S>(s: &mut S) -> (String, String)
where
    S: Stream<Item = kube::Result<WatchEvent<K>>> + Unpin,
{
    loop {
        let kind = match next(s).await.unwrap() {
            WatchEvent::Added(o) => ("ADDED", o.meta().name.clone()),
            WatchEvent::Modified(o) => ("MODIFIED", o.meta().name.clone()),
            WatchEvent::Deleted(o) => ("DELETED", o.meta().name.clone()),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        };
        return (kind.0.to_owned(), kind.1.unwrap_or_default());
    }
}

fn change(kind: &str, name: &str) -> (String, String) {
    (kind.to_owned(), name.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_create_modify_delete_in_order_from_a_resource_version() {
    let cluster = cluster();
    let client = client(&cluster);
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &config_map("before")).await.unwrap();
    let list = api.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.clone().unwrap();
    assert!(!rv.is_empty(), "lists carry metadata.resourceVersion");
    let mut events = api
        .watch(&WatchParams::default().timeout(30), &rv)
        .await
        .unwrap()
        .boxed();

    api.create(&PostParams::default(), &config_map("a")).await.unwrap();
    let patch = Patch::Merge(json!({"data": {"k": "changed"}}));
    api.patch("a", &PatchParams::default(), &patch).await.unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();

    assert_eq!(next_change(&mut events).await, change("ADDED", "a"));
    assert_eq!(next_change(&mut events).await, change("MODIFIED", "a"));
    assert_eq!(next_change(&mut events).await, change("DELETED", "a"));

    // From "0": the current state first, as ADDED.
    let mut from_start = api.watch(&WatchParams::default(), "0").await.unwrap().boxed();
    assert_eq!(next_change(&mut from_start).await, change("ADDED", "before"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_arrive_with_the_current_resource_version() {
    let cluster = cluster();
    cluster.set_bookmark_interval(Duration::from_millis(100));
    let api: Api<ConfigMap> = Api::namespaced(client(&cluster), "default");
    api.create(&PostParams::default(), &config_map("a")).await.unwrap();
    let rv = cluster.state().resource_version();
    let mut events = api
        .watch(&WatchParams::default(), &rv.to_string())
        .await
        .unwrap()
        .boxed();
    match next(&mut events).await.unwrap() {
        WatchEvent::Bookmark(b) => assert_eq!(b.metadata.resource_version, rv.to_string()),
        other => panic!("expected a bookmark, got {other:?}"),
    }
    // Without allowWatchBookmarks there are none: the stream ends silent.
    let quiet = WatchParams::default().disable_bookmarks().timeout(1);
    let events: Vec<_> = api.watch(&quiet, &rv.to_string()).await.unwrap().collect().await;
    assert!(events.is_empty(), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_resource_version_is_410_and_the_watcher_relists() {
    let cluster = cluster();
    let client = client(&cluster);
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &config_map("a")).await.unwrap();
    let old = cluster.state().resource_version();

    let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
    loop {
        if let watcher::Event::InitDone = next(&mut stream).await.unwrap() {
            break;
        }
    }
    let lists_before = cluster.log().iter().filter(|l| !l.query.contains("watch=")).count();
    cluster.compact();

    // A watch from a compacted version: 200, then one ERROR event with a
    // 410 Status, as the real server sends it.
    let mut gone = api
        .watch(&WatchParams::default(), &old.to_string())
        .await
        .unwrap()
        .boxed();
    match next(&mut gone).await.unwrap() {
        WatchEvent::Error(s) => {
            assert_eq!(s.code, 410);
            assert_eq!(s.reason, "Expired");
            assert!(s.message.starts_with("too old resource version"), "{}", s.message);
        }
        other => panic!("expected 410, got {other:?}"),
    }

    api.create(&PostParams::default(), &config_map("b")).await.unwrap();
    let mut saw_410 = false;
    let mut relisted = false;
    loop {
        match next(&mut stream).await {
            Err(watcher::Error::WatchError(s)) if s.code == 410 => saw_410 = true,
            Err(e) => panic!("unexpected watcher error {e}"),
            Ok(watcher::Event::Init) => relisted = true,
            Ok(watcher::Event::InitApply(cm)) if cm.metadata.name.as_deref() == Some("b") => break,
            Ok(watcher::Event::Apply(cm)) if cm.metadata.name.as_deref() == Some("b") => break,
            Ok(_) => {}
        }
    }
    assert!(saw_410, "the watcher was told its version is gone");
    assert!(relisted, "the watcher listed again");
    let lists_after = cluster.log().iter().filter(|l| !l.query.contains("watch=")).count();
    assert!(lists_after > lists_before + 1, "a new list was made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_watcher_and_a_streaming_list_both_see_changes() {
    let cluster = cluster();
    let api = volume_backups(&client(&cluster));
    api.create(&PostParams::default(), &volume_backup("one", "node-1"))
        .await
        .unwrap();
    for config in [watcher::Config::default(), watcher::Config::default().streaming_lists()] {
        let mut stream = watcher(api.clone(), config).boxed();
        let mut initial = Vec::new();
        loop {
            match next(&mut stream).await.unwrap() {
                watcher::Event::InitApply(o) => initial.push(o.metadata.name.unwrap()),
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
        assert_eq!(initial, ["one"]);
        let name = format!("new-{}", cluster.state().resource_version());
        api.create(&PostParams::default(), &volume_backup(&name, "node-2"))
            .await
            .unwrap();
        loop {
            if let watcher::Event::Apply(o) = next(&mut stream).await.unwrap() {
                assert_eq!(o.metadata.name.as_deref(), Some(name.as_str()));
                break;
            }
        }
        api.delete(&name, &DeleteParams::default()).await.unwrap();
        loop {
            if let watcher::Event::Delete(o) = next(&mut stream).await.unwrap() {
                assert_eq!(o.metadata.name.as_deref(), Some(name.as_str()));
                break;
            }
        }
    }
    let streaming = cluster.log().iter().any(|l| l.query.contains("sendInitialEvents=true"));
    assert!(streaming, "the streaming list asked for initial events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_subresource_is_written_apart_from_the_object() {
    let cluster = cluster();
    let client = client(&cluster);
    let api = volume_backups(&client);
    let mut vb = volume_backup("vb", "node-1");
    vb.data["status"] = json!({"phase": "Completed"});
    let created = api.create(&PostParams::default(), &vb).await.unwrap();
    assert!(created.data.get("status").is_none(), "status is dropped on create");
    assert_eq!(created.metadata.generation, Some(1));

    let status = Patch::Merge(json!({"status": {"phase": "InProgress"}, "spec": {"node": "elsewhere"}}));
    let patched = api.patch_status("vb", &PatchParams::default(), &status).await.unwrap();
    assert_eq!(patched.data["status"]["phase"], "InProgress");
    assert_eq!(
        patched.data["spec"]["node"], "node-1",
        "a status write leaves spec alone"
    );
    assert_eq!(patched.metadata.generation, Some(1), "status does not move generation");

    let mut main = patched.clone();
    main.data["status"] = json!({"phase": "Failed"});
    main.data["spec"]["node"] = json!("node-2");
    let replaced = api.replace("vb", &PostParams::default(), &main).await.unwrap();
    assert_eq!(
        replaced.data["status"]["phase"], "InProgress",
        "the object's write leaves status alone"
    );
    assert_eq!(replaced.data["spec"]["node"], "node-2");
    assert_eq!(replaced.metadata.generation, Some(2));

    let labelled = Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}}));
    let relabelled = api.patch("vb", &PatchParams::default(), &labelled).await.unwrap();
    assert_eq!(
        relabelled.metadata.generation,
        Some(2),
        "metadata does not move generation"
    );
    assert_ne!(relabelled.metadata.resource_version, replaced.metadata.resource_version);

    // A built-in kind with a status subresource: Job, through its typed API.
    let jobs: Api<Job> = Api::namespaced(client.clone(), "cairn-system");
    let job: Job = serde_json::from_value(json!({"metadata": {"name": "prune"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "cairn"}]}}}}))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let ps = PatchParams::apply("test").force();
    let applied = Patch::Apply(json!({"apiVersion": "batch/v1", "kind": "Job", "status": {"active": 1}}));
    let j = jobs.patch_status("prune", &ps, &applied).await.unwrap();
    assert_eq!(j.status.unwrap().active, Some(1));
    cluster.finish_job("cairn-system", "prune", true);
    let done = jobs.get("prune").await.unwrap().status.unwrap();
    assert_eq!(done.succeeded, Some(1));
    assert!(done.completion_time.is_some());
    let conditions: Vec<_> = done.conditions.unwrap().into_iter().map(|c| c.type_).collect();
    assert!(conditions.contains(&"Complete".to_owned()), "{conditions:?}");

    // Kinds without a status subresource have no /status.
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    cms.create(&PostParams::default(), &config_map("c")).await.unwrap();
    let e = cms.get_status("c").await.unwrap_err();
    assert_eq!(api_status(e).code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_resource_versions_and_existing_names_conflict() {
    let cluster = cluster();
    let client = client(&cluster);
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let first = api.create(&PostParams::default(), &config_map("a")).await.unwrap();
    let e = api_status(api.create(&PostParams::default(), &config_map("a")).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(e.message, "configmaps \"a\" already exists");

    let mut second = first.clone();
    second.data = Some([("k".to_owned(), "2".to_owned())].into());
    api.replace("a", &PostParams::default(), &second).await.unwrap();
    // The first version is stale now.
    let e = api_status(api.replace("a", &PostParams::default(), &first).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        e.message,
        "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let stale =
        Patch::Merge(json!({"metadata": {"resourceVersion": first.metadata.resource_version}, "data": {"k": "3"}}));
    let e = api_status(api.patch("a", &PatchParams::default(), &stale).await.unwrap_err());
    assert_eq!(e.code, 409);

    // Custom resources take no unconditional update.
    let vbs = volume_backups(&client);
    vbs.create(&PostParams::default(), &volume_backup("vb", "n"))
        .await
        .unwrap();
    let e = api_status(
        vbs.replace("vb", &PostParams::default(), &volume_backup("vb", "m"))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 422);
    assert!(e.message.contains("must be specified for an update"), "{}", e.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_selectors_filter_lists_and_watches_and_reject_unknown_fields() {
    let cluster = cluster();
    let client = client(&cluster);
    let vbs = volume_backups(&client);
    for (name, node) in [("a", "node-1"), ("b", "node-2"), ("c", "node-1")] {
        vbs.create(&PostParams::default(), &volume_backup(name, node))
            .await
            .unwrap();
    }
    let names = |list: kube::core::ObjectList<DynamicObject>| -> Vec<String> {
        list.items.into_iter().map(|o| o.metadata.name.unwrap()).collect()
    };
    let on = vbs
        .list(&ListParams::default().fields("spec.node=node-1"))
        .await
        .unwrap();
    assert_eq!(names(on), ["a", "c"]);
    let off = vbs
        .list(&ListParams::default().fields("spec.node!=node-1"))
        .await
        .unwrap();
    assert_eq!(names(off), ["b"]);
    let both = vbs
        .list(&ListParams::default().fields("spec.node==node-1,metadata.name!=a"))
        .await
        .unwrap();
    assert_eq!(names(both), ["c"]);
    let by_name = vbs
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(names(by_name), ["b"]);

    let e = api_status(
        vbs.list(&ListParams::default().fields("spec.volume=data"))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"));
    assert!(
        e.message.ends_with("field label not supported: spec.volume"),
        "{}",
        e.message
    );
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let e = api_status(cms.list(&ListParams::default().fields("data.k=v")).await.unwrap_err());
    assert_eq!(e.code, 400);

    // A watch with a field selector sees objects enter and leave it.
    let rv = cluster.state().resource_version().to_string();
    let mut w = vbs
        .watch(&WatchParams::default().fields("spec.node=node-2"), &rv)
        .await
        .unwrap()
        .boxed();
    vbs.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"node": "node-2"}})),
    )
    .await
    .unwrap();
    vbs.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"volume": "x"}})),
    )
    .await
    .unwrap();
    vbs.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"node": "node-3"}})),
    )
    .await
    .unwrap();
    assert_eq!(next_change(&mut w).await, change("ADDED", "a"));
    assert_eq!(next_change(&mut w).await, change("DELETED", "b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_hold_a_deleted_object_until_the_last_is_removed() {
    let cluster = cluster();
    let api = volume_backups(&client(&cluster));
    api.create(&PostParams::default(), &volume_backup("vb", "n"))
        .await
        .unwrap();
    // Added the way kube-runtime's finalizer helper adds the first one: a
    // test that the (missing) list is null, then an add.
    let ops = |v: Value| Patch::Json::<()>(serde_json::from_value(v).unwrap());
    let add_first = ops(json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                               {"op": "add", "path": "/metadata/finalizers", "value": ["backup.cairn.io/forget"]}]));
    let vb = api.patch("vb", &PatchParams::default(), &add_first).await.unwrap();
    assert_eq!(vb.metadata.finalizers, Some(vec!["backup.cairn.io/forget".to_owned()]));
    let e = api_status(api.patch("vb", &PatchParams::default(), &add_first).await.unwrap_err());
    assert_eq!(e.code, 422, "the test fails once the list exists");
    let rv = cluster.state().resource_version().to_string();
    let mut w = api.watch(&WatchParams::default(), &rv).await.unwrap().boxed();

    let deleted = api.delete("vb", &DeleteParams::default()).await.unwrap();
    let held = deleted.left().expect("the object comes back while finalizers hold it");
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(held.metadata.deletion_grace_period_seconds, Some(0));
    assert_eq!(next_change(&mut w).await, change("MODIFIED", "vb"));
    assert!(api.get("vb").await.is_ok());

    let add = Patch::Merge(json!({"metadata": {"finalizers": ["backup.cairn.io/forget", "other"]}}));
    let e = api_status(api.patch("vb", &PatchParams::default(), &add).await.unwrap_err());
    assert_eq!(e.code, 422);
    assert!(
        e.message
            .contains("no new finalizers can be added if the object is being deleted"),
        "{}",
        e.message
    );

    // Removed as the helper removes it: test the index, then remove it.
    let clear = ops(
        json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "backup.cairn.io/forget"},
                           {"op": "remove", "path": "/metadata/finalizers/0"}]),
    );
    api.patch("vb", &PatchParams::default(), &clear).await.unwrap();
    assert_eq!(next_change(&mut w).await, change("DELETED", "vb"));
    let e = api_status(api.get("vb").await.unwrap_err());
    assert_eq!(e.code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_name_and_server_owned_metadata() {
    let cluster = cluster();
    let api: Api<ConfigMap> = Api::namespaced(client(&cluster), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"generateName": "run-", "uid": "mine"}})).unwrap();
    let a = api.create(&PostParams::default(), &cm).await.unwrap();
    let b = api.create(&PostParams::default(), &cm).await.unwrap();
    let (na, nb) = (a.metadata.name.unwrap(), b.metadata.name.unwrap());
    assert!(na.starts_with("run-") && na.len() == "run-".len() + 5, "{na}");
    assert_ne!(na, nb);
    assert_ne!(a.metadata.uid.as_deref(), Some("mine"), "the server sets uid");
    assert_ne!(a.metadata.uid, b.metadata.uid);
    assert!(a.metadata.creation_timestamp.is_some());
    let (ra, rb): (u64, u64) = (
        a.metadata.resource_version.unwrap().parse().unwrap(),
        b.metadata.resource_version.unwrap().parse().unwrap(),
    );
    assert!(rb > ra, "one global counter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_merge_json_strategic_and_apply_behave_as_the_server() {
    let cluster = cluster();
    let client = client(&cluster);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let dep: Deployment = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}}}))
    .unwrap();
    deployments.create(&PostParams::default(), &dep).await.unwrap();
    // Strategic merge: containers merge by name.
    let smp =
        Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}}));
    let d = deployments.patch("web", &PatchParams::default(), &smp).await.unwrap();
    let images: Vec<_> = d
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers
        .into_iter()
        .map(|c| c.image.unwrap())
        .collect();
    assert_eq!(images, ["a:1", "b:2"]);
    assert_eq!(d.metadata.generation, Some(2));

    // Custom resources refuse strategic merge patches.
    let vbs = volume_backups(&client);
    vbs.create(&PostParams::default(), &volume_backup("vb", "n"))
        .await
        .unwrap();
    let e = api_status(
        vbs.patch("vb", &PatchParams::default(), &Patch::Strategic(json!({"spec": {}})))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (415, "UnsupportedMediaType"));

    // JSON patch: a failing test is 422 and changes nothing.
    let ops = |v: Value| Patch::Json::<()>(serde_json::from_value(v).unwrap());
    let failing = ops(
        json!([{"op": "test", "path": "/spec/node", "value": "other"}, {"op": "replace", "path": "/spec/node", "value": "x"}]),
    );
    let e = api_status(vbs.patch("vb", &PatchParams::default(), &failing).await.unwrap_err());
    assert_eq!(e.code, 422);
    assert_eq!(vbs.get("vb").await.unwrap().data["spec"]["node"], "n");
    let passing = ops(
        json!([{"op": "test", "path": "/spec/node", "value": "n"}, {"op": "replace", "path": "/spec/node", "value": "x"}]),
    );
    let o = vbs.patch("vb", &PatchParams::default(), &passing).await.unwrap();
    assert_eq!(o.data["spec"]["node"], "x");

    // Server-side apply: a field another manager owns conflicts unless forced.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let apply = |data: Value| {
        Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": data}))
    };
    cms.patch("cfg", &PatchParams::apply("one"), &apply(json!({"x": "1", "y": "1"})))
        .await
        .unwrap();
    let e = api_status(
        cms.patch("cfg", &PatchParams::apply("two"), &apply(json!({"x": "2"})))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert!(e.message.contains("conflict with \"one\""), "{}", e.message);
    // The same value is shared ownership, not a conflict.
    cms.patch("cfg", &PatchParams::apply("two"), &apply(json!({"y": "1"})))
        .await
        .unwrap();
    let forced = cms
        .patch(
            "cfg",
            &PatchParams::apply("two").force(),
            &apply(json!({"x": "2", "y": "1"})),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["x"], "2");
    // A field its manager stops applying goes, unless someone else owns it.
    let c = cms
        .patch("cfg", &PatchParams::apply("one"), &apply(json!({"z": "1"})))
        .await
        .unwrap();
    let data = c.data.unwrap();
    assert_eq!(data.get("x").map(String::as_str), Some("2"), "x belongs to two");
    assert_eq!(data.get("y").map(String::as_str), Some("1"), "y is shared with two");
    assert_eq!(data.get("z").map(String::as_str), Some("1"));
    let managers: Vec<_> = c
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.contains(&"one".to_owned()) && managers.contains(&"two".to_owned()),
        "{managers:?}"
    );
    // Apply without a field manager is refused.
    let e = api_status(
        cms.patch("cfg", &PatchParams::default(), &apply(json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_owners_collections_and_definitions_takes_what_they_hold() {
    let cluster = cluster();
    let client = client(&cluster);
    let vbs = volume_backups(&client);
    let owner = vbs
        .create(&PostParams::default(), &volume_backup("owner", "n"))
        .await
        .unwrap();
    let jobs: Api<Job> = Api::namespaced(client, "cairn-system");
    let job: Job = serde_json::from_value(json!({"metadata": {"name": "owned", "ownerReferences": [{
        "apiVersion": "backup.cairn.io/v1alpha1", "kind": "VolumeBackup", "name": "owner",
        "uid": owner.metadata.uid, "controller": true}]},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "cairn"}]}}}}))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    assert_eq!(cluster.count("batch", "jobs"), 1);
    vbs.delete("owner", &DeleteParams::background()).await.unwrap();
    assert!(cluster.wait_for(|o| !o.keys().any(|k| k.1 == "jobs"), WAIT));

    // deletecollection with a selector; then the definition takes the rest.
    for (name, node) in [("a", "n1"), ("b", "n2"), ("c", "n1")] {
        vbs.create(&PostParams::default(), &volume_backup(name, node))
            .await
            .unwrap();
    }
    let deleted = vbs
        .delete_collection(&DeleteParams::default(), &ListParams::default().fields("spec.node=n1"))
        .await
        .unwrap();
    let names: Vec<String> = deleted
        .left()
        .unwrap()
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .collect();
    assert_eq!(names, ["a", "c"]);
    assert_eq!(cluster.count("backup.cairn.io", "volumebackups"), 1);
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(cluster.client());
    crds.delete("volumebackups.backup.cairn.io", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(cluster.count("backup.cairn.io", "volumebackups"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_failures_and_an_outage_are_survived_by_the_watcher() {
    let cluster = cluster();
    let api: Api<ConfigMap> = Api::namespaced(client(&cluster), "default");
    cluster.fail_next(1, 500);
    let e = api_status(api.get("nothing").await.unwrap_err());
    assert_eq!(e.code, 500);
    let e = api_status(api.get("nothing").await.unwrap_err());
    assert_eq!(e.code, 404, "only the next request failed");
    // kube's client retries a 503 on its own: the second try answers.
    let before = cluster.log().len();
    cluster.fail_next(1, 503);
    let e = api_status(api.get("nothing").await.unwrap_err());
    assert_eq!(e.code, 404);
    assert_eq!(cluster.log().len(), before + 2, "one failed request, one retry");

    let mut stream = watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .boxed();
    loop {
        if let watcher::Event::InitDone = next(&mut stream).await.unwrap() {
            break;
        }
    }
    cluster.stop();
    assert!(api.list(&ListParams::default()).await.is_err(), "the server is down");
    cluster.state().seed(
        "",
        "configmaps",
        json!({"metadata": {"name": "during", "namespace": "default"}}),
    );
    cluster.restart();
    let seen = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match stream.next().await {
                Some(Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)))
                    if o.metadata.name.as_deref() == Some("during") =>
                {
                    return true
                }
                Some(_) => {}
                None => return false,
            }
        }
    })
    .await;
    assert_eq!(
        seen,
        Ok(true),
        "the watcher came back after the outage and saw the change"
    );
    assert!(api.get("during").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_namespace_terminates_and_goes_when_empty() {
    let cluster = cluster();
    let client = client(&cluster);
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": "shop"}})).unwrap();
    let created = namespaces.create(&PostParams::default(), &ns).await.unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "shop");
    cms.create(&PostParams::default(), &config_map("plain")).await.unwrap();
    let mut held = config_map("held");
    held.metadata.finalizers = Some(vec!["example.com/hold".to_owned()]);
    cms.create(&PostParams::default(), &held).await.unwrap();

    namespaces.delete("shop", &DeleteParams::default()).await.unwrap();
    let terminating = namespaces.get("shop").await.unwrap();
    assert_eq!(terminating.status.unwrap().phase.as_deref(), Some("Terminating"));
    assert!(cms.get("plain").await.is_err(), "content without finalizers is gone");
    let e = api_status(
        cms.create(&PostParams::default(), &config_map("late"))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 403);
    assert!(e.message.contains("because it is being terminated"), "{}", e.message);

    let release = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    cms.patch("held", &PatchParams::default(), &release).await.unwrap();
    assert!(cluster.wait_for(|o| !o.keys().any(|k| k.1 == "namespaces" && k.3 == "shop"), WAIT));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_events_daemonsets_and_label_selectors_are_served() {
    use k8s_openapi::api::coordination::v1::Lease;
    let cluster = cluster();
    let client = client(&cluster);
    let leases: Api<Lease> = Api::namespaced(client.clone(), "cairn-system");
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "cairn-controller"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}))
    .unwrap();
    let held = leases.create(&PostParams::default(), &lease).await.unwrap();
    // Taking over a lease from a stale read loses: that is how leader
    // election stays single.
    let mut mine = held.clone();
    mine.spec.as_mut().unwrap().holder_identity = Some("b".into());
    leases
        .replace("cairn-controller", &PostParams::default(), &mine)
        .await
        .unwrap();
    let mut theirs = held;
    theirs.spec.as_mut().unwrap().holder_identity = Some("c".into());
    let e = api_status(
        leases
            .replace("cairn-controller", &PostParams::default(), &theirs)
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 409);

    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "cairn-system");
    let ev: k8s_openapi::api::events::v1::Event =
        serde_json::from_value(json!({"metadata": {"generateName": "backup-"},
        "eventTime": "2026-01-01T00:00:00.000000Z", "reason": "Started", "action": "Backup",
        "reportingController": "cairn", "reportingInstance": "cairn-1", "type": "Normal"}))
        .unwrap();
    events.create(&PostParams::default(), &ev).await.unwrap();
    assert_eq!(cluster.count("events.k8s.io", "events"), 1);

    let daemonsets: Api<k8s_openapi::api::apps::v1::DaemonSet> = Api::namespaced(client.clone(), "cairn-system");
    assert!(daemonsets.list(&ListParams::default()).await.unwrap().items.is_empty());
    let labelled = |name: &str, tier: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": {"tier": tier}}})).unwrap()
    };
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    cms.create(&PostParams::default(), &labelled("f", "front"))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &labelled("b", "back"))
        .await
        .unwrap();
    let front = cms.list(&ListParams::default().labels("tier=front")).await.unwrap();
    assert_eq!(front.items.len(), 1);
}
