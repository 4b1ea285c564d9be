//! What the API server does to an object being created beyond storing it,
//! for the kinds a restore must get right:
//!
//! - a Job's selector and labels are generated from its uid (the batch
//!   registry's `generateSelector`), and a Job is refused when its selector
//!   or template labels are not the generated ones (a selector given
//!   without `manualSelector: true`, a `controller-uid` label of another
//!   uid), with the real validation messages;
//! - a Pod's `priority` is computed from its `priorityClassName` (the
//!   Priority admission plugin, with the two built-in system classes), and
//!   a pod that names a missing class or carries another value is refused;
//! - a NodePort or LoadBalancer Service gets a node port for every port
//!   without one (30000-32767), and a node port that is taken, out of range
//!   or given to a ClusterIP Service is refused;
//! - a client's create that a registered admission webhook intercepts
//!   (by its rules: groups, versions, resources, the CREATE operation)
//!   fails as when the webhook cannot be reached, which it never can here:
//!   with `failurePolicy: Fail` (the default) the create is refused (500,
//!   "failed calling webhook"); with `Ignore` it goes through. Webhook
//!   configurations themselves are never intercepted; namespace and object
//!   selectors are not looked at (a simplification);
//! - after a client's write, the garbage collector's rule for owner
//!   references: an object all of whose owners (by uid) are gone is
//!   deleted, dangling references beside a live owner are removed. The
//!   real collector does this shortly after; here it happens before the
//!   request returns.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::{invalid, resource_name, status, Key, ResDef, State};

/// The priority classes every cluster has, and their values.
const SYSTEM_CLASSES: &[(&str, i64)] = &[
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

/// The node port range of the API server's default
/// `--service-node-port-range`.
const NODE_PORTS: std::ops::RangeInclusive<i64> = 30000..=32767;

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// `obj[key]` as an object, made one if it is not.
fn object_at<'a>(obj: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !obj[key].is_object() {
        obj[key] = json!({});
    }
    match obj[key].as_object_mut() {
        Some(m) => m,
        None => unreachable!("made an object above"),
    }
}

impl State {
    /// Applies the registry strategies and admission plugins above to an
    /// object being created (its uid assigned).
    pub fn admit(&self, d: &ResDef, obj: &mut Value, from_client: bool) -> Result<(), (u16, Value)> {
        if from_client {
            self.call_webhooks(d)?;
        }
        match (d.group.as_str(), d.plural.as_str()) {
            ("batch", "jobs") => generate_job_selector(d, obj),
            ("", "pods") => self.admit_priority(d, obj),
            ("", "services") => self.allocate_node_ports(d, obj),
            _ => Ok(()),
        }
    }

