//! Resource modifiers: what a restore changes in objects beyond its own
//! rewrites, at the user's request.
//!
//! - **Storage class mapping** (`old` to `new`): `spec.storageClassName` of
//!   claims and volumes (and a claim's legacy
//!   `volume.beta.kubernetes.io/storage-class` annotation), and of the
//!   claim templates of StatefulSets.
//! - **Image mapping** (`old` to `new`): the images of the containers, init
//!   containers and ephemeral containers of pods and of every pod template
//!   (Deployments, StatefulSets, DaemonSets, ReplicaSets,
//!   ReplicationControllers, Jobs, CronJobs' job templates, PodTemplates).
//!   An image matches `old` when it is `old`, or starts with `old` followed
//!   by `/`, `:` or `@` (so `old` may be a registry, a repository or a whole
//!   reference); the longest matching `old` wins. A `new` with a tag or a
//!   digest replaces the whole reference; a `new` without keeps what
//!   follows the matched prefix (the image's path, tag or digest).
//! - **Rules**: JSON patches (RFC 6902) and merge patches (RFC 7386)
//!   applied to the objects a rule's conditions select, in the layout of
//!   Velero's resource modifiers:
//!
//! ```yaml
//! version: v1
//! resourceModifierRules:
//! - conditions:
//!     groupResource: deployments.apps   # `plural.group`, `plural` for the core group; `*` globs
//!     resourceNameRegex: "^web-"        # optional, searched in the name
//!     namespaces: [shop]                # optional; none means every namespace (and cluster scope)
//!     labelSelector:                    # optional
//!       matchLabels: {app: web}
//!   patches:
//!   - operation: replace                # add, remove, replace, copy, move, test
//!     path: /spec/replicas
//!     value: 1
//!   mergePatches:
//!   - patchData: '{"metadata": {"annotations": {"restored": "yes"}}}'
//! ```
//!
//! A rule's patches apply to an object as one patch document: a failing
//! `test` (or one whose path is missing) leaves the object as it was and skips the rest of the rule (the
//! way to make a rule conditional on a field); any other failure fails the
//! object, naming the rule. Values are taken as the YAML types them (Velero
//! reads every `value` as text and guesses: there `"1"` is a number, here a
//! string). Strategic merge patches are refused.
//!
//! Everything is checked when parsed, before a restore starts: an unknown
//! operation, a path that is no JSON pointer, a bad regex or selector, or a
//! file that does not parse is one line naming the rule and what is wrong.
//! Conditions see the object as it is created: its namespace after the
//! namespace mapping.

use std::collections::BTreeMap;

use globset::{GlobBuilder, GlobMatcher};
use regex::Regex;
use serde::Deserialize;
use serde_json::{json, Value};

use super::filter::{labels_of, split_list};
use super::needs::pod_spec_pointer;
use crate::k8s::K8sError;

/// What a restore modifies, all of it checked.
#[derive(Debug, Clone, Default)]
pub struct Modifiers {
    storage_classes: BTreeMap<String, String>,
    /// (old, new), longest `old` first.
    images: Vec<(String, String)>,
    rules: Vec<Rule>,
}

/// One rule: which objects, and what is done to them.
#[derive(Debug, Clone)]
struct Rule {
    /// 1-based, for messages.
    number: usize,
    resource: GlobMatcher,
    name: Option<Regex>,
    namespaces: Vec<String>,
    selector: Option<LabelSelector>,
    patch: json_patch::Patch,
    merges: Vec<Value>,
}

