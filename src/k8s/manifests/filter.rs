//! Which objects a backup or restore takes: namespaces (globs), resources
//! (names, `name.group`, kinds, short names), a label selector, cluster
//! scoped resources, and the exclude label.

use std::collections::BTreeMap;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde_json::Value;

use crate::k8s::K8sError;

/// Whether cluster-scoped objects are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterResources {
    /// All of them when every namespace is selected and there is no label
    /// selector; otherwise only those the selected objects need.
    #[default]
    Auto,
    True,
    False,
}

impl std::str::FromStr for ClusterResources {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "true" => Ok(Self::True),
            "false" => Ok(Self::False),
            _ => Err(format!("{s:?} is not one of auto, true, false")),
        }
    }
}

impl std::fmt::Display for ClusterResources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::True => "true",
            Self::False => "false",
        })
    }
}

/// Resources left out unless named by `--include-resources`: they change
/// all the time and are never restored.
pub const NOISE: &[&str] = &[
    "events",
    "events.events.k8s.io",
    "leases.coordination.k8s.io",
    "componentstatuses",
    "nodes",
];

/// Cluster-scoped resources whose objects namespaced objects may need
/// (taken in `auto` mode even when the resource filter leaves them out,
/// unless it excludes them): (group, plural).
pub const NEEDABLE: &[(&str, &str)] = &[
    ("", "namespaces"),
    ("", "persistentvolumes"),
    ("storage.k8s.io", "storageclasses"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
    ("rbac.authorization.k8s.io", "clusterrolebindings"),
    ("rbac.authorization.k8s.io", "clusterroles"),
    ("scheduling.k8s.io", "priorityclasses"),
];

/// Whether a cluster-scoped resource is in [`NEEDABLE`].
pub fn needable(group: &str, plural: &str) -> bool {
    NEEDABLE.iter().any(|(g, p)| *g == group && *p == plural)
}

/// The names by which a resource can be selected.
#[derive(Debug, Clone, Copy)]
pub struct ResourceNames<'a> {
    pub group: &'a str,
    pub plural: &'a str,
    pub singular: &'a str,
    pub kind: &'a str,
    pub short_names: &'a [String],
}

/// Whether a pattern (`plural`, `plural.group`, a kind, a short name, `*`)
/// names the resource.
pub fn matches_pattern(pattern: &str, r: &ResourceNames<'_>) -> bool {
    if pattern == "*" {
        return true;
    }
    let kind = r.kind.to_ascii_lowercase();
    let names = [r.plural, r.singular, kind.as_str()]
        .into_iter()
        .chain(r.short_names.iter().map(String::as_str))
        .filter(|n| !n.is_empty());
    for name in names {
        if pattern.eq_ignore_ascii_case(name) {
            return true;
        }
        if let Some(group) = pattern
            .get(..name.len())
            .filter(|head| head.eq_ignore_ascii_case(name))
            .and_then(|_| pattern[name.len()..].strip_prefix('.'))
        {
            if group.eq_ignore_ascii_case(r.group) || (r.group.is_empty() && group.eq_ignore_ascii_case("core")) {
                return true;
            }
        }
    }
    false
}

/// A parsed label selector: equality (`a=b`, `a==b`, `a!=b`), existence
/// (`a`, `!a`) and sets (`a in (x,y)`, `a notin (x)`), all of which must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    text: String,
    terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Eq(String, String),
    Ne(String, String),
    Exists(String),
    Absent(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// Splits at commas outside parentheses.
fn split_terms(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

impl Selector {
    pub fn parse(text: &str) -> Result<Self, K8sError> {
        let bad = |why: &str| K8sError::InvalidOption(format!("--selector {text:?}: {why}"));
        let mut terms = Vec::new();
        for raw in split_terms(text) {
            let term = raw.trim();
            if term.is_empty() {
                return Err(bad("empty requirement"));
            }
            let parsed = if let Some((k, v)) = term.split_once("!=") {
                Term::Ne(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                Term::Eq(k.trim().into(), v.trim().into())
            } else if let Some(k) = term.strip_prefix('!') {
                Term::Absent(k.trim().into())
            } else if let Some((k, rest)) = term.split_once(" notin ").or_else(|| term.split_once(" in ")) {
                let set = rest
                    .trim()
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(|| bad("a set needs parentheses: key in (a,b)"))?;
                let values: Vec<String> = set.split(',').map(|v| v.trim().to_owned()).collect();
                if term.contains(" notin ") {
                    Term::NotIn(k.trim().into(), values)
                } else {
                    Term::In(k.trim().into(), values)
                }
            } else {
                Term::Exists(term.into())
            };
            let key = match &parsed {
                Term::Eq(k, _)
                | Term::Ne(k, _)
                | Term::Exists(k)
                | Term::Absent(k)
                | Term::In(k, _)
                | Term::NotIn(k, _) => k,
            };
            if !valid_key(key) {
                return Err(bad(&format!("{key:?} is not a label key")));
            }
            terms.push(parsed);
        }
        Ok(Self {
            text: text.to_owned(),
            terms,
        })
    }

    /// The selector as given, for the API's `labelSelector`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.terms.iter().all(|t| match t {
            Term::Eq(k, v) => labels.get(k) == Some(v),
            Term::Ne(k, v) => labels.get(k) != Some(v),
            Term::Exists(k) => labels.contains_key(k),
            Term::Absent(k) => !labels.contains_key(k),
            Term::In(k, set) => labels.get(k).is_some_and(|v| set.contains(v)),
            Term::NotIn(k, set) => labels.get(k).is_none_or(|v| !set.contains(v)),
        })
    }
}

