//! Which hooks a Backup runs in a pod: the pod's annotations
//! (`pre.hook.backup.cairn.io/{container,command,on-error,timeout}` and the
//! same with `post.`), or else the Backup's `spec.hooks.resources` that
//! select the pod by namespace and labels. The annotations of a phase win
//! over the spec's hooks of that phase. A command is a JSON array of
//! strings run without a shell; the container defaults to the pod's
//! first; on-error is `Fail` (default) or `Continue`; the timeout is a
//! Kubernetes duration (default 30s).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::k8s::crd::backup::{BackupHooks, ExecHook, HookErrorMode, HookPhase};
use crate::k8s::crd::duration;
use crate::k8s::manifests::filter::{ClusterResources, Filters};

/// How long a hook may run when it says nothing.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// One hook to run in a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub container: String,
    pub command: Vec<String>,
    pub on_error: HookErrorMode,
    pub timeout: Duration,
    /// Set when the hook is wrong as written: it is not run and counts as
    /// failed with this message.
    pub invalid: Option<String>,
}

/// The hooks of one pod, by phase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodHooks {
    pub pre: Vec<Hook>,
    pub post: Vec<Hook>,
}

impl PodHooks {
    pub fn is_empty(&self) -> bool {
        self.pre.is_empty() && self.post.is_empty()
    }

    pub fn of(&self, phase: HookPhase) -> &[Hook] {
        match phase {
            HookPhase::Pre => &self.pre,
            HookPhase::Post => &self.post,
        }
    }
}

/// The annotation `key` of `phase` (`pre.hook.backup.cairn.io/command`).
pub fn annotation(phase: HookPhase, key: &str) -> String {
    format!("{phase}.hook.backup.cairn.io/{key}")
}

/// The hooks `spec` and the pod's annotations give `pod`.
pub fn pod_hooks(pod: &Pod, spec: Option<&BackupHooks>) -> PodHooks {
    let mut hooks = PodHooks::default();
    for phase in [HookPhase::Pre, HookPhase::Post] {
        let list = match from_annotations(pod, phase) {
            Some(hook) => vec![hook],
            None => from_spec(pod, spec, phase),
        };
        match phase {
            HookPhase::Pre => hooks.pre = list,
            HookPhase::Post => hooks.post = list,
        }
    }
    hooks
}

fn containers(pod: &Pod) -> Vec<String> {
    pod.spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default()
}