/// A Kubernetes `LabelSelector`: `matchLabels` and `matchExpressions`.
#[derive(Debug, Clone, Default)]
struct LabelSelector {
    labels: BTreeMap<String, String>,
    expressions: Vec<(String, Operator, Vec<String>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl LabelSelector {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.expressions.iter().all(|(key, op, values)| {
                let value = labels.get(key);
                match op {
                    Operator::In => value.is_some_and(|v| values.contains(v)),
                    Operator::NotIn => value.is_none_or(|v| !values.contains(v)),
                    Operator::Exists => value.is_some(),
                    Operator::DoesNotExist => value.is_none(),
                }
            })
    }
}

// The rules file as written.

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RulesFile {
    version: String,
    #[serde(default)]
    resource_modifier_rules: Vec<RuleText>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RuleText {
    conditions: ConditionsText,
    #[serde(default)]
    patches: Vec<PatchText>,
    #[serde(default)]
    merge_patches: Vec<PatchData>,
    #[serde(default)]
    strategic_patches: Vec<PatchData>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConditionsText {
    #[serde(default)]
    group_resource: String,
    #[serde(default)]
    resource_name_regex: Option<String>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default)]
    label_selector: Option<SelectorText>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SelectorText {
    #[serde(default)]
    match_labels: BTreeMap<String, String>,
    #[serde(default)]
    match_expressions: Vec<ExpressionText>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExpressionText {
    key: String,
    operator: String,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PatchText {
    operation: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    value: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PatchData {
    patch_data: String,
}

/// Why `p` is no JSON pointer (RFC 6901), if it is not.
fn pointer_problem(p: &str) -> Option<String> {
    if !p.is_empty() && !p.starts_with('/') {
        return Some(format!("path {p:?} is not a JSON pointer (it must start with '/')"));
    }
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Some(format!("path {p:?}: '~' must be followed by 0 or 1"));
        }
    }
    None
}

const OPERATIONS: &[&str] = &["add", "remove", "replace", "copy", "move", "test"];

fn parse_patch(p: PatchText) -> Result<json_patch::PatchOperation, String> {
    let op = p.operation.as_str();
    if !OPERATIONS.contains(&op) {
        return Err(format!("unknown operation {op:?} (one of {})", OPERATIONS.join(", ")));
    }
    let path = p.path.ok_or_else(|| format!("{op} needs a path"))?;
    if let Some(why) = pointer_problem(&path) {
        return Err(why);
    }
    let mut doc = json!({"op": op, "path": path});
    match op {
        "add" | "replace" | "test" => {
            doc["value"] = p.value.ok_or_else(|| format!("{op} needs a value"))?;
        }
        "copy" | "move" => {
            let from = p.from.ok_or_else(|| format!("{op} needs a from"))?;
            if let Some(why) = pointer_problem(&from) {
                return Err(format!("from: {why}"));
            }
            if op == "move" && (path.starts_with(&format!("{from}/")) || from.is_empty()) {
                return Err(format!("move from {from:?} into its own child {path:?}"));
            }
            doc["from"] = Value::String(from);
        }
        _ => {}
    }
    serde_json::from_value(doc).map_err(|e| format!("{op} {path:?}: {e}"))
}

fn parse_selector(s: SelectorText) -> Result<LabelSelector, String> {
    let mut expressions = Vec::new();
    for e in s.match_expressions {
        let op = match e.operator.as_str() {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            other => {
                return Err(format!(
                    "labelSelector: unknown operator {other:?} (one of In, NotIn, Exists, DoesNotExist)"
                ))
            }
        };
        let needs_values = matches!(op, Operator::In | Operator::NotIn);
        if needs_values == e.values.is_empty() {
            return Err(format!(
                "labelSelector: {} {key:?} {}",
                e.operator,
                if needs_values {
                    "needs values"
                } else {
                    "takes no values"
                },
                key = e.key
            ));
        }
        expressions.push((e.key, op, e.values));
    }
    Ok(LabelSelector {
        labels: s.match_labels,
        expressions,
    })
}

fn parse_rule(number: usize, r: RuleText) -> Result<Rule, String> {
    let c = r.conditions;
    if c.group_resource.trim().is_empty() {
        return Err("conditions.groupResource is missing (deployments.apps, pods, *)".into());
    }
    let resource = GlobBuilder::new(c.group_resource.trim())
        .case_insensitive(true)
        .literal_separator(false)
        .build()
        .map_err(|e| format!("conditions.groupResource {:?}: {e}", c.group_resource))?
        .compile_matcher();
    let name = match c.resource_name_regex.as_deref().filter(|r| !r.is_empty()) {
        Some(text) => Some(Regex::new(text).map_err(|e| {
            let first = e.to_string().lines().last().unwrap_or_default().trim().to_owned();
            format!("conditions.resourceNameRegex {text:?} is not a regex: {first}")
        })?),
        None => None,
    };
    let selector = c.label_selector.map(parse_selector).transpose()?;
    if !r.strategic_patches.is_empty() {
        return Err("strategicPatches are not supported (use patches or mergePatches)".into());
    }
    if r.patches.is_empty() && r.merge_patches.is_empty() {
        return Err("it has no patches".into());
    }
    let mut ops = Vec::new();
    for (i, p) in r.patches.into_iter().enumerate() {
        ops.push(parse_patch(p).map_err(|e| format!("patch {}: {e}", i + 1))?);
    }
    let mut merges = Vec::new();
    for (i, m) in r.merge_patches.into_iter().enumerate() {
        let value: Value = serde_norway::from_str(&m.patch_data)
            .map_err(|e| format!("mergePatch {}: patchData does not parse: {}", i + 1, one_line(&e)))?;
        if !value.is_object() {
            return Err(format!("mergePatch {}: patchData is not an object", i + 1));
        }
        merges.push(value);
    }
    Ok(Rule {
        number,
        resource,
        name,
        namespaces: c.namespaces,
        selector,
        patch: json_patch::Patch(ops),
        merges,
    })
}

fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses a rules file (YAML or JSON); `source` names it in errors
/// (`--resource-modifiers rules.yaml`).
fn parse_rules(source: &str, text: &str) -> Result<Vec<Rule>, K8sError> {
    let bad = |why: String| K8sError::InvalidOption(format!("{source}: {why}"));
    let file: RulesFile = serde_norway::from_str(text).map_err(|e| bad(format!("does not parse: {}", one_line(&e))))?;
    if file.version != "v1" {
        return Err(bad(format!("version {:?} is not v1", file.version)));
    }
    file.resource_modifier_rules
        .into_iter()
        .enumerate()
        .map(|(i, r)| parse_rule(i + 1, r).map_err(|e| bad(format!("rule {}: {e}", i + 1))))
        .collect()
}

/// Parses `OLD:NEW,...` or `OLD=NEW,...` (repeatable) for `option`. `=`
/// separates when present, else the one `:` (image references hold `:`
/// themselves: `registry:5000/app=registry.new/app`).
fn parse_pairs(option: &str, values: &[String]) -> Result<Vec<(String, String)>, K8sError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in split_list(values) {
        let split = if pair.contains('=') {
            pair.split_once('=')
        } else if pair.matches(':').count() == 1 {
            pair.split_once(':')
        } else {
            None
        };
        let (old, new) = split
            .map(|(a, b)| (a.trim(), b.trim()))
            .filter(|(a, b)| !a.is_empty() && !b.is_empty() && !b.contains('='))
            .ok_or_else(|| {
                K8sError::InvalidOption(format!(
                    "{option} {pair:?}: expected OLD:NEW (or OLD=NEW when the names hold ':')"
                ))
            })?;
        if out.iter().any(|(o, _)| o == old) {
            return Err(K8sError::InvalidOption(format!("{option}: {old:?} is mapped twice")));
        }
        out.push((old.to_owned(), new.to_owned()));
    }
    Ok(out)
}

/// Parses `--storage-class-mapping` values.
pub fn parse_storage_class_mapping(values: &[String]) -> Result<BTreeMap<String, String>, K8sError> {
    Ok(parse_pairs("--storage-class-mapping", values)?.into_iter().collect())
}

/// Parses `--image-mapping` values.
pub fn parse_image_mapping(values: &[String]) -> Result<BTreeMap<String, String>, K8sError> {
    Ok(parse_pairs("--image-mapping", values)?.into_iter().collect())
}

/// Whether an image reference names a tag or a digest.
fn has_tag_or_digest(image: &str) -> bool {
    image.contains('@') || image.rsplit('/').next().is_some_and(|last| last.contains(':'))
}

/// `image` rewritten by the first (longest) matching entry of `images`.
fn map_image(images: &[(String, String)], image: &str) -> Option<String> {
    images.iter().find_map(|(old, new)| {
        let rest = image.strip_prefix(old.as_str())?;
        if rest.is_empty() {
            return Some(new.clone());
        }
        if !rest.starts_with(['/', ':', '@']) {
            return None;
        }
        Some(if has_tag_or_digest(new) {
            new.clone()
        } else {
            format!("{new}{rest}")
        })
    })
}

/// What an object is, for the modifiers.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub group: &'a str,
    pub plural: &'a str,
    /// After the namespace mapping.
    pub namespace: Option<&'a str>,
    pub name: &'a str,
}

impl Modifiers {
    /// Checked modifiers: storage class and image mappings, and the rules
    /// of a file (`(source, text)`, `source` naming it in messages).
    pub fn new(
        storage_classes: BTreeMap<String, String>,
        images: BTreeMap<String, String>,
        rules: Option<(&str, &str)>,
    ) -> Result<Self, K8sError> {
        let mut images: Vec<(String, String)> = images.into_iter().collect();
        images.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        let rules = match rules {
            Some((source, text)) => parse_rules(source, text)?,
            None => Vec::new(),
        };
        Ok(Self {
            storage_classes,
            images,
            rules,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.storage_classes.is_empty() && self.images.is_empty() && self.rules.is_empty()
    }

    /// Applies the mappings, then the rules in order. The error is the
    /// object's failure (naming the rule).
    pub fn apply(&self, t: Target<'_>, object: &mut Value) -> Result<(), String> {
        self.map_storage_classes(t, object);
        self.map_images(t, object);
        let resource = super::discovery::qualified(t.group, t.plural);
        for rule in &self.rules {
            if !rule.selects(&resource, t, object) {
                continue;
            }
            match json_patch::patch(object, &rule.patch) {
                Ok(()) => {}
                // A test that fails, or whose path is not there.
                Err(e) if matches!(rule.patch.0.get(e.operation), Some(json_patch::PatchOperation::Test(_))) => {
                    continue
                }
                Err(e) => {
                    return Err(format!(
                        "resource modifier rule {}: patch {} ({}) failed: {}",
                        rule.number,
                        e.operation + 1,
                        e.path,
                        e.kind
                    ))
                }
            }
            for m in &rule.merges {
                json_patch::merge(object, m);
            }
        }
        Ok(())
    }

    fn map_storage_classes(&self, t: Target<'_>, object: &mut Value) {
        if self.storage_classes.is_empty() {
            return;
        }
        let map = |v: Option<&mut Value>| {
            if let Some(v) = v {
                if let Some(new) = v.as_str().and_then(|old| self.storage_classes.get(old)) {
                    *v = Value::String(new.clone());
                }
            }
        };
        match (t.group, t.plural) {
            ("", "persistentvolumeclaims") => {
                map(object.pointer_mut("/spec/storageClassName"));
                map(object.pointer_mut("/metadata/annotations/volume.beta.kubernetes.io~1storage-class"));
            }
            ("", "persistentvolumes") => map(object.pointer_mut("/spec/storageClassName")),
            ("apps", "statefulsets") => {
                if let Some(templates) = object
                    .pointer_mut("/spec/volumeClaimTemplates")
                    .and_then(Value::as_array_mut)
                {
                    for t in templates {
                        map(t.pointer_mut("/spec/storageClassName"));
                        map(t.pointer_mut("/metadata/annotations/volume.beta.kubernetes.io~1storage-class"));
                    }
                }
            }
            _ => {}
        }
    }

    fn map_images(&self, t: Target<'_>, object: &mut Value) {
        if self.images.is_empty() {
            return;
        }
        let Some(spec) = pod_spec_pointer(t.group, t.plural).and_then(|p| object.pointer_mut(p)) else {
            return;
        };
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
                continue;
            };
            for c in containers {
                let Some(image) = c.get_mut("image") else { continue };
                if let Some(new) = image.as_str().and_then(|i| map_image(&self.images, i)) {
                    *image = Value::String(new);
                }
            }
        }
    }
}

impl Rule {
    fn selects(&self, resource: &str, t: Target<'_>, object: &Value) -> bool {
        self.resource.is_match(resource)
            && self.name.as_ref().is_none_or(|re| re.is_match(t.name))
            && (self.namespaces.is_empty() || t.namespace.is_some_and(|ns| self.namespaces.iter().any(|n| n == ns)))
            && self.selector.as_ref().is_none_or(|s| s.matches(&labels_of(object)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target<'a>(group: &'a str, plural: &'a str, ns: Option<&'a str>, name: &'a str) -> Target<'a> {
        Target {
            group,
            plural,
            namespace: ns,
            name,
        }
    }

    fn rules(text: &str) -> Result<Modifiers, K8sError> {
        Modifiers::new(
            BTreeMap::new(),
            BTreeMap::new(),
            Some(("--resource-modifiers m.yaml", text)),
        )
    }

    fn error(text: &str) -> String {
        let e = rules(text).unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("--resource-modifiers m.yaml"), "{e}");
        e
    }

    #[test]
    fn images_map_by_whole_reference_and_by_prefix() {
        let images = parse_image_mapping(&[
            "nginx:1.25=nginx:1.27".into(),
            "registry.old:5000=registry.new".into(),
            "docker.io/library/redis=mirror.local/redis".into(),
            "busybox:busybox-mirror".into(),
        ])
        .unwrap();
        let m = Modifiers::new(BTreeMap::new(), images, None).unwrap();
        let mut deploy = json!({"spec": {"template": {"spec": {
            "initContainers": [{"name": "i", "image": "busybox:1.36"}],
            "containers": [{"name": "a", "image": "nginx:1.25"},
                           {"name": "b", "image": "registry.old:5000/team/app@sha256:abc"},
                           {"name": "c", "image": "docker.io/library/redis:7"},
                           {"name": "d", "image": "nginx:1.250"},
                           {"name": "e", "image": "docker.io/library/redisx:7"}],
            "ephemeralContainers": [{"name": "dbg", "image": "busybox"}]}}}});
        m.apply(target("apps", "deployments", Some("a"), "web"), &mut deploy)
            .unwrap();
        let spec = &deploy["spec"]["template"]["spec"];
        assert_eq!(spec["containers"][0]["image"], "nginx:1.27");
        assert_eq!(spec["containers"][1]["image"], "registry.new/team/app@sha256:abc");
        assert_eq!(spec["containers"][2]["image"], "mirror.local/redis:7");
        assert_eq!(spec["containers"][3]["image"], "nginx:1.250");
        assert_eq!(spec["containers"][4]["image"], "docker.io/library/redisx:7");
        assert_eq!(spec["initContainers"][0]["image"], "busybox-mirror:1.36");
        assert_eq!(spec["ephemeralContainers"][0]["image"], "busybox-mirror");
        // A new reference with a tag replaces the whole reference.
        let m = Modifiers::new(BTreeMap::new(), [("nginx".into(), "nginx:1.27".into())].into(), None).unwrap();
        let mut cron = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "a", "image": "nginx:1.25"}]}}}}}});
        m.apply(target("batch", "cronjobs", Some("a"), "c"), &mut cron).unwrap();
        assert_eq!(
            cron.pointer("/spec/jobTemplate/spec/template/spec/containers/0/image"),
            Some(&json!("nginx:1.27"))
        );
        // Not a pod template: left alone.
        let mut cm = json!({"spec": {"containers": [{"image": "nginx:1.25"}]}});
        m.apply(target("", "configmaps", Some("a"), "c"), &mut cm).unwrap();
        assert_eq!(cm["spec"]["containers"][0]["image"], "nginx:1.25");
    }

    #[test]
    fn storage_classes_map_in_claims_volumes_and_claim_templates() {
        let classes = parse_storage_class_mapping(&["gp2:gp3,standard:fast".into()]).unwrap();
        let m = Modifiers::new(classes, BTreeMap::new(), None).unwrap();
        let mut pvc = json!({"metadata": {"annotations": {"volume.beta.kubernetes.io/storage-class": "standard"}},
                             "spec": {"storageClassName": "gp2"}});
        m.apply(target("", "persistentvolumeclaims", Some("a"), "c"), &mut pvc)
            .unwrap();
        assert_eq!(pvc["spec"]["storageClassName"], "gp3");
        assert_eq!(
            pvc["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"],
            "fast"
        );
        let mut pv = json!({"spec": {"storageClassName": "other"}});
        m.apply(target("", "persistentvolumes", None, "v"), &mut pv).unwrap();
        assert_eq!(pv["spec"]["storageClassName"], "other");
        let mut sts = json!({"spec": {"volumeClaimTemplates": [{"spec": {"storageClassName": "gp2"}}, {"spec": {}}]}});
        m.apply(target("apps", "statefulsets", Some("a"), "s"), &mut sts)
            .unwrap();
        assert_eq!(
            sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"],
            "gp3"
        );
        assert_eq!(sts["spec"]["volumeClaimTemplates"][1]["spec"], json!({}));
    }

    #[test]
    fn mappings_are_checked() {
        assert!(parse_storage_class_mapping(&["a".into()]).is_err());
        assert!(parse_storage_class_mapping(&["a:b,a:c".into()]).is_err());
        let e = parse_image_mapping(&["nginx:1.25:nginx:1.27".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--image-mapping") && e.contains("OLD=NEW"), "{e}");
        assert_eq!(parse_image_mapping(&["a=b:1".into()]).unwrap()["a"], "b:1");
    }

    const RULES: &str = r#"
version: v1
resourceModifierRules:
- conditions:
    groupResource: deployments.apps
    resourceNameRegex: "^web"
    namespaces: [shop]
    labelSelector:
      matchLabels: {tier: front}
      matchExpressions:
      - {key: env, operator: NotIn, values: [dev]}
  patches:
  - {operation: replace, path: /spec/replicas, value: 1}
  - {operation: add, path: /metadata/annotations/restored, value: "yes"}
- conditions:
    groupResource: "*"
  patches:
  - {operation: test, path: /spec/paused, value: true}
  - {operation: remove, path: /spec/paused}
- conditions:
    groupResource: configmaps
  patches:
  - {operation: copy, from: /data/a, path: /data/b}
  - {operation: move, from: /data/c, path: /data/d}
  mergePatches:
  - patchData: '{"metadata": {"labels": {"merged": "true"}}}'
"#;

    #[test]
    fn rules_select_by_resource_name_namespace_and_labels() {
        let m = rules(RULES).unwrap();
        let deploy = |labels: Value| {
            json!({"metadata": {"name": "web-1", "labels": labels, "annotations": {}},
                   "spec": {"replicas": 3, "paused": true}})
        };
        let mut hit = deploy(json!({"tier": "front"}));
        m.apply(target("apps", "deployments", Some("shop"), "web-1"), &mut hit)
            .unwrap();
        assert_eq!(hit["spec"], json!({"replicas": 1}));
        assert_eq!(hit["metadata"]["annotations"]["restored"], "yes");
        for (ns, name, labels) in [
            ("other", "web-1", json!({"tier": "front"})),
            ("shop", "api", json!({"tier": "front"})),
            ("shop", "web-1", json!({"tier": "back"})),
            ("shop", "web-1", json!({"tier": "front", "env": "dev"})),
        ] {
            let mut miss = deploy(labels);
            m.apply(target("apps", "deployments", Some(ns), name), &mut miss)
                .unwrap();
            assert_eq!(miss["spec"]["replicas"], 3, "{ns}/{name}");
            // The second rule (every resource) still applied.
            assert!(miss["spec"].get("paused").is_none());
        }
        // A failing test skips the rule and leaves the object as it was.
        let mut running = json!({"metadata": {"name": "x"}, "spec": {"paused": false}});
        m.apply(target("apps", "deployments", Some("shop"), "x"), &mut running)
            .unwrap();
        assert_eq!(running["spec"]["paused"], false);
        let mut cm = json!({"metadata": {"name": "c"}, "data": {"a": "1", "c": "3"}});
        m.apply(target("", "configmaps", Some("shop"), "c"), &mut cm).unwrap();
        assert_eq!(cm["data"], json!({"a": "1", "b": "1", "d": "3"}));
        assert_eq!(cm["metadata"]["labels"]["merged"], "true");
    }

    #[test]
    fn a_patch_that_cannot_apply_fails_the_object_naming_the_rule() {
        let m = rules(
            "version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  patches:\n  - {operation: remove, path: /spec/nothing}\n",
        )
        .unwrap();
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {}});
        let e = m.apply(target("", "pods", Some("a"), "p"), &mut pod).unwrap_err();
        assert!(e.contains("rule 1") && e.contains("/spec/nothing"), "{e}");
        assert_eq!(pod, json!({"metadata": {"name": "p"}, "spec": {}}));
    }

    #[test]
    fn bad_rules_are_one_line_naming_what_is_wrong() {
        let head = "version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods";
        let e = error(&format!(
            "{head}}}\n  patches:\n  - {{operation: upsert, path: /a, value: 1}}\n"
        ));
        assert!(e.contains("rule 1: patch 1: unknown operation \"upsert\""), "{e}");
        let e = error(&format!(
            "{head}, resourceNameRegex: \"web(\"}}\n  patches:\n  - {{operation: remove, path: /a}}\n"
        ));
        assert!(e.contains("resourceNameRegex \"web(\" is not a regex"), "{e}");
        let e = error(&format!(
            "{head}}}\n  patches:\n  - {{operation: remove, path: spec/a}}\n"
        ));
        assert!(e.contains("not a JSON pointer"), "{e}");
        let e = error(&format!(
            "{head}}}\n  patches:\n  - {{operation: remove, path: /a~2}}\n"
        ));
        assert!(e.contains("'~'"), "{e}");
        let e = error(&format!("{head}}}\n  patches:\n  - {{operation: add, path: /a}}\n"));
        assert!(e.contains("add needs a value"), "{e}");
        let e = error(&format!("{head}}}\n  patches:\n  - {{operation: copy, path: /a}}\n"));
        assert!(e.contains("copy needs a from"), "{e}");
        let e = error(&format!("{head}}}\n"));
        assert!(e.contains("no patches"), "{e}");
        let e = error("version: v1\nresourceModifierRules:\n- conditions: {}\n  patches: []\n");
        assert!(e.contains("groupResource is missing"), "{e}");
        let e = error("version: v2\n");
        assert!(e.contains("version \"v2\""), "{e}");
        let e = error("version: v1\nresourceModifierRules: [ {\n");
        assert!(e.contains("does not parse"), "{e}");
        let e = error("version: v1\nrules: []\n");
        assert!(e.contains("unknown field"), "{e}");
        let e = error(&format!("{head}}}\n  strategicPatches:\n  - patchData: '{{}}'\n"));
        assert!(e.contains("strategicPatches"), "{e}");
        let e = error(&format!(
            "{head}, labelSelector: {{matchExpressions: [{{key: a, operator: Has}}]}}}}\n  patches:\n  - {{operation: remove, path: /a}}\n"
        ));
        assert!(e.contains("unknown operator \"Has\""), "{e}");
        // JSON is YAML too.
        let json = r#"{"version": "v1", "resourceModifierRules": [{"conditions": {"groupResource": "pods"},
            "patches": [{"operation": "add", "path": "/metadata/labels/x", "value": "y"}]}]}"#;
        assert!(rules(json).is_ok());
    }
}
