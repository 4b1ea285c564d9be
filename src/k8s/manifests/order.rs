//! The order in which a restore creates objects: what others depend on
//! first, custom resources after the built-in ones, and what intercepts
//! requests (admission webhooks, aggregated APIs) last.

use super::filter::{matches_pattern, ResourceNames};

/// Resources restored first, in this order. `--order` puts its entries
/// before these (and takes them out of this list).
///
/// Each step needs the ones before it: definitions before their custom
/// resources; namespaces before what lives in them; storage classes,
/// volumes and claims before the pods that mount them; priority classes
/// before the pods that name them; service accounts before the token
/// secrets that name them (and before pods that run as them); roles before
/// they are bound; config, limits and quotas before the pods they apply
/// to (a pod created before its namespace's LimitRange gets no defaults);
/// services before pods (their environment names the services that existed
/// when they started); then the workloads, smallest unit first.
pub const DEFAULT_ORDER: &[&str] = &[
    "customresourcedefinitions.apiextensions.k8s.io",
    "namespaces",
    "storageclasses.storage.k8s.io",
    "volumesnapshotclasses.snapshot.storage.k8s.io",
    "volumesnapshotcontents.snapshot.storage.k8s.io",
    "volumesnapshots.snapshot.storage.k8s.io",
    "persistentvolumes",
    "persistentvolumeclaims",
    "priorityclasses.scheduling.k8s.io",
    "serviceaccounts",
    "secrets",
    "clusterroles.rbac.authorization.k8s.io",
    "clusterrolebindings.rbac.authorization.k8s.io",
    "roles.rbac.authorization.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
    "configmaps",
    "limitranges",
    "resourcequotas",
    "services",
    "endpoints",
    "endpointslices.discovery.k8s.io",
    "poddisruptionbudgets.policy",
    "pods",
    "replicationcontrollers",
    "replicasets.apps",
    "deployments.apps",
    "statefulsets.apps",
    "daemonsets.apps",
    "jobs.batch",
    "cronjobs.batch",
];

/// Resources restored after everything else, custom resources included:
/// once one of them exists it may refuse, change or answer requests for
/// the objects restored after it. An APIService hands its group to a
/// server that may not be back yet; an admission policy or webhook refuses
/// or changes the creates it intercepts (one whose service is not back
/// fails them all), APIServices included, while webhook configurations
/// themselves are never intercepted: so the webhooks come very last.
pub const LAST: &[&str] = &[
    "apiservices.apiregistration.k8s.io",
    "validatingadmissionpolicies.admissionregistration.k8s.io",
    "validatingadmissionpolicybindings.admissionregistration.k8s.io",
    "mutatingwebhookconfigurations.admissionregistration.k8s.io",
    "validatingwebhookconfigurations.admissionregistration.k8s.io",
];

/// API groups of Kubernetes itself (those whose types no CRD defines).
pub fn is_builtin_group(group: &str) -> bool {
    group.is_empty()
        || group.ends_with(".k8s.io") && !group.contains(".x-k8s.io")
        || matches!(group, "apps" | "batch" | "autoscaling" | "policy" | "extensions")
}

/// A restore order: the priority list (the given entries, then the
/// default list), the other built-in resources, custom resources, then
/// [`LAST`].
#[derive(Debug, Clone)]
pub struct Order {
    first: Vec<String>,
    /// How many entries of `first` were given (`--order`).
    given: usize,
}

impl Default for Order {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl Order {
    /// The default order with `given` (`--order`) before its priority
    /// list; a default entry also given is taken out of the list.
    pub fn new(given: Vec<String>) -> Self {
        let mut first = given;
        let count = first.len();
        for entry in DEFAULT_ORDER {
            if !first.iter().any(|f| f == entry) {
                first.push((*entry).to_owned());
            }
        }
        Self { first, given: count }
    }

    /// The sort key of a resource: its place in the priority list (an entry
    /// given to [`Order::new`] wins over the last list), then the other
    /// built-in resources, custom resources, and the last list.
    pub fn rank(&self, names: &ResourceNames<'_>, custom: bool) -> (u8, usize) {
        let given = self.first[..self.given].iter().position(|p| matches_pattern(p, names));
        if let Some(i) = given {
            return (0, i);
        }
        if let Some(i) = LAST.iter().position(|p| matches_pattern(p, names)) {
            return (3, i);
        }
        // A default entry without a group (`services`) names a built-in
        // resource, never a custom one of the same plural.
        let default = self.first.iter().enumerate().skip(self.given);
        match default
            .filter(|(_, p)| !custom || p.contains('.'))
            .find(|(_, p)| matches_pattern(p, names))
        {
            Some((i, _)) => (0, i),
            None if custom => (2, 0),
            None => (1, 0),
        }
    }

