//! What a real cluster's controllers do at once after a write, played in
//! the store so that a restore meets them:
//!
//! - the service account controller makes `default` in every namespace
//!   created ([`State::after_create`]);
//! - the tokens controller looks at every Secret of type
//!   `kubernetes.io/service-account-token` created by a client: one whose
//!   ServiceAccount does not exist, or whose
//!   `kubernetes.io/service-account.uid` annotation names another uid, is
//!   deleted; one without that annotation gets the account's uid, a
//!   `token`, `ca.crt` and `namespace` ([`State::after_client_create`]);
//! - the API server keeps a Service's allocated cluster IPs and node ports
//!   when an update leaves them out, and refuses one that changes the
//!   cluster IP ([`State::before_update`]).
//!
//! Simplified on purpose: the controllers act within the request that
//! made the change, not a moment later.

use base64::Engine;
use serde_json::{json, Value};

use super::{status, Key, ResDef, State};

/// The type of a Secret holding a service account's token.
pub const TOKEN_SECRET_TYPE: &str = "kubernetes.io/service-account-token";
/// The annotations of a token Secret naming its ServiceAccount.
pub const SA_NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
pub const SA_UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";
/// The CA the fake tokens controller puts into token Secrets.
pub const FAKE_CA: &str = "-----BEGIN CERTIFICATE-----\nfake cluster CA\n-----END CERTIFICATE-----\n";

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

impl State {
    /// After any create (a client's or a seed's).
    pub fn after_create(&mut self, key: &Key) {
        if key.0.is_empty() && key.1 == "namespaces" {
            let sa = (
                String::new(),
                "serviceaccounts".to_owned(),
                key.3.clone(),
                "default".to_owned(),
            );
            if !self.objects.contains_key(&sa) {
                if let Some(d) = self.def_of("", "serviceaccounts") {
                    let _ = self.create(
                        &d,
                        json!({"metadata": {"name": "default", "namespace": key.3}}),
                        "kube-controller-manager",
                        false,
                    );
                }
            }
        }
    }

    /// After a client's create, once the answer is taken.
    pub fn after_client_create(&mut self, key: &Key) {
        if key.0.is_empty() && key.1 == "secrets" {
            self.sync_token_secret(key);
        }
    }

    /// The tokens controller's work on one Secret.
    pub fn sync_token_secret(&mut self, key: &Key) {
        let Some(secret) = self.objects.get(key).cloned() else {
            return;
        };
        if str_at(&secret, "/type") != TOKEN_SECRET_TYPE {
            return;
        }
        let Some(d) = self.def_of("", "secrets") else {
            return;
        };
        let annotation = |name: &str| format!("/metadata/annotations/{}", name.replace('/', "~1"));
        let sa_name = str_at(&secret, &annotation(SA_NAME_ANNOTATION)).to_owned();
        let sa_key = (String::new(), "serviceaccounts".to_owned(), key.2.clone(), sa_name);
        let sa_uid = self
            .objects
            .get(&sa_key)
            .map(|sa| str_at(sa, "/metadata/uid").to_owned());
        let given_uid = str_at(&secret, &annotation(SA_UID_ANNOTATION)).to_owned();
        match sa_uid {
            Some(uid) if given_uid.is_empty() => {
                let mut filled = secret.clone();
                filled["metadata"]["annotations"][SA_UID_ANNOTATION] = json!(uid);
                if !filled["data"].is_object() {
                    filled["data"] = json!({});
                }
                filled["data"]["token"] = json!(b64(&format!("token-for-{}-{uid}", key.3)));
                filled["data"]["ca.crt"] = json!(b64(FAKE_CA));
                filled["data"]["namespace"] = json!(b64(&key.2));
                let _ = self.replace(&d, key, filled, Some("kube-controller-manager"));
            }
            Some(uid) if uid == given_uid => {}
            _ => {
                let _ = self.delete(&d, key, false);
            }
        }
    }