/// The labels of a JSON object.
pub fn labels_of(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether an object carries `backup.cairn.io/exclude=true`.
pub fn excluded_by_label(object: &Value) -> bool {
    object
        .pointer("/metadata/labels")
        .and_then(|l| l.get(crate::k8s::EXCLUDE_LABEL))
        .and_then(Value::as_str)
        == Some("true")
}

/// The selection a backup or restore works on.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    include_namespaces: Vec<String>,
    exclude_namespaces: Vec<String>,
    ns_include: Option<GlobSet>,
    ns_exclude: Option<GlobSet>,
    include_resources: Vec<String>,
    exclude_resources: Vec<String>,
    pub selector: Option<Selector>,
    pub cluster_resources: ClusterResources,
}

/// Splits comma-separated lists given once or repeated.
pub fn split_list(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

fn glob_set(option: &str, patterns: &[String]) -> Result<Option<GlobSet>, K8sError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        let glob = Glob::new(p).map_err(|e| K8sError::InvalidOption(format!("{option} {p:?}: {e}")))?;
        builder.add(glob);
    }
    builder
        .build()
        .map(Some)
        .map_err(|e| K8sError::InvalidOption(format!("{option}: {e}")))
}

impl Filters {
    /// Builds the filters from the options' values (comma-separated lists).
    pub fn new(
        include_namespaces: &[String],
        exclude_namespaces: &[String],
        include_resources: &[String],
        exclude_resources: &[String],
        selector: Option<&str>,
        cluster_resources: ClusterResources,
    ) -> Result<Self, K8sError> {
        let include_namespaces = split_list(include_namespaces);
        let exclude_namespaces = split_list(exclude_namespaces);
        Ok(Self {
            ns_include: glob_set("--include-namespaces", &include_namespaces)?,
            ns_exclude: glob_set("--exclude-namespaces", &exclude_namespaces)?,
            include_namespaces,
            exclude_namespaces,
            include_resources: split_list(include_resources),
            exclude_resources: split_list(exclude_resources),
            selector: selector.map(Selector::parse).transpose()?,
            cluster_resources,
        })
    }

    /// Every namespace is selected (no include list or `*`, no excludes).
    pub fn all_namespaces(&self) -> bool {
        self.exclude_namespaces.is_empty()
            && (self.include_namespaces.is_empty() || self.include_namespaces.iter().any(|n| n == "*"))
    }

    /// The `--include-namespaces` list, when it holds a pattern.
    pub fn namespace_patterns(&self) -> Option<String> {
        (!self.include_namespaces.is_empty() && self.literal_namespaces().is_none())
            .then(|| self.include_namespaces.join(","))
    }

    /// The namespaces named literally (no glob characters) by the include
    /// list, when all of its entries are literal.
    pub fn literal_namespaces(&self) -> Option<Vec<String>> {
        let literal = |n: &String| !n.contains(['*', '?', '[', '{']);
        (!self.include_namespaces.is_empty() && self.include_namespaces.iter().all(literal))
            .then(|| self.include_namespaces.clone())
    }

    pub fn namespace_selected(&self, ns: &str) -> bool {
        self.ns_include.as_ref().is_none_or(|s| s.is_match(ns))
            && !self.ns_exclude.as_ref().is_some_and(|s| s.is_match(ns))
    }

    /// Whether a resource type is selected: named by an include pattern
    /// (or no include list and not noise) and not by an exclude pattern.
    pub fn resource_selected(&self, r: &ResourceNames<'_>) -> bool {
        if self.exclude_resources.iter().any(|p| matches_pattern(p, r)) {
            return false;
        }
        let named = |p: &String| p != "*" && matches_pattern(p, r);
        if self.include_resources.iter().any(named) {
            return true;
        }
        let noise = NOISE.iter().any(|n| matches_pattern(n, r));
        !noise && (self.include_resources.is_empty() || self.include_resources.iter().any(|p| p == "*"))
    }

    /// Whether an exclude pattern names this resource type.
    pub fn resource_excluded(&self, r: &ResourceNames<'_>) -> bool {
        self.exclude_resources.iter().any(|p| matches_pattern(p, r))
    }