    /// The priority list: the given entries, then the default ones.
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

    fn sorted(order: &Order, types: &[(ResourceNames<'_>, bool)]) -> Vec<String> {
        let mut types = types.to_vec();
        types.sort_by_key(|(names, custom)| order.rank(names, *custom));
        types.iter().map(|(n, _)| n.plural.to_owned()).collect()
    }

    #[test]
    fn the_default_order_follows_what_depends_on_what() {
        let adm = "admissionregistration.k8s.io";
        let rbac = "rbac.authorization.k8s.io";
        let types = [
            (
                n(adm, "validatingwebhookconfigurations", "ValidatingWebhookConfiguration"),
                false,
            ),
            (n("apiregistration.k8s.io", "apiservices", "APIService"), false),
            (n("example.com", "widgets", "Widget"), true),
            (
                n(adm, "mutatingwebhookconfigurations", "MutatingWebhookConfiguration"),
                false,
            ),
            (n("apps", "deployments", "Deployment"), false),
            (n("", "pods", "Pod"), false),
            (n("apps", "replicasets", "ReplicaSet"), false),
            (n("", "services", "Service"), false),
            (n("coordination.k8s.io", "leases", "Lease"), false),
            (n("", "configmaps", "ConfigMap"), false),
            (n(rbac, "rolebindings", "RoleBinding"), false),
            (n(rbac, "roles", "Role"), false),
            (n(rbac, "clusterrolebindings", "ClusterRoleBinding"), false),
            (n(rbac, "clusterroles", "ClusterRole"), false),
            (n("", "secrets", "Secret"), false),
            (n("", "serviceaccounts", "ServiceAccount"), false),
            (n("scheduling.k8s.io", "priorityclasses", "PriorityClass"), false),
            (n("", "resourcequotas", "ResourceQuota"), false),
            (n("", "limitranges", "LimitRange"), false),
            (n("storage.k8s.io", "storageclasses", "StorageClass"), false),
        ];
        assert_eq!(
            sorted(&Order::default(), &types),
            [
                "storageclasses",
                "priorityclasses",
                "serviceaccounts",
                "secrets",
                "clusterroles",
                "clusterrolebindings",
                "roles",
                "rolebindings",
                "configmaps",
                "limitranges",
                "resourcequotas",
                "services",
                "pods",
                "replicasets",
                "deployments",
                "leases",
                "widgets",
                "apiservices",
                "mutatingwebhookconfigurations",
                "validatingwebhookconfigurations",
            ]
        );
    }

    #[test]
    fn an_explicit_order_goes_before_the_default_list() {
        let order = Order::new(vec!["configmaps".into(), "deployments.apps".into()]);
        assert_eq!(order.rank(&n("", "configmaps", "ConfigMap"), false), (0, 0));
        assert_eq!(order.rank(&n("apps", "deployments", "Deployment"), false), (0, 1));
        // The rest of the default list follows, without the given entries.
        assert_eq!(order.rank(&n("", "namespaces", "Namespace"), false), (0, 3));
        assert_eq!(
            order.first()[..4],
            ["configmaps", "deployments.apps", DEFAULT_ORDER[0], "namespaces"]
        );
        assert_eq!(order.first().iter().filter(|f| *f == "configmaps").count(), 1);
        let types = [
            (n("", "configmaps", "ConfigMap"), false),
            (n("", "namespaces", "Namespace"), false),
            (n("", "secrets", "Secret"), false),
            (n("apps", "deployments", "Deployment"), false),
        ];
        assert_eq!(
            sorted(&order, &types),
            ["configmaps", "deployments", "namespaces", "secrets"]
        );
        // A custom resource is not taken for the built-in one of its plural.
        assert_eq!(
            Order::default().rank(&n("serving.knative.dev", "services", "Service"), true),
            (2, 0)
        );
        // A last resource named in --order goes where it is named.
        let webhooks = Order::new(vec!["validatingwebhookconfigurations".into()]);
        let v = n(
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
        );
        assert_eq!(webhooks.rank(&v, false), (0, 0));
        assert_eq!(Order::default().rank(&v, false).0, 3);
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