    fn call_webhooks(&self, d: &ResDef) -> Result<(), (u16, Value)> {
        if d.group == "admissionregistration.k8s.io" {
            return Ok(());
        }
        let listed = |list: &Value, want: &str| {
            list.as_array()
                .is_some_and(|a| a.iter().any(|v| v.as_str().is_some_and(|v| v == "*" || v == want)))
        };
        for plural in ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"] {
            for (_, config) in self.of_resource("admissionregistration.k8s.io", plural) {
                for hook in config.get("webhooks").and_then(Value::as_array).into_iter().flatten() {
                    let intercepts = hook.get("rules").and_then(Value::as_array).is_some_and(|rules| {
                        rules.iter().any(|r| {
                            listed(&r["apiGroups"], &d.group)
                                && listed(&r["apiVersions"], &d.version)
                                && listed(&r["operations"], "CREATE")
                                && (listed(&r["resources"], &d.plural) || listed(&r["resources"], "*/*"))
                        })
                    });
                    let fails = str_at(hook, "/failurePolicy") != "Ignore";
                    if !intercepts || !fails {
                        continue;
                    }
                    let name = str_at(hook, "/name");
                    let service = hook.pointer("/clientConfig/service");
                    let why = match service {
                        Some(svc) => {
                            let (ns, svc_name) = (str_at(svc, "/namespace"), str_at(svc, "/name"));
                            let path = str_at(svc, "/path");
                            let exists = self.objects.contains_key(&(
                                String::new(),
                                "services".to_owned(),
                                ns.to_owned(),
                                svc_name.to_owned(),
                            ));
                            let reason = if exists {
                                format!("no endpoints available for service \"{svc_name}\"")
                            } else {
                                format!("service \"{svc_name}\" not found")
                            };
                            format!("Post \"https://{svc_name}.{ns}.svc:443{path}?timeout=10s\": {reason}")
                        }
                        None => format!(
                            "Post \"{}?timeout=10s\": dial tcp: connect: connection refused",
                            str_at(hook, "/clientConfig/url")
                        ),
                    };
                    return Err(status(
                        500,
                        "InternalError",
                        &format!(
                            "Internal error occurred: failed calling webhook \"{name}\": failed to call webhook: {why}"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn admit_priority(&self, d: &ResDef, pod: &mut Value) -> Result<(), (u16, Value)> {
        let name = str_at(pod, "/metadata/name").to_owned();
        let forbidden = |why: String| {
            status(
                403,
                "Forbidden",
                &format!("{} \"{name}\" is forbidden: {why}", resource_name(d)),
            )
        };
        let classes: Vec<(&Key, &Value)> = self.of_resource("scheduling.k8s.io", "priorityclasses").collect();
        let value_of = |c: &Value| c.get("value").and_then(Value::as_i64).unwrap_or(0);
        let class = str_at(pod, "/spec/priorityClassName").to_owned();
        let computed = if class.is_empty() {
            classes
                .iter()
                .find(|(_, c)| c.get("globalDefault").and_then(Value::as_bool) == Some(true))
                .map_or(0, |(_, c)| value_of(c))
        } else if let Some((_, v)) = SYSTEM_CLASSES.iter().find(|(n, _)| *n == class) {
            *v
        } else {
            classes
                .iter()
                .find(|(k, _)| k.3 == class)
                .map(|(_, c)| value_of(c))
                .ok_or_else(|| forbidden(format!("no PriorityClass with name {class} was found")))?
        };
        if let Some(given) = pod.pointer("/spec/priority").and_then(Value::as_i64) {
            if given != computed {
                return Err(forbidden(format!(
                    "the integer value of priority ({given}) must not be provided in pod spec; \
                     priority admission controller computed {computed} from the given PriorityClass name"
                )));
            }
        }
        object_at(pod, "spec").insert("priority".into(), json!(computed));
        Ok(())
    }

    fn allocate_node_ports(&self, d: &ResDef, svc: &mut Value) -> Result<(), (u16, Value)> {
        let name = str_at(svc, "/metadata/name").to_owned();
        let kind = match str_at(svc, "/spec/type") {
            "" => "ClusterIP".to_owned(),
            t => t.to_owned(),
        };
        let mut taken: BTreeSet<i64> = self
            .of_resource("", "services")
            .flat_map(|(_, s)| {
                s.pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
            })
            .collect();
        let wants_ports = matches!(kind.as_str(), "NodePort" | "LoadBalancer");
        let Some(ports) = svc.pointer_mut("/spec/ports").and_then(Value::as_array_mut) else {
            return Ok(());
        };
        // Given ports first, so that an allocated one never takes them.
        for (i, port) in ports.iter().enumerate() {
            let Some(n) = port.get("nodePort").and_then(Value::as_i64) else {
                continue;
            };
            let field = format!("spec.ports[{i}].nodePort");
            let cause = if !wants_ports {
                format!("{field}: Forbidden: may not be used when `type` is '{kind}'")
            } else if !NODE_PORTS.contains(&n) {
                format!(
                    "{field}: Invalid value: {n}: provided port is not in the valid range. The range of valid ports is {}-{}",
                    NODE_PORTS.start(),
                    NODE_PORTS.end()
                )
            } else if !taken.insert(n) {
                format!("{field}: Invalid value: {n}: provided port is already allocated")
            } else {
                continue;
            };
            return Err(invalid(d, &name, &cause));
        }
        if wants_ports {
            for port in ports.iter_mut().filter(|p| p.get("nodePort").is_none()) {
                let Some(free) = NODE_PORTS.clone().find(|n| !taken.contains(n)) else {
                    return Err(invalid(d, &name, "spec.ports: Internal error: range is full"));
                };
                taken.insert(free);
                if let Some(p) = port.as_object_mut() {
                    p.insert("nodePort".into(), json!(free));
                }
            }
        }
        Ok(())
    }

    /// The garbage collector's rule for an object's owner references (see
    /// the module's documentation), once a client wrote it.
    pub fn collect_if_orphaned(&mut self, key: &Key) {
        let Some(obj) = self.objects.get(key).cloned() else {
            return;
        };
        let Some(refs) = obj.pointer("/metadata/ownerReferences").and_then(Value::as_array) else {
            return;
        };
        if refs.is_empty() {
            return;
        }
        let live: BTreeSet<&str> = self
            .objects
            .values()
            .filter_map(|o| o.pointer("/metadata/uid").and_then(Value::as_str))
            .collect();
        let (solid, dangling): (Vec<&Value>, Vec<&Value>) = refs
            .iter()
            .partition(|r| r.get("uid").and_then(Value::as_str).is_some_and(|u| live.contains(u)));
        if dangling.is_empty() {
            return;
        }
        let Some(d) = self.def_of(&key.0, &key.1) else {
            return;
        };
        if solid.is_empty() {
            let _ = self.delete(&d, key, false);
        } else {
            let mut new = obj.clone();
            new["metadata"]["ownerReferences"] = Value::Array(solid.into_iter().cloned().collect());
            let _ = self.replace(&d, key, new, Some("garbage-collector"));
        }
    }
}

/// The batch registry's selector generation and its validation.
fn generate_job_selector(d: &ResDef, job: &mut Value) -> Result<(), (u16, Value)> {
    let name = str_at(job, "/metadata/name").to_owned();
    let uid = str_at(job, "/metadata/uid").to_owned();
    let manual = job.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true);
    let expected = [
        ("controller-uid", uid.as_str()),
        ("job-name", name.as_str()),
        ("batch.kubernetes.io/controller-uid", uid.as_str()),
        ("batch.kubernetes.io/job-name", name.as_str()),
    ];
    let mut errors = Vec::new();
    if manual {
        let selector = job.pointer("/spec/selector/matchLabels").and_then(Value::as_object);
        let labels = job.pointer("/spec/template/metadata/labels").and_then(Value::as_object);
        match selector {
            None => errors.push("spec.selector: Required value".to_owned()),
            Some(sel) => {
                let matches = sel.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
                if !matches {
                    errors.push(format!(
                        "spec.template.metadata.labels: Invalid value: {}: `selector` does not match template `labels`",
                        labels.map_or(json!({}), |l| Value::Object(l.clone()))
                    ));
                }
            }
        }
    } else {
        if !job
            .pointer("/spec/template/metadata/labels")
            .is_some_and(Value::is_object)
        {
            job["spec"]["template"]["metadata"]["labels"] = json!({});
        }
        if let Some(labels) = job
            .pointer_mut("/spec/template/metadata/labels")
            .and_then(Value::as_object_mut)
        {
            for (k, v) in expected {
                labels.entry(k).or_insert(json!(v));
            }
        }
        if !job.pointer("/spec/selector/matchLabels").is_some_and(Value::is_object) {
            if !job.pointer("/spec/selector").is_some_and(Value::is_object) {
                job["spec"]["selector"] = json!({});
            }
            job["spec"]["selector"]["matchLabels"] = json!({});
        }
        if let Some(m) = job
            .pointer_mut("/spec/selector/matchLabels")
            .and_then(Value::as_object_mut)
        {
            m.entry("batch.kubernetes.io/controller-uid").or_insert(json!(uid));
        }
        let labels = job
            .pointer("/spec/template/metadata/labels")
            .cloned()
            .unwrap_or(json!({}));
        for (k, want) in expected {
            let got = labels.get(k).and_then(Value::as_str).unwrap_or("");
            if got != want {
                errors.push(format!(
                    "spec.template.metadata.labels[{k}]: Invalid value: \"{got}\": must be '{want}'"
                ));
            }
        }
        let selector = job.pointer("/spec/selector").cloned().unwrap_or(json!({}));
        let selects = selector.get("matchLabels").and_then(Value::as_object).is_some_and(|m| {
            m.iter()
                .all(|(k, v)| expected.iter().any(|(ek, ev)| ek == k && v.as_str() == Some(*ev)))
        }) && selector
            .get("matchExpressions")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if !selects {
            errors.push(format!(
                "spec.selector: Invalid value: {selector}: `selector` not auto-generated"
            ));
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(invalid(d, &name, &errors[0])),
        _ => Err(invalid(d, &name, &format!("[{}]", errors.join(", ")))),
    }
}
