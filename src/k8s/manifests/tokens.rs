//! Secrets holding service account tokens (type
//! `kubernetes.io/service-account-token`).
//!
//! The cluster's tokens controller owns them: it deletes one whose
//! ServiceAccount does not exist or whose `kubernetes.io/service-account.uid`
//! annotation names another account (a restored one names the old
//! account), and fills `token`, `ca.crt`, `namespace` and the uid of one
//! without. So a restore:
//!
//! - skips those the cluster generated for an account (listed in its
//!   `secrets`; clusters before 1.24 made one per account and make them
//!   again), and leaves them out of the restored account's `secrets`;
//! - creates hand-made long-lived ones after their account, without the
//!   old uid and without the old token, CA and namespace, for the
//!   controller to fill.

use std::collections::BTreeSet;

use serde_json::Value;

use super::normalise::ObjectPath;
use super::stored::StoredObject;

/// The type of a Secret holding a service account token.
pub const TOKEN_SECRET_TYPE: &str = "kubernetes.io/service-account-token";
/// The annotation naming the account of a token Secret.
pub const ACCOUNT_NAME: &str = "kubernetes.io/service-account.name";
/// The annotation holding the uid of that account.
pub const ACCOUNT_UID: &str = "kubernetes.io/service-account.uid";
/// The data the tokens controller writes.
const CONTROLLER_DATA: &[&str] = &["token", "ca.crt", "namespace"];

/// Whether an object is a token Secret.
pub fn is_token_secret(at: &ObjectPath, object: &Value) -> bool {
    at.group.is_empty()
        && at.plural == "secrets"
        && object.get("type").and_then(Value::as_str) == Some(TOKEN_SECRET_TYPE)
}

/// The token Secrets (namespace, name) the cluster generated: those a
/// ServiceAccount of the snapshot lists in its `secrets`.
pub fn generated(objects: &[StoredObject]) -> BTreeSet<(String, String)> {
    let secrets: BTreeSet<(String, String)> = objects
        .iter()
        .filter(|o| is_token_secret(&o.at, &o.object))
        .filter_map(|o| Some((o.at.namespace.clone()?, o.at.name.clone())))
        .collect();
    objects
        .iter()
        .filter(|o| o.at.group.is_empty() && o.at.plural == "serviceaccounts")
        .filter_map(|o| Some((o.at.namespace.clone()?, o.object.get("secrets")?.as_array()?)))
        .flat_map(|(ns, list)| {
            list.iter()
                .filter_map(|s| s.get("name").and_then(Value::as_str))
                .map(move |name| (ns.clone(), name.to_owned()))
        })
        .filter(|k| secrets.contains(k))
        .collect()
}

/// Why a token Secret is not restored, if it is not.
pub fn skip_reason(at: &ObjectPath, object: &Value, generated: &BTreeSet<(String, String)>) -> Option<String> {
    if !is_token_secret(at, object) {
        return None;
    }
    let ns = at.namespace.clone().unwrap_or_default();
    generated.contains(&(ns, at.name.clone())).then(|| {
        let account = annotation(object, ACCOUNT_NAME).unwrap_or("?");
        format!("a token the cluster generated for service account {account}; the cluster makes its own")
    })
}

fn annotation<'a>(object: &'a Value, name: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(name))
        .and_then(Value::as_str)
}

/// Rewrites a token Secret (without the old account's uid and what the
/// controller fills) or a ServiceAccount (without its generated tokens in
/// `secrets`) for creation.
pub fn rewrite(at: &ObjectPath, object: &mut Value, generated: &BTreeSet<(String, String)>) {
    if is_token_secret(at, object) {
        if let Some(a) = object
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            a.remove(ACCOUNT_UID);
        }
        if let Some(data) = object.get_mut("data").and_then(Value::as_object_mut) {
            for key in CONTROLLER_DATA {
                data.remove(*key);
            }
        }
    } else if at.group.is_empty() && at.plural == "serviceaccounts" {
        let ns = at.namespace.clone().unwrap_or_default();
        if let Some(list) = object.get_mut("secrets").and_then(Value::as_array_mut) {
            list.retain(|s| {
                let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
                !generated.contains(&(ns.clone(), name.to_owned()))
            });
            if list.is_empty() {
                if let Some(m) = object.as_object_mut() {
                    m.remove("secrets");
                }
            }
        }
    }
}

