use std::collections::BTreeSet;

use serde_json::json;

use super::*;

fn pod(annotations: serde_json::Value, volumes: serde_json::Value, mounts: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web-0", "namespace": "shop", "uid": "u-1", "annotations": annotations},
        "spec": {"containers": [{"name": "app", "image": "x", "volumeMounts": mounts}], "volumes": volumes}
    }))
    .unwrap()
}

fn claim(name: &str, pv: Option<&str>, mode: &str) -> PersistentVolumeClaim {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": "shop"},
        "spec": {"volumeName": pv, "volumeMode": mode}}))
    .unwrap()
}

fn pv(name: &str, spec: serde_json::Value, annotations: serde_json::Value) -> PersistentVolume {
    serde_json::from_value(json!({"metadata": {"name": name, "annotations": annotations}, "spec": spec})).unwrap()
}

fn mounts(names: &[&str]) -> serde_json::Value {
    json!(names
        .iter()
        .map(|n| json!({"name": n, "mountPath": format!("/{n}")}))
        .collect::<Vec<_>>())
}

fn target(plan: &Plan) -> &VolumeTarget {
    match plan {
        Plan::Backup(t) => t,
        Plan::Skip { volume, reason } => panic!("{volume} skipped: {reason}"),
    }
}

fn skipped(plan: &Plan) -> &str {
    match plan {
        Plan::Skip { reason, .. } => reason,
        Plan::Backup(t) => panic!("{} planned", t.volume),
    }
}

#[test]
fn opt_in_takes_only_the_named_volumes_and_says_why_it_cannot() {
    let drivers = BTreeSet::new();
    let p = pod(
        json!({"backup.cairn.io/volumes": "data, cache ,conf"}),
        json!([{"name": "data", "emptyDir": {}}, {"name": "cache", "emptyDir": {}},
               {"name": "conf", "configMap": {"name": "c"}}, {"name": "other", "emptyDir": {}}]),
        mounts(&["data", "conf", "other"]),
    );
    let plans = plan_pod(
        &p,
        false,
        &Lookup {
            csi_drivers: &drivers,
            ..Lookup::default()
        },
    )
    .unwrap();
    assert_eq!(plans.len(), 3, "{plans:?}");
    let data = target(&plans[0]);
    assert_eq!(data.logical_path, "/volumes/shop/web-0/data");
    assert_eq!(
        data.location,
        HostLocation::PodVolume {
            pod_uid: "u-1".into(),
            plugin: Some("kubernetes.io~empty-dir".into()),
            dir: "data".into(),
            csi: false
        }
    );
    assert_eq!(skipped(&plans[1]), "no container mounts it");
    assert!(skipped(&plans[2]).contains("configMap"), "{plans:?}");
}

#[test]
fn opt_out_takes_the_rest_and_passes_over_manifest_volumes() {
    let drivers = BTreeSet::new();
    let p = pod(
        json!({"backup.cairn.io/volumes-excludes": "cache"}),
        json!([{"name": "data", "emptyDir": {}}, {"name": "cache", "emptyDir": {}},
               {"name": "token", "projected": {"sources": []}}, {"name": "host", "hostPath": {"path": "/etc"}}]),
        mounts(&["data", "cache", "token", "host"]),
    );
    let plans = plan_pod(
        &p,
        true,
        &Lookup {
            csi_drivers: &drivers,
            ..Lookup::default()
        },
    )
    .unwrap();
    assert_eq!(plans.len(), 1, "{plans:?}");
    assert_eq!(target(&plans[0]).volume, "data");
}

#[test]
fn claims_go_by_their_pv_and_keep_a_logical_path_of_the_claim() {
    let drivers = BTreeSet::from(["ebs.csi.aws.com".to_owned()]);
    let claims = [
        claim("data-web-0", Some("pvc-1"), "Filesystem"),
        claim("logs", Some("pvc-2"), "Filesystem"),
        claim("raw", Some("pvc-3"), "Block"),
        claim("pending", None, "Filesystem"),
    ];
    let volumes = [
        pv(
            "pvc-1",
            json!({"csi": {"driver": "ebs.csi.aws.com", "volumeHandle": "vol-1"}}),
            json!({}),
        ),
        // An in-tree spec served by CSI after migration.
        pv(
            "pvc-2",
            json!({"awsElasticBlockStore": {"volumeID": "vol-2"}}),
            json!({"pv.kubernetes.io/migrated-to": "ebs.csi.aws.com"}),
        ),
        pv("pvc-3", json!({"csi": {"driver": "x", "volumeHandle": "v"}}), json!({})),
    ];
    let p = pod(
        json!({}),
        json!([{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}},
               {"name": "logs", "persistentVolumeClaim": {"claimName": "logs"}},
               {"name": "raw", "persistentVolumeClaim": {"claimName": "raw"}},
               {"name": "pending", "persistentVolumeClaim": {"claimName": "pending"}},
               {"name": "gone", "persistentVolumeClaim": {"claimName": "gone"}}]),
        mounts(&["data", "logs", "raw", "pending", "gone"]),
    );
    let lookup = Lookup {
        claims: &claims,
        volumes: &volumes,
        csi_drivers: &drivers,
        host_path_root: None,
    };
    let plans = plan_pod(&p, true, &lookup).unwrap();
    let data = target(&plans[0]);
    assert_eq!(data.logical_path, "/volumes/shop/data-web-0");
    assert_eq!(data.pvc.as_deref(), Some("data-web-0"));
    assert_eq!(
        data.location,
        HostLocation::PodVolume {
            pod_uid: "u-1".into(),
            plugin: Some(CSI_PLUGIN_DIR.into()),
            dir: "pvc-1".into(),
            csi: true
        }
    );
    assert!(matches!(&target(&plans[1]).location, HostLocation::PodVolume { csi: true, dir, .. } if dir == "pvc-2"));
    assert!(skipped(&plans[2]).contains("block volume"), "{plans:?}");
    assert!(skipped(&plans[3]).contains("not bound"), "{plans:?}");
    assert!(
        skipped(&plans[4]).contains("claim shop/gone does not exist"),
        "{plans:?}"
    );
}

