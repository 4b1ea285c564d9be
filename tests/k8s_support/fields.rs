//! Field selectors as the API server takes them: `a=b`, `a==b`, `a!=b`,
//! comma-separated, on `metadata.name`, `metadata.namespace`, the fields a
//! built-in kind registers, and a CRD's `selectableFields`. Any other field
//! is a 400.

use serde_json::Value;

use super::{api_version, status, ResDef};

/// Field selectors a built-in kind supports beyond name and namespace (the
/// real server's per-kind `GetAttrs`, the ones a controller uses).
pub fn builtin_selectable(group: &str, plural: &str) -> Vec<String> {
    let fields: &[&str] = match (group, plural) {
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "secrets") => &["type"],
        ("", "nodes") => &["spec.unschedulable"],
        ("", "namespaces") => &["status.phase"],
        ("", "persistentvolumeclaims") => &[],
        ("batch", "jobs") => &["status.successful"],
        ("apps", "replicasets") => &["status.replicas"],
        _ => &[],
    };
    fields.iter().map(|f| (*f).to_owned()).collect()
}

/// One requirement of a field selector.
#[derive(Debug, Clone)]
pub struct Requirement {
    pub field: String,
    pub value: String,
    pub equal: bool,
}

/// A parsed field selector.
#[derive(Debug, Clone, Default)]
pub struct FieldSelector(pub Vec<Requirement>);

impl FieldSelector {
    /// Parses and checks a selector against what `d` supports; errors are
    /// the real server's 400 for a list or watch of `d`.
    pub fn parse(d: &ResDef, text: &str, labels: &str) -> Result<Self, (u16, Value)> {
        let mut reqs = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, value, equal) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, true)
            } else {
                return Err(status(
                    400,
                    "BadRequest",
                    &format!("invalid field selector: '{part}': invalid selector: '{text}'; can't understand '{part}'"),
                ));
            };
            let field = field.trim();
            let known =
                field == "metadata.name" || field == "metadata.namespace" || d.selectable.iter().any(|s| s == field);
            if !known {
                let gv = if d.group.is_empty() {
                    format!("/{}", d.version)
                } else {
                    api_version(&d.group, &d.version)
                };
                return Err(status(
                    400,
                    "BadRequest",
                    &format!(
                        "Unable to find \"{gv}, Resource={}\" that match label selector \"{labels}\", field selector \"{text}\": field label not supported: {field}",
                        d.plural
                    ),
                ));
            }
            reqs.push(Requirement {
                field: field.to_owned(),
                value: value.trim().to_owned(),
                equal,
            });
        }
        Ok(Self(reqs))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0
            .iter()
            .all(|r| (field_value(obj, &r.field) == r.value) == r.equal)
    }
}

/// An object's value for a field label: a string as is, a number or boolean
/// as text, a missing field as "".
pub fn field_value(obj: &Value, field: &str) -> String {
    let ptr = format!("/{}", field.replace('.', "/"));
    match obj.pointer(&ptr) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}