fn full_name(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

/// The container a hook names, or the pod's first; an error naming what
/// was asked for when the pod has no such container.
fn container_for(pod: &Pod, named: Option<&str>, what: &str) -> Result<String, String> {
    let all = containers(pod);
    match named {
        Some(name) if all.iter().any(|c| c == name) => Ok(name.to_owned()),
        Some(name) => Err(format!(
            "pod {}: {what}: no container {name:?} (the pod has {})",
            full_name(pod),
            all.join(", ")
        )),
        None => all
            .first()
            .cloned()
            .ok_or_else(|| format!("pod {}: {what}: the pod has no containers", full_name(pod))),
    }
}

fn timeout_of(text: Option<&str>) -> Result<Duration, String> {
    match text {
        None => Ok(DEFAULT_TIMEOUT),
        Some(t) => duration::parse(t).map_err(|e| e.to_string()),
    }
}

/// The hook the annotations of `phase` give, if they give a command.
fn from_annotations(pod: &Pod, phase: HookPhase) -> Option<Hook> {
    let annotations = pod.annotations();
    let get = |key: &str| annotations.get(&annotation(phase, key)).map(String::as_str);
    let command_text = get("command")?;
    let mut problems = Vec::new();
    let command = match serde_json::from_str::<Vec<String>>(command_text) {
        Ok(c) if c.is_empty() => {
            problems.push(format!("annotation {} is an empty array", annotation(phase, "command")));
            Vec::new()
        }
        Ok(c) => c,
        Err(e) => {
            problems.push(format!(
                "annotation {} is not a JSON array of strings ({e}): {command_text}",
                annotation(phase, "command")
            ));
            Vec::new()
        }
    };
    let on_error = match get("on-error") {
        None | Some("Fail") => HookErrorMode::Fail,
        Some("Continue") => HookErrorMode::Continue,
        Some(other) => {
            problems.push(format!(
                "annotation {} is {other:?}, not Fail or Continue",
                annotation(phase, "on-error")
            ));
            HookErrorMode::Fail
        }
    };
    let timeout = timeout_of(get("timeout")).unwrap_or_else(|e| {
        problems.push(format!("annotation {}: {e}", annotation(phase, "timeout")));
        DEFAULT_TIMEOUT
    });
    let named = get("container");
    let container = container_for(pod, named, &format!("annotation {}", annotation(phase, "container")))
        .unwrap_or_else(|e| {
            problems.push(e);
            named.unwrap_or_default().to_owned()
        });
    let invalid = (!problems.is_empty()).then(|| {
        let pod_name = full_name(pod);
        let text: Vec<String> = problems
            .into_iter()
            .map(|p| p.trim_start_matches(&format!("pod {pod_name}: ")).to_owned())
            .collect();
        format!("pod {pod_name}: {}", text.join("; "))
    });
    Some(Hook {
        container,
        command,
        on_error,
        timeout,
        invalid,
    })
}

/// Whether `selector` picks `pod`; an error when the selector is wrong.
fn selects(pod: &Pod, selector: &crate::k8s::crd::backup::HookSelector) -> Result<bool, String> {
    let filters = Filters::new(
        &selector.included_namespaces,
        &selector.excluded_namespaces,
        &[],
        &[],
        selector.label_selector.as_deref(),
        ClusterResources::default(),
    )
    .map_err(|e| format!("spec.hooks.resources {:?}: {e}", selector.name))?;
    let value = serde_json::to_value(pod).unwrap_or_default();
    Ok(filters.namespace_selected(&pod.namespace().unwrap_or_default()) && filters.label_selected(&value))
}

/// The spec's hooks of `phase` for `pod`, in the order they are listed.
fn from_spec(pod: &Pod, spec: Option<&BackupHooks>, phase: HookPhase) -> Vec<Hook> {
    let Some(spec) = spec else {
        return Vec::new();
    };
    let mut hooks = Vec::new();
    for selector in &spec.resources {
        let list = match phase {
            HookPhase::Pre => &selector.pre,
            HookPhase::Post => &selector.post,
        };
        if list.is_empty() {
            continue;
        }
        match selects(pod, selector) {
            Ok(false) => {}
            Ok(true) => hooks.extend(list.iter().map(|h| spec_hook(pod, &selector.name, h))),
            Err(e) => hooks.push(Hook {
                container: String::new(),
                command: Vec::new(),
                on_error: HookErrorMode::Fail,
                timeout: DEFAULT_TIMEOUT,
                invalid: Some(format!("pod {}: {e}", full_name(pod))),
            }),
        }
    }
    hooks
}

fn spec_hook(pod: &Pod, name: &str, hook: &ExecHook) -> Hook {
    let what = format!("spec.hooks.resources {name:?}");
    let mut problems = Vec::new();
    let container = container_for(pod, hook.container.as_deref(), &what).unwrap_or_else(|e| {
        problems.push(e);
        hook.container.clone().unwrap_or_default()
    });
    let timeout = timeout_of(hook.timeout.as_deref()).unwrap_or_else(|e| {
        problems.push(format!("pod {}: {what}: timeout: {e}", full_name(pod)));
        DEFAULT_TIMEOUT
    });
    if hook.command.is_empty() {
        problems.push(format!("pod {}: {what}: the command is empty", full_name(pod)));
    }
    Hook {
        container,
        command: hook.command.clone(),
        on_error: hook.on_error,
        timeout,
        invalid: (!problems.is_empty()).then(|| problems.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::crd::backup::HookSelector;
    use serde_json::json;

    fn pod(annotations: serde_json::Value, labels: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "db-0", "namespace": "app", "annotations": annotations, "labels": labels},
            "spec": {"containers": [{"name": "db"}, {"name": "sidecar"}]},
        }))
        .unwrap()
    }

    #[test]
    fn annotations_give_a_hook_per_phase() {
        let p = pod(
            json!({"pre.hook.backup.cairn.io/command": "[\"/bin/fsfreeze\", \"--freeze\", \"/data\"]",
                   "pre.hook.backup.cairn.io/container": "sidecar",
                   "pre.hook.backup.cairn.io/on-error": "Continue",
                   "pre.hook.backup.cairn.io/timeout": "1m30s",
                   "post.hook.backup.cairn.io/command": "[\"/bin/fsfreeze\", \"--unfreeze\", \"/data\"]"}),
            json!({}),
        );
        let hooks = pod_hooks(&p, None);
        assert_eq!(
            hooks.pre,
            vec![Hook {
                container: "sidecar".into(),
                command: vec!["/bin/fsfreeze".into(), "--freeze".into(), "/data".into()],
                on_error: HookErrorMode::Continue,
                timeout: Duration::from_secs(90),
                invalid: None,
            }]
        );
        assert_eq!(hooks.post.len(), 1);
        assert_eq!(hooks.post[0].container, "db", "the first container by default");
        assert_eq!(hooks.post[0].on_error, HookErrorMode::Fail);
        assert_eq!(hooks.post[0].timeout, DEFAULT_TIMEOUT);
        assert!(pod_hooks(&pod(json!({}), json!({})), None).is_empty());
    }

    #[test]
    fn bad_annotations_name_the_pod_and_the_annotation() {
        let cases = [
            (
                json!({"pre.hook.backup.cairn.io/command": "fsfreeze --freeze"}),
                "annotation pre.hook.backup.cairn.io/command is not a JSON array",
            ),
            (
                json!({"pre.hook.backup.cairn.io/command": "[1, 2]"}),
                "annotation pre.hook.backup.cairn.io/command is not a JSON array of strings",
            ),
            (
                json!({"pre.hook.backup.cairn.io/command": "[]"}),
                "annotation pre.hook.backup.cairn.io/command is an empty array",
            ),
            (
                json!({"pre.hook.backup.cairn.io/command": "[\"true\"]", "pre.hook.backup.cairn.io/on-error": "Ignore"}),
                "annotation pre.hook.backup.cairn.io/on-error is \"Ignore\", not Fail or Continue",
            ),
            (
                json!({"pre.hook.backup.cairn.io/command": "[\"true\"]", "pre.hook.backup.cairn.io/timeout": "soon"}),
                "annotation pre.hook.backup.cairn.io/timeout",
            ),
            (
                json!({"pre.hook.backup.cairn.io/command": "[\"true\"]", "pre.hook.backup.cairn.io/container": "web"}),
                "annotation pre.hook.backup.cairn.io/container: no container \"web\" (the pod has db, sidecar)",
            ),
        ];
        for (annotations, expected) in cases {
            let hooks = pod_hooks(&pod(annotations.clone(), json!({})), None);
            let message = hooks.pre[0].invalid.clone().unwrap_or_default();
            assert!(message.starts_with("pod app/db-0: "), "{annotations}: {message}");
            assert!(message.contains(expected), "{annotations}: {message}");
        }
        // A valid Continue stays Continue even when another annotation is bad.
        let hooks = pod_hooks(
            &pod(
                json!({"post.hook.backup.cairn.io/command": "[\"x\"]", "post.hook.backup.cairn.io/on-error": "Continue",
                       "post.hook.backup.cairn.io/timeout": "-"}),
                json!({}),
            ),
            None,
        );
        assert_eq!(hooks.post[0].on_error, HookErrorMode::Continue);
        assert!(hooks.post[0].invalid.is_some());
    }

    fn spec() -> BackupHooks {
        BackupHooks {
            resources: vec![
                HookSelector {
                    name: "databases".into(),
                    included_namespaces: vec!["app".into()],
                    label_selector: Some("role=db".into()),
                    pre: vec![
                        ExecHook {
                            command: vec!["sync".into()],
                            ..ExecHook::default()
                        },
                        ExecHook {
                            container: Some("sidecar".into()),
                            command: vec!["flush".into()],
                            on_error: HookErrorMode::Continue,
                            timeout: Some("5s".into()),
                        },
                    ],
                    ..HookSelector::default()
                },
                HookSelector {
                    name: "elsewhere".into(),
                    excluded_namespaces: vec!["app".into()],
                    post: vec![ExecHook {
                        command: vec!["never".into()],
                        ..ExecHook::default()
                    }],
                    ..HookSelector::default()
                },
            ],
        }
    }

    #[test]
    fn spec_hooks_select_by_namespace_and_labels() {
        let hooks = pod_hooks(&pod(json!({}), json!({"role": "db"})), Some(&spec()));
        assert_eq!(hooks.pre.len(), 2);
        assert_eq!(hooks.pre[0].container, "db");
        assert_eq!(hooks.pre[1].container, "sidecar");
        assert_eq!(hooks.pre[1].timeout, Duration::from_secs(5));
        assert!(hooks.post.is_empty(), "the second selector excludes the namespace");
        assert!(pod_hooks(&pod(json!({}), json!({"role": "web"})), Some(&spec())).is_empty());
    }

    #[test]
    fn annotations_win_over_spec_hooks_of_their_phase() {
        let p = pod(
            json!({"pre.hook.backup.cairn.io/command": "[\"mine\"]"}),
            json!({"role": "db"}),
        );
        let hooks = pod_hooks(&p, Some(&spec()));
        assert_eq!(hooks.pre.len(), 1);
        assert_eq!(hooks.pre[0].command, vec!["mine".to_owned()]);
    }

    #[test]
    fn a_bad_selector_or_container_in_the_spec_is_a_failed_hook() {
        let mut s = spec();
        s.resources[0].label_selector = Some("role in (".into());
        let hooks = pod_hooks(&pod(json!({}), json!({"role": "db"})), Some(&s));
        assert!(hooks.pre[0]
            .invalid
            .as_deref()
            .unwrap()
            .contains("spec.hooks.resources \"databases\""));
        let mut s = spec();
        s.resources[0].pre[0].container = Some("nope".into());
        let hooks = pod_hooks(&pod(json!({}), json!({"role": "db"})), Some(&s));
        let message = hooks.pre[0].invalid.clone().unwrap();
        assert!(
            message.contains("pod app/db-0") && message.contains("no container \"nope\""),
            "{message}"
        );
    }
}