#[test]
fn host_path_volumes_only_below_the_root() {
    let drivers = BTreeSet::new();
    let claims = [
        claim("db", Some("pvc-9"), "Filesystem"),
        claim("etc", Some("pvc-8"), "Filesystem"),
    ];
    let volumes = [
        pv(
            "pvc-9",
            json!({"hostPath": {"path": "/opt/local-path-provisioner/pvc-9_shop_db"}}),
            json!({}),
        ),
        pv(
            "pvc-8",
            json!({"hostPath": {"path": "/opt/local-path-provisioner/../../etc"}}),
            json!({}),
        ),
    ];
    let p = pod(
        json!({}),
        json!([{"name": "db", "persistentVolumeClaim": {"claimName": "db"}},
               {"name": "etc", "persistentVolumeClaim": {"claimName": "etc"}}]),
        mounts(&["db", "etc"]),
    );
    let mut lookup = Lookup {
        claims: &claims,
        volumes: &volumes,
        csi_drivers: &drivers,
        host_path_root: None,
    };
    let plans = plan_pod(&p, true, &lookup).unwrap();
    assert!(skipped(&plans[0]).contains("no --host-path-root"), "{plans:?}");
    lookup.host_path_root = Some("/opt/local-path-provisioner");
    let plans = plan_pod(&p, true, &lookup).unwrap();
    assert_eq!(
        target(&plans[0]).location,
        HostLocation::HostPath {
            relative: "pvc-9_shop_db".into()
        }
    );
    assert!(skipped(&plans[1]).contains("outside --host-path-root"), "{plans:?}");
}

#[test]
fn below_root_compares_whole_components() {
    assert_eq!(below_root("/a/b/c", "/a").as_deref(), Some("b/c"));
    assert_eq!(below_root("/a//b/", "/a/").as_deref(), Some("b"));
    assert_eq!(below_root("/ab/c", "/a"), None);
    assert_eq!(below_root("/a", "/a"), None);
    assert_eq!(below_root("/a/./b", "/a"), None);
    assert_eq!(below_root("a/b", "/a"), None);
}

#[test]
fn block_devices_generic_ephemeral_and_inline_csi() {
    let drivers = BTreeSet::new();
    let claims = [claim("web-0-scratch", Some("pvc-5"), "Filesystem")];
    let volumes = [pv(
        "pvc-5",
        json!({"csi": {"driver": "d", "volumeHandle": "h"}}),
        json!({}),
    )];
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web-0", "namespace": "shop", "uid": "u-1",
                     "annotations": {"backup.cairn.io/exclude-paths": "tmp/**, *.log"}},
        "spec": {"containers": [{"name": "app", "image": "x",
                    "volumeMounts": [{"name": "scratch", "mountPath": "/s"}, {"name": "inline", "mountPath": "/i"}],
                    "volumeDevices": [{"name": "disk", "devicePath": "/dev/xvdb"}]}],
                 "volumes": [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                             {"name": "inline", "csi": {"driver": "secrets-store"}},
                             {"name": "disk", "persistentVolumeClaim": {"claimName": "disk"}}]}
    }))
    .unwrap();
    let lookup = Lookup {
        claims: &claims,
        volumes: &volumes,
        csi_drivers: &drivers,
        host_path_root: None,
    };
    let plans = plan_pod(&p, true, &lookup).unwrap();
    assert_eq!(target(&plans[0]).logical_path, "/volumes/shop/web-0-scratch");
    assert!(matches!(&target(&plans[1]).location, HostLocation::PodVolume { csi: true, dir, .. } if dir == "inline"));
    assert!(skipped(&plans[2]).contains("block volume"), "{plans:?}");
    assert_eq!(exclude_paths(&p), ["tmp/**", "*.log"]);
}

#[test]
fn a_pod_without_uid_is_refused_naming_it() {
    let mut p = pod(json!({}), json!([]), json!([]));
    p.metadata.uid = None;
    let drivers = BTreeSet::new();
    let err = plan_pod(
        &p,
        true,
        &Lookup {
            csi_drivers: &drivers,
            ..Lookup::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "pod shop/web-0 has no uid");
}
