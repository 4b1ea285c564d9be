//! The order in which a restore creates objects: what others depend on
//! first, custom resources last.

use super::filter::{matches_pattern, ResourceNames};

/// Resources restored first, in this order (overridden by `--order`).
pub const DEFAULT_ORDER: &[&str] = &[
    "customresourcedefinitions.apiextensions.k8s.io",
    "namespaces",
    "storageclasses.storage.k8s.io",
    "persistentvolumes",
    "persistentvolumeclaims",
    "secrets",
    "configmaps",
    "serviceaccounts",
    "limitranges",
];

/// API groups of Kubernetes itself (those whose types no CRD defines).
pub fn is_builtin_group(group: &str) -> bool {
    group.is_empty()
        || group.ends_with(".k8s.io") && !group.contains(".x-k8s.io")
        || matches!(group, "apps" | "batch" | "autoscaling" | "policy" | "extensions")
}

/// A restore order: the priority list, then the other built-in resources,
/// then custom resources.
#[derive(Debug, Clone)]
pub struct Order {
    first: Vec<String>,
}

impl Default for Order {
    fn default() -> Self {
        Self {
            first: DEFAULT_ORDER.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

impl Order {
    /// An order whose priority list is `first` (empty: the default).
    pub fn new(first: Vec<String>) -> Self {
        if first.is_empty() {
            Self::default()
        } else {
            Self { first }
        }
    }

    /// The sort key of a resource: its place in the priority list, or after
    /// it (custom resources after everything else).
    pub fn rank(&self, names: &ResourceNames<'_>, custom: bool) -> (u8, usize) {
        match self.first.iter().position(|p| matches_pattern(p, names)) {
            Some(i) => (0, i),
            None if custom => (2, 0),
            None => (1, 0),
        }
    }

    /// The priority list.
    pub fn first(&self) -> &[String] {
        &self.first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n<'a>(group: &'a str, plural: &'a str, kind: &'a str) -> ResourceNames<'a> {
        ResourceNames {
            group,
            plural,
            singular: "",
            kind,
            short_names: &[],
        }
    }

    #[test]
    fn default_order_puts_definitions_and_namespaces_first_and_custom_last() {
        let order = Order::default();
        let mut types = [
            (n("example.com", "widgets", "Widget"), true),
            (n("apps", "deployments", "Deployment"), false),
            (n("", "persistentvolumeclaims", "PersistentVolumeClaim"), false),
            (n("", "namespaces", "Namespace"), false),
            (
                n(
                    "apiextensions.k8s.io",
                    "customresourcedefinitions",
                    "CustomResourceDefinition",
                ),
                false,
            ),
            (n("", "persistentvolumes", "PersistentVolume"), false),
        ];
        types.sort_by_key(|(names, custom)| order.rank(names, *custom));
        let plurals: Vec<&str> = types.iter().map(|(n, _)| n.plural).collect();
        assert_eq!(
            plurals,
            [
                "customresourcedefinitions",
                "namespaces",
                "persistentvolumes",
                "persistentvolumeclaims",
                "deployments",
                "widgets"
            ]
        );
    }

    #[test]
    fn an_explicit_order_replaces_the_priority_list() {
        let order = Order::new(vec!["configmaps".into(), "deployments.apps".into()]);
        assert_eq!(order.rank(&n("", "configmaps", "ConfigMap"), false), (0, 0));
        assert_eq!(order.rank(&n("apps", "deployments", "Deployment"), false), (0, 1));
        assert_eq!(order.rank(&n("", "namespaces", "Namespace"), false), (1, 0));
    }

    #[test]
    fn builtin_groups() {
        assert!(is_builtin_group(""));
        assert!(is_builtin_group("apps"));
        assert!(is_builtin_group("rbac.authorization.k8s.io"));
        assert!(!is_builtin_group("cluster.x-k8s.io"));
        assert!(!is_builtin_group("example.com"));
    }
}