    /// Whether an included resource pattern names a resource of `group`
    /// (`alertmanagerconfigs.monitoring.coreos.com`).
    pub fn names_group(&self, group: &str) -> bool {
        let suffix = format!(".{group}");
        self.include_resources.iter().any(|p| p != "*" && p.ends_with(&suffix))
    }

    /// Whether the include list names this resource type explicitly (so a
    /// cluster-scoped type is taken in `auto` mode too).
    pub fn resource_named(&self, r: &ResourceNames<'_>) -> bool {
        self.include_resources.iter().any(|p| p != "*" && matches_pattern(p, r))
    }

    pub fn label_selected(&self, object: &Value) -> bool {
        self.selector.as_ref().is_none_or(|s| s.matches(&labels_of(object)))
    }

    /// Tags describing the filters, for the snapshot.
    pub fn tags(&self) -> Vec<String> {
        let mut tags = Vec::new();
        let mut add = |name: &str, values: &[String]| {
            if !values.is_empty() {
                tags.push(format!("{name}={}", values.join("+")));
            }
        };
        add("include-namespaces", &self.include_namespaces);
        add("exclude-namespaces", &self.exclude_namespaces);
        add("include-resources", &self.include_resources);
        add("exclude-resources", &self.exclude_resources);
        if let Some(s) = &self.selector {
            tags.push(format!("selector={}", s.as_str().replace(',', "+")));
        }
        tags.push(format!("include-cluster-resources={}", self.cluster_resources));
        tags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names<'a>(group: &'a str, plural: &'a str, kind: &'a str, short: &'a [String]) -> ResourceNames<'a> {
        ResourceNames {
            group,
            plural,
            singular: "",
            kind,
            short_names: short,
        }
    }

    #[test]
    fn resources_match_by_plural_group_kind_and_short_name() {
        let short = vec!["deploy".to_owned()];
        let deploy = names("apps", "deployments", "Deployment", &short);
        for p in [
            "deployments",
            "deployments.apps",
            "deploy",
            "Deployment",
            "deploy.apps",
            "*",
        ] {
            assert!(matches_pattern(p, &deploy), "{p}");
        }
        for p in ["deployments.batch", "deployment.apps.x", "pods", "deploymentsapps"] {
            assert!(!matches_pattern(p, &deploy), "{p}");
        }
        let cm = names("", "configmaps", "ConfigMap", &[]);
        assert!(matches_pattern("configmaps", &cm));
        assert!(matches_pattern("configmaps.core", &cm));
        assert!(!matches_pattern("configmaps.apps", &cm));
    }

    #[test]
    fn noise_is_left_out_unless_named() {
        let events = names("", "events", "Event", &[]);
        let all = Filters::default();
        assert!(!all.resource_selected(&events));
        let named = Filters::new(&[], &[], &["events".into()], &[], None, ClusterResources::Auto).unwrap();
        assert!(named.resource_selected(&events));
        let cm = names("", "configmaps", "ConfigMap", &[]);
        assert!(all.resource_selected(&cm));
        assert!(!named.resource_selected(&cm));
        let excluded = Filters::new(
            &[],
            &[],
            &["*".into()],
            &["cm,configmaps".into()],
            None,
            ClusterResources::Auto,
        )
        .unwrap();
        assert!(!excluded.resource_selected(&cm));
    }

    #[test]
    fn namespaces_match_globs() {
        let f = Filters::new(
            &["app-*,db".into()],
            &["app-test".into()],
            &[],
            &[],
            None,
            ClusterResources::Auto,
        )
        .unwrap();
        assert!(f.namespace_selected("app-web"));
        assert!(f.namespace_selected("db"));
        assert!(!f.namespace_selected("app-test"));
        assert!(!f.namespace_selected("kube-system"));
        assert!(!f.all_namespaces());
        assert_eq!(f.literal_namespaces(), None);
        assert!(Filters::new(&["*".into()], &[], &[], &[], None, ClusterResources::Auto)
            .unwrap()
            .all_namespaces());
        assert!(Filters::new(&["[".into()], &[], &[], &[], None, ClusterResources::Auto).is_err());
    }

    #[test]
    fn selectors_parse_and_match() {
        let s = Selector::parse("app=web, tier in (front,back),!canary,env!=prod,team").unwrap();
        let mut labels: BTreeMap<String, String> = [("app", "web"), ("tier", "front"), ("team", "a")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert!(s.matches(&labels));
        labels.insert("canary".into(), "1".into());
        assert!(!s.matches(&labels));
        labels.remove("canary");
        labels.insert("tier".into(), "db".into());
        assert!(!s.matches(&labels));
        assert!(Selector::parse("a in x").is_err());
        assert!(Selector::parse("a=b,,c").is_err());
        assert!(Selector::parse("a b=c").is_err());
        assert!(Selector::parse("x notin (a)").unwrap().matches(&BTreeMap::new()));
    }
}
