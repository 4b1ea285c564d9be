//! Per-object rules of a restore: what is never restored, what is not run
//! again, and what the API server would refuse or misread in a backed-up
//! object (a Job's generated selector, a Pod's node and priority, a
//! Service's allocated node ports).

use serde_json::Value;

use super::normalise::ObjectPath;

/// Resources never restored, and why.
const NEVER: &[(&str, &str, &str)] = &[
    ("", "nodes", "nodes belong to the cluster's machines"),
    ("", "events", "events are history, not state"),
    ("events.k8s.io", "events", "events are history, not state"),
    (
        "storage.k8s.io",
        "csinodes",
        "each node's kubelet registers its CSINode itself",
    ),
    (
        "storage.k8s.io",
        "volumeattachments",
        "the attach/detach controller attaches volumes for the pods that run now",
    ),
];

/// The annotation of a mirror pod: the API server's copy of a node's
/// static pod.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The label of the APIServices the API server registers for its own
/// groups.
pub const AUTOMANAGED_LABEL: &str = "kube-aggregator.kubernetes.io/automanaged";

/// The label naming who manages an EndpointSlice, and the endpoint slice
/// controller's value.
pub const SLICE_MANAGER_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const SLICE_CONTROLLER: &str = "endpointslice-controller.k8s.io";

/// The labels the API server generates for a Job (and its selector) from
/// its uid.
pub const JOB_UID_LABELS: &[&str] = &["controller-uid", "batch.kubernetes.io/controller-uid"];

fn str_at<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.pointer("/metadata/labels")?.get(key)?.as_str()
}

/// The condition of a finished Job (`Complete` or `Failed` true), if any.
pub fn finished_job(job: &Value) -> Option<&str> {
    job.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .filter(|c| c.get("status").and_then(Value::as_str) == Some("True"))
        .filter_map(|c| c.get("type").and_then(Value::as_str))
        .find(|t| matches!(*t, "Complete" | "Failed"))
}

/// The phase of a finished Pod (`Succeeded` or `Failed`), if it is one.
pub fn finished_pod(pod: &Value) -> Option<&str> {
    Some(str_at(pod, "/status/phase")).filter(|p| matches!(*p, "Succeeded" | "Failed"))
}

/// Why an object is left out of a restore whatever else is restored, if
/// it is: resources that belong to the cluster or are history, objects the
/// cluster makes itself, and Jobs and Pods that have finished (restoring
/// them would run them again).
pub fn skip_reason(at: &ObjectPath, object: &Value) -> Option<String> {
    if let Some((_, _, why)) = NEVER.iter().find(|(g, p, _)| *g == at.group && *p == at.plural) {
        return Some((*why).to_owned());
    }
    match (at.group.as_str(), at.plural.as_str()) {
        ("apiregistration.k8s.io", "apiservices") if label(object, AUTOMANAGED_LABEL).is_some() => {
            Some("the API server registers it for a group of its own".into())
        }
        ("discovery.k8s.io", "endpointslices") if label(object, SLICE_MANAGER_LABEL) == Some(SLICE_CONTROLLER) => {
            Some("the endpoint slice controller recreates it from its service".into())
        }
        ("", "pods") => {
            let annotations = object.pointer("/metadata/annotations");
            if annotations.and_then(|a| a.get(MIRROR_ANNOTATION)).is_some() {
                return Some("a mirror pod: its node's kubelet recreates it from a static pod manifest".into());
            }
            finished_pod(object).map(|phase| format!("finished (phase {phase}): not run again"))
        }
        ("batch", "jobs") => {
            finished_job(object).map(|condition| format!("finished (condition {condition}): not run again"))
        }
        _ => None,
    }
}

fn remove(object: &mut Value, pointer: &str, keys: &[&str]) {
    if let Some(map) = object.pointer_mut(pointer).and_then(Value::as_object_mut) {
        for key in keys {
            map.remove(*key);
        }
    }
}

