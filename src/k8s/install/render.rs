//! Manifests as text: YAML documents separated by `---`, or a JSON `List`.

use serde_json::Value;

use crate::k8s::K8sError;

/// How manifests are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Yaml,
    Json,
}

impl std::str::FromStr for Format {
    type Err = K8sError;

    fn from_str(s: &str) -> Result<Self, K8sError> {
        match s {
            "yaml" => Ok(Self::Yaml),
            "json" => Ok(Self::Json),
            other => Err(K8sError::InvalidOption(format!(
                "-o/--output: {other:?} is not an output format (yaml or json)"
            ))),
        }
    }
}

/// The objects as one text, ending with a newline.
pub fn render(objects: &[Value], format: Format) -> Result<String, K8sError> {
    let fail = |e: &dyn std::fmt::Display| K8sError::InvalidObject {
        path: "manifest".into(),
        reason: e.to_string(),
    };
    match format {
        Format::Json => {
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
            let mut text = serde_json::to_string_pretty(&list).map_err(|e| fail(&e))?;
            text.push('\n');
            Ok(text)
        }
        Format::Yaml => {
            let mut text = String::new();
            for (i, obj) in objects.iter().enumerate() {
                if i > 0 {
                    text.push_str("---\n");
                }
                text.push_str(&serde_norway::to_string(obj).map_err(|e| fail(&e))?);
            }
            Ok(text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_documents_and_json_list() {
        let objs = [json!({"kind": "A", "n": 1}), json!({"kind": "B", "s": "x: y"})];
        let yaml = render(&objs, Format::Yaml).unwrap();
        assert_eq!(yaml.matches("\n---\n").count(), 1, "{yaml}");
        assert!(yaml.ends_with('\n'));
        let back: Vec<Value> = yaml
            .split("---\n")
            .map(|d| serde_norway::from_str(d).unwrap())
            .collect();
        assert_eq!(back, objs);
        let list: Value = serde_json::from_str(&render(&objs, Format::Json).unwrap()).unwrap();
        assert_eq!(list["kind"], "List");
        assert_eq!(list["items"].as_array().unwrap().len(), 2);
        let err = "xml".parse::<Format>().unwrap_err();
        assert!(err.is_usage() && err.to_string().contains("\"xml\""), "{err}");
    }
}