/// Moves the token Secrets of a restore order to just after the last
/// ServiceAccount (where one comes before them), so each is created after
/// its account, whatever the rest of the order.
pub fn after_accounts(order: &mut Vec<StoredObject>) {
    let Some(last_account) = order
        .iter()
        .rposition(|o| o.at.group.is_empty() && o.at.plural == "serviceaccounts")
    else {
        return;
    };
    let early: Vec<usize> = (0..last_account)
        .filter(|&i| is_token_secret(&order[i].at, &order[i].object))
        .collect();
    if early.is_empty() {
        return;
    }
    let mut moved = Vec::with_capacity(early.len());
    for &i in early.iter().rev() {
        moved.push(order.remove(i));
    }
    moved.reverse();
    let at = last_account + 1 - moved.len();
    for (n, o) in moved.into_iter().enumerate() {
        order.insert(at + n, o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(plural: &str, name: &str, object: Value) -> StoredObject {
        StoredObject {
            path: format!("{plural}/{name}"),
            at: ObjectPath {
                group: String::new(),
                plural: plural.into(),
                namespace: Some("shop".into()),
                name: name.into(),
            },
            object,
        }
    }

    fn token(name: &str) -> StoredObject {
        stored(
            "secrets",
            name,
            json!({"type": TOKEN_SECRET_TYPE, "metadata": {"name": name, "annotations": {
                ACCOUNT_NAME: "ci", ACCOUNT_UID: "old-uid"}},
                "data": {"token": "b2xk", "ca.crt": "Y2E=", "namespace": "c2hvcA==", "extra": "eA=="}}),
        )
    }

    #[test]
    fn generated_tokens_are_skipped_and_hand_made_ones_lose_what_the_controller_fills() {
        let objects = vec![
            stored(
                "serviceaccounts",
                "ci",
                json!({"metadata": {"name": "ci"}, "secrets": [{"name": "ci-token-x2b7k"}, {"name": "other"}]}),
            ),
            token("ci-token-x2b7k"),
            token("ci-long-lived"),
            stored(
                "secrets",
                "other",
                json!({"type": "Opaque", "metadata": {"name": "other"}}),
            ),
        ];
        let generated = generated(&objects);
        assert_eq!(generated, [("shop".to_owned(), "ci-token-x2b7k".to_owned())].into());
        let why = skip_reason(&objects[1].at, &objects[1].object, &generated).unwrap();
        assert!(why.contains("service account ci"), "{why}");
        assert_eq!(skip_reason(&objects[2].at, &objects[2].object, &generated), None);
        assert_eq!(skip_reason(&objects[3].at, &objects[3].object, &generated), None);

        let mut secret = objects[2].object.clone();
        rewrite(&objects[2].at, &mut secret, &generated);
        assert_eq!(secret["metadata"]["annotations"], json!({ACCOUNT_NAME: "ci"}));
        assert_eq!(secret["data"], json!({"extra": "eA=="}));
        let mut account = objects[0].object.clone();
        rewrite(&objects[0].at, &mut account, &generated);
        assert_eq!(account["secrets"], json!([{"name": "other"}]));
    }

    #[test]
    fn token_secrets_move_after_the_last_account() {
        let mut order = vec![
            token("a-token"),
            stored("secrets", "plain", json!({"type": "Opaque"})),
            token("b-token"),
            stored("configmaps", "c", json!({})),
            stored("serviceaccounts", "ci", json!({})),
            stored("deployments", "d", json!({})),
        ];
        after_accounts(&mut order);
        let names: Vec<&str> = order.iter().map(|o| o.at.name.as_str()).collect();
        assert_eq!(names, ["plain", "c", "ci", "a-token", "b-token", "d"]);
        // Already after: unchanged.
        let before: Vec<String> = order.iter().map(|o| o.at.name.clone()).collect();
        after_accounts(&mut order);
        let again: Vec<String> = order.iter().map(|o| o.at.name.clone()).collect();
        assert_eq!(before, again);
    }
}
