//! A kube-runtime controller runs against the tests' fake API server: its
//! watcher, its finalizer helper (JSON patches with tests), and status
//! written by server-side apply.
#![cfg(feature = "k8s")]

mod k8s_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{finalizer, Event};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::{json, Value};

use k8s_support::{FakeCluster, Key};

const WAIT: Duration = Duration::from_secs(10);

fn volume_backups(client: &Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("backup.cairn.io", "v1alpha1", "VolumeBackup");
    Api::namespaced_with(client.clone(), "cairn-system", &ApiResource::from_gvk(&gvk))
}

fn volume_backup(name: &str, node: &str) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "backup.cairn.io/v1alpha1", "kind": "VolumeBackup",
        "metadata": {"name": name}, "spec": {"node": node, "volume": "data"}}))
    .unwrap()
}

/// What the test controller shares with its reconciler.
struct Ctx {
    api: Api<DynamicObject>,
    cleaned: AtomicUsize,
}

type ReconcileError = kube::runtime::finalizer::Error<kube::Error>;

async fn reconcile(
    obj: Arc<DynamicObject>,
    ctx: Arc<Ctx>,
) -> Result<kube::runtime::controller::Action, ReconcileError> {
    let api = ctx.api.clone();
    finalizer(&api.clone(), "backup.cairn.io/test", obj, |event| async move {
        match event {
            Event::Apply(vb) => {
                let status = Patch::Apply(json!({"apiVersion": "backup.cairn.io/v1alpha1", "kind": "VolumeBackup",
                                                 "status": {"phase": "Completed"}}));
                let name = vb.metadata.name.clone().unwrap_or_default();
                api.patch_status(&name, &PatchParams::apply("test-controller").force(), &status)
                    .await?;
                Ok(Action::await_change())
            }
            Event::Cleanup(_) => {
                ctx.cleaned.fetch_add(1, Ordering::SeqCst);
                Ok(Action::await_change())
            }
        }
    })
    .await
}

/// Polls the fake's store until `condition` holds, or `WAIT` passes.
async fn eventually(cluster: &FakeCluster, condition: impl Fn(&BTreeMap<Key, Value>) -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if condition(&cluster.state().objects) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kube_runtime_controller_with_a_finalizer_reconciles_and_cleans_up() {
    let cluster = FakeCluster::empty();
    k8s_support::seed::volume_backups(&mut cluster.state());
    let api = volume_backups(&cluster.client());
    let gvk = GroupVersionKind::gvk("backup.cairn.io", "v1alpha1", "VolumeBackup");
    let ctx = Arc::new(Ctx {
        api: api.clone(),
        cleaned: Default::default(),
    });
    let controller = Controller::new_with(api.clone(), watcher::Config::default(), ApiResource::from_gvk(&gvk))
        .run(
            reconcile,
            |_, _: &ReconcileError, _| Action::requeue(Duration::from_millis(100)),
            ctx.clone(),
        )
        .for_each(|_| async {});
    let running = tokio::spawn(controller);

    api.create(&PostParams::default(), &volume_backup("vb", "node-1"))
        .await
        .unwrap();
    let key = (
        "backup.cairn.io".to_owned(),
        "volumebackups".to_owned(),
        "cairn-system".to_owned(),
        "vb".to_owned(),
    );
    let done = eventually(&cluster, |o| {
        o.get(&key).is_some_and(|vb| {
            vb["status"]["phase"] == "Completed" && vb["metadata"]["finalizers"] == json!(["backup.cairn.io/test"])
        })
    })
    .await;
    assert!(
        done,
        "reconciled: {:?}",
        cluster.get("backup.cairn.io", "volumebackups", "cairn-system", "vb")
    );

    api.delete("vb", &DeleteParams::default()).await.unwrap();
    assert!(
        eventually(&cluster, |o| !o.contains_key(&key)).await,
        "the finalizer was removed"
    );
    assert_eq!(ctx.cleaned.load(Ordering::SeqCst), 1);
    running.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_lists_ten_thousand_objects_page_by_page_then_watches() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let cluster = FakeCluster::empty();
    {
        let mut s = cluster.state();
        k8s_support::seed::volume_backups(&mut s);
        for i in 0..10_000 {
            s.seed(
                "",
                "configmaps",
                json!({"metadata": {"name": format!("cm-{i:05}"), "namespace": "default"}}),
            );
        }
    }
    let api: Api<ConfigMap> = Api::all(cluster.client());
    let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
    let mut listed = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let event = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match event {
            watcher::Event::InitApply(_) => listed += 1,
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(listed, 10_000);
    let pages = cluster.log().iter().filter(|l| l.query.contains("limit=500")).count();
    assert_eq!(pages, 20, "pages of 500");
    let namespaced: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "late"}})).unwrap();
    namespaced.create(&PostParams::default(), &cm).await.unwrap();
    loop {
        let event = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let watcher::Event::Apply(o) = event {
            assert_eq!(o.metadata.name.as_deref(), Some("late"));
            break;
        }
    }
}
