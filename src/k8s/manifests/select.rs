//! Which of a snapshot's objects a restore takes: the filters' choice,
//! and the cluster-scoped objects the chosen ones need.

use std::collections::BTreeSet;

use serde_json::Value;

use super::discovery::{qualified, Discovered};
use super::filter::{excluded_by_label, needable, ClusterResources, Filters, ResourceNames};
use super::stored::StoredObject;

/// The names of a stored object's resource, from the cluster's discovery
/// when it serves the resource.
pub fn names_of<'a>(discovered: &'a Discovered, o: &'a StoredObject) -> ResourceNames<'a> {
    match discovered.find(&o.at.group, &o.at.plural) {
        Some(r) => ResourceNames {
            group: &r.group,
            plural: &r.plural,
            singular: &r.singular,
            kind: &r.kind,
            short_names: &r.short_names,
        },
        None => ResourceNames {
            group: &o.at.group,
            plural: &o.at.plural,
            singular: "",
            kind: o.object.get("kind").and_then(Value::as_str).unwrap_or(""),
            short_names: &[],
        },
    }
}

/// The objects the filters select.
pub fn select(objects: Vec<StoredObject>, discovered: &Discovered, filters: &Filters) -> Vec<StoredObject> {
    let (namespaced, mut cluster): (Vec<StoredObject>, Vec<StoredObject>) = objects
        .into_iter()
        .filter(|o| !excluded_by_label(&o.object) && !filters.resource_excluded(&names_of(discovered, o)))
        .partition(|o| o.at.namespace.is_some());
    let namespaced: Vec<StoredObject> = namespaced
        .into_iter()
        .filter(|o| {
            filters.resource_selected(&names_of(discovered, o))
                && o.at
                    .namespace
                    .as_deref()
                    .is_some_and(|ns| filters.namespace_selected(ns))
                && filters.label_selected(&o.object)
        })
        .collect();
    let everything = match filters.cluster_resources {
        ClusterResources::True => true,
        ClusterResources::False => false,
        ClusterResources::Auto => filters.all_namespaces() && filters.selector.is_none(),
    };
    // What the selected namespaced objects need, in `auto` mode.
    let mut needed: BTreeSet<(String, String, String)> = BTreeSet::new();
    let mut need = |g: &str, p: &str, n: &str| {
        if !n.is_empty() {
            needed.insert((g.to_owned(), p.to_owned(), n.to_owned()));
        }
    };
    let rbac = "rbac.authorization.k8s.io";
    for o in &namespaced {
        let s = |p: &str| o.object.pointer(p).and_then(Value::as_str).unwrap_or("");
        if !o.at.group.is_empty() {
            need(
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                &qualified(&o.at.group, &o.at.plural),
            );
        }
        if o.at.group.is_empty() && o.at.plural == "persistentvolumeclaims" {
            need("", "persistentvolumes", s("/spec/volumeName"));
            need("storage.k8s.io", "storageclasses", s("/spec/storageClassName"));
        }
        if o.at.group == rbac && o.at.plural == "rolebindings" && s("/roleRef/kind") == "ClusterRole" {
            need(rbac, "clusterroles", s("/roleRef/name"));
        }
    }
    for o in &cluster {
        let grants_selected = o
            .object
            .get("subjects")
            .and_then(Value::as_array)
            .is_some_and(|subjects| {
                subjects.iter().any(|s| {
                    s.get("kind").and_then(Value::as_str) == Some("ServiceAccount")
                        && s.get("namespace")
                            .and_then(Value::as_str)
                            .is_some_and(|ns| filters.namespace_selected(ns))
                })
            });
        if o.at.group == rbac && o.at.plural == "clusterrolebindings" && grants_selected {
            need(rbac, "clusterrolebindings", &o.at.name);
            let role = o.object.pointer("/roleRef/name").and_then(Value::as_str).unwrap_or("");
            need(rbac, "clusterroles", role);
        }
    }
    cluster.retain(|o| {
        if o.at.group.is_empty() && o.at.plural == "namespaces" {
            return filters.namespace_selected(&o.at.name);
        }
        let names = names_of(discovered, o);
        let selected = filters.resource_selected(&names);
        let wanted = needed.contains(&(o.at.group.clone(), o.at.plural.clone(), o.at.name.clone()));
        match filters.cluster_resources {
            ClusterResources::False => false,
            _ if selected && (everything || filters.resource_named(&names)) => filters.label_selected(&o.object),
            _ => wanted && (selected || needable(&o.at.group, &o.at.plural)),
        }
    });
    cluster.extend(namespaced);
    cluster
}