/// A Job as the API server takes it: unless its selector is manual, the
/// selector and the template's `controller-uid` labels the server
/// generated from the old uid are removed (it generates them anew; a
/// selector given without `manualSelector: true`, or a template label with
/// another uid, is refused). The `job-name` labels name the Job, which
/// keeps its name, and stay.
pub fn prepare_job(job: &mut Value) {
    if job.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    remove(job, "/spec/template/metadata/labels", JOB_UID_LABELS);
    remove(job, "/spec/selector/matchLabels", JOB_UID_LABELS);
    let selector_left = job.pointer("/spec/selector").is_some_and(|s| {
        s.get("matchLabels")
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
            || s.get("matchExpressions")
                .and_then(Value::as_array)
                .is_some_and(|m| !m.is_empty())
    });
    if !selector_left {
        remove(job, "/spec", &["selector"]);
    }
}

/// A Pod as a new cluster takes it: no `nodeName` (the node may be gone;
/// the scheduler picks one) and no `priority` (the Priority admission
/// plugin computes it from `priorityClassName` and refuses a pod that
/// carries another value).
pub fn prepare_pod(pod: &mut Value) {
    remove(pod, "/spec", &["nodeName", "priority"]);
}

/// The node ports written in a Service's last-applied configuration: the
/// ones its author chose (the others were allocated by the cluster).
pub fn explicit_node_ports(service: &Value) -> Vec<i64> {
    let text = str_at(
        service,
        "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
    );
    let Ok(applied) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    applied
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ports| {
            ports
                .iter()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
                .collect()
        })
        .unwrap_or_default()
}

/// A Service's node ports: all kept with `preserve`, else only the explicit
/// ones ([`explicit_node_ports`]); the cluster allocates the rest. The
/// health check node port goes unless kept.
pub fn prepare_service(service: &mut Value, preserve: bool) {
    if preserve {
        return;
    }
    let explicit = explicit_node_ports(service);
    let health = service.pointer("/spec/healthCheckNodePort").and_then(Value::as_i64);
    if !health.is_some_and(|h| explicit.contains(&h)) {
        remove(service, "/spec", &["healthCheckNodePort"]);
    }
    if let Some(ports) = service.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
        for port in ports {
            let node_port = port.get("nodePort").and_then(Value::as_i64);
            if !node_port.is_some_and(|n| explicit.contains(&n)) {
                remove(port, "", &["nodePort"]);
            }
        }
    }
}