    /// Before an update is stored: what the server keeps and refuses.
    pub fn before_update(&self, d: &ResDef, old: &Value, new: &mut Value) -> Result<(), (u16, Value)> {
        if !(d.group.is_empty() && d.plural == "services") {
            return Ok(());
        }
        let name = str_at(old, "/metadata/name").to_owned();
        for f in ["clusterIP", "clusterIPs", "healthCheckNodePort"] {
            if new.pointer(&format!("/spec/{f}")).is_none() {
                if let Some(v) = old.pointer(&format!("/spec/{f}")) {
                    new["spec"][f] = v.clone();
                }
            }
        }
        let old_ports = old
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for port in ports.iter_mut().filter(|p| p.get("nodePort").is_none()) {
                if let Some(np) = old_ports
                    .iter()
                    .find(|o| o.get("port") == port.get("port"))
                    .and_then(|o| o.get("nodePort"))
                {
                    port["nodePort"] = np.clone();
                }
            }
        }
        let (was, is) = (str_at(old, "/spec/clusterIP"), str_at(new, "/spec/clusterIP"));
        if !was.is_empty() && was != is {
            return Err(status(
                422,
                "Invalid",
                &format!("Service \"{name}\" is invalid: spec.clusterIPs[0]: Invalid value: []string{{\"{is}\"}}: may not change once set"),
            ));
        }
        Ok(())
    }
}

/// What the PV controller does with a claim that is not Bound.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimSync {
    /// Bind it to this volume.
    Bind(Value),
    /// Mark it Lost.
    Lost,
    /// Leave it Pending (the volume it names is missing or taken).
    Wait,
    /// Provision a volume for it (or wait for its consumer).
    Provision,
}

fn claim_ref_names(pv: &Value, ns: &str, name: &str, uid: &str) -> bool {
    let r = |f: &str| str_at(pv, &format!("/spec/claimRef/{f}"));
    r("namespace") == ns && r("name") == name && (r("uid").is_empty() || r("uid") == uid)
}

fn has_claim_ref(pv: &Value) -> bool {
    pv.pointer("/spec/claimRef").is_some_and(Value::is_object)
}

impl State {
    /// The PV controller's decision for a claim not yet Bound, as
    /// Kubernetes makes it: a claim marked bound
    /// (`pv.kubernetes.io/bind-completed`) whose volume is missing or
    /// reserved for another uid is Lost; a claim naming a volume waits
    /// for it unless the volume is free or reserved for it; a claim naming
    /// none takes a volume whose `claimRef` names it, else one is
    /// provisioned.
    pub fn sync_claim(&self, claim: &Value) -> ClaimSync {
        let ns = str_at(claim, "/metadata/namespace");
        let name = str_at(claim, "/metadata/name");
        let uid = str_at(claim, "/metadata/uid");
        let volume_name = str_at(claim, "/spec/volumeName");
        let bound = !str_at(claim, "/metadata/annotations/pv.kubernetes.io~1bind-completed").is_empty();
        let volume = (!volume_name.is_empty())
            .then(|| {
                self.objects.get(&(
                    String::new(),
                    "persistentvolumes".to_owned(),
                    String::new(),
                    volume_name.to_owned(),
                ))
            })
            .flatten();
        if bound {
            return match volume {
                Some(pv) if !has_claim_ref(pv) || str_at(pv, "/spec/claimRef/uid") == uid => {
                    ClaimSync::Bind(pv.clone())
                }
                _ => ClaimSync::Lost,
            };
        }
        if !volume_name.is_empty() {
            return match volume {
                Some(pv) if !has_claim_ref(pv) || claim_ref_names(pv, ns, name, uid) => ClaimSync::Bind(pv.clone()),
                _ => ClaimSync::Wait,
            };
        }
        let reserved = self
            .of_resource("", "persistentvolumes")
            .map(|(_, pv)| pv)
            .find(|pv| claim_ref_names(pv, ns, name, uid));
        match reserved {
            Some(pv) => ClaimSync::Bind(pv.clone()),
            None => ClaimSync::Provision,
        }
    }

    /// Marks Released the volumes whose claim is gone (a claim of that
    /// name with another uid is not looked at: simplified).
    pub fn release_volumes(&mut self) {
        let released: Vec<Value> = self
            .of_resource("", "persistentvolumes")
            .map(|(_, pv)| pv.clone())
            .filter(|pv| {
                let claim_uid = str_at(pv, "/spec/claimRef/uid");
                let claim = (
                    String::new(),
                    "persistentvolumeclaims".to_owned(),
                    str_at(pv, "/spec/claimRef/namespace").to_owned(),
                    str_at(pv, "/spec/claimRef/name").to_owned(),
                );
                !claim_uid.is_empty() && str_at(pv, "/status/phase") == "Bound" && !self.objects.contains_key(&claim)
            })
            .collect();
        let Some(d) = self.def_of("", "persistentvolumes") else {
            return;
        };
        for mut pv in released {
            pv["status"] = json!({"phase": "Released"});
            let key = (
                String::new(),
                "persistentvolumes".to_owned(),
                String::new(),
                str_at(&pv, "/metadata/name").to_owned(),
            );
            let _ = self.replace(&d, &key, pv, Some("kube-controller-manager"));
        }
    }
}