/// The rewrites of this module for one object.
pub fn prepare(at: &ObjectPath, object: &mut Value, preserve_node_ports: bool) {
    match (at.group.as_str(), at.plural.as_str()) {
        ("batch", "jobs") => prepare_job(object),
        ("", "pods") => prepare_pod(object),
        ("", "services") => prepare_service(object, preserve_node_ports),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(group: &str, plural: &str, name: &str) -> ObjectPath {
        ObjectPath {
            group: group.into(),
            plural: plural.into(),
            namespace: Some("a".into()),
            name: name.into(),
        }
    }

    #[test]
    fn cluster_made_objects_are_never_restored() {
        let plain = json!({"metadata": {"name": "x"}});
        for (g, p) in [
            ("", "nodes"),
            ("", "events"),
            ("events.k8s.io", "events"),
            ("storage.k8s.io", "csinodes"),
            ("storage.k8s.io", "volumeattachments"),
        ] {
            assert!(skip_reason(&at(g, p, "x"), &plain).is_some(), "{g}/{p}");
        }
        let api = at("apiregistration.k8s.io", "apiservices", "v1.apps");
        let automanaged = json!({"metadata": {"name": "v1.apps", "labels": {AUTOMANAGED_LABEL: "onstart"}}});
        assert!(skip_reason(&api, &automanaged).is_some());
        assert_eq!(skip_reason(&api, &plain), None);
        let slices = at("discovery.k8s.io", "endpointslices", "s");
        let managed = json!({"metadata": {"labels": {SLICE_MANAGER_LABEL: SLICE_CONTROLLER}}});
        let by_hand = json!({"metadata": {"labels": {SLICE_MANAGER_LABEL: "me"}}});
        assert!(skip_reason(&slices, &managed)
            .unwrap()
            .contains("endpoint slice controller"));
        assert_eq!(skip_reason(&slices, &by_hand), None);
        assert_eq!(skip_reason(&slices, &plain), None);
    }

    #[test]
    fn finished_jobs_and_pods_and_mirror_pods_are_skipped() {
        let job = |kind: &str, status: &str| {
            json!({"status": {"conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                                             {"type": kind, "status": status}]}})
        };
        let jobs = at("batch", "jobs", "j");
        assert_eq!(
            skip_reason(&jobs, &job("Complete", "True")).unwrap(),
            "finished (condition Complete): not run again"
        );
        assert!(skip_reason(&jobs, &job("Failed", "True")).unwrap().contains("Failed"));
        assert_eq!(skip_reason(&jobs, &job("Complete", "False")), None);
        assert_eq!(skip_reason(&jobs, &json!({"spec": {}})), None);
        let pods = at("", "pods", "p");
        for phase in ["Succeeded", "Failed"] {
            let reason = skip_reason(&pods, &json!({"status": {"phase": phase}})).unwrap();
            assert_eq!(reason, format!("finished (phase {phase}): not run again"));
        }
        assert_eq!(skip_reason(&pods, &json!({"status": {"phase": "Running"}})), None);
        let mirror = json!({"metadata": {"annotations": {MIRROR_ANNOTATION: "abc"}}, "status": {"phase": "Running"}});
        assert!(skip_reason(&pods, &mirror).unwrap().contains("mirror pod"));
    }

    #[test]
    fn jobs_lose_their_generated_selector_and_uid_labels() {
        let labels = json!({"controller-uid": "old", "batch.kubernetes.io/controller-uid": "old",
                            "job-name": "j", "batch.kubernetes.io/job-name": "j", "app": "x"});
        let mut job = json!({"spec": {
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "old"}},
            "template": {"metadata": {"labels": labels}}}});
        prepare_job(&mut job);
        assert!(job["spec"].get("selector").is_none(), "{job}");
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"],
            json!({"job-name": "j", "batch.kubernetes.io/job-name": "j", "app": "x"})
        );
        // A manual selector is the author's: kept as it is.
        let mut manual = json!({"spec": {"manualSelector": true,
            "selector": {"matchLabels": {"controller-uid": "mine"}},
            "template": {"metadata": {"labels": {"controller-uid": "mine"}}}}});
        let before = manual.clone();
        prepare_job(&mut manual);
        assert_eq!(manual, before);
    }

    #[test]
    fn pods_lose_node_and_priority() {
        let mut pod = json!({"spec": {"nodeName": "node-7", "priority": 1000, "priorityClassName": "high",
                                      "containers": []}});
        prepare(&at("", "pods", "p"), &mut pod, false);
        assert_eq!(pod["spec"], json!({"priorityClassName": "high", "containers": []}));
    }

    #[test]
    fn services_keep_only_explicit_node_ports_unless_preserved() {
        let applied = json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}, {"port": 443}]}});
        let svc = json!({"metadata": {"annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": applied.to_string()}},
            "spec": {"type": "NodePort", "healthCheckNodePort": 31000,
                     "ports": [{"port": 80, "nodePort": 30080}, {"port": 443, "nodePort": 31443}]}});
        assert_eq!(explicit_node_ports(&svc), [30080]);
        let mut dropped = svc.clone();
        prepare(&at("", "services", "s"), &mut dropped, false);
        assert_eq!(
            dropped["spec"],
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}, {"port": 443}]})
        );
        let mut kept = svc.clone();
        prepare(&at("", "services", "s"), &mut kept, true);
        assert_eq!(kept, svc);
        let mut plain = json!({"spec": {"ports": [{"port": 80, "nodePort": 30001}]}});
        prepare_service(&mut plain, false);
        assert_eq!(plain["spec"]["ports"], json!([{"port": 80}]));
        assert!(explicit_node_ports(&json!({"metadata": {"annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": "not json"}}}))
        .is_empty());
    }
}
